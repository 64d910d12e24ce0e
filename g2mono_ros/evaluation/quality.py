"""Quality regimes (indoor/outdoor x LiDAR pattern) on fresh synthetic frames, and real images.

Used by ``benchmarks/bench_quality.py`` and the design-choice ablation: every method is scored
on the same frames with the same metrics, plus the error at the input pixels and the share of
flying pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from g2mono_ros.errors import ShapeError
from g2mono_ros.evaluation.metrics import MetricSums

__all__ = [
    'QUALITY_REGIMES',
    'QualityFrame',
    'QualitySums',
    'Regime',
    'flying_pixel_mask',
    'regime_frames',
    'scanline_input',
    'score_methods',
]


class Regime(NamedTuple):
    """A synthetic test condition: scene kind and LiDAR pattern (``synth.patterns``)."""

    environment: str
    pattern: str


#: The regimes of the issue: indoor and outdoor x 16 / 32 / 64 beams and a solid-state scanner.
QUALITY_REGIMES: dict[str, Regime] = {
    f'{env}-{label}': Regime(env, pattern)
    for env in ('indoor', 'outdoor')
    for label, pattern in (('16', 'vlp16'), ('32', 'hdl32'), ('64', 'hdl64'), ('solid', 'solid'))
}


class QualityFrame(NamedTuple):
    """One test frame: image, sparse input and ground truth at the camera size.

    Attributes:
        rgb: (H, W, 3) uint8.
        sparse_m: (H, W) float32 metres, 0 = no point.
        gt_m: (H, W) float32 metres, 0 = no ground truth.
    """

    rgb: np.ndarray
    sparse_m: np.ndarray
    gt_m: np.ndarray


def regime_frames(regime: Regime, seeds: tuple[int, ...], *, frames_per_seed: int = 2,
                  width: int = 192, height: int = 128, fov_x_deg: float = 80.0,
                  frame_stride: int = 45) -> Iterator[QualityFrame]:
    """Render the regime's test frames (seeds never used in training) with projected scans."""
    from g2mono_ros.fusion.projection import project_points_to_depth
    from g2mono_ros.synth.patterns import lidar_pattern
    from g2mono_ros.synth.sequence import SyntheticSequence

    for seed in seeds:
        sequence = SyntheticSequence(seed, width=width, height=height, fov_x_deg=fov_x_deg,
                                     environment=regime.environment,
                                     lidar=lidar_pattern(regime.pattern),
                                     speed_mps=1.5 if regime.environment == 'outdoor' else 0.5)
        for k in range(frames_per_seed):
            frame = sequence.render(k * frame_stride)
            sparse, _ = project_points_to_depth(frame.points_lidar, frame.T_cam_lidar,
                                                frame.camera, min_range=0.3, max_range=200.0)
            yield QualityFrame(frame.rgb, sparse.astype(np.float32), frame.depth_gt)


def scanline_input(gt_m: np.ndarray, beams: int, *, column_step: int = 2,
                   rows: tuple[float, float] = (0.15, 0.95)) -> np.ndarray:
    """LiDAR-like scan lines from a dense ground truth (for real images without a scan).

    ``beams`` rows evenly spaced between the ``rows`` fractions of the height, every
    ``column_step``-th pixel along them; pixels without ground truth stay empty.

    Returns:
        (H, W) float32 metres.
    """
    height = gt_m.shape[0]
    sparse = np.zeros_like(gt_m, dtype=np.float32)
    lines = np.unique(np.round(np.linspace(rows[0] * (height - 1), rows[1] * (height - 1),
                                           beams)).astype(int))
    valid = np.isfinite(gt_m) & (gt_m > 0)
    for row in lines:
        cols = np.arange(0, gt_m.shape[1], column_step)
        keep = valid[row, cols]
        sparse[row, cols[keep]] = gt_m[row, cols[keep]]
    return sparse


def flying_pixel_mask(depth: np.ndarray, *, threshold: float = 0.1) -> np.ndarray:
    """Pixels lying between two surfaces: strictly between their left/right (or upper/lower)
    neighbours' depths and at least ``threshold`` (relative) away from both.

    Args:
        depth: (H, W) metres, 0 = none (such pixels and neighbours never count).

    Returns:
        (H, W) bool.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        msg = f'depth must be (H, W); got {depth.shape}'
        raise ShapeError(msg)
    flying = np.zeros(depth.shape, bool)
    centre = depth[1:-1, 1:-1]
    for a, b in ((depth[1:-1, :-2], depth[1:-1, 2:]), (depth[:-2, 1:-1], depth[2:, 1:-1])):
        valid = (centre > 0) & (a > 0) & (b > 0)
        between = (centre > np.minimum(a, b)) & (centre < np.maximum(a, b))
        far = (np.abs(centre - a) >= threshold * centre) & (np.abs(centre - b) >= threshold * centre)
        flying[1:-1, 1:-1] |= valid & between & far
    return flying


@dataclass
class QualitySums:
    """Accumulated scores of one method over frames."""

    metrics: MetricSums
    input_abs_sum: float = 0.0
    input_rel_sum: float = 0.0
    input_count: int = 0
    flying: int = 0
    pixels: int = 0

    def add(self, pred: np.ndarray, frame: QualityFrame) -> None:
        self.metrics.add(pred, frame.gt_m)
        points = frame.sparse_m > 0
        if points.any():
            error = np.abs(pred[points].astype(np.float64) - frame.sparse_m[points])
            self.input_abs_sum += float(error.sum())
            self.input_rel_sum += float((error / frame.sparse_m[points]).sum())
            self.input_count += int(points.sum())
        self.flying += int(flying_pixel_mask(pred).sum())
        self.pixels += int((pred > 0).sum())

    def finalize(self) -> dict[str, float]:
        """``rmse mae absrel delta1`` ..., ``input_mae`` (m), ``input_rel`` and ``flying``
        (fractions)."""
        out = dict(self.metrics.finalize())
        count = max(self.input_count, 1)
        out['input_mae'] = self.input_abs_sum / count if self.input_count else float('nan')
        out['input_rel'] = self.input_rel_sum / count if self.input_count else float('nan')
        out['flying'] = self.flying / max(self.pixels, 1)
        return out


def score_methods(frames: list[QualityFrame],
                  methods: Mapping[str, Callable[[QualityFrame], np.ndarray]]
                  ) -> dict[str, dict[str, float]]:
    """Score every method on every frame.

    Args:
        frames: the test frames.
        methods: name -> function returning (H, W) metres for a frame.

    Returns:
        name -> metrics (see ``QualitySums.finalize``).
    """
    sums = {name: QualitySums(MetricSums()) for name in methods}
    for frame in frames:
        for name, method in methods.items():
            sums[name].add(np.asarray(method(frame), np.float32), frame)
    return {name: acc.finalize() for name, acc in sums.items()}
