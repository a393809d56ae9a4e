#!/usr/bin/env bash
# The README's main job on an embedded default: compile a zoo model for a Raspberry Pi 4,
# bring up the emulated Pi, flash the bundle over SSH, run it there and compare with PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
EF=.venv/bin/edgefit
MODEL=${MODEL:-mobilenet_v2}
TARGET=${TARGET:-rpi4}
OUT=out/${MODEL}-${TARGET}

echo "== 1. compile ${MODEL} for ${TARGET} (90 % sparse 1x1 layers, 1x4 blocks)"
$EF compile "$MODEL" --target "$TARGET" --sparsity 0.9 --block 1x4 -o "$OUT"

echo "== 2. run on this machine and compare with the PyTorch reference"
$EF run "$OUT" --compare-reference

if $EF board --help >/dev/null 2>&1; then
  echo "== 3. emulated ${TARGET}: board up, flash, run there, compare"
  BOARD=$($EF board up "$TARGET" --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["board"])')
  trap '$EF board down "$TARGET" >/dev/null 2>&1 || true' EXIT
  $EF flash "$OUT" --board "$BOARD" --accept-new
  $EF run "$OUT" --board "$BOARD" --compare-reference
fi
