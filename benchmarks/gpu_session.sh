#!/usr/bin/env bash
# The GPU checks of one session on a lent CUDA machine, in one go, from the repository root:
#   bash benchmarks/gpu_session.sh [OUT_DIR] [STAGES]   (OUT_DIR: default $OUT, else /tmp/i2i-gpu;
#                                                        STAGES: gpu (default), host or gpu,host)
# 1. the machine and the packages it has; 2. the tests that need a GPU; 3. `i2i doctor`, a short
# `i2i run` (also with --cuda-graphs, pix2pix and cyclegan) and `i2i translate` on the GPU (the engine's CUDA path end to end; with
# I2I_GPU_FP16=1 also in fp16); 4. the benchmark table (every path; with I2I_GPU_COMPILE=1 also
# under torch.compile, which takes minutes more). The host stage times the CPU rows on two of
# the host's physical cores (taskset, 2 threads), as this project's 2-core machines run them (with
# I2I_HOST_PROFILE=ROWS also the profiler's top operators of those rows): the
# GPU hosts seen so far are Xeons with AMX, the CPU class the bf16 targets are set for.
# Each stage has its own time limit and the later stages run even when one fails; wheels in
# .whl/ (packages the machine lacks, e.g. kornia) are installed into /tmp/site first.
set -u -o pipefail
out=${1:-${OUT:-/tmp/i2i-gpu}}
stages=",${2:-gpu},"
IFS=, read -r -a asked <<<"${2:-gpu}"
for s in "${asked[@]}"; do
    if [[ $s != gpu && $s != host ]]; then
        echo "gpu_session.sh: unknown stage '$s' (STAGES: gpu, host or gpu,host)" >&2
        exit 2
    fi
done
mkdir -p "$out"
log="$out/gpu.log"
export PYTHONUNBUFFERED=1 I2I_CACHE=/tmp/i2i-cache
py=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD:$PWD/plugins"
else
    export PYTHONPATH="$PWD:$PWD/plugins"
fi
stage() { echo; echo "## $(date -u +%H:%M:%S) $*"; }
{
    stage machine
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    fi
    lscpu | grep -E "Model name|^CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)|^Model:"
    grep -m1 -o -w -E "amx_bf16|avx512_bf16|avx512f|avx2" /proc/cpuinfo | sort -u | tr "\n" " "
    echo
    "$py" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), \
'tf32 conv', torch.backends.cudnn.allow_tf32, 'tf32 matmul', torch.backends.cuda.matmul.allow_tf32)"
    "$py" -m pip list 2>/dev/null | grep -i -E \
        "^(torch|torchvision|timm|kornia|pluggy|click|safetensors|numpy|pillow|scikit-image) "
    "$py" -c "import i2i.cli, benchmarks.bench, i2i_colorize; print('i2i imports')" || exit 2
} 2>&1 | tee "$log" || exit 2
[[ $stages == *,gpu,* ]] && {
    stage "the GPU tests (CUDA graphs)"
    timeout 90 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py
    stage "i2i doctor"
    timeout 60 "$py" -m i2i doctor
    stage "i2i run on the GPU (colorize, built-in data, 40 steps)"
    timeout 100 "$py" -m i2i run --task colorize --gen unet --disc patch70 --epochs 1 \
        --max-steps 40 --log-every 10 --device cuda --out /tmp/i2i-runs/colorize &&
        cp /tmp/i2i-runs/colorize/resolved.json "$out/resolved.json"
    stage "i2i run --cuda-graphs (the whole training step replayed; DataLoader workers pinning)"
    timeout 100 "$py" -m i2i run --task colorize --gen unet --disc patch70 --epochs 2 \
        --max-steps 100 --log-every 20 --device cuda --cuda-graphs \
        --out /tmp/i2i-runs/colorize-graphs 2>&1 | tee "$out/run_graphs.log" &&
        cp /tmp/i2i-runs/colorize-graphs/resolved.json "$out/resolved_graphs.json"
    stage "i2i run --recipe cyclegan --cuda-graphs (image pools drawn before each replay)"
    timeout 100 "$py" -m i2i run --task colorize --recipe cyclegan \
        --recipe-opt lambda_identity=0 --epochs 1 --max-steps 60 --log-every 20 --device cuda \
        --cuda-graphs --out /tmp/i2i-runs/cyclegan-graphs 2>&1 | tee -a "$out/run_graphs.log"
    if grep -q "could not be captured" "$out/run_graphs.log"; then
        echo "CUDA graphs: the capture FAILED in i2i run (the step ran eagerly)"
    fi
    stage "i2i translate on the GPU"
    timeout 45 "$py" -m i2i translate -c /tmp/i2i-runs/colorize --device cuda \
        -o /tmp/i2i-runs/out "$I2I_CACHE/builtin-v1/val" && ls /tmp/i2i-runs/out | wc -l
    if [ -n "${I2I_GPU_FP16:-}" ]; then
        stage "i2i run in fp16 with a gradient scaler (GPUs without bf16 take this path)"
        timeout 60 "$py" -m i2i run --task colorize --gen unet --disc patch70 --epochs 1 \
            --max-steps 20 --log-every 10 --device cuda --precision fp16 --out /tmp/i2i-runs/fp16
    fi
    # One benchmark run per group, so that a group cut off by its limit loses only itself.
    for group in "infer:infer256_b1,infer256_b8,infer256_b32:120" \
        "train:train256_b1,train256_b8,train256_b32:210" \
        "cyclegan:cyclegan256_b1:70" ${I2I_GPU_COMPILE:+"compile_infer:infer256_b1:100"} \
        ${I2I_GPU_COMPILE:+"compile_train:train256_b1:150"}; do
        IFS=: read -r name rows limit <<<"$group"
        compile=""
        [[ $name == compile_* ]] && compile="--with-compile"
        stage "benchmark $compile: $rows"
        timeout "$limit" "$py" -m benchmarks.bench --device cuda --no-data --reps 30 \
            $compile --rows "$rows" --json "$out/bench_$name.json"
    done
} 2>&1 | tee -a "$log"
[[ $stages == *,host,* ]] && {
    # two CPUs on distinct physical cores (hyperthread siblings would share one core)
    cpus=$(lscpu -p=CPU,CORE | grep -v "^#" | sort -t, -k2,2n -u | head -2 | cut -d, -f1 | paste -sd,)
    echo "host stage on CPUs ${cpus:=0,1}"
    host=(taskset -c "$cpus" env OMP_NUM_THREADS=2 CUDA_VISIBLE_DEVICES= I2I_BENCH_DEVICE=cpu)
    stage "host CPU, 2 cores: i2i doctor"
    timeout 60 "${host[@]}" "$py" -m i2i doctor
    stage "host CPU, 2 cores: benchmark of the pix2pix rows"
    timeout "${I2I_HOST_LIMIT:-300}" "${host[@]}" "$py" -m benchmarks.bench --device cpu \
        --no-data --rows "${I2I_HOST_ROWS:-train256_b1,train256_b8,infer256_b1,infer256_b8}" \
        --json "$out/bench_host.json"
    if [ -n "${I2I_HOST_PROFILE:-}" ]; then
        stage "host CPU, 2 cores: torch.profiler top operators of $I2I_HOST_PROFILE"
        timeout "${I2I_HOST_PROFILE_LIMIT:-150}" "${host[@]}" "$py" -m benchmarks.bench \
            --device cpu --profile "$I2I_HOST_PROFILE"
    fi
} 2>&1 | tee -a "$log"
echo "## $(date -u +%H:%M:%S) done" | tee -a "$log"
