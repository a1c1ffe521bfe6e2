"""The ROS 2 deployment files, checked without ROS: config/hands.yaml, launch/hands.launch.py,
config/hands.rviz, the ROS package ros2_ws/src/interhand_perception, the fallback tf2_msgs, and
the Docker files.

The launch file cannot be run here: ``launch`` and ``launch_ros`` are not on the Python package
registry (only a ROS 2 distribution has them; the Docker images run the file). So it is checked
statically (it compiles; ``ast`` finds its launch arguments and nodes) and then executed against
small stand-ins of the launch API that accept exactly the names and keyword arguments of the real
one (launch 3.x / launch_ros 0.2x, as read from their sources), so that a misspelt import or
keyword fails here, and the substitutions are evaluated with the arguments' defaults to check the
resulting remappings and file paths. The Docker images cannot be built here either (no Docker):
their COPY sources, the compose services and the build context are checked.
The parameter file is also loaded by real rclpy in tests/ros/test_packaging.py.
"""
from __future__ import annotations

import ast
import fnmatch
import os
import py_compile
import re
import shlex
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from interhand_perception.pipeline.config import PARAMETERS, validate

ROOT = Path(__file__).resolve().parents[1]
PARAMS_YAML = ROOT / "config" / "hands.yaml"
RVIZ = ROOT / "config" / "hands.rviz"
LAUNCH = ROOT / "launch" / "hands.launch.py"
ROS_PKG = ROOT / "ros2_ws" / "src" / "interhand_perception"
FALLBACK_TF2 = ROOT / "ros2_ws" / "fallback" / "tf2_msgs"
NODE_KEY = "/**/hands_node"

# The node's parameters and their types, as specified for the node (bool before int: bool is an
# int in Python, so types are compared exactly).
EXPECTED_TYPES = {
    "checkpoint": str, "mano_dir": str, "device": str, "precision": str,
    "image_transport": str, "frame_prefix": str, "publish_tf": bool, "publish_joint_tf": bool,
    "publish_markers": bool, "markers_max_rate_hz": float, "publish_wrist_poses": bool, "publish_mesh": bool,
    "crop_mode": str, "crop_roi": list, "placement": str, "assumed_hfov_deg": float,
    "camera_info_timeout_s": float, "min_confidence": float, "max_image_width": int,
    "max_image_height": int, "warn_period_s": float, "diagnostics_period_s": float,
    "image_qos": str, "image_topic": str, "camera_info_topic": str, "output_topic": str,
    "depth_topic": str, "depth_max_age_s": float, "smoothing": bool, "smoothing_min_cutoff": float,
    "smoothing_beta": float, "smoothing_d_cutoff": float, "hand_timeout_s": float, "resolve_penetration": bool,
    "method": str, "backend": str, "cuda_graph": bool, "cpu_threads": int, "mirrored": bool, "carry_frames": int, "unseen_hand_min_confidence": float,
    "distortion": str, "image_timeout_s": float,
}
# The real tf2_msgs/msg/TFMessage.msg (ros2/geometry2), byte for byte.
TF_MESSAGE_DEFINITION = "geometry_msgs/TransformStamped[] transforms\n"


# ---------------------------------------------------------------- parameters (config/hands.yaml)

def _node_params() -> dict:
    doc = yaml.safe_load(PARAMS_YAML.read_text())
    assert list(doc) == [NODE_KEY], f"one node key, {NODE_KEY!r}, expected; got {list(doc)}"
    assert list(doc[NODE_KEY]) == ["ros__parameters"]
    return doc[NODE_KEY]["ros__parameters"]


def test_params_yaml_has_exactly_the_node_parameters_with_their_types():
    values = _node_params()
    assert set(values) == set(EXPECTED_TYPES), set(values) ^ set(EXPECTED_TYPES)
    assert set(values) == set(PARAMETERS), "config/hands.yaml and pipeline/config.py list different names"
    for name, value in values.items():
        assert type(value) is EXPECTED_TYPES[name], (name, value)
    assert len(values["crop_roi"]) == 3 and all(type(x) is float for x in values["crop_roi"]), \
        "crop_roi must be three doubles (ROS would read [0, 0, 0] as an integer array)"


