"""Replay a bag through mots_node, record its tracks and score them against ground truth.

    ros2 launch mots_ros replay_eval.launch.py bag:=/data/kitti_0002 gt:=/data/kitti_mots/train out:=/tmp/eval

The node runs in replay mode (every frame, in order); the bag is played with `ros2 bag play`
(use `mots-ros bag replay` where rosbag2 is not installed); `mots-ros record` writes the KITTI
MOTS txt, and `mots-ros eval` scores it when the recorder finishes.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    bag, gt, out = LaunchConfiguration("bag"), LaunchConfiguration("gt"), LaunchConfiguration("out")
    sequence = LaunchConfiguration("sequence")
    node = Node(
        package="mots_ros",
        executable="mots_node",
        name="mots_node",
        namespace="camera",
        parameters=[LaunchConfiguration("params_file"), {"node.mode": "replay"}],
        output="screen",
    )
    recorder = ExecuteProcess(
        cmd=["mots-ros", "record", "--topic", "/camera/tracks", "--fps", LaunchConfiguration("fps"),
             "--out", PathJoinSubstitution([out, [sequence, ".txt"]]), "--idle-timeout", "15"],
        output="screen",
    )
    player = ExecuteProcess(cmd=["ros2", "bag", "play", bag, "--rate", LaunchConfiguration("rate")], output="screen")
    scorer = ExecuteProcess(cmd=["mots-ros", "eval", "--gt", gt, "--results", out], output="screen")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 made by `mots-ros bag from-images`"),
            DeclareLaunchArgument("gt", description="ground-truth folder (instances_txt/<seq>.txt)"),
            DeclareLaunchArgument("out", description="folder for the recorded <seq>.txt and metrics.json"),
            DeclareLaunchArgument("sequence", default_value="0000", description="sequence name of the bag"),
            DeclareLaunchArgument("fps", default_value="10.0", description="frame rate of the bag"),
            DeclareLaunchArgument("rate", default_value="0.5", description="playback speed; keep it below what the node sustains"),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare("mots_ros"), "config", "car.yaml"]),
                description="ROS params file",
            ),
            node,
            recorder,
            player,
            RegisterEventHandler(OnProcessExit(target_action=recorder, on_exit=[scorer])),
        ]
    )
