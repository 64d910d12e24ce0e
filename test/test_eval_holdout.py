"""The LiDAR hold-out protocol: the split, the cloud filtering, and that withheld points never
reach the network (offline; the live replay is checked in test_eval_live.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.ros.codecs import pointcloud2_to_xyz
from g2mono_ros.errors import ConfigError, MessageError
from g2mono_ros.evaluation.holdout import (
    choose_holdout_rows,
    cloud_rows,
    holdout_targets,
    select_cloud_rows,
)
from g2mono_ros.fusion.projection import project_points_to_depth

CAMERA = CameraModel(width=128, height=64, K=np.array([[60.0, 0, 63.5], [0, 60.0, 31.5],
                                                        [0, 0, 1]]), D=np.zeros(5))
T_IDENTITY = np.eye(4)  # points given directly in the camera optical frame


def _points(n: int = 3000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.stack([rng.uniform(-20, 20, n), rng.uniform(-8, 8, n), rng.uniform(-5, 40, n)], 1)
    pts[:10] = np.nan  # a few invalid returns, as drivers send them
    return pts.astype(np.float32)


def _rosbags_cloud(xyz: np.ndarray, *, organised: bool = False) -> Any:
    from rosbags.typesys import Stores, get_typestore

    from g2mono_ros.bagio import pointcloud2_message

    store = get_typestore(Stores.ROS2_HUMBLE)
    ring = np.arange(len(xyz), dtype=np.uint16) % 16
    msg = pointcloud2_message(store, xyz, 1_700_000_000_123_456_789, 'lidar',
                              {'intensity': np.linspace(0, 1, len(xyz)).astype(np.float32),
                               'ring': ring})
    if organised:  # 2 rows, each padded by 8 bytes: the rows must be read with row_step
        half = len(xyz) // 2
        data = msg.data.reshape(len(xyz), msg.point_step)[:2 * half].reshape(2, -1)
        padded = np.concatenate([data, np.zeros((2, 8), np.uint8)], axis=1)
        msg.height, msg.width = 2, half
        msg.row_step = half * msg.point_step + 8
        msg.data = padded.reshape(-1)
    return msg


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def test_split_is_exact_seeded_and_only_from_visible_points() -> None:
    xyz = _points().astype(np.float64)
    kwargs = dict(fraction=0.25, seed=7, stamp_ns=123, min_range=0.5, max_range=100.0)
    held = choose_holdout_rows(xyz, T_IDENTITY, CAMERA, **kwargs)
    # the candidates: the points the core projection draws, found independently per point
    visible = np.array([project_points_to_depth(p[None].astype(np.float32), T_IDENTITY, CAMERA)[1]
                        .any() for p in xyz])
    assert visible.sum() > 500
    assert not np.any(held & ~visible)
    assert held.sum() == round(0.25 * visible.sum())
    assert np.array_equal(held, choose_holdout_rows(xyz, T_IDENTITY, CAMERA, **kwargs))
    other_scan = choose_holdout_rows(xyz, T_IDENTITY, CAMERA, **{**kwargs, 'stamp_ns': 124})
    other_seed = choose_holdout_rows(xyz, T_IDENTITY, CAMERA, **{**kwargs, 'seed': 8})
    assert not np.array_equal(held, other_scan) and not np.array_equal(held, other_seed)


@pytest.mark.parametrize('fraction', [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_out_of_range_raises(fraction: float) -> None:
    with pytest.raises(ConfigError, match=r'fraction must be in \(0, 1\)'):
        choose_holdout_rows(_points(), T_IDENTITY, CAMERA, fraction=fraction, seed=0,
                            stamp_ns=0, min_range=0.5, max_range=100.0)


@pytest.mark.parametrize('organised', [False, True])
def test_select_rows_keeps_fields_and_exact_points(organised: bool) -> None:
    xyz = _points(400)
    msg = _rosbags_cloud(xyz, organised=organised)
    rows, all_xyz = cloud_rows(msg)
    n = 400
    assert rows.shape == (n, msg.point_step)
    np.testing.assert_array_equal(all_xyz[10:], xyz[10:n].astype(np.float64))
    assert np.isnan(all_xyz[:10]).all()
    keep = np.zeros(n, bool)
    keep[::3] = True
    kept = select_cloud_rows(msg, keep, rows)
    assert (kept.height, kept.width) == (1, int(keep.sum()))
    assert [f.name for f in kept.fields] == ['x', 'y', 'z', 'intensity', 'ring']
    got, extra = pointcloud2_to_xyz(kept, ('ring',))
    finite = keep & np.isfinite(all_xyz).all(1)
    np.testing.assert_array_equal(got, all_xyz[finite].astype(np.float32))
    np.testing.assert_array_equal(extra['ring'], (np.arange(n) % 16)[finite])
    assert msg.width == (n if not organised else n // 2)  # the original is untouched


def test_select_rows_on_rclpy_message() -> None:
    from g2mono_ros.ros.codecs import xyz_to_pointcloud2

    xyz = _points(50)[10:]
    msg = xyz_to_pointcloud2(xyz)
    keep = np.arange(40) % 2 == 0
    kept = select_cloud_rows(msg, keep)
    got, _ = pointcloud2_to_xyz(kept)
    np.testing.assert_array_equal(got, xyz[keep])


def test_select_rows_wrong_mask_raises() -> None:
    msg = _rosbags_cloud(_points(20))
    with pytest.raises(MessageError, match=r'keep mask must have shape \(20,\)'):
        select_cloud_rows(msg, np.ones(19, bool))


def test_cloud_rows_bad_size_raises() -> None:
    msg = _rosbags_cloud(_points(20))
    msg.data = msg.data[:-4]
    with pytest.raises(MessageError, match='does not match its'):
        cloud_rows(msg)


def test_targets_exclude_pixels_a_kept_point_also_hits() -> None:
    held = np.array([[0.0, 0.0, 10.0], [1.0, 0.0, 10.0]], np.float32)
    kept = np.array([[0.0, 0.0, 12.0], [-3.0, 0.0, 10.0]], np.float32)  # first shares a pixel
    split = holdout_targets(held, kept, T_IDENTITY, CAMERA, min_range=0.5, max_range=100.0)
    assert np.count_nonzero(split.target_m) == 1
    assert split.target_m[32, 70] == pytest.approx(10.0)   # u = 60 * 0.1 + 63.5 -> 70
    assert split.kept_sparse_m[32, 64] == pytest.approx(12.0)
    assert not np.any((split.target_m > 0) & (split.kept_sparse_m > 0))


# --- the offline evaluator never feeds withheld points to the network -----------------------

class SpyEngine:
    """Wraps a real DepthEngine and records every sparse depth image it is given."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.inputs: list[np.ndarray] = []
        self.max_depth = engine.max_depth

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.engine.network_input_size(height, width)

    def infer(self, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        self.inputs.append(np.array(sparse, copy=True))
        return self.engine.infer(rgb, sparse)


def test_offline_holdout_points_never_reach_the_network(tiny_bag: Path,
                                                        tiny_weights: Path) -> None:
    from g2mono_ros.bagio import BagReader
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.models.engine import DepthEngine
    from g2mono_ros.evaluation.evaluator import EvaluationOptions, evaluate_offline

    options = EvaluationOptions(engine=EngineConfig(weights=str(tiny_weights), device='cpu',
                                                    input_height=64),
                                ground_truth='holdout', holdout_fraction=0.3, seed=5,
                                progress=False)
    spy = SpyEngine(DepthEngine(options.engine))
    result = evaluate_offline(tiny_bag, options, engine=spy)
    assert result.ground_truth == 'holdout' and len(spy.inputs) == len(result.book.frames) > 0

    # Recompute each scan's split from the bag on our own and compare with what the network got.
    with BagReader(tiny_bag) as reader:
        from g2mono_ros.bagio import read_extrinsic

        camera = reader.camera_model()
        T = read_extrinsic(reader)
        clouds = {m.stamp_ns: m.msg for m in reader.messages('/lidar/points')}
    net_hw = spy.network_input_size(camera.height, camera.width)
    for record, received in zip(result.book.frames, spy.inputs):
        msg = clouds[record.scan_stamp_ns]
        _, xyz = cloud_rows(msg)
        held = choose_holdout_rows(xyz, T, camera, fraction=0.3, seed=5,
                                   stamp_ns=record.scan_stamp_ns, min_range=0.5,
                                   max_range=100.0)
        assert held.sum() > 0
        kept_net, _ = project_points_to_depth(xyz[~held].astype(np.float32), T, camera,
                                              out_hw=net_hw)
        all_net, _ = project_points_to_depth(xyz.astype(np.float32), T, camera, out_hw=net_hw)
        held_only, _ = project_points_to_depth(xyz[held].astype(np.float32), T, camera,
                                               out_hw=net_hw)
        np.testing.assert_array_equal(received, kept_net)
        # The withheld points change the input where they would have won a pixel: not seen.
        assert not np.array_equal(received, all_net)
        won = (held_only > 0) & ((kept_net == 0) | (held_only < kept_net))
        assert won.any() and not np.any(received[won] == held_only[won])
    # Targets come only from withheld points, never from a pixel an input point also hit.
    for sample in result.book.samples:
        assert not np.any((sample.target_m > 0) & (sample.sparse_m > 0))
