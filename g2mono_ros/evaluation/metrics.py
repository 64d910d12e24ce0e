"""Depth error metrics (KITTI depth-completion and NYUv2 conventions) on numpy arrays.

Owns the metric definitions shared by the evaluator and the trainer's validation: RMSE/MAE in
metres, iRMSE/iMAE in 1/km, AbsRel and the delta accuracies, overall and per range bin.

Which pixels are scored:
    A pixel is *valid* when ``gt`` is finite and > 0 (and ``valid`` is True there, if given).
    RMSE, MAE and AbsRel use every valid pixel, whatever the prediction; a prediction <= 0 is an
    honest miss and counts with its full error. The delta accuracies also use every valid pixel;
    a prediction <= 0 has no finite ratio to the ground truth and counts as a failure. The inverse
    metrics (iRMSE, iMAE) are defined only where the prediction is > 0 as well, so they are
    averaged over that subset; ``inverse_count`` says how many pixels that was. A non-finite
    prediction on a valid pixel is a bug upstream and raises ``ShapeError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from g2mono_ros.errors import ShapeError

__all__ = [
    'DEFAULT_RANGE_BINS_M',
    'METRIC_NAMES',
    'MetricSums',
    'compute_depth_metrics',
    'compute_depth_metrics_by_range',
    'range_bin_labels',
    'range_bin_sums',
]

#: The metric keys of every result dict, in display order.
METRIC_NAMES: tuple[str, ...] = (
    'rmse', 'mae', 'irmse', 'imae', 'absrel', 'delta1', 'delta2', 'delta3')

#: Edges (metres) of the range bins used when none are given: [0, 5), [5, 10), ... [40, inf).
DEFAULT_RANGE_BINS_M: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 40.0, math.inf)

_DELTA_THRESHOLDS = (1.25, 1.25 ** 2, 1.25 ** 3)


def _as_float64(array: Any, name: str) -> np.ndarray:
    if hasattr(array, 'detach'):  # a torch tensor (the trainer's validation passes those)
        array = array.detach().cpu().numpy()
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        msg = f'{name} must be a numeric array; got {type(array).__name__}: {exc}'
        raise ShapeError(msg) from exc


def _valid_pixels(pred_m: Any, gt_m: Any, valid: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """Return (pred, gt) as flat float64 arrays over the valid pixels."""
    pred = _as_float64(pred_m, 'pred_m')
    gt = _as_float64(gt_m, 'gt_m')
    if pred.shape != gt.shape:
        msg = f'pred_m and gt_m must have the same shape; got {pred.shape} and {gt.shape}'
        raise ShapeError(msg)
    with np.errstate(invalid='ignore'):
        mask = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        valid_arr = valid.detach().cpu().numpy() if hasattr(valid, 'detach') else np.asarray(valid)
        if valid_arr.shape != gt.shape:
            msg = f'valid must have the shape of gt_m {gt.shape}; got {valid_arr.shape}'
            raise ShapeError(msg)
        mask &= valid_arr.astype(bool)
    pred_v = pred[mask]
    bad = ~np.isfinite(pred_v)
    if bad.any():
        msg = (f'pred_m has {int(bad.sum())} non-finite values on scored pixels '
               f'(expected finite depths in metres)')
        raise ShapeError(msg)
    return pred_v, gt[mask]


@dataclass
class MetricSums:
    """Sufficient statistics of the metrics; add frames up, then ``finalize()``.

    Pooling sums (rather than averaging per-frame metrics) weighs every pixel equally, which is
    what a per-range-bin breakdown over a whole sequence needs.
    """

    count: int = 0
    sq_err: float = 0.0
    abs_err: float = 0.0
    rel_err: float = 0.0
    inverse_count: int = 0
    inv_sq_err: float = 0.0
    inv_abs_err: float = 0.0
    delta_hits: list[int] = field(default_factory=lambda: [0, 0, 0])

    def add_pixels(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add flat float64 arrays of already-validated pixels (gt > 0, pred finite)."""
        if gt.size == 0:
            return
        err = pred - gt
        self.count += int(gt.size)
        self.sq_err += float(np.dot(err, err))
        self.abs_err += float(np.abs(err).sum())
        self.rel_err += float((np.abs(err) / gt).sum())
        positive = pred > 0
        # 1/m -> 1/km: multiply the inverse depths by 1000.
        inv_err = 1000.0 / pred[positive] - 1000.0 / gt[positive]
        self.inverse_count += int(positive.sum())
        self.inv_sq_err += float(np.dot(inv_err, inv_err))
        self.inv_abs_err += float(np.abs(inv_err).sum())
        ratio = np.full(gt.shape, np.inf)
        ratio[positive] = np.maximum(pred[positive] / gt[positive], gt[positive] / pred[positive])
        for i, threshold in enumerate(_DELTA_THRESHOLDS):
            self.delta_hits[i] += int((ratio < threshold).sum())

    def add(self, pred_m: Any, gt_m: Any, valid: Any | None = None) -> None:
        """Validate and add one frame (see ``compute_depth_metrics`` for the arguments)."""
        pred, gt = _valid_pixels(pred_m, gt_m, valid)
        self.add_pixels(pred, gt)

    def merge(self, other: MetricSums) -> None:
        """Add another accumulator's sums into this one."""
        self.count += other.count
        self.sq_err += other.sq_err
        self.abs_err += other.abs_err
        self.rel_err += other.rel_err
        self.inverse_count += other.inverse_count
        self.inv_sq_err += other.inv_sq_err
        self.inv_abs_err += other.inv_abs_err
        self.delta_hits = [a + b for a, b in zip(self.delta_hits, other.delta_hits)]

    def finalize(self) -> dict[str, float]:
        """The metrics dict; every metric is NaN when no pixel was scored."""
        nan = math.nan
        n, n_inv = self.count, self.inverse_count
        result = {
            'rmse': math.sqrt(self.sq_err / n) if n else nan,
            'mae': self.abs_err / n if n else nan,
            'irmse': math.sqrt(self.inv_sq_err / n_inv) if n_inv else nan,
            'imae': self.inv_abs_err / n_inv if n_inv else nan,
            'absrel': self.rel_err / n if n else nan,
            'delta1': self.delta_hits[0] / n if n else nan,
            'delta2': self.delta_hits[1] / n if n else nan,
            'delta3': self.delta_hits[2] / n if n else nan,
            'count': float(n),
            'inverse_count': float(n_inv),
        }
        return result


