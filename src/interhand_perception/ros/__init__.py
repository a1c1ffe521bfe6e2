"""The ROS 2 side: the ``hands_node`` node, its parameters, message building and the demo.

Everything here except :mod:`params` needs rclpy and the built interface package
(``scripts/setup_ros.sh``, then ``source scripts/ros_env.sh``); the reconstruction core does not.
"""
