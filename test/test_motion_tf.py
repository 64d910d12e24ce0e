"""The tf2_ros motion source (``ros/motion.py: TfMotion``): ``lookup_transform_full`` through a
fixed frame, sampled across a sweep and interpolated, agrees with the odometry source on the same
poses. Runs where tf2_ros imports (a ROS installation); skipped in the pip venv."""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('tf2_ros')

from geometry_msgs.msg import TransformStamped  # noqa: E402

from g2mono_ros.fusion.motion import OdometryMotion, PoseBuffer, compensate_points  # noqa: E402
from g2mono_ros.fusion.transforms import quaternion_from_rotation  # noqa: E402
from g2mono_ros.ros.motion import TfMotion  # noqa: E402
from g2mono_ros.synth.trajectory import DriveTrajectory  # noqa: E402

MS = 1_000_000
START = 1_700_000_000_000_000_000


def _stamped(parent: str, child: str, stamp_ns: int, T: np.ndarray) -> TransformStamped:
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    t, q = T[:3, 3], quaternion_from_rotation(T[:3, :3])
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = t
    (msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z,
     msg.transform.rotation.w) = q
    return msg


def test_tf_source_matches_odometry_source():
    drive = DriveTrajectory(10.0, np.deg2rad(30.0))
    mount = np.eye(4)
    mount[:3, 3] = [0.2, 0.0, 0.8]
    rclpy.init()
    try:
        node = rclpy.create_node('tf_motion_test')
        tf = TfMotion(node, 'odom', timeout_s=0.0)
        poses = PoseBuffer()
        tf.buffer.set_transform_static(_stamped('base_link', 'lidar', START, mount), 'test')
        for k in range(30):
            stamp = START + k * 10 * MS
            T = drive.body_pose(k * 0.01)
            tf.buffer.set_transform(_stamped('odom', 'base_link', stamp, T), 'test')
            poses.add(stamp, T)
        rng = np.random.default_rng(0)
        points = rng.uniform(-20, 20, size=(300, 3)).astype(np.float32)
        stamps = START + 20 * MS + np.sort(rng.integers(0, 100 * MS, size=300))
        image = START + 150 * MS
        via_tf = compensate_points(points, stamps, image, tf.for_frame('lidar'))
        via_odom = compensate_points(points, stamps, image, OdometryMotion(poses, mount))
        assert via_tf.no_odometry == via_odom.no_odometry == 0
        np.testing.assert_allclose(via_tf.points, via_odom.points, atol=2e-4)
        # Beyond the TF data: counted as missing, with tf2's reason kept for the log.
        late = compensate_points(points, START + 600 * MS, image, tf.for_frame('lidar'))
        assert late.no_odometry == len(points) and tf.last_error
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_real_tf2_errors_are_missing_poses_and_slashes_are_dropped():
    """tf2 raises InvalidArgumentException for '' and '/lidar' (BufferCore::validateFrameId):
    an empty frame is a missing pose, a ROS 1 style '/lidar' or '/odom' is looked up without
    the slash."""
    mount = np.eye(4)
    rclpy.init()
    try:
        node = rclpy.create_node('tf_motion_errors_test')
        tf = TfMotion(node, '/odom', timeout_s=0.0)
        tf.buffer.set_transform_static(_stamped('base_link', 'lidar', START, mount), 'test')
        for k in range(3):
            T = np.eye(4)
            T[0, 3] = k * 0.1
            tf.buffer.set_transform(_stamped('odom', 'base_link', START + k * 10 * MS, T), 'test')
        T = tf.lookup('lidar', START, START + 20 * MS, wait=False)
        np.testing.assert_allclose(T[:3, 3], [-0.2, 0.0, 0.0], atol=1e-9)
        slashed = tf.for_frame('/lidar').sensor_motion(np.array([START]), START + 20 * MS)
        assert slashed.ok.all()
        np.testing.assert_allclose(slashed.T[0], T, atol=1e-9)
        assert tf.lookup('', START, START + 20 * MS, wait=False) is None
        assert tf.last_error.startswith('InvalidArgumentException')
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
