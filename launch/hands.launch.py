"""Launch the interhand_perception node (two-hand reconstruction), optionally with RViz2.

    ros2 launch interhand_perception hands.launch.py
    ros2 launch interhand_perception hands.launch.py image:=/my_cam/color/image_raw \
        camera_info:=/my_cam/color/camera_info use_rviz:=true namespace:=robot1

Arguments (``ros2 launch interhand_perception hands.launch.py --show-args`` lists them):
  image        input image topic; the node subscribes to it, or to <image>/compressed when the
               parameter image_transport is "compressed" (default /camera/image_raw)
  camera_info  camera_info topic of that camera (default /camera/camera_info)
  params_file  node parameters (default: the installed config/hands.yaml)
  use_rviz     also start rviz2 with config/hands.rviz (default false)
  namespace    namespace of the node and of its relative topics hands, hands/markers, ...
               (default "": /hands, /hands/markers, ...); /tf and /diagnostics stay global
  log_level    debug | info | warn | error | fatal (default info)

Fast DDS: unless FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE is already set,
the node process gets the installed config/fastdds_large_images.xml (a larger shared-memory
segment for images over 512 KiB). The camera driver needs the same variable in ITS environment:
the fix works on the publishing side (docs/ros_node.md, "Images over 512 KiB with Fast DDS").

Needs a ROS 2 distribution (launch, launch_ros). Without one (ROS 2 from the Python registry),
run the node itself: ``hands_node --ros-args --params-file config/hands.yaml -r image:=...``
(docs/ros_node.md).
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "interhand_perception"
FASTDDS_PROFILE = "fastdds_large_images.xml"
# Fast DDS 2 (Humble, Jazzy) reads only the old name; Fast DDS 3 (Kilted and newer) reads the new
# one and warns when the old one is set.
FASTDDS_PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def fastdds_profile_env(share) -> dict:
    """The node's extra environment: the large-image Fast DDS profile, unless the user set one."""
    if any(os.environ.get(var) for var in FASTDDS_PROFILE_VARS):
        return {}
    old_fastdds = os.environ.get("ROS_DISTRO", "") in ("humble", "iron", "jazzy")
    var = FASTDDS_PROFILE_VARS[1] if old_fastdds else FASTDDS_PROFILE_VARS[0]
    return {var: PathJoinSubstitution([share, "config", FASTDDS_PROFILE])}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    params_file = LaunchConfiguration("params_file")
    use_rviz = LaunchConfiguration("use_rviz")
    namespace = LaunchConfiguration("namespace")
    log_level = LaunchConfiguration("log_level")

    arguments = [
        DeclareLaunchArgument(
            "image", default_value="/camera/image_raw",
            description="input image topic (sensor_msgs/Image); with image_transport "
                        "'compressed' the node reads <image>/compressed instead"),
        DeclareLaunchArgument(
            "camera_info", default_value="/camera/camera_info",
            description="camera_info topic (sensor_msgs/CameraInfo) of the same camera"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([share, "config", "hands.yaml"]),
            description="YAML file with the hands_node parameters"),
        DeclareLaunchArgument(
            "use_rviz", default_value="false",
            description="also start rviz2 with config/hands.rviz"),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="namespace of the node and its relative topics (empty: none)"),
        DeclareLaunchArgument(
            "log_level", default_value="info",
            choices=["debug", "info", "warn", "error", "fatal"],
            description="log level of hands_node"),
    ]

    hands = Node(
        package=PACKAGE,
        executable="hands_node",
        name="hands_node",
        namespace=namespace,
        parameters=[params_file],
        # ROS 2 remaps whole names: `image/compressed` needs its own rule next to `image`.
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", camera_info),
        ],
        arguments=["--ros-args", "--log-level", log_level],
        additional_env=fastdds_profile_env(share) or None,
        output="screen",
        emulate_tty=True,  # keep the node's coloured, line-buffered log output
    )

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "hands.rviz"])],
        output="screen",
        condition=IfCondition(use_rviz),
    )

    return LaunchDescription(arguments + [hands, rviz])
