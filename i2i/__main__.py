"""``python -m i2i`` (and ``torchrun -m i2i``) runs the CLI."""

from i2i.cli import main

main()
