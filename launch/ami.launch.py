"""The ami_ros stack: encoder_node, predictor_node and planner_node for one robot.

ros2 launch ami_ros ami.launch.py robot_config:=my_arm.yaml model_dir:=/models/my_arm \
    namespace:=robot1 use_sim_time:=false command_interface:=trajectory
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("ami_ros"))
    arguments = [
        DeclareLaunchArgument(
            "robot_config",
            default_value=str(share / "config" / "robots" / "tabletop_arm.yaml"),
            description="parameter file of the robot (see config/robots/real_arm_template.yaml)",
        ),
        DeclareLaunchArgument(
            "model_dir", default_value="", description="model directory (empty: the shipped tabletop_arm)"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the robot's topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
        DeclareLaunchArgument(
            "command_interface", default_value="trajectory", description="trajectory or forward"
        ),
        DeclareLaunchArgument(
            "goal_image_topic", default_value="ami/goal_image", description="where goal images come from"
        ),
    ]
    common = {
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        "runtime.model_dir": LaunchConfiguration("model_dir"),
    }
    command = {"command_interface": LaunchConfiguration("command_interface")}
    nodes = [
        Node(
            package="ami_ros",
            executable="encoder_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[LaunchConfiguration("robot_config"), common],
        ),
        Node(
            package="ami_ros",
            executable="predictor_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[LaunchConfiguration("robot_config"), common, command],
        ),
        Node(
            package="ami_ros",
            executable="planner_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[LaunchConfiguration("robot_config"), common, command],
            remappings=[("ami/goal_image", LaunchConfiguration("goal_image_topic"))],
        ),
    ]
    return LaunchDescription([*arguments, *nodes])
