#!/usr/bin/env bash
# Train the paper's labels -> photo model on the facades data, then plot the run.
# DATA: an A|B facades folder with train/ and val/; OUT: the run folder.
# EXTRA: more `i2i run` flags (the tests pass tiny settings here).
set -euo pipefail
DATA=${DATA:-../shared/data/facades}
OUT=${OUT:-runs/facades}
# shellcheck disable=SC2086
i2i run --task facades --data "$DATA" --out "$OUT" --epochs 1 --crop-size 128 ${EXTRA:-}
i2i report "$OUT"    # writes $OUT/report/index.html: losses, learning rates, val metrics, samples
