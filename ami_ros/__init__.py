"""ami_ros: plan robot motions with a JEPA world model, from ROS 2."""

__version__ = "0.4.0"
