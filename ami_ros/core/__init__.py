"""Pure numpy building blocks (no ROS, no torch): preprocessing, planning, command handling."""
