"""Skip (or, with INTERHAND_REQUIRE_ROS=1, fail) a ROS test module when ROS 2 cannot be used.

Call :func:`require_ros` at the top of a test module, before importing rclpy or messages.
"""
from __future__ import annotations

import os

import pytest


def ros_unavailable_reason() -> str | None:
    """None when rclpy, interhand_perception_msgs and tf2_msgs (with type support) can be used."""
    try:
        import rclpy  # noqa: F401
    except Exception as exc:  # ImportError, or OSError for a missing shared library
        return (f"rclpy cannot be imported ({type(exc).__name__}: {exc}); "
                "run scripts/setup_ros.sh, then `source scripts/ros_env.sh`")
    try:
        from interhand_perception_msgs.msg import HandMesh, TwoHands
        from tf2_msgs.msg import TFMessage
    except Exception as exc:
        return (f"the interfaces cannot be imported ({type(exc).__name__}: {exc}); "
                "build them with scripts/setup_ros.sh, then `source scripts/ros_env.sh`")
    try:  # the C type support loads lazily: without LD_LIBRARY_PATH it fails only here
        for msg in (TwoHands, HandMesh, TFMessage):
            msg.__class__.__import_type_support__()
    except Exception as exc:
        return (f"interface type support cannot be loaded ({type(exc).__name__}: {exc}); "
                "`source scripts/ros_env.sh` puts its libraries on LD_LIBRARY_PATH")
    return None


def require_ros() -> None:
    reason = ros_unavailable_reason()
    if reason is not None:
        if os.environ.get("INTERHAND_REQUIRE_ROS") == "1":
            pytest.fail(f"INTERHAND_REQUIRE_ROS=1 but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
