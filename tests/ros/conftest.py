"""Set-up shared by the ROS 2 tests (tests/ros).

DDS must stay on this machine and each test run on its own DDS domain, so both are set here,
when pytest loads this file and before any test module imports rclpy:

* ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (always; discovery traffic stays on loopback);
* ``ROS_DOMAIN_ID`` = ``INTERHAND_TEST_ROS_DOMAIN_ID`` if given, else 1 + pid % 101 (1..101),
  so that parallel runs on one machine do not see each other.

Child processes started by the tests inherit both.

The tests need rclpy and the built interhand_perception_msgs (``scripts/setup_ros.sh``, then
``source scripts/ros_env.sh``). Without them the ROS test modules skip themselves with the
reason; with ``INTERHAND_REQUIRE_ROS=1`` (for a CI job that is meant to test ROS) they fail.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# tests/ holds shared helpers (tiny_config.py); make them importable when only tests/ros runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = os.environ.get("INTERHAND_TEST_ROS_DOMAIN_ID") or str(1 + os.getpid() % 101)
# Topic names carry this run's token too, so that two runs that happen to share a domain do
# not hear each other.
os.environ.setdefault("INTERHAND_TEST_RUN_TOKEN", str(os.getpid()))
if os.environ.get("ROS_DISTRO") in ("humble", "iron"):  # before the discovery range existed
    os.environ["ROS_LOCALHOST_ONLY"] = "1"
else:  # deprecated since Jazzy: the range above replaces it
    os.environ.pop("ROS_LOCALHOST_ONLY", None)

assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 101, "ROS_DOMAIN_ID must be in 1..101"


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The DDS domain of this test run (loopback discovery checked once more)."""
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    return int(os.environ["ROS_DOMAIN_ID"])
