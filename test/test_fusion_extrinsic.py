"""The extrinsic resolver (parameters vs TF, caching, timeouts, no_transform), the coverage check.

tf2_ros cannot be installed in the pip venv these tests run in, so the TF side is a fake
``TransformSource`` here (``FakeTf``); ``test_ros_tf_lookup.py`` runs the real tf2_ros adapter
where tf2_ros imports. Everything else (frames, caching, counting, throttled warnings, the
projection behind the coverage check) is the real code.
"""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.config import ExtrinsicConfig, NodeConfig
from g2mono_ros.errors import ConfigError, ShapeError, TransformError
from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.extrinsic import (CoverageCheck, ExtrinsicResolver, StaticFrameTree,
                                         points_in_image_fraction)
from g2mono_ros.fusion.pipeline import FaultLog
from g2mono_ros.fusion.transforms import (R_OPTICAL_FROM_REP103,
                                          transform_from_translation_quaternion)

T_REP103 = transform_from_translation_quaternion((0.05, -0.10, 0.02), (0.5, -0.5, 0.5, 0.5))


class FakeTf:
    """Stands in for tf2_ros (not installable here): named transforms, a static tree, a log.

    ``lookup`` returns ``T_target_source`` when it knows the pair (either direction) and raises
    ``TransformError`` otherwise, as the real adapter does after its timeout.
    """

    def __init__(self) -> None:
        self.transforms: dict[tuple[str, str], np.ndarray] = {}
        self.static = StaticFrameTree()
        self.calls: list[tuple[str, str, int, float]] = []

    def add(self, target: str, source: str, T: np.ndarray, *, static: bool) -> None:
        self.transforms[(target, source)] = T
        if static:
            self.static.add(target, source)

    def lookup(self, target_frame, source_frame, stamp_ns, timeout_s):
        self.calls.append((target_frame, source_frame, stamp_ns, timeout_s))
        if (target_frame, source_frame) in self.transforms:
            return self.transforms[(target_frame, source_frame)]
        if (source_frame, target_frame) in self.transforms:
            return np.linalg.inv(self.transforms[(source_frame, target_frame)])
        msg = f'"{target_frame}" and "{source_frame}" are not part of the same tree'
        raise TransformError(msg)

    def is_static(self, target_frame, source_frame):
        return self.static.connects(target_frame, source_frame)

    @property
    def static_version(self) -> int:
        return self.static.version


def test_parameters_override_tf_and_ignore_frames():
    tf = FakeTf()
    resolver = ExtrinsicResolver(fixed=T_REP103)
    got = resolver.resolve('lidar', 'camera_optical', 5)
    assert got.source == 'parameters' and np.array_equal(got.T_cam_lidar, T_REP103)
    assert not resolver.uses_tf and tf.calls == []


def test_lookup_is_cloud_frame_to_image_frame_at_the_stamp_with_the_timeout():
    tf = FakeTf()
    tf.add('camera_optical', 'lidar', T_REP103, static=False)
    resolver = ExtrinsicResolver(source=tf, timeout_s=0.25)
    got = resolver.resolve('/lidar', 'camera_optical', 1_700_000_000_123)
    assert got.source == 'tf'
    np.testing.assert_array_equal(got.T_cam_lidar, T_REP103)
    assert tf.calls == [('camera_optical', 'lidar', 1_700_000_000_123, 0.25)]
    resolver.resolve('lidar', 'camera_optical', 2)  # dynamic: looked up again
    assert len(tf.calls) == 2


def test_static_chain_is_looked_up_once_and_cached():
    tf = FakeTf()
    tf.static.add('base_link', 'lidar')
    tf.static.add('base_link', 'camera_link')
    tf.static.add('camera_link', 'camera_optical')
    tf.transforms[('camera_optical', 'lidar')] = T_REP103
    resolver = ExtrinsicResolver(source=tf)
    first = resolver.resolve('lidar', 'camera_optical', 1)
    second = resolver.resolve('lidar', 'camera_optical', 2)
    assert (first.source, second.source) == ('tf', 'tf_cached')
    assert len(tf.calls) == 1 and np.array_equal(second.T_cam_lidar, T_REP103)


