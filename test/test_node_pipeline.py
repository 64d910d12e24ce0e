"""The depth node's ROS-free policies: newest-pair mailbox, fault throttling, rates, stamps."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from g2mono_ros.errors import MessageError, ShapeError
from g2mono_ros.fusion.pipeline import (FaultLog, LatestSlot, PairInputs, RateMeter, StageStats,
                                      classify_image_error, process_pair)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_latest_slot_keeps_newest_and_counts_superseded():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.superseded == 2
    assert slot.take(0.0) == 3
    assert slot.take(0.0) is None


def test_latest_slot_wakes_a_waiting_worker_and_close_stops_it():
    slot: LatestSlot[str] = LatestSlot()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    worker.start()
    slot.put('pair')
    worker.join(2.0)
    assert got == ['pair']
    slot.put('late')
    slot.close()
    assert slot.take(5.0) is None
    assert slot.closed


def test_latest_slot_clear_discards_waiting_item():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.clear() is False
    slot.put(7)
    assert slot.clear() is True
    assert slot.take(0.0) is None


def test_fault_log_logs_first_then_throttles_with_counts():
    clock = FakeClock()
    log = FaultLog(throttle_s=10.0, clock=clock)
    first = log.record('malformed_cloud', 'point_step 0')
    assert first is not None and first.startswith('malformed_cloud: point_step 0')
    assert log.record('malformed_cloud') is None
    assert log.record('empty_cloud') is not None, 'each kind has its own throttle'
    clock.now += 10.5
    again = log.record('malformed_cloud', 'x')
    assert again is not None and '(2 since the last report)' in again and 'total 3' in again
    assert log.counts() == {'malformed_cloud': 3, 'empty_cloud': 1}


def test_fault_log_folds_in_running_totals_once():
    log = FaultLog(clock=FakeClock())
    assert log.sync_counts('sync_', {'no_scan': 2})
    assert log.sync_counts('sync_', {'no_scan': 2}) == []
    log.sync_counts('sync_', {'no_scan': 5})
    assert log.counts() == {'sync_no_scan': 5}


def test_rate_meter_reports_rate_and_goes_stale():
    clock = FakeClock()
    meter = RateMeter(window=10, clock=clock)
    assert meter.rate_hz() == 0.0
    for _ in range(5):
        meter.tick()
        clock.now += 0.1
    assert meter.rate_hz() == pytest.approx(10.0)
    assert meter.total == 5
    clock.now += 5.0
    assert meter.rate_hz() == 0.0


def test_stage_stats_percentiles_in_ms():
    stats = StageStats(window=100)
    for ms in range(1, 101):
        stats.add('model', ms / 1000)
    p50, p95, worst = stats.summary_ms()['model']
    assert p50 == pytest.approx(50.5)
    assert p95 == pytest.approx(95.05)
    assert worst == pytest.approx(100.0)


def test_classify_image_error():
    supported = frozenset({'rgb8', 'bgr8'})
    assert classify_image_error(MessageError('x'), 'yuv422', supported) == 'unsupported_encoding'
    assert classify_image_error(MessageError('x'), 'rgb8', supported) == 'malformed_image'


class _Camera:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height


class _NetworkSize:
    """Only the engine's size rule (the check runs before any network call)."""

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        return 320, 448


def test_process_pair_refuses_camera_of_another_size():
    """The image must be the camera's size or the network input size (320x448 here)."""
    inputs = PairInputs(np.zeros((64, 128, 3), np.uint8), np.zeros((10, 3), np.float32),
                        _Camera(width=640, height=480))
    with pytest.raises(ShapeError, match='CameraInfo is 640x480 but the image is 128x64'):
        process_pair(_NetworkSize(), inputs, np.eye(4), min_range=0.5, max_range=100.0,
                     want_sparse=False, want_colorized=False)


