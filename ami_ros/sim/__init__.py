"""The embedded MuJoCo robot: a 4-joint arm, a pushable block and a camera (no ROS)."""

from ami_ros.sim.robot import MJCF_PATH, URDF_PATH, ArmRollouts, ArmSim, Goal, SimState

__all__ = ["MJCF_PATH", "URDF_PATH", "ArmRollouts", "ArmSim", "Goal", "SimState"]
