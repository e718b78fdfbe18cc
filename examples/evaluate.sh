#!/usr/bin/env bash
# Score a trained run on the val split: L1, PSNR, SSIM as JSON, and an HTML page of
# input | output | target for every image.
set -euo pipefail
RUN=${RUN:-runs/facades}
DATA=${DATA:-../shared/data/facades}
OUT=${OUT:-eval}
i2i eval --checkpoint "$RUN" --data "$DATA" --split val --out "$OUT"
# $OUT/metrics.json holds the numbers; open $OUT/index.html in a browser
