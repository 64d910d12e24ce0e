"""fusion.deskew: every common per-point time layout, written into a real PointCloud2 (rosbags),
decoded by the node's codec, turned into stamps and deskewed against the exact geometry.

The rig drives at 10 m/s and turns at 30 deg/s while a 0.1 s sweep fires; odometry at 100 Hz.
Deskewed points must match where the LiDAR sees them at the image time (1 mm); the scan-level
reading of the same cloud is decimetres off, so the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from g2mono_ros.bagio import pointcloud2_message
from g2mono_ros.errors import ConfigError, MessageError
from g2mono_ros.fusion.deskew import TIME_LAYOUTS, detect_time_field, point_stamps_ns
from g2mono_ros.fusion.motion import OdometryMotion, PoseBuffer, compensate_points
from g2mono_ros.fusion.transforms import invert_transform
from g2mono_ros.ros.codecs import pointcloud2_fields, pointcloud2_to_xyz
from g2mono_ros.synth.trajectory import rotation_xyz

MS = 1_000_000
HEADER_NS = 1_700_000_000_123_456_789
IMAGE_NS = HEADER_NS + 62 * MS
STORE = get_typestore(Stores.ROS2_HUMBLE)


def body_pose(t_ns: int) -> np.ndarray:
    t = (t_ns - HEADER_NS) * 1e-9
    T = np.eye(4)
    T[:3, :3] = rotation_xyz(0.01 * np.sin(5 * t), 0.0, np.deg2rad(30.0) * t)
    T[:3, 3] = [10.0 * t, 0.5 * 10.0 * np.deg2rad(30.0) * t * t, 0.0]
    return T


MOUNT = np.eye(4)
MOUNT[:3, 3] = [0.3, 0.0, 0.9]


def scene(n: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(world points (n, 3), per-point offsets from the header (n,) ns, LiDAR-frame points)."""
    rng = np.random.default_rng(3)
    offsets = np.sort(rng.integers(0, 100 * MS, size=n)) // 10_000 * 10_000  # 10 us firings
    world = rng.uniform([-20, -20, -1], [20, 20, 3], size=(n, 3))
    local = np.stack([(invert_transform(body_pose(HEADER_NS + int(o)) @ MOUNT)
                       @ np.append(p, 1.0))[:3] for p, o in zip(world, offsets)])
    return world, offsets, local


def odometry() -> OdometryMotion:
    buf = PoseBuffer()
    for k in range(-5, 20):
        stamp = HEADER_NS + k * 10 * MS
        buf.add(stamp, body_pose(stamp))
    return OdometryMotion(buf, MOUNT)


def field_values(layout_name: str, offsets: np.ndarray) -> np.ndarray:
    absolute = HEADER_NS + offsets
    return {
        'velodyne': (offsets * 1e-9).astype(np.float32),
        'ouster': offsets.astype(np.uint32),
        'autoware': offsets.astype(np.uint32),
        'livox_offset': offsets.astype(np.uint32),
        'hesai': absolute.astype(np.float64) * 1e-9,
        'livox': absolute.astype(np.float64),
    }[layout_name]


@pytest.mark.parametrize('layout', TIME_LAYOUTS, ids=[layout.name for layout in TIME_LAYOUTS])
def test_each_layout_deskews_to_the_image_time(layout):
    world, offsets, local = scene()
    values = field_values(layout.name, offsets)
    assert values.dtype == np.dtype(layout.dtype)
    msg = pointcloud2_message(STORE, local, HEADER_NS, 'lidar',
                              {'intensity': np.ones(len(local), np.float32), layout.field: values})
    assert detect_time_field(pointcloud2_fields(msg)) == layout.field
    xyz, extras = pointcloud2_to_xyz(msg, (layout.field,))
    stamps = point_stamps_ns(extras[layout.field], HEADER_NS, field=layout.field)
    # float32 seconds resolve ~7 ns at 0.1 s; float64 absolute ns/s ~0.25 us
    np.testing.assert_allclose(stamps - HEADER_NS, offsets, atol=500)
    truth = (invert_transform(body_pose(IMAGE_NS) @ MOUNT)[:3, :3] @ world.T).T \
        + invert_transform(body_pose(IMAGE_NS) @ MOUNT)[:3, 3]
    out = compensate_points(xyz, stamps, IMAGE_NS, odometry())
    assert out.no_odometry == 0
    assert np.abs(out.points - truth).max() < 1e-3
    scan_level = compensate_points(xyz, HEADER_NS, IMAGE_NS, odometry())
    assert np.median(np.linalg.norm(scan_level.points - truth, axis=1)) > 0.1


@pytest.mark.parametrize('unit', ['s', 'ms', 'us', 'ns'])
def test_explicit_units_and_relative_or_absolute_reading(unit):
    offsets = np.array([0, 25 * MS, 99 * MS])
    scale = {'s': 1e9, 'ms': 1e6, 'us': 1e3, 'ns': 1.0}[unit]
    relative = offsets / scale
    np.testing.assert_array_equal(point_stamps_ns(relative, HEADER_NS, unit=unit),
                                  HEADER_NS + offsets)
    np.testing.assert_array_equal(point_stamps_ns(relative, HEADER_NS, field='custom'),
                                  HEADER_NS + offsets)  # auto finds the same unit
    if unit in ('s', 'ms'):  # float64 keeps these absolute values to well under 1 us
        absolute = (HEADER_NS + offsets) / scale
        got = point_stamps_ns(absolute, HEADER_NS, unit=unit)
        np.testing.assert_allclose(got - HEADER_NS, offsets, atol=1000)


def test_negative_relative_times_stamped_at_sweep_end():
    """Drivers that stamp the cloud at the end of the sweep write negative offsets."""
    values = np.array([-0.1, -0.05, 0.0], dtype=np.float32)
    got = point_stamps_ns(values, HEADER_NS, field='time')
    np.testing.assert_allclose(got - HEADER_NS, [-100 * MS, -50 * MS, 0], atol=10)


def test_detection_and_errors():
    fields = {'x': 0, 'y': 0, 'z': 0, 'intensity': 0}
    assert detect_time_field(fields) is None
    assert detect_time_field({**fields, 't': 0, 'time': 0}) == 't'
    assert detect_time_field({**fields, 'time': 0}, 'none') is None
    assert detect_time_field({**fields, 'stamp_x': 0}, 'stamp_x') == 'stamp_x'
    with pytest.raises(MessageError, match="no point time field 'time'.*point_time_field"):
        detect_time_field(fields, 'time')
    with pytest.raises(ConfigError, match="'point_time_unit' must be one of auto, s, ms"):
        point_stamps_ns(np.zeros(3), HEADER_NS, unit='minutes')
    with pytest.raises(MessageError, match='within 1 s of the header stamp'):
        point_stamps_ns(np.array([5e9, 6e9]), HEADER_NS, field='time', unit='ns')
    with pytest.raises(MessageError, match='non-finite'):
        point_stamps_ns(np.array([0.0, np.nan]), HEADER_NS, field='time')
    assert point_stamps_ns(np.zeros(0, np.float32), HEADER_NS).shape == (0,)
