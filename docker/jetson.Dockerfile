# interhand_perception on an NVIDIA Jetson (Orin) with JetPack 6 (L4T r36, Ubuntu 22.04).
# Build on the Jetson itself (or with an arm64 builder):
#
#   docker build -f docker/jetson.Dockerfile -t interhand_perception:jetson .
#   docker run --rm --runtime nvidia --network host --ipc host \
#       -e ROS_LOCALHOST_ONLY=0 -e ROS_DOMAIN_ID=0 interhand_perception:jetson
#   # DIR on TensorRT: the engine is built on the Jetson at the first start (minutes) into the
#   # volume, and reused by later starts (docs/tensorrt.md):
#   docker run --rm --runtime nvidia --network host --ipc host -e INTERHAND_BUILD_ENGINE=1 \
#       -v interhand_cache:/root/.cache/interhand_perception interhand_perception:jetson \
#       ros2 run interhand_perception hands_node --ros-args -p method:=dir -p backend:=tensorrt \
#       -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
#
# Base: NVIDIA's l4t-jetpack image of the JetPack release on the device; the container's L4T
# major version must match the device's (r36 here). r36.4.0 is JetPack 6.1: CUDA 12.6, cuDNN 9.3,
# TensorRT 10.3 (JetPack 6.2, r36.4.3, has the same versions). TensorRT and its Python bindings
# come from the base image, not from pip (PyPI's aarch64 TensorRT wheels are for SBSA servers);
# `interhand export tensorrt` and the node's `backend: tensorrt` use them. An engine is specific
# to the TensorRT version and the GPU, so it is built on the device, never in `docker build`.
# ROS 2: Humble, the ROS 2 LTS release with binary packages for Ubuntu 22.04 (Jazzy's are for
# Ubuntu 24.04; on JetPack 6 it would have to be built from source). scripts/ros_env.sh and the
# node handle Humble (ROS_LOCALHOST_ONLY instead of ROS_AUTOMATIC_DISCOVERY_RANGE).
ARG L4T_IMAGE=nvcr.io/nvidia/l4t-jetpack:r36.4.0
FROM ${L4T_IMAGE}

# PyTorch for Jetson: not the aarch64 wheels of pypi.org (CPU-only or built for server GPUs),
# but NVIDIA's builds for JetPack 6 / CUDA 12.6 from the Jetson AI Lab index (its address moved
# from pypi.jetson-ai-lab.dev to pypi.jetson-ai-lab.io; pass the one that answers). Those wheels
# link against JetPack's CUDA libraries; if `import torch` then asks for libcusparseLt, install
# cuSPARSELt as NVIDIA's "Installing PyTorch for Jetson Platform" guide says.
ARG TORCH_INDEX=https://pypi.jetson-ai-lab.dev/jp6/cu126
ARG TORCH_SPEC=torch
ENV ROS_DISTRO=humble

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

# ROS 2 Humble from packages.ros.org.
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates curl gnupg software-properties-common \
    && add-apt-repository -y universe \
    && curl -fsSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
        -o /usr/share/keyrings/ros-archive-keyring.gpg \
    && echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/ros-archive-keyring.gpg] http://packages.ros.org/ros2/ubuntu $(. /etc/os-release && echo "$UBUNTU_CODENAME") main" \
        > /etc/apt/sources.list.d/ros2.list \
    && apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-venv python3-dev cmake g++ make \
        python3-colcon-common-extensions \
        ros-${ROS_DISTRO}-ros-base ros-${ROS_DISTRO}-rosidl-default-generators \
        ros-${ROS_DISTRO}-tf2-ros ros-${ROS_DISTRO}-tf2-msgs \
        ros-${ROS_DISTRO}-launch-ros ros-${ROS_DISTRO}-cv-bridge \
        ros-${ROS_DISTRO}-diagnostic-msgs ros-${ROS_DISTRO}-visualization-msgs \
        ros-${ROS_DISTRO}-v4l2-camera \
    && rm -rf /var/lib/apt/lists/*

# The node's venv sees the distribution's Python packages (rclpy, messages). torch comes without
# its dependencies from the Jetson index (so nothing else is taken from there), they and the
# project come from pypi.org next. numpy stays below 2 (the distribution's compiled modules use
# numpy 1.x); the project needs numpy >= 1.24, newer than Ubuntu 22.04's, so the venv has its own.
RUN python3 -m venv --system-site-packages /opt/venv \
    && /opt/venv/bin/python -m pip install --upgrade pip \
    && /opt/venv/bin/python -m pip install --no-deps "${TORCH_SPEC}" --index-url "${TORCH_INDEX}" \
    && printf 'numpy<2\nopencv-python-headless<4.12\n' > /opt/venv/constraints.txt

COPY . /opt/interhand_perception
WORKDIR /opt/interhand_perception

# TensorRT comes with JetPack in the base image; the venv sees the system Python's packages.
# onnx: the ONNX export the TensorRT engine is built from (interhand export tensorrt).
# No `import torch` here: the Jetson GPU libraries are mounted by the NVIDIA runtime at `docker run`
# time and may be missing during the build.
RUN /opt/venv/bin/python -m pip install -c /opt/venv/constraints.txt -e /opt/interhand_perception onnx \
    && source "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && rm -rf ros2_ws/build ros2_ws/install ros2_ws/log \
    && ROS_FROM=distro PYTHON3_EXECUTABLE=/usr/bin/python3 NODE_PYTHON=/opt/venv/bin/python bash scripts/setup_ros.sh \
    && /opt/venv/bin/python -c "import interhand_perception" \
    && { /opt/venv/bin/python -c "import importlib.util as u; assert u.find_spec('tensorrt')" \
         || echo "WARNING: no TensorRT Python bindings in the base image: backend tensorrt will not work" \
                 "(apt-get install python3-libnvinfer from the JetPack repository)"; }

ENV PATH=/opt/venv/bin:${PATH}
COPY docker/entrypoint.sh /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
CMD ["ros2", "launch", "interhand_perception", "hands.launch.py"]