def compute_depth_metrics(pred_m: Any, gt_m: Any, valid: Any | None = None) -> dict[str, float]:
    """Depth error metrics of one prediction against ground truth.

    Args:
        pred_m: predicted depth, metres, any shape (numpy array or CPU/GPU torch tensor).
        gt_m: ground-truth depth, metres, same shape; 0, negative or non-finite = no data.
        valid: optional boolean mask, same shape, further restricting the scored pixels.

    Returns:
        ``rmse``, ``mae`` (m), ``irmse``, ``imae`` (1/km), ``absrel``, ``delta1``, ``delta2``,
        ``delta3`` (fractions in [0, 1]), ``count`` (scored pixels) and ``inverse_count`` (those
        with pred > 0, over which the inverse metrics are averaged). See the module docstring
        for how predictions <= 0 are treated. With no scored pixel every metric is NaN.

    Raises:
        ShapeError: shapes differ, or the prediction is non-finite on a scored pixel.
    """
    sums = MetricSums()
    sums.add(pred_m, gt_m, valid)
    return sums.finalize()


def range_bin_labels(bin_edges_m: Sequence[float] = DEFAULT_RANGE_BINS_M) -> list[str]:
    """Labels like ``'0-5m'`` and ``'40m+'`` for consecutive bin edges."""
    labels = []
    for low, high in zip(bin_edges_m[:-1], bin_edges_m[1:]):
        labels.append(f'{low:g}m+' if math.isinf(high) else f'{low:g}-{high:g}m')
    return labels


def _check_edges(bin_edges_m: Sequence[float]) -> np.ndarray:
    edges = np.asarray(bin_edges_m, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.isnan(edges).any() or not np.all(np.diff(edges) > 0):
        msg = (f'bin_edges_m must be at least 2 strictly increasing numbers;'
               f' got {list(bin_edges_m)!r}')
        raise ShapeError(msg)
    return edges


def range_bin_sums(pred_m: Any, gt_m: Any, valid: Any | None = None,
                   bin_edges_m: Sequence[float] = DEFAULT_RANGE_BINS_M) -> dict[str, MetricSums]:
    """Per-range-bin ``MetricSums`` of one frame; a pixel's bin is chosen by its ground truth.

    Bins are half-open ``[low, high)``. Raises ``ShapeError`` like ``compute_depth_metrics``.
    """
    edges = _check_edges(bin_edges_m)
    pred, gt = _valid_pixels(pred_m, gt_m, valid)
    which = np.searchsorted(edges, gt, side='right') - 1
    result: dict[str, MetricSums] = {}
    for i, label in enumerate(range_bin_labels(bin_edges_m)):
        sums = MetricSums()
        selected = which == i
        sums.add_pixels(pred[selected], gt[selected])
        result[label] = sums
    return result


def compute_depth_metrics_by_range(
        pred_m: Any, gt_m: Any, valid: Any | None = None,
        bin_edges_m: Sequence[float] = DEFAULT_RANGE_BINS_M) -> dict[str, dict[str, float]]:
    """``compute_depth_metrics`` for each ground-truth range bin.

    Args:
        pred_m, gt_m, valid: as for ``compute_depth_metrics``.
        bin_edges_m: increasing edges in metres; bin ``i`` is ``[edges[i], edges[i+1])``
            (the last edge may be ``inf``). Pixels outside all bins are not scored.

    Returns:
        Bin label (``'0-5m'``, ..., ``'40m+'``) -> metrics dict (NaN metrics for an empty bin).

    Raises:
        ShapeError: as ``compute_depth_metrics``, or edges that are not strictly increasing.
    """
    return {label: sums.finalize()
            for label, sums in range_bin_sums(pred_m, gt_m, valid, bin_edges_m).items()}

