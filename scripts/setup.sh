#!/usr/bin/env bash
# One-command set-up on a fresh Debian/Ubuntu machine: a virtual environment in .venv with the
# CPU build of PyTorch (a CUDA build is used instead when one is already installed in the venv),
# this package with its test and ONNX extras (onnx, onnxruntime), MediaPipe, and ROS 2 (a sourced distribution, else the registry's
# ros-* wheels) with the interface package built in ros2_ws/ (scripts/setup_ros.sh; skip it with
# INTERHAND_NO_ROS=1). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! $VPY -c "import torch" 2>/dev/null; then
  # torch==2.13.0 resolves to the local CPU wheel on these machines; elsewhere pick the build
  # for your accelerator (see README, "Install").
  $VPY -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
fi
$VPY -m pip install -q -e ".[test,onnx]" 2>&1 | grep -v "^WARNING: Location" || true
# The hand detector (MediaPipe 0.10.14, the last release that ships its hand models) without its
# declared dependencies: opencv-contrib-python would install a second cv2 over
# opencv-python-headless, and jax/jaxlib/sounddevice are only needed by parts we do not use.
# What mediapipe.solutions.hands needs is listed explicitly. `pip check` reports the four
# skipped packages; that is expected.
if ! $VPY -c "import mediapipe" 2>/dev/null; then
  $VPY -m pip install -q --no-deps "mediapipe==0.10.14" absl-py attrs flatbuffers "protobuf>=4.25.3,<5" \
    2>&1 | grep -v "^WARNING: Location" || true
fi
$VPY -c "import torch, interhand_perception; print('interhand_perception ready: torch', torch.__version__)"
if [ "${INTERHAND_NO_ROS:-0}" != 1 ]; then
  VENV=.venv bash scripts/setup_ros.sh
fi
