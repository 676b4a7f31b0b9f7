"""The ami_ros stack: encoder_node, predictor_node and planner_node for one robot.

ros2 launch ami_ros ami.launch.py robot_config:=my_arm.yaml model_dir:=/models/my_arm \
    namespace:=robot1 use_sim_time:=false command_interface:=trajectory
ros2 launch ami_ros ami.launch.py one_process:=true     # the three nodes in one process (ami_stack)
ros2 launch ami_ros ami.launch.py autostart:=false      # then: ros2 lifecycle set /encoder_node configure ...

The three nodes are lifecycle nodes; with `autostart` (default) each configures and activates
itself at start, so `ros2 lifecycle get /planner_node` reports `active` once its model is loaded.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
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
        DeclareLaunchArgument(
            "autostart", default_value="true", description="configure and activate the lifecycle nodes"
        ),
        DeclareLaunchArgument(
            "one_process", default_value="false", description="run the three nodes in one process"
        ),
        DeclareLaunchArgument(
            "clock_topic", default_value="/clock", description="the clock followed when use_sim_time"
        ),
    ]
    common = {
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
        "runtime.model_dir": LaunchConfiguration("model_dir"),
    }
    command = {"command_interface": LaunchConfiguration("command_interface")}
    remappings = [
        ("ami/goal_image", LaunchConfiguration("goal_image_topic")),
        ("/clock", LaunchConfiguration("clock_topic")),
    ]
    separate = UnlessCondition(LaunchConfiguration("one_process"))
    robot = LaunchConfiguration("robot_config")
    shared = {"namespace": LaunchConfiguration("namespace"), "output": "screen", "remappings": remappings}
    nodes = [
        Node(package="ami_ros", executable="encoder_node", parameters=[robot, common],
             condition=separate, **shared),
        Node(package="ami_ros", executable="predictor_node", parameters=[robot, common, command],
             condition=separate, **shared),
        Node(package="ami_ros", executable="planner_node", parameters=[robot, common, command],
             condition=separate, **shared),
        Node(package="ami_ros", executable="ami_stack", parameters=[robot, common, command],
             condition=IfCondition(LaunchConfiguration("one_process")), **shared),
    ]  # fmt: skip
    return LaunchDescription([*arguments, *nodes])
