"""recorder_node as a real process: records live topics to rosbag2 MCAP, finished cleanly on SIGINT."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")

from mcap.reader import make_reader
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ami_ros.config import DataConfig
from ami_ros.data.dataset import read_bag
from ami_ros.ros import conversions as conv

pytestmark = pytest.mark.ros

JOINTS = ["joint1", "joint2", "joint3", "joint4"]
TOPICS = ["camera/image_raw", "joint_states", "arm_controller/joint_trajectory"]
STEPS = 10


def frame(k: int) -> np.ndarray:
    return np.random.default_rng(k).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_records_live_topics_and_finishes_the_bag_on_sigint(ros, start_node, tmp_path):
    bag_dir = tmp_path / "bag"
    proc = start_node(
        "ami_ros.ros.recorder_node",
        {"topics": [*TOPICS, "never/published"], "output": str(bag_dir), "discovery_period": 0.2},
        name="recorder_node",
    )
    ros.watched = proc
    pubs = {
        "camera/image_raw": ros.node.create_publisher(Image, "camera/image_raw", 10),
        "joint_states": ros.node.create_publisher(JointState, "joint_states", 10),
        "arm_controller/joint_trajectory": ros.node.create_publisher(
            JointTrajectory, "arm_controller/joint_trajectory", 10
        ),
    }
    ros.spin_until(
        lambda: all(ros.node.count_subscribers(t) >= 1 for t in TOPICS), 30.0, "recorder subscriptions"
    )
    ros.spin_for(0.5)  # let the new subscriptions match the publishers
    order = [2, 0, 3, 1]  # joint states in another order than the trajectories: matched by name
    for k in range(STEPS):
        stamp = conv.to_time(100.0 + 0.1 * k)
        q = np.arange(4.0) + 0.01 * k
        pubs["camera/image_raw"].publish(conv.numpy_to_image(frame(k), stamp, "camera"))
        pubs["joint_states"].publish(
            conv.joint_state([JOINTS[i] for i in order], q[order], np.zeros(4), np.zeros(4), stamp)
        )
        cmd = JointTrajectory(joint_names=JOINTS)
        cmd.header.stamp = stamp
        cmd.points = [JointTrajectoryPoint(positions=(q + 0.05).tolist())]
        pubs["arm_controller/joint_trajectory"].publish(cmd)
        ros.spin_for(0.05)
    ros.spin_for(1.0)
    ros.watched = None
    assert proc.stop() == 0, proc.log()

    meta = yaml.safe_load((bag_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts == {"/" + t: STEPS for t in TOPICS}, proc.log()
    (mcap_file,) = bag_dir.glob("*.mcap")
    with mcap_file.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert {s.name for s in summary.schemas.values()} == {
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/JointState",
        "trajectory_msgs/msg/JointTrajectory",
    }
    assert summary.statistics.message_count == 3 * STEPS

    (episode,) = read_bag(bag_dir, DataConfig(image_size=16))
    assert len(episode) == STEPS
    np.testing.assert_array_equal(episode.frames[4], frame(4))
    np.testing.assert_allclose(episode.joints[4], np.arange(4.0) + 0.04, atol=1e-6)
    np.testing.assert_allclose(episode.actions, 0.05, atol=1e-6)
