# interhand_perception on an x86_64 machine with an NVIDIA GPU: ROS 2 + the
# node + RViz2, one image for the node, the camera driver and RViz (docker/compose.yaml).
#
#   docker build -f docker/desktop.Dockerfile -t interhand_perception:desktop .
#   docker run --rm --gpus all --network host --ipc host interhand_perception:desktop
#   # DIR on TensorRT, the engine built before the node starts and kept in a volume:
#   docker run --rm --gpus all --network host --ipc host -e INTERHAND_BUILD_ENGINE=1 \
#       -v interhand_cache:/root/.cache/interhand_perception interhand_perception:desktop \
#       ros2 run interhand_perception hands_node --ros-args -p method:=dir -p backend:=tensorrt \
#       -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
#
# Base: the official Docker Library image ros:jazzy-ros-base (Ubuntu 24.04, Python 3.12) plus
# the few ROS packages the node, the launch file, the camera driver and RViz need, rather than
# osrf/ros:jazzy-desktop: that one also carries rqt, the demos and tutorials (about 1 GB more) and
# is not an official Docker Library image; ros-jazzy-rviz2 alone brings what RViz needs.
# Another distribution: --build-arg ROS_DISTRO=humble (e.g. to match a Jetson running Humble;
# DDS between different distributions is not officially supported).
ARG ROS_DISTRO=jazzy
FROM ros:${ROS_DISTRO}-ros-base

# PyTorch with CUDA from the PyTorch index: the wheels bring the CUDA runtime, cuDNN and cuBLAS,
# so the host needs only the NVIDIA driver and the NVIDIA Container Toolkit (docker --gpus).
# cu126 wheels run on drivers >= 560 (CUDA 12.6); for Blackwell GPUs use cu128 and torch >= 2.7.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG TORCH_SPEC="torch==2.7.1"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ROS packages of the node (tf2_msgs: /tf; diagnostic_msgs, visualization_msgs: outputs),
# launch_ros (the launch file), tf2_ros (tools such as tf2_echo), cv_bridge, RViz2, and the V4L2
# camera driver used by the `camera` service of docker/compose.yaml.
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-venv python3-dev cmake g++ make \
        ros-${ROS_DISTRO}-rosidl-default-generators \
        ros-${ROS_DISTRO}-tf2-ros ros-${ROS_DISTRO}-tf2-msgs \
        ros-${ROS_DISTRO}-launch-ros ros-${ROS_DISTRO}-cv-bridge \
        ros-${ROS_DISTRO}-diagnostic-msgs ros-${ROS_DISTRO}-visualization-msgs \
        ros-${ROS_DISTRO}-rviz2 ros-${ROS_DISTRO}-v4l2-camera \
    && rm -rf /var/lib/apt/lists/*

# The node's Python environment: a venv that also sees the distribution's Python packages
# (--system-site-packages), so rclpy and the message packages stay importable.
# numpy stays below 2: the distribution's compiled Python modules (message type support,
# cv_bridge) are built against its numpy 1.x and do not load under numpy 2.
RUN python3 -m venv --system-site-packages /opt/venv \
    && /opt/venv/bin/python -m pip install "${TORCH_SPEC}" --index-url "${TORCH_INDEX}" \
    && printf 'numpy<2\nopencv-python-headless<4.12\n' > /opt/venv/constraints.txt

# Inference runtimes behind the node's parameter `backend` (pytorch | onnxruntime | tensorrt), both
# built for CUDA 12 like the cu126 torch wheels, whose CUDA runtime and cuDNN 9 they use:
# - onnxruntime-gpu 1.22.0: PyPI's onnxruntime-gpu is built for CUDA 12.x + cuDNN 9 since 1.19;
#   its CUDA execution provider loads the CUDA/cuDNN libraries that torch brings (import torch
#   first, or onnxruntime.preload_dlls()).
# - tensorrt-cu12 10.9.0.34: the TensorRT release Torch-TensorRT 2.7 (the torch 2.7 companion) is
#   built against; its libraries and bindings are wheels (tensorrt-cu12-libs: gigabytes).
#   Not the unversioned `tensorrt`: that now resolves to TensorRT 11 for CUDA 13 (not the CUDA of
#   these torch wheels), and TensorRT 11 no longer has the FP16/INT8 builder flags the engine build
#   uses. Engines are built on first use, per GPU, into ~/.cache/interhand_perception/engines
#   (mount a volume there, see docker/compose.yaml; docs/tensorrt.md).
# - onnx: the ONNX export both start from (interhand export onnx / tensorrt).
ARG ORT_SPEC="onnxruntime-gpu==1.22.0"
ARG TRT_SPEC="tensorrt-cu12==10.9.0.34"
ARG ONNX_SPEC="onnx"
RUN /opt/venv/bin/python -m pip install -c /opt/venv/constraints.txt "${ORT_SPEC}" "${TRT_SPEC}" "${ONNX_SPEC}" \
    && /opt/venv/bin/python -c "from importlib.metadata import version as v; \
print('onnxruntime-gpu', v('onnxruntime-gpu'), '| tensorrt', v('tensorrt_cu12'))"

COPY . /opt/interhand_perception
WORKDIR /opt/interhand_perception

# The project (editable: the demo weights, config/ and launch/ stay beside src/), then the ROS
# workspace (interhand_perception_msgs, interhand_perception) built with the distribution's
# python3 -- scripts/setup_ros.sh sees the sourced distribution and its real tf2_msgs, so the
# fallback tf2_msgs is not built.
RUN /opt/venv/bin/python -m pip install -c /opt/venv/constraints.txt -e /opt/interhand_perception \
    && source "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && rm -rf ros2_ws/build ros2_ws/install ros2_ws/log \
    && ROS_FROM=distro PYTHON3_EXECUTABLE=/usr/bin/python3 NODE_PYTHON=/opt/venv/bin/python bash scripts/setup_ros.sh \
    && /opt/venv/bin/python -c "import torch, interhand_perception; print('torch', torch.__version__)"

# The node's launcher (lib/interhand_perception/hands_node) names /opt/venv/bin/python in its first
# line (NODE_PYTHON above); the venv first on PATH is for `interhand` and the user's shells.
ENV PATH=/opt/venv/bin:${PATH}
COPY docker/entrypoint.sh /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
CMD ["ros2", "launch", "interhand_perception", "hands.launch.py"]
