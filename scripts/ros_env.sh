# Source this file (bash or zsh) to use the ROS 2 workspace built by scripts/setup_ros.sh:
#     source scripts/ros_env.sh
#
# It puts every package installed in ros2_ws/install (interhand_perception_msgs,
# interhand_perception, and the fallback tf2_msgs where one was built) on PYTHONPATH,
# LD_LIBRARY_PATH and AMENT_PREFIX_PATH (plus the venv holding the ROS 2 wheels, or sources the
# ROS 2 distribution the workspace was built with), and keeps DDS discovery on this machine
# (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless already set), and points Fast DDS at
# config/fastdds_large_images.xml (FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE unless one is already
# set; images over 512 KiB, docs/ros_node.md). Safe to source again; prints nothing unless
# something is wrong. See docs/ros_setup.md.

_ih_env_main() {
  local src root inst stamp sp dir pkg lib
  [ -n "${ZSH_VERSION:-}" ] && setopt local_options null_glob
  if [ -n "${BASH_VERSION:-}" ]; then
    src=${BASH_SOURCE[0]}
  elif [ -n "${ZSH_VERSION:-}" ]; then
    eval 'src=${(%):-%x}'
  else
    src=scripts/ros_env.sh  # other shells: source it from the repository root
  fi
  root=$(cd "$(dirname "$src")/.." 2>/dev/null && pwd) || root=
  inst=$root/ros2_ws/install/interhand_perception_msgs
  stamp=$root/ros2_ws/install/interhand_ros_env
  if [ -z "$root" ] || [ ! -d "$inst" ] || [ ! -f "$stamp" ]; then
    echo "ros_env.sh: interhand_perception_msgs is not built in ${root:-?}/ros2_ws; run scripts/setup_ros.sh first" >&2
    return 1
  fi
  # IH_ROS_FROM (pypi|distro), IH_ROS_VENV, IH_ROS_DISTRO, IH_ROS_PYTHON, IH_NODE_PYTHON, IH_ROS_TF2_FALLBACK
  local IH_ROS_FROM= IH_ROS_VENV= IH_ROS_DISTRO= IH_ROS_PYTHON= IH_NODE_PYTHON= IH_ROS_TF2_FALLBACK=
  . "$stamp"

  if [ "$IH_ROS_FROM" = distro ]; then
    case ":${AMENT_PREFIX_PATH:-}:" in
      *":/opt/ros/$IH_ROS_DISTRO:"*) ;;
      *)
        if [ -n "${ZSH_VERSION:-}" ] && [ -f "/opt/ros/$IH_ROS_DISTRO/setup.zsh" ]; then
          . "/opt/ros/$IH_ROS_DISTRO/setup.zsh"
        elif [ -f "/opt/ros/$IH_ROS_DISTRO/setup.bash" ] && [ -n "${BASH_VERSION:-}" ]; then
          . "/opt/ros/$IH_ROS_DISTRO/setup.bash"
        elif [ -f "/opt/ros/$IH_ROS_DISTRO/setup.sh" ]; then
          . "/opt/ros/$IH_ROS_DISTRO/setup.sh"
        elif [ "${ROS_DISTRO:-}" != "$IH_ROS_DISTRO" ]; then
          echo "ros_env.sh: built with ROS $IH_ROS_DISTRO, which is neither sourced nor in /opt/ros/$IH_ROS_DISTRO" >&2
          return 1
        fi ;;
    esac
  else
    if [ ! -x "$IH_ROS_VENV/bin/python" ]; then
      echo "ros_env.sh: the venv $IH_ROS_VENV that ros2_ws was built with is gone; run scripts/setup_ros.sh again" >&2
      return 1
    fi
    case ":${AMENT_PREFIX_PATH:-}:" in
      *":$IH_ROS_VENV:"*) ;;
      *) export AMENT_PREFIX_PATH="$IH_ROS_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
    esac
    # The venv's own libraries reach its Python processes through the wheels' start-up hook
    # (ros_wheels_bootstrapper); they are not exported to this shell on purpose.
  fi

  # Every package of the workspace (colcon's isolated layout: install/<pkg>/share/<pkg>).
  for dir in "$root"/ros2_ws/install/*/; do
    dir=${dir%/}
    pkg=${dir##*/}
    [ -f "$dir/share/$pkg/package.xml" ] || continue
    for sp in "$dir"/lib/python3*/site-packages; do
      [ -d "$sp" ] || continue
      case ":${PYTHONPATH:-}:" in
        *":$sp:"*) ;;
        *) export PYTHONPATH="$sp${PYTHONPATH:+:$PYTHONPATH}" ;;
      esac
    done
    # Generated interface libraries carry no RPATH: without this the first publisher fails
    # with "Could not import 'rosidl_typesupport_c'". Only packages with shared libraries.
    for lib in "$dir"/lib/*.so; do
      [ -e "$lib" ] || continue
      lib=$dir/lib
      case ":${LD_LIBRARY_PATH:-}:" in
        *":$lib:"*) ;;
        *) export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
      esac
      break
    done
    case ":${AMENT_PREFIX_PATH:-}:" in
      *":$dir:"*) ;;
      *) export AMENT_PREFIX_PATH="$dir${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
    esac
  done

  # Keep DDS traffic on this machine unless the caller chose otherwise.
  case "${IH_ROS_DISTRO:-${ROS_DISTRO:-}}" in
    humble|iron) export ROS_LOCALHOST_ONLY="${ROS_LOCALHOST_ONLY:-1}" ;;  # before the discovery range existed
    *) export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}" ;;
  esac

  # Fast DDS profile with a larger shared-memory segment, so that best-effort images over
  # 512 KiB reach other processes (config/fastdds_large_images.xml, docs/ros_node.md). It
  # matters in the PUBLISHING process: a camera driver started from this shell gets it too.
  # Left alone when the caller already chose a profile file. Fast DDS 3 (Kilted and newer, the
  # registry's wheels) reads FASTDDS_DEFAULT_PROFILES_FILE and warns about the old name;
  # Fast DDS 2 (Humble, Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE.
  if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] && [ -z "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ] \
      && [ -f "$root/config/fastdds_large_images.xml" ]; then
    case "${IH_ROS_DISTRO:-${ROS_DISTRO:-}}" in
      humble|iron|jazzy) export FASTRTPS_DEFAULT_PROFILES_FILE="$root/config/fastdds_large_images.xml" ;;
      *) export FASTDDS_DEFAULT_PROFILES_FILE="$root/config/fastdds_large_images.xml" ;;
    esac
  fi
  return 0
}
if _ih_env_main; then
  unset -f _ih_env_main
else
  unset -f _ih_env_main
  return 1 2>/dev/null || exit 1
fi