def test_params_yaml_values_are_the_node_defaults_and_valid():
    values = _node_params()
    for name, value in values.items():
        default = PARAMETERS[name].default
        assert value == default and type(value) is type(default), (name, value, default)
    validate(values)


def test_every_parameter_has_a_comment_above_it():
    lines = PARAMS_YAML.read_text().splitlines()
    seen = set()
    for i, line in enumerate(lines):
        m = re.match(r"^    ([a-z_0-9]+):", line)
        if m:
            seen.add(m.group(1))
            block = []
            for above in reversed(lines[:i]):
                if not above.strip().startswith("# ") or above.strip().startswith("# ---"):
                    break
                block.append(above.strip()[2:])
            assert len(" ".join(block)) > 20, f"{m.group(1)}: no comment above it"
    assert seen == set(EXPECTED_TYPES)


# ---------------------------------------------------------------- launch/hands.launch.py (static)

def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def test_launch_file_compiles_and_declares_its_arguments_and_nodes(tmp_path):
    py_compile.compile(str(LAUNCH), cfile=str(tmp_path / "hands.launch.pyc"), doraise=True)
    tree = ast.parse(LAUNCH.read_text())
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    declared = {c.args[0].value for c in calls
                if _call_name(c) == "DeclareLaunchArgument" and isinstance(c.args[0], ast.Constant)}
    assert {"image", "camera_info", "params_file", "use_rviz"} <= declared
    assert declared == {"image", "camera_info", "params_file", "use_rviz", "namespace", "log_level"}
    nodes = [{k.arg: k.value for k in c.keywords} for c in calls if _call_name(c) == "Node"]
    executables = [ast.literal_eval(n["executable"]) for n in nodes if isinstance(n.get("executable"), ast.Constant)]
    assert sorted(executables) == ["hands_node", "rviz2"]


# ---------------------------------------------------------------- launch file against API stand-ins

class _Sub:
    """A stand-in substitution; `evaluate` below resolves it."""

    def __init__(self, kind: str, *args):
        self.kind, self.args = kind, args

    def __repr__(self):
        return f"{self.kind}{self.args!r}"


class _Recorded:
    def __init__(self, kind: str, **kwargs):
        self.kind, self.kwargs = kind, kwargs


