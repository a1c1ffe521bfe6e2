#!/usr/bin/env bash
# Entrypoint of the interhand_perception images: the ROS 2 distribution and the workspace built
# into the image, then the command (default: ros2 launch interhand_perception hands.launch.py).
# DDS discovery follows ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_LOCALHOST_ONLY / ROS_DOMAIN_ID as
# given to the container (docker run -e ..., compose `environment:`).
set -e
# setup.bash reads unset variables: not under `set -u`.
source "/opt/ros/${ROS_DISTRO:?ROS_DISTRO is not set in this image}/setup.bash"
source /opt/interhand_perception/ros2_ws/install/setup.bash
exec "$@"
