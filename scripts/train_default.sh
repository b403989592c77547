#!/usr/bin/env bash
# Trains the embedded default model (models/default.onnx) from scratch with Kestrel's own WGSL trainer, then
# evaluates it on held-out synthetic images and rewrites its card (models/README.md).
#
#   scripts/train_default.sh [WORK_DIR]      (default: /tmp/kestrel-default-model; it is emptied first, so it
#                                             must lie under /tmp or be named kestrel-default-model*)
#
# Everything follows from fixed seeds: the data (synth seeds 1 train, 2 val, 3 test), the initial weights
# (new-model seed 0) and the trainer's shuffling and augmentation (models/default.finetune.json "seed").
# The float results still depend on the adapter (lavapipe vs a real GPU) because reductions run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

WORK="${1:-/tmp/kestrel-default-model}"
CONFIG=models/default.finetune.json
NAMES=circle,square,triangle
# Model and data sizes (quoted in the card): yolov5 at these multiples, images synthesised at the training size.
# The model keeps its BatchNorm layers (new-model --unfused): without them, training from scratch barely moves.
DEPTH=0.33
WIDTH=0.125
IMGSZ=$(deno eval "console.log(JSON.parse(Deno.readTextFileSync('$CONFIG')).imgsz)")
N_TRAIN=1600
N_VAL=100
N_TEST=500

case "$WORK" in /tmp/?* | */kestrel-default-model*) ;; *) echo "refusing to empty '$WORK'" >&2 && exit 2 ;; esac
rm -rf "$WORK"
mkdir -p "$WORK"
deno task synth --out "$WORK/data" --n "$N_TRAIN" --imgsz "$IMGSZ" --seed 1
deno task synth --out "$WORK/data/val" --n "$N_VAL" --imgsz "$IMGSZ" --seed 2
deno task synth --out "$WORK/test" --n "$N_TEST" --imgsz "$IMGSZ" --seed 3
deno task new-model --nc 3 --names "$NAMES" --depth "$DEPTH" --width "$WIDTH" --imgsz "$IMGSZ" --seed 0 \
  --unfused --out "$WORK/init.onnx"

start=$(date +%s)
deno task finetune --config "$CONFIG" --model "$WORK/init.onnx" --data "$WORK/data" --out "$WORK/run" \
  > "$WORK/finetune.json" 2> >(tee "$WORK/finetune.log" >&2)
seconds=$(($(date +%s) - start))
load=$(cut -d' ' -f1-3 /proc/loadavg)

cp "$WORK/run/ema.onnx" models/default.onnx
deno run -A scripts/eval_model.ts models/default.onnx "$WORK/test" | tee "$WORK/test_eval.json"
deno run -A scripts/default_model_card.ts --work "$WORK" --config "$CONFIG" --seconds "$seconds" \
  --depth "$DEPTH" --width "$WIDTH" --n-train "$N_TRAIN" --n-val "$N_VAL" --n-test "$N_TEST" \
  --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --load "$load" > models/README.md
deno fmt models/README.md
echo "models/default.onnx ($(stat -c %s models/default.onnx) bytes) and models/README.md written"