def _launch_api_stand_ins() -> dict[str, types.ModuleType]:
    """Modules with the names and keyword arguments of the real launch / launch_ros APIs."""
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    conditions = types.ModuleType("launch.conditions")
    substitutions = types.ModuleType("launch.substitutions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_substitutions = types.ModuleType("launch_ros.substitutions")

    def LaunchDescription(initial_entities=None, *, deprecated_reason=None):  # noqa: N802
        return _Recorded("LaunchDescription", entities=list(initial_entities or []))

    def DeclareLaunchArgument(name, *, default_value=None, description=None, choices=None,  # noqa: N802
                              condition=None):
        if choices is not None and default_value is not None and isinstance(default_value, str):
            assert default_value in choices, f"{name}: default {default_value!r} not in {choices}"
        return _Recorded("DeclareLaunchArgument", name=name, default_value=default_value,
                         description=description, choices=choices)

    # launch.actions.ExecuteProcess keyword arguments a Node may pass on.
    execute_process_kwargs = {"output", "emulate_tty", "condition", "respawn", "respawn_delay",
                              "additional_env", "prefix", "sigterm_timeout", "sigkill_timeout",
                              "cwd", "env", "shell", "log_cmd", "on_exit", "cached_output"}

    def Node(*, executable, package=None, name=None, namespace=None, exec_name=None,  # noqa: N802
             parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs):
        unknown = set(kwargs) - execute_process_kwargs
        if unknown:
            raise TypeError(f"Node() got unexpected keyword arguments {sorted(unknown)}")
        if remappings is not None:
            for rule in remappings:  # launch_ros.utilities.normalize_remap_rule wants 2-tuples
                assert isinstance(rule, tuple) and len(rule) == 2, rule
        if parameters is not None:
            assert isinstance(parameters, list)
        return _Recorded("Node", executable=executable, package=package, name=name,
                         namespace=namespace, parameters=parameters, remappings=remappings,
                         ros_arguments=ros_arguments, arguments=arguments, **kwargs)

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    conditions.IfCondition = lambda predicate_expression: _Sub("IfCondition", predicate_expression)
    conditions.UnlessCondition = lambda predicate_expression: _Sub("UnlessCondition", predicate_expression)
    substitutions.LaunchConfiguration = lambda variable_name, *, default=None: _Sub("LaunchConfiguration", variable_name)
    substitutions.PathJoinSubstitution = lambda substitutions: _Sub("PathJoinSubstitution", list(substitutions))
    substitutions.PythonExpression = lambda expression: _Sub("PythonExpression", expression)
    substitutions.TextSubstitution = lambda *, text: text
    ros_actions.Node = Node
    ros_substitutions.FindPackageShare = lambda package: _Sub("FindPackageShare", package)
    launch.actions, launch.conditions, launch.substitutions = actions, conditions, substitutions
    launch_ros.actions, launch_ros.substitutions = ros_actions, ros_substitutions
    return {m.__name__: m for m in (launch, actions, conditions, substitutions,
                                    launch_ros, ros_actions, ros_substitutions)}


def _evaluate(sub, config: dict[str, str], share: dict[str, Path]) -> str:
    if isinstance(sub, str):
        return sub
    if isinstance(sub, list):
        return "".join(_evaluate(s, config, share) for s in sub)
    if sub.kind == "LaunchConfiguration":
        return config[sub.args[0]]
    if sub.kind == "FindPackageShare":
        return str(share[sub.args[0]])
    if sub.kind == "PathJoinSubstitution":
        return os.path.join(*(_evaluate(s, config, share) for s in sub.args[0]))
    raise AssertionError(f"cannot evaluate {sub!r}")


@pytest.fixture()
def launch_description(monkeypatch):
    for name, module in _launch_api_stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)
    ns: dict = {"__name__": "hands_launch", "__file__": str(LAUNCH)}
    exec(compile(LAUNCH.read_text(), str(LAUNCH), "exec"), ns)
    return ns["generate_launch_description"]()


def test_launch_file_nodes_remappings_and_files(launch_description):
    entities = launch_description.kwargs["entities"]
    args = {e.kwargs["name"]: e.kwargs for e in entities if e.kind == "DeclareLaunchArgument"}
    nodes = [e.kwargs for e in entities if e.kind == "Node"]
    # The installed share folder holds what the source package's links point to.
    share = {"interhand_perception": ROS_PKG}
    config = {name: _evaluate(a["default_value"], {}, share) for name, a in args.items()}
    assert config["image"] == "/camera/image_raw"
    assert config["camera_info"] == "/camera/camera_info"
    assert config["use_rviz"] == "false" and config["namespace"] == "" and config["log_level"] == "info"
    assert Path(config["params_file"]) == ROS_PKG / "config" / "hands.yaml"
    assert Path(config["params_file"]).resolve() == PARAMS_YAML

    hands = next(n for n in nodes if n["executable"] == "hands_node")
    assert (hands["package"], hands["name"]) == ("interhand_perception", "hands_node")
    assert hands["output"] == "screen" and hands["emulate_tty"] is True
    assert [_evaluate(p, config, share) for p in hands["parameters"]] == [config["params_file"]]
    assert _evaluate(hands["namespace"], config, share) == ""
    remaps = [(_evaluate(a, config, share), _evaluate(b, config, share)) for a, b in hands["remappings"]]
    assert remaps == [("image", "/camera/image_raw"),
                      ("image/compressed", "/camera/image_raw/compressed"),
                      ("camera_info", "/camera/camera_info")]
    cmd = [_evaluate(a, config, share) for a in hands["arguments"]]
    assert cmd == ["--ros-args", "--log-level", "info"]
    assert "condition" not in hands

    rviz = next(n for n in nodes if n["executable"] == "rviz2")
    assert rviz["package"] == "rviz2"
    assert rviz["condition"].kind == "IfCondition"
    assert _evaluate(rviz["condition"].args[0], config, share) == "false"
    d_args = [_evaluate(a, config, share) for a in rviz["arguments"]]
    assert d_args[0] == "-d" and Path(d_args[1]).resolve() == RVIZ


