"""Start mots_node for one or several cameras.

    ros2 launch mots_ros mots.launch.py cameras:=front image:=image_raw params_file:=/path/car.yaml
    ros2 launch mots_ros mots.launch.py cameras:=front,rear        # one namespaced node per camera

Each node runs in the camera's namespace; its relative topics (image, flow, tracks, instance_ids,
overlay) resolve there, and ``image``/``flow`` are remapped to the given names (relative names stay
inside the namespace, e.g. /front/image_raw).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _camera_nodes(context):
    cameras = [c.strip() for c in LaunchConfiguration("cameras").perform(context).split(",") if c.strip()]
    mode = LaunchConfiguration("mode").perform(context)
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
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare("mots_ros"), "config", "car.yaml"]),
                description="ROS params file (config/car.yaml or config/pedestrian.yaml)",
            ),
            OpaqueFunction(function=_camera_nodes),
        ]
    )
