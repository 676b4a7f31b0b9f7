"""rosbag2 MCAP recording and reading -> synchronised episodes. No ROS runtime, no torch."""