FASTDDS_PROFILE = ROOT / "config" / "fastdds_large_images.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def _hands_node_env(monkeypatch, env: dict[str, str]) -> dict[str, str]:
    """The hands node's evaluated additional_env when the launch file runs under ``env``."""
    for var in (*PROFILE_VARS, "ROS_DISTRO"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    for name, module in _launch_api_stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)
    ns: dict = {"__name__": "hands_launch", "__file__": str(LAUNCH)}
    exec(compile(LAUNCH.read_text(), str(LAUNCH), "exec"), ns)
    entities = ns["generate_launch_description"]().kwargs["entities"]
    hands = next(e.kwargs for e in entities if e.kind == "Node" and e.kwargs["executable"] == "hands_node")
    share = {"interhand_perception": ROS_PKG}
    return {k: _evaluate(v, {}, share) for k, v in (hands.get("additional_env") or {}).items()}


def test_launch_file_gives_the_node_the_fastdds_profile_unless_the_user_set_one(monkeypatch):
    # Kilted and newer (Fast DDS 3): the new variable, pointing at the installed profile.
    for distro in ("kilted", "rolling", ""):
        env = _hands_node_env(monkeypatch, {"ROS_DISTRO": distro} if distro else {})
        assert list(env) == ["FASTDDS_DEFAULT_PROFILES_FILE"], (distro, env)
        assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).resolve() == FASTDDS_PROFILE
    # Fast DDS 2 reads only the old name.
    for distro in ("humble", "jazzy"):
        env = _hands_node_env(monkeypatch, {"ROS_DISTRO": distro})
        assert list(env) == ["FASTRTPS_DEFAULT_PROFILES_FILE"], (distro, env)
        assert Path(env["FASTRTPS_DEFAULT_PROFILES_FILE"]).resolve() == FASTDDS_PROFILE
    # A profile of the user's own (either name) is left alone: nothing is added.
    for var in PROFILE_VARS:
        assert _hands_node_env(monkeypatch, {var: "/my/profile.xml", "ROS_DISTRO": "jazzy"}) == {}


def test_fastdds_profile_adds_a_large_shm_segment_and_nothing_else():
    """config/fastdds_large_images.xml: a default participant profile that ADDS one SHM transport
    with a segment of at least 8 MiB; no UDP transport of its own (so the UDP set-up that
    rmw_fastrtps adds for ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST / ROS_LOCALHOST_ONLY=1, which
    keeps discovery on this machine, stays in charge) and the built-in transports not switched
    off."""
    root = ET.parse(FASTDDS_PROFILE).getroot()
    ns = {"d": "http://www.eprosima.com"}
    assert root.tag == "{http://www.eprosima.com}dds"
    descriptors = root.findall("d:profiles/d:transport_descriptors/d:transport_descriptor", ns)
    assert [d.findtext("d:type", namespaces=ns) for d in descriptors] == ["SHM"]
    shm = descriptors[0]
    assert int(shm.findtext("d:segment_size", namespaces=ns)) >= 8 * 1024 * 1024
    participants = root.findall("d:profiles/d:participant", ns)
    assert len(participants) == 1 and participants[0].get("is_default_profile") == "true"
    rtps = participants[0].find("d:rtps", ns)
    assert [t.text for t in rtps.findall("d:userTransports/d:transport_id", ns)] == \
        [shm.findtext("d:transport_id", namespaces=ns)]
    assert rtps.find("d:useBuiltinTransports", ns) is None
    assert rtps.find("d:builtinTransports", ns) is None


