"""rosbag2 MCAP recording and reading -> training windows. No ROS runtime, no torch."""
