"""Start mots_node for one or several cameras.

    ros2 launch mots_ros mots.launch.py cameras:=front image:=image_raw params_file:=/path/car.yaml
    ros2 launch mots_ros mots.launch.py cameras:=front,rear        # one namespaced node per camera
    ros2 launch mots_ros mots.launch.py cameras:=front,rear shared_process:=true

Each node runs in the camera's namespace; its relative topics (image, flow, tracks, instance_ids,
overlay) resolve there, and ``image``/``flow`` are remapped to the given names (relative names stay
inside the namespace, e.g. /front/image_raw). By default each camera gets its own process; with
``shared_process:=true`` all cameras run in one ``mots-ros run`` process that loads each network
once and batches frames that arrive together (one tracker per camera all the same).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from mots_ros.cli import run_command_line


def _camera_nodes(context):
    cameras = [c.strip() for c in LaunchConfiguration("cameras").perform(context).split(",") if c.strip()]
    mode = LaunchConfiguration("mode").perform(context)
    if LaunchConfiguration("shared_process").perform(context).lower() in ("true", "1", "yes"):
        image, flow = LaunchConfiguration("image").perform(context), LaunchConfiguration("flow").perform(context)
        params_file = LaunchConfiguration("params_file").perform(context)
        ros_args = ["-p", f"node.mode:={mode}", "-r", f"image:={image}", "-r", f"flow:={flow}"]
        return [ExecuteProcess(cmd=run_command_line(params_file, cameras, ros_args), output="screen")]
    return [
        Node(
            package="mots_ros",
            executable="mots_node",
            name="mots_node",
            namespace=camera,
            parameters=[LaunchConfiguration("params_file"), {"node.mode": mode}],
            remappings=[("image", LaunchConfiguration("image")), ("flow", LaunchConfiguration("flow"))],
            output="screen",
        )
        for camera in cameras
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("cameras", default_value="camera", description="comma-separated camera namespaces"),
            DeclareLaunchArgument("image", default_value="image_raw", description="image topic, relative to the camera namespace"),
            DeclareLaunchArgument("flow", default_value="flow", description="optical-flow topic (32FC2), if node.use_flow"),
            DeclareLaunchArgument("mode", default_value="live", description="live or replay"),
            DeclareLaunchArgument("shared_process", default_value="false",
                                  description="true: all cameras in one process, sharing the networks"),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare("mots_ros"), "config", "car.yaml"]),
                description="ROS params file (config/car.yaml or config/pedestrian.yaml)",
            ),
            OpaqueFunction(function=_camera_nodes),
        ]
    )