def test_entrypoint_and_ros_env_set_the_fastdds_profile_only_when_unset():
    for path in (ROOT / "docker" / "entrypoint.sh", ROOT / "scripts" / "ros_env.sh"):
        text = path.read_text()
        assert "fastdds_large_images.xml" in text, path
        for var in PROFILE_VARS:
            assert f'-z "${{{var}:-}}"' in text, (path, var)
    # The images copy the whole repository (config/ included) and the entrypoint points there.
    assert "/opt/interhand_perception/config/fastdds_large_images.xml" in \
        (ROOT / "docker" / "entrypoint.sh").read_text()


# ---------------------------------------------------------------- config/hands.rviz

def test_rviz_config_is_yaml_with_the_hands_displays():
    doc = yaml.safe_load(RVIZ.read_text())
    vm = doc["Visualization Manager"]
    displays = {d["Name"]: d for d in vm["Displays"]}
    classes = [d["Class"] for d in vm["Displays"]] + [p["Class"] for p in doc["Panels"]]
    assert all(c.startswith(("rviz_default_plugins/", "rviz_common/")) for c in classes), classes
    topics = {d["Class"].split("/")[1] + ":" + d["Topic"]["Value"] for d in vm["Displays"] if "Topic" in d}
    assert topics == {"MarkerArray:/hands/markers", "Pose:/hands/left_wrist_pose",
                      "Pose:/hands/right_wrist_pose", "Image:/camera/image_raw"}
    tf = next(d for d in vm["Displays"] if d["Class"] == "rviz_default_plugins/TF")
    assert {"left_wrist", "right_wrist"} <= set(tf["Frames"])
    assert vm["Global Options"]["Fixed Frame"] == "camera_optical_frame"
    # A best-effort subscription receives from best-effort and reliable camera drivers alike.
    assert displays["Camera image"]["Topic"]["Reliability Policy"] == "Best Effort"
    assert "/hands/markers" in RVIZ.read_text()


# ---------------------------------------------------------------- ROS packages (sources)

