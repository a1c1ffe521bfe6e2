#!/usr/bin/env bash
# The demo weights and the GPU tables in one prepared run on a CUDA machine (no ROS needed):
#   1. render the synthetic training data (generator version 2) and the held-out test split,
#   2. time training, old path against the fast one (interhand bench --train), for the demo
#      model and for ResNet-50 at 256 px,
#   3. train configs/demo_r18_128.yaml for MINUTES of wall time (the cosine schedule follows the
#      clock, so a short budget still ends at lr 0),
#   4. evaluate on the 500 held-out samples (every metric per stage, handedness diagnostics),
#   5. time inference on the GPU (interhand bench --devices cuda),
#   6. put the fp16 weights into OUT in 15 MiB parts (the device tool returns files up to 16 MiB;
#      `cat weights.part* > demo_r18_128.safetensors` and the sha256 in run.log put them back).
# Everything lands in OUT (default gpu_out/): run.log, log.jsonl, eval.json, curves.png and the
# weight parts. Re-running continues: existing shards are kept, and RESUME=1 resumes training.
#
#   OUT=gpu_out MINUTES=5 NUM=10240 bash scripts/gpu_demo_run.sh
# Knobs: BATCH (256: the eager step is launch-bound, ~0.2 s whatever the batch, so samples/s grow
# with it), LR (8e-4), INIT (a checkpoint to start from, e.g. the shipped demo weights), DEVICE
# (cuda; cpu for a dry run), SKIP_BENCH_TRAIN=1, SKIP_BENCH_CUDA=1.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
MINUTES=${MINUTES:-5}
NUM=${NUM:-10240}
WORKERS=${WORKERS:-$(nproc)}
RUN=${RUN:-runs/demo_r18_128}
BENCH_STEPS=${BENCH_STEPS:-30}
BATCH=${BATCH:-256}
LR=${LR:-8.0e-4}
DEVICE=${DEVICE:-cuda}
INIT_SET=()
if [ -n "${INIT:-}" ]; then INIT_SET=(train.init_from="$INIT"); fi
source scripts/gpu_common.sh  # $IH, $PY, $OUT/run.log, say(); writes the machine first

say "render $NUM training + 500 test samples (128 px) with $WORKERS workers"
$IH gen-data --out data_cache/syn128v2 --num "$NUM" --img-size 128 --workers "$WORKERS" 2>&1 | tail -n 1 | tee -a "$LOG"
$IH gen-data --out data_cache/syn128v2 --num 500 --split test --img-size 128 --workers "$WORKERS" 2>&1 | tail -n 1 | tee -a "$LOG"

if [ "${SKIP_BENCH_TRAIN:-0}" != 1 ]; then
  say "training throughput, demo config (ResNet-18, 128 px)"
  $IH bench --train --config configs/demo_r18_128.yaml --steps "$BENCH_STEPS" --batch "$BATCH" --devices "$DEVICE" 2>&1 | grep -v "it/s\]" | tee -a "$LOG" || true
  say "training throughput, ResNet-50 at 256 px (1,024 pre-rendered 256 px samples)"
  $IH gen-data --out data_cache/syn256v2 --num 1024 --img-size 256 --workers "$WORKERS" 2>&1 | tail -n 1 | tee -a "$LOG"
  $IH bench --train --config configs/dir_r50_synthetic.yaml --steps "$BENCH_STEPS" --devices "$DEVICE" \
    --set data.cache_dir=data_cache/syn256v2 data.train_samples=1024 2>&1 | grep -v "it/s\]" | tee -a "$LOG" || true
fi

say "train for $MINUTES minutes"
RESUME_FLAG=""
if [ "${RESUME:-0}" = 1 ]; then RESUME_FLAG="--resume"; fi
mkdir -p "$(dirname "$RUN")"
if ! $IH train --config configs/demo_r18_128.yaml $RESUME_FLAG \
    --set train.out_dir="$RUN" train.max_minutes="$MINUTES" data.train_samples="$NUM" train.device="$DEVICE" \
    train.batch_size="$BATCH" train.lr="$LR" "${INIT_SET[@]}" > "${RUN}_output.txt" 2>&1; then
  tr '\r' '\n' < "${RUN}_output.txt" | tail -n 30 | tee -a "$LOG"
  say "training failed"
  exit 1
fi
tr '\r' '\n' < "${RUN}_output.txt" | grep -v "^\s*$" | awk 'NR % 50 == 0' | tee -a "$LOG"
cp "$RUN/log.jsonl" "$RUN/curves.png" "$OUT/" 2>/dev/null || true
tail -n 1 "$RUN/log.jsonl" | tee -a "$LOG"

say "evaluate on the held-out split"
$IH eval --checkpoint "$RUN/model_fp16.safetensors" --out "$OUT/eval.json" --overlay "$OUT/eval_overlay.png" --device "$DEVICE" 2>&1 | grep -v "batch/s\]" | tee -a "$LOG" || true

say "split the weights"
split -b 15M -d "$RUN/model_fp16.safetensors" "$OUT/weights.part"
sha256sum "$RUN/model_fp16.safetensors" | tee -a "$LOG"

if [ "${SKIP_BENCH_CUDA:-0}" != 1 ]; then
  say "inference on the GPU"
  $IH bench --devices "$DEVICE" --backbones resnet18,resnet50 --stages 0,1,2,3 --img-size 256 2>&1 | tee -a "$LOG" || true
fi
say "done"
