"""The embedded MuJoCo robot (sim_node) with the interfaces of a gz_ros2_control arm.

ros2 launch ami_ros sim.launch.py task:=push seed:=3 namespace:=robot1
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
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the robot's topics"),
        DeclareLaunchArgument("seed", default_value="0", description="first episode seed"),
        DeclareLaunchArgument("task", default_value="reach", description="reach or push"),
        DeclareLaunchArgument("sim_params", default_value=str(share / "config" / "sim_node.yaml")),
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
    )
    return LaunchDescription([*arguments, sim])