def test_a_republished_static_transform_replaces_the_cached_one():
    """A calibration republished on /tf_static: the cache is dropped, the new transform used,
    and nothing cached until tf2 has surely taken it too (static_settle_s)."""
    now = [100.0]
    tf = FakeTf()
    tf.add('camera_optical', 'lidar', T_REP103, static=True)
    resolver = ExtrinsicResolver(source=tf, static_settle_s=1.0, clock=lambda: now[0])
    assert resolver.resolve('lidar', 'camera_optical', 1).source == 'tf'
    assert resolver.resolve('lidar', 'camera_optical', 2).source == 'tf_cached'
    recalibrated = T_REP103.copy()
    recalibrated[0, 3] += 0.01
    tf.add('camera_optical', 'lidar', recalibrated, static=True)  # republished
    got = resolver.resolve('lidar', 'camera_optical', 3)
    assert got.source == 'tf' and np.array_equal(got.T_cam_lidar, recalibrated)
    now[0] += 0.5  # within the settle time: looked up again, not cached
    assert resolver.resolve('lidar', 'camera_optical', 4).source == 'tf'
    now[0] += 0.6
    assert resolver.resolve('lidar', 'camera_optical', 5).source == 'tf'  # cached from here
    assert resolver.resolve('lidar', 'camera_optical', 6).source == 'tf_cached'
    assert len(tf.calls) == 4


def test_static_tree_needs_static_links_all_the_way():
    tree = StaticFrameTree()
    tree.add('base_link', 'lidar')
    tree.add('odom', 'camera')  # odom -> base_link is dynamic (not in the static tree)
    assert not tree.connects('lidar', 'camera')
    assert tree.connects('lidar', 'base_link') and tree.connects('/lidar', 'lidar')
    tree.add('base_link', 'camera')  # re-parented by a later static transform
    assert tree.connects('lidar', 'camera')


def test_missing_transform_is_counted_and_warned_throttled_naming_both_frames():
    now = [0.0]
    faults = FaultLog(throttle_s=10.0, clock=lambda: now[0])
    lines: list[str] = []

    def record(kind: str, detail: str) -> None:
        line = faults.record(kind, detail)
        if line:
            lines.append(line)

    resolver = ExtrinsicResolver(source=FakeTf(), timeout_s=0.1, record=record)
    for _ in range(5):
        got = resolver.resolve('velodyne', 'camera_optical', 3)
        assert got.T_cam_lidar is None and got.source == 'none'
    assert resolver.counts == {'no_transform': 5} and faults.counts() == {'no_transform': 5}
    assert len(lines) == 1, 'throttled: one line for a burst'
    assert "'velodyne'" in lines[0] and "'camera_optical'" in lines[0]
    assert 'within 0.1 s' in lines[0]
    now[0] = 11.0
    resolver.resolve('velodyne', 'camera_optical', 4)
    assert len(lines) == 2 and '(5 since the last report)' in lines[1]


def test_empty_frame_id_is_a_counted_fault_not_identity():
    resolver = ExtrinsicResolver(source=FakeTf())
    got = resolver.resolve('', 'camera_optical', 1)
    assert got.T_cam_lidar is None and 'cloud has an empty header.frame_id' in got.reason
    assert resolver.counts['no_transform'] == 1


def test_same_frame_needs_no_lookup():
    tf = FakeTf()
    got = ExtrinsicResolver(source=tf).resolve('camera_optical', 'camera_optical', 1)
    assert got.source == 'same_frame' and np.array_equal(got.T_cam_lidar, np.eye(4))
    assert tf.calls == []


