"""Make the project's ROS 2 workspace importable without sourcing anything (used by the demo).

``scripts/ros_env.sh`` is the documented way; this does the same for one command so that the
README's main command needs no ``source``: when ``interhand_perception_msgs`` cannot be imported
but ``ros2_ws/install`` exists, the process re-executes itself with PYTHONPATH,
LD_LIBRARY_PATH (read only at process start, hence the re-exec) and AMENT_PREFIX_PATH
extended, with DDS discovery kept on this machine and Fast DDS pointed at
config/fastdds_large_images.xml (images over 512 KiB; docs/ros_node.md).
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
from pathlib import Path

from ..paths import REPO_ROOT

REEXEC_FLAG = "INTERHAND_ROS_ENV_APPLIED"


def workspace_env(install: Path, env: dict) -> dict:
    """``env`` extended with every package installed under ``install`` (a colcon install dir).

    Args:
        install: e.g. ``ros2_ws/install``.
        env: the current environment (not modified).
    Returns:
        A new environment dict.
    """
    out = dict(env)

    def prepend(var: str, path: str) -> None:
        parts = [p for p in out.get(var, "").split(os.pathsep) if p]
        if path not in parts:
            out[var] = os.pathsep.join([path, *parts])

    for pkg in sorted(p for p in install.iterdir() if p.is_dir()):
        for sp in glob.glob(str(pkg / "lib" / "python3*" / "site-packages")):
            prepend("PYTHONPATH", sp)
        if (pkg / "lib").is_dir():
            prepend("LD_LIBRARY_PATH", str(pkg / "lib"))
        if (pkg / "share").is_dir():
            prepend("AMENT_PREFIX_PATH", str(pkg))
    prepend("AMENT_PREFIX_PATH", sys.prefix)
    out.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # The Fast DDS profile for images over 512 KiB, as scripts/ros_env.sh sets it (unless the
    # caller chose a profile file): Fast DDS 2 (Humble, Jazzy) reads the FASTRTPS_ name only.
    profile = REPO_ROOT / "config" / "fastdds_large_images.xml"
    if profile.is_file() and not (out.get("FASTDDS_DEFAULT_PROFILES_FILE")
                                  or out.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
        old_fastdds = out.get("ROS_DISTRO") in ("humble", "iron", "jazzy")
        out["FASTRTPS_DEFAULT_PROFILES_FILE" if old_fastdds else "FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    return out


def ensure_ros_env(argv: list[str]) -> None:
    """Return if the interfaces import; else re-exec ``python -m interhand_perception.cli argv``
    with the workspace environment, or exit with instructions when there is no workspace."""
    if importlib.util.find_spec("interhand_perception_msgs") is not None:
        return
    install = REPO_ROOT / "ros2_ws" / "install"
    if os.environ.get(REEXEC_FLAG) or not (install / "interhand_perception_msgs").is_dir():
        sys.exit("the ROS 2 interfaces (interhand_perception_msgs) are not built or not importable: run "
                 "`bash scripts/setup_ros.sh` (or scripts/setup.sh), then `source scripts/ros_env.sh`")
    env = workspace_env(install, os.environ)
    env[REEXEC_FLAG] = "1"
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "interhand_perception.cli", *argv], env)
