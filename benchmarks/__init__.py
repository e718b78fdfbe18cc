"""Speed, memory and quality benchmarks of i2i (never timed tests); see benchmarks/README.md."""
