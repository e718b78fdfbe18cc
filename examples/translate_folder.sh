#!/usr/bin/env bash
# Translate every image of a folder with a trained run: outputs keep each input's name and size.
# RUN: a run folder (its latest checkpoint) or a checkpoint folder; IMAGES: a folder of label maps.
set -euo pipefail
RUN=${RUN:-runs/facades}
IMAGES=${IMAGES:-labels}
OUT=${OUT:-translated}
i2i translate --checkpoint "$RUN" "$IMAGES" --out "$OUT" --mode eval
ls "$OUT"
