"""The ROS 2 side: the ``hands_node`` node and message building.

:mod:`hands_node` wires topics to ``pipeline.Pipeline`` (every decision is a plain function
there or in :mod:`conversions`); the node's parameters are ``pipeline.config``'s table;
:mod:`environment` puts the built workspace on the paths. Everything but :mod:`environment`
needs rclpy and the built interface package (``scripts/setup_ros.sh``, then
``source scripts/ros_env.sh``).
"""
