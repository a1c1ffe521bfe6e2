#!/usr/bin/env bash
# Entrypoint of the interhand_perception images: the ROS 2 distribution and the workspace built
# into the image, then the command (default: ros2 launch interhand_perception hands.launch.py).
# DDS discovery follows ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_LOCALHOST_ONLY / ROS_DOMAIN_ID as
# given to the container (docker run -e ..., compose `environment:`).
#
# INTERHAND_BUILD_ENGINE=1: before the command, make sure the TensorRT engine of the DIR
# checkpoint exists for this GPU (`interhand export tensorrt`: loads the cached engine, or builds
# it, which takes minutes). Build it here rather than inside the node so that the node starts
# with a ready engine and a failed build stops the container with the reason. Keep the cache in
# a volume (-v interhand_cache:/root/.cache/interhand_perception), or every new container builds
# again. Settings (defaults): INTERHAND_CHECKPOINT (the demo weights), INTERHAND_PRECISION
# (fp16), INTERHAND_MAX_BATCH (1), INTERHAND_ENGINE_CACHE (~/.cache/interhand_perception/engines).
# They must match what the node uses (checkpoint, precision), or it builds its own engine.
set -e
# setup.bash reads unset variables: not under `set -u`.
source "/opt/ros/${ROS_DISTRO:?ROS_DISTRO is not set in this image}/setup.bash"
source /opt/interhand_perception/ros2_ws/install/setup.bash

# Fast DDS profile with a larger shared-memory segment: best-effort images over 512 KiB reach
# other processes only when the PUBLISHING process (the camera driver) has it, and every
# service of docker/compose.yaml starts through this entrypoint (docs/ros_node.md). A profile
# file given to the container (-e FASTDDS_DEFAULT_PROFILES_FILE=... or FASTRTPS_...) wins.
# Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3 (Kilted and newer)
# reads FASTDDS_DEFAULT_PROFILES_FILE and warns about the old name.
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] && [ -z "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]; then
    case "${ROS_DISTRO}" in
        humble|iron|jazzy) export FASTRTPS_DEFAULT_PROFILES_FILE=/opt/interhand_perception/config/fastdds_large_images.xml ;;
        *) export FASTDDS_DEFAULT_PROFILES_FILE=/opt/interhand_perception/config/fastdds_large_images.xml ;;
    esac
fi

if [ "${INTERHAND_BUILD_ENGINE:-0}" = "1" ]; then
    cache="${INTERHAND_ENGINE_CACHE:-${HOME:-/root}/.cache/interhand_perception/engines}"
    if ! compgen -G "${cache}/*.engine" > /dev/null; then
        echo "interhand: no TensorRT engine in ${cache} yet: building one before starting (takes minutes)"
    fi
    args=(export tensorrt --cache-dir "${cache}" --precision "${INTERHAND_PRECISION:-fp16}"
          --max-batch "${INTERHAND_MAX_BATCH:-1}")
    if [ -n "${INTERHAND_CHECKPOINT:-}" ]; then
        args+=(--checkpoint "${INTERHAND_CHECKPOINT}")
    fi
    interhand "${args[@]}" || { echo "interhand: the TensorRT engine could not be built (see above)" >&2; exit 1; }
fi
exec "$@"
