"""Gazebo (gz sim) with the tabletop arm through gz_ros2_control, and the ami_ros stack driving it.

ros2 launch ami_ros gazebo.launch.py      # needs ros_gz_sim, ros_gz_bridge, gz_ros2_control,
ros2 launch ami_ros gazebo.launch.py one_process:=true       # ros2_controllers, xacro

Starts gz sim with config/gazebo/tabletop.sdf (table and the scene camera of the embedded robot),
spawns the URDF (ami_ros/sim/assets/tabletop_arm.urdf, whose gz_ros2_control plugin loads
config/ros2_controllers.yaml), bridges camera, camera_info and /clock with ros_gz_bridge
(config/gz_bridge.yaml), spawns joint_state_broadcaster and arm_controller, and includes
ami.launch.py on sim time. Goals come on ami/goal_image (Gazebo renders no goal images). One robot,
no namespace: gz_ros2_control's controller manager takes its namespace from the URDF plugin's
<ros> block, which the shipped URDF does not set.

Not run in this project's CI (no Gazebo on its machines); test/test_gazebo.py cross-checks the
bridge types and topics against the nodes', the controller names against the planner's command
topic, and the URDF joints against the robot config.
"""

import importlib.util
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

CONTROLLERS = ("joint_state_broadcaster", "arm_controller")
"""Spawned in this order; arm_controller takes planner_node's arm_controller/joint_trajectory."""


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("ami_ros"))
    urdf = Path(importlib.util.find_spec("ami_ros").origin).parent / "sim" / "assets" / "tabletop_arm.urdf"
    arguments = [
        DeclareLaunchArgument("model_dir", default_value="", description="empty: the shipped tabletop_arm"),
        DeclareLaunchArgument("stack", default_value="true", description="also start the ami_ros stack"),
        DeclareLaunchArgument("one_process", default_value="false", description="the stack in one process"),
    ]
    world = share / "config" / "gazebo" / "tabletop.sdf"
    description = ParameterValue(Command(["xacro ", str(urdf)]), value_type=str)
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"])
        ),
        launch_arguments={"gz_args": f"-r {world}"}.items(),
    )
    sim_time = {"use_sim_time": True}
    nodes = [
        Node(package="robot_state_publisher", executable="robot_state_publisher",
             parameters=[{"robot_description": description}, sim_time]),
        Node(package="ros_gz_sim", executable="create",
             arguments=["-topic", "robot_description", "-name", "ami_tabletop_arm"]),
        Node(package="ros_gz_bridge", executable="parameter_bridge",
             parameters=[{"config_file": str(share / "config" / "gz_bridge.yaml")}, sim_time]),
        *[Node(package="controller_manager", executable="spawner",
               arguments=[name, "--controller-manager", "controller_manager"]) for name in CONTROLLERS],
    ]  # fmt: skip
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share / "launch" / "ami.launch.py")),
        launch_arguments={
            "robot_config": str(share / "config" / "robots" / "tabletop_arm.yaml"),
            "model_dir": LaunchConfiguration("model_dir"),
            "use_sim_time": "true",
            "command_interface": "trajectory",
            "one_process": LaunchConfiguration("one_process"),
        }.items(),
        condition=IfCondition(LaunchConfiguration("stack")),
    )
    return LaunchDescription([*arguments, gazebo, *nodes, stack])
