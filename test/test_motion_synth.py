"""The moving synthetic rig: a drive at a chosen speed and yaw rate, a rolling LiDAR sweep with
per-point times, and a bag with odometry, /tf, a driver's time field and sensor delays."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros import bagio
from g2mono_ros.errors import ConfigError
from g2mono_ros.fusion.deskew import point_stamps_ns
from g2mono_ros.fusion.motion import OdometryMotion, PoseBuffer, compensate_points
from g2mono_ros.ros.codecs import pointcloud2_to_xyz
from g2mono_ros.synth import SyntheticSequence, write_synthetic_bag
from g2mono_ros.synth.bag import SYNTH_TOPICS

MOVING = {'width': 96, 'height': 64, 'speed_mps': 10.0, 'yaw_rate_dps': 30.0,
          'rolling_sweep': True, 'sweep_slices': 90}


def test_drive_follows_speed_and_yaw_rate():
    seq = SyntheticSequence(5, num_frames=30, **MOVING)
    T0, T1 = seq.T_world_body(seq.start_ns), seq.T_world_body(seq.start_ns + 500_000_000)
    # 0.5 s on a circle of radius v / w: chord 2 r sin(w t / 2), heading change w t.
    w = np.deg2rad(30.0)
    chord = 2 * (10.0 / w) * np.sin(w * 0.5 / 2)
    assert np.linalg.norm(T1[:2, 3] - T0[:2, 3]) == pytest.approx(chord, rel=1e-6)
    yaw = np.arctan2(T1[1, 0], T1[0, 0]) - np.arctan2(T0[1, 0], T0[0, 0])
    assert yaw == pytest.approx(w * 0.5, abs=2e-3)  # pitch/roll wobble tilts the x axis a bit


def test_rolling_sweep_times_and_exact_truth():
    seq = SyntheticSequence(5, num_frames=30, **MOVING)
    scan = seq.scan(1)
    assert scan.time_offset_ns is not None and scan.time_offset_ns.dtype == np.int64
    assert scan.time_offset_ns.min() == 0 and scan.time_offset_ns.max() < 100_000_000
    assert len(np.unique(scan.time_offset_ns)) == 90
    assert np.all(np.diff(scan.time_offset_ns) >= 0)  # in firing order
    # Deskewing with the true poses reproduces the exact truth (float32 rounding only) ...
    buf = PoseBuffer()
    for k in range(-10, 60):
        stamp = seq.start_ns + k * 10_000_000
        buf.add(stamp, seq.T_world_body(stamp))
    source = OdometryMotion(buf, seq.T_body_cam @ seq.T_cam_lidar)
    target = seq.image_stamp_ns(4)
    truth = seq.scan_points_at(scan, target)
    out = compensate_points(scan.points, scan.stamp_ns + scan.time_offset_ns, target, source)
    assert out.no_odometry == 0
    assert np.abs(out.points - truth).max() < 2e-3
    # ... while the raw sweep is far from it at 10 m/s.
    assert np.median(np.linalg.norm(scan.points - truth, axis=1)) > 0.2
    # A static sweep has no per-point times, as before.
    assert SyntheticSequence(5, num_frames=3, width=96, height=64).scan(0).time_offset_ns is None


def test_moving_bag_has_odometry_time_field_and_delays(tmp_path):
    info = write_synthetic_bag(tmp_path / 'bag', 5, 6, odom_rate_hz=50.0,
                               point_time_layout='ouster', scan_delay_s=0.12,
                               image_delay_s=0.01, **MOVING)
    topics = bagio.list_topics(info.path)
    assert topics[SYNTH_TOPICS['odom']].msgtype == 'nav_msgs/msg/Odometry'
    assert topics[SYNTH_TOPICS['tf']].count == topics[SYNTH_TOPICS['odom']].count
    assert len(info.odom_stamps_ns) == topics[SYNTH_TOPICS['odom']].count > 20
    seq = SyntheticSequence(5, num_frames=6, **MOVING)
    with bagio.open_bag(info.path) as bag:
        for message in bag.messages([SYNTH_TOPICS['points']]):
            assert message.log_time_ns == message.stamp_ns + 120_000_000
            xyz, extras = pointcloud2_to_xyz(message.msg, ('t',))
            assert extras['t'].dtype == np.uint32
            stamps = point_stamps_ns(extras['t'], message.stamp_ns, field='t')
            assert 0 <= (stamps - message.stamp_ns).min() < (stamps - message.stamp_ns).max() \
                < 100_000_000
        images = list(bag.messages([SYNTH_TOPICS['image']]))
        assert all(m.log_time_ns == m.stamp_ns + 10_000_000 for m in images)
        odom = list(bag.messages([SYNTH_TOPICS['odom']]))
        msg = odom[10].msg
        assert (msg.header.frame_id, msg.child_frame_id) == ('odom', 'base_link')
        T = seq.T_world_body(odom[10].stamp_ns)
        p = msg.pose.pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], T[:3, 3], atol=1e-9)
        linear = msg.twist.twist.linear  # body frame: the rig pitches a little, and bobs
        assert np.linalg.norm([linear.x, linear.y, linear.z]) == pytest.approx(10.0, rel=1e-3)
        assert linear.x > 9.9
        assert msg.twist.twist.angular.z == pytest.approx(np.deg2rad(30.0), rel=2e-2)
        T_base_lidar = bag.read_extrinsic('base_link', 'lidar')
    np.testing.assert_allclose(T_base_lidar, info.T_base_lidar, atol=1e-9)
    assert info.odom_stamps_ns[0] < info.image_stamps_ns[0]
    assert info.odom_stamps_ns[-1] > info.scan_stamps_ns[-1] + 100_000_000


def test_bad_moving_options():
    with pytest.raises(ConfigError, match='point_time_layout must be one of autoware, ouster, velodyne'):
        write_synthetic_bag('/nonexistent/never', 0, 1, point_time_layout='sick')
    with pytest.raises(ConfigError, match='speed_mps must be >= 0'):
        SyntheticSequence(0, num_frames=1, speed_mps=-1.0)
    with pytest.raises(ConfigError, match='sweep_slices must be an integer >= 1'):
        SyntheticSequence(0, num_frames=1, sweep_slices=0)
