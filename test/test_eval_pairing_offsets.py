"""Per-sensor time offsets reach motion compensation in the evaluator (the node's path): on a
moving synthetic bag (10 m/s, 30 deg/s, rolling sweeps, odometry) the compensated sparse input
matches the exact camera-time projection when the offsets are consistent, and not when only the
LiDAR's is shifted (its points are then moved from the wrong times)."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.config import EngineConfig, MotionConfig, SyncConfig
from g2mono_ros.evaluation.evaluator import EvaluationOptions, iter_frames, open_sequence
from g2mono_ros.fusion.projection import project_points_to_depth
from g2mono_ros.fusion.sync import PairGapStats
from g2mono_ros.synth import SyntheticSequence, write_synthetic_bag

SEED, FRAMES = 8, 12
MOVING = {'width': 128, 'height': 64, 'speed_mps': 10.0, 'yaw_rate_dps': 30.0,
          'rolling_sweep': True, 'sweep_slices': 120}
ODOMETRY = MotionConfig(motion_source='odometry', odom_topic='/odom')


@pytest.fixture(scope='module')
def moving_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('moving_offsets') / 'bag'
    return write_synthetic_bag(path, SEED, FRAMES, odom_rate_hz=100.0, scan_delay_s=0.11,
                               point_time_layout='velodyne', **MOVING)


def _share_within_1cm(info, sync: SyncConfig) -> tuple[float, dict]:
    options = EvaluationOptions(engine=EngineConfig(weights='unused.pt'), progress=False,
                                motion=ODOMETRY, sync=sync)
    seq = SyntheticSequence(SEED, num_frames=FRAMES, **MOVING)
    gaps = PairGapStats()
    frames = list(iter_frames(open_sequence(info.path, options), options, {}, gaps))
    assert len(frames) >= 3
    good = []
    for frame in frames:
        scan = seq.scan(info.scan_stamps_ns.index(frame.scan_stamp_ns))
        truth, mask = project_points_to_depth(seq.scan_points_at(scan, frame.image_stamp_ns),
                                              seq.T_cam_lidar, seq.camera, min_range=0.5,
                                              max_range=100.0)
        both = mask & (frame.sparse_m > 0)
        good.append(float((np.abs(frame.sparse_m[both] - truth[both]) <= 0.01).mean()))
    return float(np.mean(good)), gaps.summary()


def test_consistent_offsets_keep_compensation_exact(moving_bag):
    exact, pairing = _share_within_1cm(moving_bag, SyncConfig())
    assert exact >= 0.99
    # the delayed clouds (110 ms after their stamp) pair every image, by log time
    assert pairing['depth_fraction'] == 1.0 and pairing['images'] == FRAMES
    # Both clocks read 20 ms early: the same motion between the corrected times.
    shifted, _ = _share_within_1cm(moving_bag, SyncConfig(image_time_offset=0.02,
                                                          points_time_offset=0.02))
    assert shifted >= 0.99


def test_an_offset_on_one_sensor_moves_its_points_from_other_times(moving_bag):
    wrong, _ = _share_within_1cm(moving_bag, SyncConfig(points_time_offset=0.02))
    assert wrong < 0.5, '20 ms at 10 m/s is 0.2 m: the offset must reach compensation'
