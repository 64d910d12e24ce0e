"""fusion.motion: slerp, SE(3) interpolation, the pose buffer and scan-level compensation,
against hand-computed values (a 90 degree yaw, a rig driving at 10 m/s)."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.motion import (OdometryMotion, PoseBuffer, compensate_points,
                                      interpolate_transforms, slerp)
from g2mono_ros.fusion.transforms import invert_transform

S = 1_000_000_000
MS = 1_000_000


def yaw_pose(yaw_deg: float, x: float = 0.0, y: float = 0.0) -> np.ndarray:
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = x, y
    return T


def test_slerp_halfway_between_identity_and_90_deg_yaw_is_45_deg():
    q90 = [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]
    q = slerp([0, 0, 0, 1], q90, [0.0, 0.5, 1.0])
    s, c = np.sin(np.pi / 8), np.cos(np.pi / 8)  # 45 deg: half angle 22.5 deg
    np.testing.assert_allclose(q[1], [0, 0, s, c], atol=1e-12)
    np.testing.assert_allclose(q[0], [0, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(q[2], q90, atol=1e-12)


def test_slerp_takes_the_short_way_for_a_sign_flipped_quaternion():
    q10 = np.array([0.0, 0.0, np.sin(np.deg2rad(5)), np.cos(np.deg2rad(5))])
    q = slerp([0, 0, 0, 1], -q10, 0.5)[0]  # -q10 is the same 10 deg rotation
    assert abs(q[2] / q[3]) == pytest.approx(np.tan(np.deg2rad(2.5)), rel=1e-9)


def test_interpolate_transforms_hand_values_and_extrapolation():
    T0, T1 = np.eye(4), yaw_pose(90.0, x=2.0)
    T = interpolate_transforms(T0, T1, [0.5, 1.5, -0.5])
    np.testing.assert_allclose(T[0], yaw_pose(45.0, x=1.0), atol=1e-12)
    np.testing.assert_allclose(T[1], yaw_pose(135.0, x=3.0), atol=1e-12)  # constant velocity
    np.testing.assert_allclose(T[2], yaw_pose(-45.0, x=-1.0), atol=1e-12)
    with pytest.raises(ShapeError, match=r'two \(4, 4\) transforms'):
        interpolate_transforms(np.eye(3), T1, 0.5)


def test_pose_buffer_interpolates_between_bracketing_samples():
    buf = PoseBuffer(max_gap_s=0.5, max_extrapolation_s=0.05)
    buf.add(100 * MS, yaw_pose(90.0, x=2.0))  # out of order: sorted in
    buf.add(0, np.eye(4))
    found = buf.lookup([0, 25 * MS, 100 * MS])
    assert found.ok.all()
    np.testing.assert_allclose(found.T[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(found.T[1], yaw_pose(22.5, x=0.5), atol=1e-12)
    np.testing.assert_allclose(found.T[2], yaw_pose(90.0, x=2.0), atol=1e-12)


def test_pose_buffer_extrapolates_only_a_little_and_never_across_a_gap():
    buf = PoseBuffer(max_gap_s=0.5, max_extrapolation_s=0.05)
    buf.add(0, np.eye(4))
    buf.add(100 * MS, yaw_pose(90.0, x=2.0))
    found = buf.lookup([130 * MS, 151 * MS, -40 * MS, -60 * MS])
    assert found.ok.tolist() == [True, False, True, False]
    np.testing.assert_allclose(found.T[0], yaw_pose(117.0, x=2.6), atol=1e-12)
    np.testing.assert_allclose(found.T[1], np.eye(4))  # missing: identity, flagged
    buf.add(1100 * MS, yaw_pose(90.0, x=3.0))  # 1 s after the previous sample: a dropout
    assert buf.lookup([600 * MS]).ok.tolist() == [False]
    assert buf.lookup([1100 * MS]).ok.tolist() == [False]  # its bracket is the gap itself


def test_pose_buffer_forgets_old_samples_and_replaces_a_repeated_stamp():
    buf = PoseBuffer(max_age_s=1.0)
    for k in range(30):
        buf.add(k * 100 * MS, yaw_pose(0.0, x=float(k)))
    assert len(buf) == 11 and buf.newest_ns == 2900 * MS
    buf.add(2900 * MS, yaw_pose(0.0, x=-1.0))
    assert len(buf) == 11
    np.testing.assert_allclose(buf.lookup([2900 * MS]).T[0, 0, 3], -1.0)
    buf.clear()
    assert len(buf) == 0 and not buf.lookup([0]).ok.any()
    with pytest.raises(ShapeError, match='finite'):
        buf.add(0, np.full((4, 4), np.nan))


def test_odometry_motion_uses_the_lidar_mounting():
    """Body drives +x at 10 m/s; the LiDAR sits 1 m ahead, yawed 90 deg. A wall point 5 m ahead
    of the body at t=0 is (0, -4, 0) in the LiDAR; 0.1 s later the LiDAR sees it at (0, -3, 0)."""
    buf = PoseBuffer()
    for k in range(11):
        buf.add(k * 10 * MS, yaw_pose(0.0, x=0.1 * k))
    T_body_lidar = yaw_pose(90.0, x=1.0)
    source = OdometryMotion(buf, T_body_lidar)
    out = compensate_points(np.array([[0.0, -4.0, 0.0]]), 0, 100 * MS, source)
    np.testing.assert_allclose(out.points, [[0.0, -3.0, 0.0]], atol=1e-6)
    assert out.no_odometry == 0
    # Ignoring the mounting (LiDAR = body) moves the point along the wrong axis.
    wrong = compensate_points(np.array([[0.0, -4.0, 0.0]]), 0, 100 * MS, OdometryMotion(buf))
    assert np.abs(wrong.points - [[0.0, -3.0, 0.0]]).max() > 0.9


def test_turning_body_moves_points_by_the_yaw():
    """Yaw rate 90 deg/s about the body origin: a point 10 m ahead at t=0 is 10 m to the right
    (y = -10) one second later."""
    buf = PoseBuffer(max_gap_s=2.0)
    buf.add(0, np.eye(4))
    buf.add(S, yaw_pose(90.0))
    out = compensate_points(np.array([[10.0, 0.0, 0.0]]), 0, S, OdometryMotion(buf))
    np.testing.assert_allclose(out.points, [[0.0, -10.0, 0.0]], atol=1e-5)
    half = compensate_points(np.array([[10.0, 0.0, 0.0]]), 0, S // 2, OdometryMotion(buf))
    np.testing.assert_allclose(half.points, [[10 * np.cos(np.pi / 4), -10 * np.sin(np.pi / 4),
                                              0.0]], atol=1e-5)


def test_per_point_stamps_and_missing_odometry_are_counted():
    buf = PoseBuffer(max_extrapolation_s=0.0)
    for k in range(11):
        buf.add(k * 10 * MS, yaw_pose(0.0, x=0.1 * k))
    points = np.array([[5.0, 0, 0], [5.0, 0, 0], [5.0, 0, 0], [5.0, 0, 0]], dtype=np.float32)
    stamps = np.array([0, 50 * MS, 100 * MS, 150 * MS])  # the last has no odometry
    out = compensate_points(points, stamps, 100 * MS, OdometryMotion(buf))
    assert out.keep.tolist() == [True, True, True, False] and out.no_odometry == 1
    np.testing.assert_allclose(out.points[:, 0], [4.0, 4.5, 5.0], atol=1e-5)
    # No pose at the target time: every point is missing, none guessed.
    none = compensate_points(points, stamps, 300 * MS, OdometryMotion(buf))
    assert none.no_odometry == 4 and none.points.shape == (0, 3)
    with pytest.raises(ShapeError, match=r'\(4,\)'):
        compensate_points(points, stamps[:3], 0, OdometryMotion(buf))
    with pytest.raises(ShapeError, match=r'\(N, 3\)'):
        compensate_points(points[:, :2], 0, 0, OdometryMotion(buf))


def test_relative_motion_matches_pose_algebra_on_a_6dof_path():
    """Random smooth 6-DoF path at 100 Hz: interpolated relative motion equals the exact one."""
    from g2mono_ros.synth.trajectory import rotation_xyz

    def pose(t: float) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = rotation_xyz(0.05 * np.sin(3 * t), 0.03 * np.cos(2 * t), 0.5 * t)
        T[:3, 3] = [10 * t, 0.3 * np.sin(t), 0.02 * t]
        return T

    buf = PoseBuffer()
    for k in range(40):
        buf.add(k * 10 * MS, pose(k * 0.01))
    mount = yaw_pose(10.0, x=0.5, y=-0.2)
    source = OdometryMotion(buf, mount)
    t_from = np.array([23 * MS + 456, 101 * MS, 305 * MS])
    found = source.sensor_motion(t_from, 200 * MS)
    for T, tf in zip(found.T, t_from):
        exact = (invert_transform(pose(0.2) @ mount) @ pose(tf * 1e-9) @ mount)
        np.testing.assert_allclose(T, exact, atol=2e-4)