def test_ros_package_sources():
    root = ET.parse(ROS_PKG / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "interhand_perception"
    email = root.find("maintainer").get("email")
    # catkin_pkg's check (a@b.c style addresses are rejected)
    assert re.fullmatch(r"[-a-zA-Z0-9_%+]+(\.[-a-zA-Z0-9_%+]+)*@[-a-zA-Z0-9%]+(\.[-a-zA-Z0-9%]+)*\.[a-zA-Z]{2,}", email)
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "diagnostic_msgs",
            "tf2_msgs", "interhand_perception_msgs", "launch_ros", "rviz2"} <= exec_deps
    for link, target in (("launch", ROOT / "launch"), ("config", ROOT / "config")):
        p = ROS_PKG / link
        assert p.is_symlink() and os.readlink(p) == f"../../../{link}", link
        assert p.resolve() == target
    launcher = ROS_PKG / "scripts" / "hands_node"
    text = launcher.read_text()
    # the interpreter that has the package is written in by CMake (not the first python3 on PATH)
    assert os.access(launcher, os.X_OK) and text.startswith("#!@INTERHAND_NODE_PYTHON@\n")
    assert "from interhand_perception.ros.hands_node import main" in text
    # The Python code is pip-installed, never also installed by CMake (two copies of one package).
    cmake = [line for line in (ROS_PKG / "CMakeLists.txt").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    assert not [line for line in cmake if "ament_python_install_package" in line]


def test_launcher_says_how_to_install_the_python_core():
    """Run by an interpreter without the core (-S: no site-packages), it fails with the fix."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-S", str(ROS_PKG / "scripts" / "hands_node")],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out
    assert "the Python core `interhand_perception` is not installed" in out.stderr
    assert "-m pip install -e" in out.stderr and "Traceback" not in out.stderr


def test_fallback_tf2_msgs_matches_the_real_definition():
    assert (FALLBACK_TF2 / "msg" / "TFMessage.msg").read_text() == TF_MESSAGE_DEFINITION
    assert sorted(p.name for p in (FALLBACK_TF2 / "msg").iterdir()) == ["TFMessage.msg"]
    root = ET.parse(FALLBACK_TF2 / "package.xml").getroot()
    assert root.findtext("name") == "tf2_msgs" and root.find("member_of_group").text == "rosidl_interface_packages"
    # Outside ros2_ws/src, so that a colcon build of src/ next to a real tf2_msgs never sees it.
    assert not [p for p in (ROOT / "ros2_ws" / "src").rglob("package.xml")
                if ET.parse(p).getroot().findtext("name") == "tf2_msgs"]


# ---------------------------------------------------------------- Docker

def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["desktop.Dockerfile", "jetson.Dockerfile"])
def test_dockerfile_copy_sources_exist(name):
    instructions = _dockerfile_instructions(ROOT / "docker" / name)
    copies = [shlex.split(rest) for word, rest in instructions if word == "COPY"]
    assert copies, "no COPY"
    for args in copies:
        args = [a for a in args if not a.startswith("--")]
        for src in args[:-1]:  # the context is the repository root
            assert (ROOT / src).exists(), f"{name}: COPY source {src} is not in the repository"
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry == ['["/entrypoint.sh"]'] and os.access(ROOT / "docker" / "entrypoint.sh", os.X_OK)
    cmd = [rest for word, rest in instructions if word == "CMD"]
    assert cmd == ['["ros2", "launch", "interhand_perception", "hands.launch.py"]']
    assert [w for w, _ in instructions if w != "ARG"][0] == "FROM"


def test_compose_file():
    doc = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"camera", "hands", "rviz"}
    for s in services.values():
        assert s["network_mode"] == "host" and s["ipc"] == "host"
        assert s["image"] == "interhand_perception:desktop"
    hands = services["hands"]
    assert (ROOT / "docker" / hands["build"]["context"]).resolve() == ROOT
    assert (ROOT / hands["build"]["dockerfile"]).is_file()
    gpu = hands["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    env = hands["environment"]
    assert {"ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE"} <= set(env)
    for vol in hands["volumes"]:
        if vol.split(":")[0] in doc.get("volumes", {}):  # a named volume (the engine cache)
            continue
        host, inside, mode = vol.split(":")
        assert (ROOT / "docker" / host).resolve().is_dir() and mode == "ro", vol
    assert "image:=/camera/image_raw" in hands["command"]
    assert "interhand_cache" in doc["volumes"]
    assert any("/dev/video0" in d for d in services["camera"]["devices"])
    assert "__ns:=/camera" in services["camera"]["command"]
    rviz_cfg = services["rviz"]["command"][-1]
    assert rviz_cfg.endswith("/install/interhand_perception/share/interhand_perception/config/hands.rviz")
    assert "DISPLAY" in services["rviz"]["environment"]


def test_dockerignore_keeps_what_the_images_need():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    for excluded in (".venv", "runs", "data_cache", "ros2_ws/build", "ros2_ws/install", "ros2_ws/log", ".git"):
        assert excluded in patterns
    needed = ["pyproject.toml", "README.md", "src/interhand_perception/__init__.py", "msg/Hand.msg",
              "config/hands.yaml", "config/fastdds_large_images.xml", "launch/hands.launch.py",
              "weights/demo_r18_128.safetensors",
              "scripts/setup_ros.sh", "ros2_ws/src/interhand_perception/package.xml",
              "ros2_ws/fallback/tf2_msgs/package.xml", "docker/entrypoint.sh"]
    for path in needed:
        assert (ROOT / path).exists(), path
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        hit = [p for p in patterns for pre in prefixes if fnmatch.fnmatch(pre, p.lstrip("*/"))]
        assert not hit, f".dockerignore excludes {path} ({hit})"
