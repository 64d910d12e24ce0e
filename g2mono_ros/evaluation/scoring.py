"""Scoring records: one frame's inputs, the model and both baselines scored on the same pixels,
per-frame rows, pooled and per-range sums, latency samples and the evaluation result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill
from g2mono_ros.evaluation.metrics import (
    METRIC_NAMES,
    MetricSums,
    range_bin_labels,
    range_bin_sums,
)

__all__ = [
    'METHODS',
    'EvaluationResult',
    'FrameInputs',
    'FrameRecord',
    'SampleFrame',
    'ScoreBook',
    'sample_indices_for',
]

#: Scored methods, in table order: the network, then the classical baselines.
METHODS: tuple[str, ...] = ('model', 'nearest', 'morphological')


class FrameInputs(NamedTuple):
    """One camera/LiDAR pair ready for scoring.

    Attributes:
        index: frame number in pairing order.
        image_stamp_ns, scan_stamp_ns: header stamps of the pair.
        rgb: (H, W, 3) uint8.
        points_lidar: (M, 3) float32 points the network receives (hold-out removed).
        sparse_m: (H, W) float32 metres, those points projected at image size (baselines' input).
        target_m: (H, W) float32 metres of ground truth, 0 = not scored.
    """

    index: int
    image_stamp_ns: int
    scan_stamp_ns: int
    rgb: np.ndarray
    points_lidar: np.ndarray
    sparse_m: np.ndarray
    target_m: np.ndarray


class SampleFrame(NamedTuple):
    """Arrays kept for the report's panel plots (model prediction and its inputs)."""

    index: int
    rgb: np.ndarray
    sparse_m: np.ndarray
    pred_m: np.ndarray
    target_m: np.ndarray


@dataclass
class FrameRecord:
    """One frame's row in the per-frame CSV."""

    index: int
    image_stamp_ns: int
    scan_stamp_ns: int
    cloud_points: int
    input_pixels: int
    target_pixels: int
    latency_ms: float
    metrics: dict[str, dict[str, float]]


class ScoreBook:
    """Scores the model and the baselines on the same target pixels and keeps the records.

    Args:
        range_bins_m: ground-truth range bin edges.
        baseline_max_depth: the IP-Basic inversion constant (metres, >= every input depth).
        sample_indices: frame indices whose arrays are kept for panel plots.
    """

    def __init__(self, range_bins_m: Sequence[float], baseline_max_depth: float,
                 sample_indices: Sequence[int] = (0,)) -> None:
        self.range_bins_m = tuple(range_bins_m)
        self.baseline_max_depth = float(baseline_max_depth)
        self.sample_indices = set(sample_indices)
        self.frames: list[FrameRecord] = []
        self.totals = {method: MetricSums() for method in METHODS}
        self.by_range = {method: {label: MetricSums() for label in range_bin_labels(range_bins_m)}
                         for method in METHODS}
        self.latencies_ms: list[float] = []
        self.samples: list[SampleFrame] = []
        self._last_sample: SampleFrame | None = None

    def add(self, frame: FrameInputs, pred_m: np.ndarray, latency_ms: float) -> FrameRecord:
        """Score one frame's prediction and both baselines against ``frame.target_m``."""
        predictions = {
            'model': pred_m,
            'nearest': nearest_fill(frame.sparse_m),
            'morphological': morphological_fill(frame.sparse_m, self.baseline_max_depth),
        }
        valid = frame.target_m > 0
        per_frame: dict[str, dict[str, float]] = {}
        for method, pred in predictions.items():
            bins = range_bin_sums(pred, frame.target_m, valid, self.range_bins_m)
            frame_sums = MetricSums()
            for label, sums in bins.items():
                self.by_range[method][label].merge(sums)
                frame_sums.merge(sums)
            self.totals[method].merge(frame_sums)
            per_frame[method] = frame_sums.finalize()
        record = FrameRecord(frame.index, frame.image_stamp_ns, frame.scan_stamp_ns,
                             int(frame.points_lidar.shape[0]), int((frame.sparse_m > 0).sum()),
                             int(valid.sum()),
                             float(latency_ms), per_frame)
        self.frames.append(record)
        if math.isfinite(latency_ms):
            self.latencies_ms.append(float(latency_ms))
        sample = SampleFrame(frame.index, frame.rgb, frame.sparse_m, pred_m, frame.target_m)
        if frame.index in self.sample_indices:
            self.samples.append(sample)
        self._last_sample = sample
        return record

    def finish_samples(self) -> None:
        """Make sure the last scored frame is among the samples (when frames were dropped)."""
        last = self._last_sample
        if last is not None and all(s.index != last.index for s in self.samples):
            self.samples.append(last)

    def method_summary(self, method: str) -> dict[str, Any]:
        """Frame-mean metrics (KITTI convention), pixel-pooled metrics, and per range bin."""
        frames = [f.metrics[method] for f in self.frames if f.metrics[method]['count'] > 0]
        mean = {name: (float(np.mean([f[name] for f in frames if not math.isnan(f[name])]))
                       if any(not math.isnan(f[name]) for f in frames) else math.nan)
                for name in METRIC_NAMES}
        return {
            **mean,
            'frames': len(frames),
            'pixels': int(self.totals[method].count),
            'pooled': self.totals[method].finalize(),
            'by_range': {label: sums.finalize()
                         for label, sums in self.by_range[method].items()},
        }


@dataclass
class EvaluationResult:
    """Everything the report needs."""

    bag: str
    mode: str
    weights: str
    ground_truth: str
    book: ScoreBook
    latency_kind: str
    counts: dict[str, int]
    drops: dict[str, int]
    node_diagnostics: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    node_log: str = ''
    #: ``PairGapStats.summary`` keys (images, images_with_depth, depth_fraction, gap_ms_*) and
    #: ``gap_source`` (whose pairs the gaps describe).
    pairing: dict[str, Any] = field(default_factory=dict)

    def latency_summary_ms(self) -> dict[str, float]:
        values = np.asarray(self.book.latencies_ms, dtype=np.float64)
        if values.size == 0:
            return {'p50': math.nan, 'p95': math.nan, 'mean': math.nan, 'count': 0}
        return {'p50': float(np.percentile(values, 50)), 'p95': float(np.percentile(values, 95)),
                'mean': float(values.mean()), 'count': int(values.size)}

    def ground_truth_description(self, options: Any) -> str:
        """One line on where the targets came from (``options``: ``EvaluationOptions``)."""
        if self.ground_truth == 'topic':
            return f'depth images on {options.gt_topic}'
        return (f'LiDAR hold-out: {options.holdout_fraction:g} of the projected points per scan'
                f' withheld from the network (seed {options.seed})')


def sample_indices_for(expected: int) -> tuple[int, ...]:
    """First, middle and last frame of ``expected`` frames (the panel plots)."""
    if expected <= 0:
        return (0,)
    return tuple(sorted({0, expected // 2, expected - 1}))
