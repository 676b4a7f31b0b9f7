"""ROS 2 nodes and message conversions: the only part of ami_ros that imports rclpy."""