def test_resolver_needs_a_source_or_a_fixed_transform():
    with pytest.raises(TransformError, match='give either the fixed transform or a transform'):
        ExtrinsicResolver()
    with pytest.raises(ShapeError, match=r'finite \(4, 4\) transform; got shape \(3, 3\)'):
        ExtrinsicResolver(fixed=np.eye(3))


def test_extrinsic_config_unset_by_default_and_both_or_neither():
    assert not ExtrinsicConfig().is_set and ExtrinsicConfig().tf_timeout == 0.1
    assert ExtrinsicConfig((0, 0, 0), (0, 0, 0, 1)).is_set
    with pytest.raises(ConfigError, match="'extrinsic.rotation' is unset but "
                                          "'extrinsic.translation' is set"):
        ExtrinsicConfig(translation=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match="'extrinsic.tf_timeout' must be a finite number >= 0"):
        ExtrinsicConfig(tf_timeout=-1.0)
    config = NodeConfig.from_flat({'weights': 'a.pt', 'extrinsic.translation': [],
                                   'extrinsic.rotation': [], 'extrinsic.tf_timeout': 0.5})
    assert not config.extrinsic.is_set and config.extrinsic.tf_timeout == 0.5
    # `translation: []` in a YAML file arrives from rclpy as None: unset too.
    config = NodeConfig.from_flat({'weights': 'a.pt', 'extrinsic.translation': None,
                                   'extrinsic.rotation': None})
    assert not config.extrinsic.is_set
    with pytest.raises(ConfigError, match="'extrinsic.rotation' must be a list of numbers"):
        NodeConfig.from_flat({'weights': 'a.pt', 'extrinsic.rotation': 'identity'})


def _scan(seed: int = 0, n: int = 20000) -> np.ndarray:
    """(N, 3) float32 REP 103 LiDAR frame: a 360 deg, +-15 deg sweep at 2-30 m (a VLP-16-like)."""
    rng = np.random.default_rng(seed)
    az = rng.uniform(-np.pi, np.pi, n)
    el = np.deg2rad(rng.uniform(-15, 15, n))
    r = rng.uniform(2.0, 30.0, n)
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)],
                    axis=1).astype(np.float32)


CAMERA = CameraModel(width=128, height=64, K=np.array([[64.0, 0, 64], [0, 64.0, 32], [0, 0, 1]]),
                     D=np.zeros(5), distortion_model='plumb_bob')


def test_coverage_separates_a_right_extrinsic_from_identity():
    """90 deg horizontal field of view: ~half of the points in front land in the image."""
    T_right = np.eye(4)
    T_right[:3, :3] = R_OPTICAL_FROM_REP103
    points = _scan()
    right = points_in_image_fraction(points, T_right, CAMERA, min_range=0.5, max_range=100.0)
    wrong = points_in_image_fraction(points, np.eye(4), CAMERA, min_range=0.5, max_range=100.0)
    # Hand calculation: in front = 180 deg of azimuth; the image spans 90 deg of it and
    # +-26.6 deg vertically (all of the +-15 deg sweep): 0.5.
    assert right == pytest.approx(0.5, abs=0.03)
    assert wrong == 0.0  # identity: camera z = LiDAR up, nothing within +-15 deg lands


def test_coverage_check_warns_after_warmup_only_for_a_wrong_extrinsic():
    T_right = np.eye(4)
    T_right[:3, :3] = R_OPTICAL_FROM_REP103
    for T, warns in ((T_right, False), (np.eye(4), True)):
        check = CoverageCheck(warmup=3, every=5)
        lines = [check.observe(_scan(i, 2000), T, CAMERA, min_range=0.5, max_range=100.0,
                               cloud_frame='velodyne', image_frame='cam_optical')
                 for i in range(3)]
        assert lines[:2] == [None, None]
        assert (lines[2] is not None) == warns
        if warns:
            assert "'velodyne' to 'cam_optical' is probably wrong" in lines[2]
            assert check.fraction == 0.0
        # Between samples nothing is computed.
        assert check.observe(_scan(9, 10), T, CAMERA, min_range=0.5, max_range=100.0) is None