def test_process_pair_with_a_real_engine(tmp_path):
    """The worker's per-pair work on a real (tiny) checkpoint: sizes, sparse input, timings."""
    from g2mono_ros.fusion.camera import CameraModel
    from g2mono_ros.models.checkpoint import save_checkpoint
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.models.engine import DepthEngine
    from g2mono_ros.models import create_model
    from g2mono_ros.fusion.projection import project_points_to_depth

    weights = save_checkpoint(tmp_path / 'small.pt', create_model('seed_small'),
                              variant='seed_small', model_kwargs={}, max_depth=20.0,
                              input_height=64, input_width=0)
    engine = DepthEngine(EngineConfig(weights=str(weights), device='cpu', input_height=64))
    camera = CameraModel(width=128, height=64, K=np.array([[60.0, 0, 64], [0, 60.0, 32],
                                                          [0, 0, 1]]),
                         D=np.zeros(0), distortion_model='none')
    rng = np.random.default_rng(3)
    points = np.stack([rng.uniform(-4, 4, 3000), rng.uniform(-2, 2, 3000),
                       rng.uniform(2, 15, 3000)], axis=1).astype(np.float32)
    rgb = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    work = process_pair(engine, PairInputs(rgb, points, camera), np.eye(4), min_range=0.5,
                        max_range=100.0, want_sparse=True, want_colorized=True)
    assert work.depth_m.shape == (64, 128) and work.depth_m.dtype == np.float32
    assert np.isfinite(work.depth_m).all() and work.depth_m.max() <= 20.0
    expected, _ = project_points_to_depth(points, np.eye(4), camera)
    np.testing.assert_array_equal(work.sparse_m, expected)
    assert work.colorized.shape == (64, 128, 3) and work.colorized.dtype == np.uint8
    assert set(work.timings_s) == {'pre', 'model', 'post'}
    assert all(seconds >= 0 for seconds in work.timings_s.values())
    bare = process_pair(engine, PairInputs(rgb, points, camera), np.eye(4), min_range=0.5,
                        max_range=100.0, want_sparse=False, want_colorized=False)
    assert bare.sparse_m is None and bare.colorized is None
    # out (the node's depth message buffer): the same depth, written there, on both branches
    # (camera-size image: the two-argument infer, then a copy; network-size image + guide).
    from g2mono_ros.imaging import area_resize

    out = np.full((64, 128), np.nan, np.float32)
    into = process_pair(engine, PairInputs(rgb, points, camera), np.eye(4), min_range=0.5,
                        max_range=100.0, want_sparse=False, want_colorized=False, out=out)
    assert into.depth_m is out
    np.testing.assert_array_equal(out, bare.depth_m)
    small = area_resize(rgb, engine.network_input_size(64, 128))
    out = np.full((64, 128), np.nan, np.float32)
    into = process_pair(engine, PairInputs(small, points, camera, guide=rgb), np.eye(4),
                        min_range=0.5, max_range=100.0, want_sparse=False,
                        want_colorized=False, out=out)
    assert into.depth_m is out and np.isfinite(out).all()
    np.testing.assert_array_equal(
        out, process_pair(engine, PairInputs(small, points, camera, guide=rgb), np.eye(4),
                          min_range=0.5, max_range=100.0, want_sparse=False,
                          want_colorized=False).depth_m)
    # depth_positive is the engine's verdict on this pair's depth (the node's encoder then
    # skips its search for zeros): never True for a depth that has one.
    assert into.depth_positive == engine.last_depth_positive
    assert not into.depth_positive or out.min() > 0


def test_process_pair_hands_prefill_guided_the_camera_size_points():
    """``upsample: prefill_guided`` in the node: the worker passes the network-size image and
    map, which alone would fall back to edge-aware; ``process_pair`` projects the camera-size
    map too and hands it over, so the depth is the engine's prefill_guided result from
    camera-size inputs (the shipped weights: a guided pre-fill residual network that pins its
    points), not the edge-aware one; without the mode nothing extra is projected."""
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.fusion.camera import CameraModel
    from g2mono_ros.fusion.sparse import SparseProjector
    from g2mono_ros.imaging import area_resize
    from g2mono_ros.models.engine import DepthEngine
    from g2mono_ros.weights import DEMO_WEIGHTS

    camera = CameraModel(width=200, height=96, K=np.array([[90.0, 0, 100], [0, 90.0, 48],
                                                          [0, 0, 1]]),
                         D=np.zeros(0), distortion_model='none')
    rng = np.random.default_rng(4)
    z = rng.uniform(2, 15, 4000)
    points = np.stack([rng.uniform(-1, 1, 4000) * z, rng.uniform(-0.5, 0.5, 4000) * z, z],
                      axis=1).astype(np.float32)
    yy, xx = np.mgrid[0:96, 0:200]
    rgb = np.stack([xx * 255 // 200, yy * 255 // 96, (xx ^ yy) & 255], axis=2).astype(np.uint8)
    results = {}
    for mode in ('edge_aware', 'prefill_guided'):
        engine = DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu',
                                          input_height=64, upsample=mode))
        assert engine.wants_camera_size_points == (mode == 'prefill_guided')
        small = area_resize(rgb, engine.network_input_size(96, 200))
        work = process_pair(engine, PairInputs(small, points, camera, guide=rgb), np.eye(4),
                            min_range=0.5, max_range=100.0, want_sparse=False,
                            want_colorized=False, projector=SparseProjector())
        assert work.sparse_m is None and work.sparse_pixels is None  # nobody asked for it
        maps = SparseProjector(reuse_buffers=False).project(
            points, np.eye(4), camera, engine.network_input_size(96, 200), min_range=0.5,
            max_range=100.0, want_full=True)
        expected = (engine.infer(rgb, maps.full) if mode == 'prefill_guided' else
                    engine.infer(small, maps.net, out_hw=(96, 200), sparse_clean=True,
                                 guide=rgb))
        np.testing.assert_array_equal(work.depth_m, expected)
        results[mode] = work.depth_m
    assert np.abs(results['prefill_guided'] - results['edge_aware']).max() > 0.01
