"""The built ROS 2 workspace (scripts/setup_ros.sh) and the parameter file under real rclpy.

* ros2_ws/install holds interhand_perception with real copies (not links) of the launch file,
  the parameters and the RViz config, and the executable lib/interhand_perception/hands_node;
  the copies are those of the repository (a stale install says to run setup_ros.sh again).
* tf2_msgs: the fallback package is installed exactly when setup_ros.sh found no tf2_msgs in
  ROS 2 (always with the registry's wheels, never with a distribution); its TFMessage has the
  real definition and is the one Python imports.
* scripts/ros_env.sh puts every installed package on PYTHONPATH / LD_LIBRARY_PATH /
  AMENT_PREFIX_PATH, once, also when sourced twice.
* config/hands.yaml read by rclpy's own parameter-file parser (rcl_yaml_param_parser): every
  parameter arrives with the right ROS type for a node named hands_node with and without a
  namespace, and not for a node of another name.
* The package manifests parse with catkin_pkg (the parser colcon and ament use).

Without a built workspace (or rclpy, or catkin_pkg) the tests that need it skip with the reason;
INTERHAND_REQUIRE_ROS=1 makes that a failure.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WS = ROOT / "ros2_ws"
INSTALL = WS / "install"
PKG_INSTALL = INSTALL / "interhand_perception"
SHARE = PKG_INSTALL / "share" / "interhand_perception"
TF_MESSAGE_DEFINITION = "geometry_msgs/TransformStamped[] transforms\n"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("INTERHAND_REQUIRE_ROS") == "1":
        pytest.fail(f"INTERHAND_REQUIRE_ROS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture()
def installed() -> Path:
    if not (INSTALL / "interhand_ros_env").is_file():
        _skip_or_fail(f"{INSTALL.relative_to(ROOT)} is not built; run scripts/setup_ros.sh")
    if not PKG_INSTALL.is_dir():
        _skip_or_fail("ros2_ws/install has no interhand_perception; run scripts/setup_ros.sh again")
    return INSTALL


def _stamp() -> dict[str, str]:
    lines = (INSTALL / "interhand_ros_env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_installed_package_has_real_files(installed):
    pairs = [(SHARE / "launch" / "hands.launch.py", ROOT / "launch" / "hands.launch.py"),
             (SHARE / "config" / "hands.yaml", ROOT / "config" / "hands.yaml"),
             (SHARE / "config" / "hands.rviz", ROOT / "config" / "hands.rviz")]
    for dst, src in pairs:
        for p in (dst, dst.parent):
            assert p.exists() and not p.is_symlink(), f"{p} is missing or a link"
        assert dst.read_bytes() == src.read_bytes(), \
            f"{dst.relative_to(ROOT)} differs from {src.relative_to(ROOT)}: run scripts/setup_ros.sh"
    assert not list(SHARE.rglob("__pycache__"))
    launcher = PKG_INSTALL / "lib" / "interhand_perception" / "hands_node"
    assert launcher.is_file() and not launcher.is_symlink() and os.access(launcher, os.X_OK)
    text = launcher.read_text()
    assert f'REPO_ROOT = "{ROOT}"' in text, "the launcher does not name this checkout"
    assert text.startswith(f"#!{_stamp()['IH_NODE_PYTHON']}\n"), "the launcher does not name the node's interpreter"
    assert (INSTALL / "interhand_perception" / "share" / "ament_index" / "resource_index"
            / "packages" / "interhand_perception").is_file()


def test_tf2_msgs_fallback_only_where_ros_has_none(installed):
    stamp = _stamp()
    fallback = INSTALL / "tf2_msgs"
    assert stamp.get("IH_ROS_TF2_FALLBACK") in ("0", "1"), stamp
    if stamp["IH_ROS_FROM"] == "pypi":  # the registry's wheels have no tf2_msgs
        assert stamp["IH_ROS_TF2_FALLBACK"] == "1"
    assert fallback.is_dir() == (stamp["IH_ROS_TF2_FALLBACK"] == "1")
    if fallback.is_dir():
        assert (fallback / "share" / "tf2_msgs" / "msg" / "TFMessage.msg").read_text() == TF_MESSAGE_DEFINITION


def _env_after_sourcing(times: int) -> dict[str, list[str]]:
    script = 'source scripts/ros_env.sh || exit 1\n' * times + \
        'printf "%s\\n" "$PYTHONPATH" "$LD_LIBRARY_PATH" "$AMENT_PREFIX_PATH"'
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "AMENT_PREFIX_PATH")}
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    values = out.stdout.split("\n")[:3]
    return {k: v.split(":") for k, v in zip(("PYTHONPATH", "LD_LIBRARY_PATH", "AMENT_PREFIX_PATH"), values)}


def test_ros_env_puts_every_installed_package_on_the_paths(installed):
    if _stamp().get("IH_ROS_FROM") != "pypi":
        pytest.skip("the distribution path sources /opt/ros/...; this checks the wheel set-up")
    packages = sorted(p.name for p in INSTALL.iterdir() if (p / "share" / p.name / "package.xml").is_file())
    assert {"interhand_perception_msgs", "interhand_perception"} <= set(packages)
    once, twice = _env_after_sourcing(1), _env_after_sourcing(2)
    assert once == twice, "sourcing ros_env.sh twice changed the paths"
    for pkg in packages:
        prefix = str(INSTALL / pkg)
        assert once["AMENT_PREFIX_PATH"].count(prefix) == 1, pkg
        for sp in (INSTALL / pkg / "lib").glob("python3*/site-packages"):
            assert once["PYTHONPATH"].count(str(sp)) == 1, pkg
        if list((INSTALL / pkg / "lib").glob("*.so")):
            assert once["LD_LIBRARY_PATH"].count(str(INSTALL / pkg / "lib")) == 1, pkg


def _rclpy():
    from ros_guard import ros_unavailable_reason

    reason = ros_unavailable_reason()
    if reason is not None:
        _skip_or_fail(reason)
    import rclpy

    return rclpy


def test_tf_message_type_is_the_workspace_or_distribution_one(installed):
    _rclpy()
    from tf2_msgs.msg import TFMessage

    assert TFMessage.get_fields_and_field_types() == {"transforms": "sequence<geometry_msgs/TransformStamped>"}
    module_file = Path(__import__(TFMessage.__module__, fromlist=["_"]).__file__).resolve()
    if _stamp()["IH_ROS_TF2_FALLBACK"] == "1":
        assert INSTALL / "tf2_msgs" in module_file.parents, module_file
    else:
        assert INSTALL not in module_file.parents, module_file


def _parameters_seen_by(rclpy, node_name: str, namespace: str) -> dict:
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(ROOT / "config" / "hands.yaml")], context=ctx)
    try:
        node = rclpy.create_node(node_name, namespace=namespace, context=ctx,
                                 automatically_declare_parameters_from_overrides=True)
        try:
            return {name: (p.type_, p.value) for name, p in node.get_parameters_by_prefix("").items()}
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_params_file_is_read_by_rclpy_with_the_right_types():
    rclpy = _rclpy()
    from rclpy.parameter import Parameter

    from interhand_perception.pipeline.config import PARAMETERS

    kinds = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
             str: Parameter.Type.STRING, list: Parameter.Type.DOUBLE_ARRAY}
    expected = yaml.safe_load((ROOT / "config" / "hands.yaml").read_text())["/**/hands_node"]["ros__parameters"]
    for namespace in ("/", "/robot1", "/a/b"):
        seen = _parameters_seen_by(rclpy, "hands_node", namespace)
        got = {k: v for k, v in seen.items() if k in PARAMETERS}
        assert set(got) == set(PARAMETERS), (namespace, set(PARAMETERS) - set(got))
        for name, (kind, value) in got.items():
            assert kind == kinds[type(expected[name])], (namespace, name, kind)
            if kind == Parameter.Type.DOUBLE_ARRAY:
                value = list(value)
            assert value == expected[name], (namespace, name, value)
    # The key names the node: another node name gets none of them (hence the note in the file).
    assert not set(_parameters_seen_by(rclpy, "other_node", "/")) & set(PARAMETERS)


def test_package_manifests_parse_with_catkin_pkg():
    try:
        from catkin_pkg.package import parse_package
    except ImportError as exc:
        _skip_or_fail(f"catkin_pkg is not installed ({exc}); scripts/setup_ros.sh installs it")
    names = {}
    for xml in (WS / "src" / "interhand_perception" / "package.xml",
                WS / "src" / "interhand_perception_msgs" / "package.xml",
                WS / "fallback" / "tf2_msgs" / "package.xml"):
        pkg = parse_package(str(xml))  # validates, e.g. rejects an invalid maintainer e-mail
        names[pkg.name] = pkg
    assert set(names) == {"interhand_perception", "interhand_perception_msgs", "tf2_msgs"}
    run = {d.name for d in names["interhand_perception"].exec_depends}
    assert {"rclpy", "tf2_msgs", "interhand_perception_msgs", "launch_ros", "rviz2"} <= run
