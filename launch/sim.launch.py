"""The embedded MuJoCo robot (sim_node) and the ami_ros stack driving it to the sim's goal images.

ros2 launch ami_ros sim.launch.py task:=push seed:=3 namespace:=robot1
ros2 launch ami_ros sim.launch.py stack:=false      # the robot alone (gz_ros2_control interfaces)
ros2 launch ami_ros sim.launch.py one_process:=true autostart:=false

Each robot keeps its simulated clock under its namespace (`/clock` remapped to `clock`: /robot1/clock),
and its stack follows that clock, so several robots run in one ROS graph without sharing time.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("ami_ros"))
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the robot's topics"),
        DeclareLaunchArgument("seed", default_value="0", description="first episode seed"),
        DeclareLaunchArgument("task", default_value="reach", description="reach or push"),
        DeclareLaunchArgument("sim_params", default_value=str(share / "config" / "sim_node.yaml")),
        DeclareLaunchArgument("stack", default_value="true", description="also start the ami_ros stack"),
        DeclareLaunchArgument("model_dir", default_value="", description="empty: the shipped tabletop_arm"),
        DeclareLaunchArgument("command_interface", default_value="trajectory"),
        DeclareLaunchArgument("autostart", default_value="true", description="activate the stack's nodes"),
        DeclareLaunchArgument("one_process", default_value="false", description="the stack in one process"),
    ]
    sim = Node(
        package="ami_ros",
        executable="sim_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("sim_params"),
            {
                "seed": ParameterValue(LaunchConfiguration("seed"), value_type=int),
                "sim.task": LaunchConfiguration("task"),
            },
        ],
        remappings=[("/clock", "clock")],
    )
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share / "launch" / "ami.launch.py")),
        launch_arguments={
            "robot_config": str(share / "config" / "robots" / "tabletop_arm.yaml"),
            "model_dir": LaunchConfiguration("model_dir"),
            "namespace": LaunchConfiguration("namespace"),
            "use_sim_time": "true",
            "command_interface": LaunchConfiguration("command_interface"),
            "goal_image_topic": "sim/goal_image",
            "autostart": LaunchConfiguration("autostart"),
            "one_process": LaunchConfiguration("one_process"),
            "clock_topic": "clock",
        }.items(),
        condition=IfCondition(LaunchConfiguration("stack")),
    )
    return LaunchDescription([*arguments, sim, stack])
