"""Metrics against values worked out by hand, and the two classical baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from g2mono_ros.errors import ShapeError
from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill
from g2mono_ros.evaluation.metrics import (
    METRIC_NAMES,
    MetricSums,
    compute_depth_metrics,
    compute_depth_metrics_by_range,
    range_bin_labels,
)

# Six pixels. gt 0 at index 3 -> not scored. Errors on the 5 scored: 1, 0, -2, 1, 0.8.
# pred 0 at index 2 -> counts in rmse/mae/absrel, fails every delta, skipped by the inverse ones.
PRED = np.array([2.0, 4.0, 0.0, 5.0, 3.0, 1.8])
GT = np.array([1.0, 4.0, 2.0, 0.0, 2.0, 1.0])


def test_metrics_hand_computed() -> None:
    got = compute_depth_metrics(PRED, GT)
    # inverse errors (1/km) on indices 0, 1, 4, 5: 500-1000, 250-250, 333.3-500, 555.6-1000
    inv = [1000 / 2 - 1000, 0.0, 1000 / 3 - 500, 1000 / 1.8 - 1000]
    expected = {
        'rmse': math.sqrt((1 + 0 + 4 + 1 + 0.64) / 5),
        'mae': (1 + 0 + 2 + 1 + 0.8) / 5,
        'irmse': math.sqrt(sum(v * v for v in inv) / 4),
        'imae': sum(abs(v) for v in inv) / 4,
        'absrel': (1 / 1 + 0 + 2 / 2 + 1 / 2 + 0.8 / 1) / 5,
        'delta1': 1 / 5,   # ratios 2, 1, inf, 1.5, 1.8: only 1 < 1.25
        'delta2': 2 / 5,   # 1 and 1.5 < 1.5625
        'delta3': 3 / 5,   # 1, 1.5, 1.8 < 1.953125; 2 is not
        'count': 5.0,
        'inverse_count': 4.0,
    }
    assert set(METRIC_NAMES) <= set(got)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got['irmse'] == pytest.approx(344.7131, abs=1e-3)


def test_perfect_prediction_and_units() -> None:
    gt = np.array([[10.0, 20.0], [0.0, 40.0]])
    perfect = compute_depth_metrics(gt.copy(), gt)
    assert perfect['rmse'] == 0 and perfect['irmse'] == 0 and perfect['delta1'] == 1
    # 1 m too far at 10 m: 1/10 - 1/11 per metre = 9.0909 per km
    off = compute_depth_metrics(np.array([11.0]), np.array([10.0]))
    assert off['imae'] == pytest.approx(1000 / 10 - 1000 / 11)
    assert off['mae'] == pytest.approx(1.0) and off['absrel'] == pytest.approx(0.1)


def test_valid_mask_nan_gt_and_torch_input() -> None:
    gt = np.array([1.0, np.nan, np.inf, 2.0, -1.0])
    pred = np.array([1.5, 9.0, 9.0, 2.0, 9.0])
    got = compute_depth_metrics(pred, gt)
    assert got['count'] == 2 and got['mae'] == pytest.approx(0.25)
    masked = compute_depth_metrics(pred, gt, valid=np.array([0, 1, 1, 1, 1], bool))
    assert masked['count'] == 1 and masked['mae'] == 0
    from_torch = compute_depth_metrics(torch.tensor(PRED, requires_grad=True), torch.tensor(GT))
    assert from_torch['rmse'] == pytest.approx(compute_depth_metrics(PRED, GT)['rmse'])


def test_no_scored_pixel_gives_nan() -> None:
    got = compute_depth_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    assert got['count'] == 0
    assert all(math.isnan(got[name]) for name in METRIC_NAMES)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ShapeError, match='same shape'):
        compute_depth_metrics(np.ones((2, 3)), np.ones((3, 2)))


def test_valid_mask_shape_raises() -> None:
    with pytest.raises(ShapeError, match='valid must have the shape'):
        compute_depth_metrics(np.ones(3), np.ones(3), valid=np.ones(2, bool))


def test_nonfinite_prediction_raises() -> None:
    with pytest.raises(ShapeError, match='1 non-finite'):
        compute_depth_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_by_range_bins() -> None:
    gt = np.array([1.0, 4.9, 5.0, 12.0, 50.0])
    pred = np.array([2.0, 4.9, 6.0, 12.0, 40.0])
    bins = compute_depth_metrics_by_range(pred, gt, bin_edges_m=(0.0, 5.0, 20.0, math.inf))
    assert list(bins) == ['0-5m', '5-20m', '20m+'] == range_bin_labels((0, 5, 20, math.inf))
    assert bins['0-5m']['count'] == 2 and bins['0-5m']['mae'] == pytest.approx(0.5)
    assert bins['5-20m']['count'] == 2 and bins['5-20m']['rmse'] == pytest.approx(math.sqrt(0.5))
    assert bins['20m+']['absrel'] == pytest.approx(0.2)
    narrow = compute_depth_metrics_by_range(pred, gt, bin_edges_m=(10.0, 20.0))
    assert narrow['10-20m']['count'] == 1


def test_by_range_bad_edges_raise() -> None:
    with pytest.raises(ShapeError, match='strictly increasing'):
        compute_depth_metrics_by_range(PRED, GT, bin_edges_m=(0.0, 5.0, 5.0))


def test_sums_merge_equals_pooled() -> None:
    a, b = MetricSums(), MetricSums()
    a.add(PRED[:3], GT[:3])
    b.add(PRED[3:], GT[3:])
    a.merge(b)
    pooled = compute_depth_metrics(PRED, GT)
    for name in METRIC_NAMES:
        assert a.finalize()[name] == pytest.approx(pooled[name])


def test_nearest_fill_copies_nearest_point() -> None:
    sparse = np.zeros((5, 8), np.float32)
    sparse[2, 1] = 3.0
    sparse[2, 6] = 7.0
    filled = nearest_fill(sparse)
    assert filled.dtype == np.float32 and filled.shape == sparse.shape
    assert np.all(filled[:, :3] == 3.0) and np.all(filled[:, 5:] == 7.0)
    assert filled[2, 1] == 3.0 and filled[2, 6] == 7.0
    assert not np.any(nearest_fill(np.zeros((4, 4))))


def test_nearest_fill_matches_brute_force_on_random_points() -> None:
    rng = np.random.default_rng(3)
    sparse = np.zeros((24, 32), np.float32)
    ys, xs = rng.integers(0, 24, 30), rng.integers(0, 32, 30)
    sparse[ys, xs] = rng.uniform(1, 50, 30).astype(np.float32)
    filled = nearest_fill(sparse)
    py, px = np.nonzero(sparse)
    grid_y, grid_x = np.mgrid[:24, :32]
    dist = np.hypot(grid_y[..., None] - py, grid_x[..., None] - px)
    best = dist.min(axis=-1)
    # every pixel's value belongs to a point within OpenCV's approximation (<2%) of the nearest
    chosen = sparse[py, px][None, None, :] == filled[..., None]
    chosen_dist = np.where(chosen, dist, np.inf).min(axis=-1)
    assert np.all(chosen_dist <= best * 1.02 + 1e-6)


def test_nearest_fill_shape_raises() -> None:
    with pytest.raises(ShapeError, match=r'\(H, W\)'):
        nearest_fill(np.zeros((2, 3, 3)))


def test_morphological_fill_plane_and_foreground() -> None:
    sparse = np.zeros((48, 64), np.float32)
    sparse[24::4, ::4] = 12.0          # LiDAR-like rows in the lower half only
    filled = morphological_fill(sparse, max_depth=80.0)
    assert filled.dtype == np.float32
    assert np.all(filled > 0)          # extended to the top, holes filled
    assert np.allclose(filled, 12.0, atol=1e-3)
    # a near object among far points wins the dilation around it (inverted depth)
    mixed = np.zeros((32, 32), np.float32)
    mixed[::2, ::2] = 30.0
    mixed[12:20:2, 12:20:2] = 5.0       # a 4x4-point object at 5 m in front of a 30 m wall
    out = morphological_fill(mixed, max_depth=80.0, blur='gaussian')
    assert out[15, 15] == pytest.approx(5.0, abs=0.5)
    assert out[15, 17] == pytest.approx(5.0, abs=0.5)   # between object points: near wins
    assert out[3, 3] == pytest.approx(30.0, abs=0.5)
    assert np.all(morphological_fill(np.zeros((8, 8)), 10.0) == 0)


def test_morphological_fill_no_top_extension_leaves_top_empty() -> None:
    sparse = np.zeros((96, 32), np.float32)
    sparse[80::2, ::2] = 4.0
    filled = morphological_fill(sparse, max_depth=20.0, extrapolate_to_top=False)
    assert filled[0, 0] == 0 and filled[90, 5] == pytest.approx(4.0, abs=1e-3)


def test_morphological_fill_bad_max_depth_raises() -> None:
    with pytest.raises(ShapeError, match='max_depth'):
        morphological_fill(np.ones((4, 4)), max_depth=0.0)


def test_morphological_fill_bad_blur_raises() -> None:
    with pytest.raises(ShapeError, match='blur'):
        morphological_fill(np.ones((4, 4)), max_depth=10.0, blur='box')
