#!/usr/bin/env bash
# Issue 13's GPU tables in one prepared call of under 9 minutes on a CUDA machine (no ROS 2,
# MediaPipe or TensorRT needed there), most important first, each step under its own timeout so
# that one slow step cannot eat the rest:
#   1. the targets: ResNet-50, T = 2, 256 px: eager fp32/fp16/bf16, CUDA graph fp32/fp16/bf16
#      and fp16 channels-last, at batch 1, 16 and 64 (interhand bench --devices cuda),
#   2. the node's frame on the GPU, stage by stage, every pytorch variant (CUDA graph in fp32,
#      bf16, fp16, fp16 channels-last) with crop_mode center (interhand bench --node --no-ros),
#   3. fp16 / bf16 error against fp32 on the held-out synthetic split, demo weights (interhand
#      eval --precision-check),
#   4. the grid: ResNet-18 and -50, T = 0..3, batch 1 and 16 (eager fp32, graph fp32 / fp16 /
#      fp16 channels-last; the per-stage cost comes from it),
#   5. torch.compile max-autotune for ResNet-50, T = 2, batch 1 (compiling can take minutes).
# Everything is printed and appended to OUT/run.log (default gpu_out/).
#
#   OUT=$OUT bash scripts/gpu_bench_run.sh            # on the GPU machine
#   DEVICE=cpu SCALE=dry bash scripts/gpu_bench_run.sh   # a quick CPU dry run of every step
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
source scripts/gpu_common.sh  # $IH, $PY, $OUT/run.log, say(); writes the machine first
step() {  # step SECONDS TITLE COMMAND...
  local limit=$1 title=$2
  shift 2
  say "$title"
  timeout "$limit" "$@" 2>&1 | grep -v "it/s\]\|batch/s\]" | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then say "  (exit $rc$([ "$rc" = 124 ] && echo ': timed out'))"; fi
}
if [ "${SCALE:-full}" = dry ]; then
  REPEATS=2; NODE_REPEATS=2; SAMPLES=16; BATCHES=1,2; BACKBONES=resnet18; STAGES=0,1
else
  REPEATS=30; NODE_REPEATS=50; SAMPLES=200; BATCHES=1,16,64; BACKBONES=resnet18,resnet50; STAGES=0,1,2,3
fi
NO_COMPILE="eager fp32,eager fp16,eager bf16,graph fp32,graph fp16,graph bf16,graph fp16 NHWC"
GRID="eager fp32,graph fp32,graph fp16,graph fp16 NHWC"

step 150 "1. targets: ResNet-50, T = 2, 256 px, batch $BATCHES" \
  $IH bench --devices "$DEVICE" --backbones resnet50 --stages 2 --img-size 256 --repeats "$REPEATS" \
  --variants "$NO_COMPILE" --batches "$BATCHES"
step 120 "2. the node's frame on the GPU (640x480, crop_mode center, no ROS: messages not timed)" \
  $IH bench --node --no-ros --devices "$DEVICE" --repeats "$NODE_REPEATS"
step 120 "3. fp16 / bf16 against fp32, demo weights, $SAMPLES held-out samples" \
  $IH eval --device "$DEVICE" --samples "$SAMPLES" --precision-check bf16,fp16 --overlay "" --out "$OUT/precision.json"
step 150 "4. grid: $BACKBONES, T = $STAGES, batch 1 and 16, $GRID" \
  $IH bench --devices "$DEVICE" --backbones "$BACKBONES" --stages "$STAGES" --img-size 256 --repeats "$REPEATS" \
  --variants "$GRID" --batches 1,16
step 180 "5. torch.compile max-autotune, ResNet-50, T = 2, batch 1" \
  $IH bench --devices "$DEVICE" --backbones resnet50 --stages 2 --img-size 256 --repeats "$REPEATS" \
  --variants compiled --batches 1
say "done"
