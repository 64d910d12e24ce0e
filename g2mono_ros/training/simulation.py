"""Input simulation for training: the G2 recipe on depth maps and LiDAR-shaped scan patterns.

Every function takes its random source explicitly (``torch.Generator`` or
``numpy.random.Generator``) so a sample is a pure function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from g2mono_ros.errors import ConfigError, ShapeError

__all__ = [
    'REGIMES',
    'G2SimConfig',
    'LidarSimConfig',
    'LidarSimResult',
    'SimulatedInput',
    'beam_index',
    'nearest_blur',
    'random_hole_mask',
    'simulate_g2_input',
    'simulate_lidar_image',
    'simulate_lidar_scan',
]

Regime = Literal['dense', 'sparse', 'very_sparse', 'empty']
REGIMES: tuple[Regime, ...] = ('dense', 'sparse', 'very_sparse', 'empty')


def _check_prob(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        msg = f'parameter {name!r} must be a probability in [0, 1]; got {value!r}'
        raise ConfigError(msg)


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    ok = (len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
          and low <= value[0] <= value[1] <= high)
    if not ok:
        msg = f'parameter {name!r} must be [lo, hi] with {low} <= lo <= hi <= {high}; got {value!r}'
        raise ConfigError(msg)


@dataclass(frozen=True)
class G2SimConfig:
    """The release's raw-input recipe (reference section 3); defaults are the release's.

    Attributes:
        p_dense, p_sparse, p_very_sparse: regime probabilities; the rest is the empty regime.
        sparse_drop, very_sparse_drop: ranges of the uniform per-pixel drop rate of each regime.
        p_noise: chance of Gaussian noise; ``noise_sigma`` its sigma range (normalised units).
        p_blur: chance of nearest down/up blur (always in the dense regime); factors 2..16.
        p_holes: chance of multiplying by a hole mask under a random affine transform.
    """

    p_dense: float = 0.2
    p_sparse: float = 0.2
    p_very_sparse: float = 0.2
    sparse_drop: tuple[float, float] = (0.0, 0.9)
    very_sparse_drop: tuple[float, float] = (0.9, 1.0)
    p_noise: float = 0.5
    noise_sigma: tuple[float, float] = (0.01, 0.1)
    p_blur: float = 0.5
    blur_factors: tuple[int, ...] = (2, 4, 8, 16)
    p_holes: float = 0.8

    def __post_init__(self) -> None:
        for name in ('p_dense', 'p_sparse', 'p_very_sparse', 'p_noise', 'p_blur', 'p_holes'):
            _check_prob(f'simulation.g2.{name}', getattr(self, name))
        if self.p_dense + self.p_sparse + self.p_very_sparse > 1.0 + 1e-9:
            msg = ('parameters simulation.g2.p_dense + p_sparse + p_very_sparse must sum to <= 1;'
                   f' got {self.p_dense + self.p_sparse + self.p_very_sparse:g}')
            raise ConfigError(msg)
        _check_range('simulation.g2.sparse_drop', tuple(self.sparse_drop), 0.0, 1.0)
        _check_range('simulation.g2.very_sparse_drop', tuple(self.very_sparse_drop), 0.0, 1.0)
        _check_range('simulation.g2.noise_sigma', tuple(self.noise_sigma), 0.0, 1.0)
        if not self.blur_factors or not all(isinstance(f, int) and f >= 2 for f in self.blur_factors):
            msg = f"parameter 'simulation.g2.blur_factors' must be integers >= 2; got {self.blur_factors!r}"
            raise ConfigError(msg)


class SimulatedInput(NamedTuple):
    """A simulated raw input (1, H, W) normalised, with the regime and drop rate drawn."""

    raw: Tensor
    regime: Regime
    drop_rate: float


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator, high: int) -> int:
    return int(torch.randint(high, (), generator=generator))


def nearest_blur(depth: Tensor, factor: int) -> Tensor:
    """Nearest downsample by ``factor`` then nearest upsample back: (C, H, W) -> (C, H, W)."""
    height, width = depth.shape[-2:]
    small = (max(1, height // factor), max(1, width // factor))
    down = F.interpolate(depth.unsqueeze(0), size=small, mode='nearest')
    return F.interpolate(down, size=(height, width), mode='nearest').squeeze(0)


def random_hole_mask(height: int, width: int, generator: torch.Generator) -> Tensor:
    """A (1, H, W) mask, 0 in a few random elliptic holes, under a random affine transform.

    Real sensor hole masks are not shipped, so the holes are procedural blobs; the affine
    (rotation +-180 deg, translation +-0.5, scale 0.5-4, shear +-60 deg, flips) and the fill
    of 1 outside follow the release.
    """
    ys = torch.linspace(-1.0, 1.0, height).view(height, 1)
    xs = torch.linspace(-1.0, 1.0, width).view(1, width)
    holes = torch.zeros(height, width)
    for _ in range(1 + _randint(generator, 4)):
        cy, cx = _uniform(generator, -1, 1), _uniform(generator, -1, 1)
        ry, rx = _uniform(generator, 0.1, 0.5), _uniform(generator, 0.1, 0.5)
        holes = torch.maximum(holes, ((((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2) <= 1).float())
    angle = math.radians(_uniform(generator, -180, 180))
    shear = math.radians(_uniform(generator, -60, 60))
    scale = _uniform(generator, 0.5, 4.0)
    tx, ty = _uniform(generator, -0.5, 0.5) * 2, _uniform(generator, -0.5, 0.5) * 2
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shr = torch.tensor([[1.0, math.tan(shear)], [0.0, 1.0]])
    flip = torch.diag(torch.tensor([1.0 if _uniform(generator) < 0.5 else -1.0,
                                    1.0 if _uniform(generator) < 0.5 else -1.0]))
    # grid_sample maps output -> input coordinates, so use the inverse transform.
    forward = scale * rot @ shr @ flip
    inverse = torch.linalg.inv(forward)
    theta = torch.cat([inverse, -(inverse @ torch.tensor([[tx], [ty]]))], dim=1).unsqueeze(0)
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    # Outside the source the padding is 0 hole, i.e. the mask is filled with 1 there.
    warped = F.grid_sample(holes.view(1, 1, height, width), grid, mode='nearest',
                           padding_mode='zeros', align_corners=False)
    return 1.0 - warped.squeeze(0)


def _drop(raw: Tensor, rate: float, generator: torch.Generator) -> Tensor:
    if rate <= 0.0:
        return raw
    if rate >= 1.0:
        return torch.zeros_like(raw)
    keep = torch.rand(raw.shape, generator=generator) > rate
    return raw * keep


def simulate_g2_input(target: Tensor, generator: torch.Generator,
                      config: G2SimConfig | None = None) -> SimulatedInput:
    """Simulate a raw network input from a dense-ish target, as the G2 release trains.

    Args:
        target: (1, H, W) normalised depth in [0, 1], 0 = no ground truth (CPU tensor).
        generator: CPU ``torch.Generator`` supplying every random draw.
        config: recipe; the release's defaults when ``None``.

    Returns:
        ``SimulatedInput`` with ``raw`` (1, H, W) in [0, 1].

    Raises:
        ShapeError: ``target`` is not (1, H, W).
    """
    if target.dim() != 3 or target.shape[0] != 1:
        msg = f'target must be (1, H, W); got {tuple(target.shape)}'
        raise ShapeError(msg)
    cfg = config or G2SimConfig()
    valid = (target > 0).to(target.dtype)
    u = _uniform(generator)
    p_blur = cfg.p_blur
    if u < cfg.p_dense:
        regime: Regime = 'dense'
        rate = 0.0
        p_blur = 1.0
    elif u < cfg.p_dense + cfg.p_sparse:
        regime, rate = 'sparse', _uniform(generator, *cfg.sparse_drop)
    elif u < cfg.p_dense + cfg.p_sparse + cfg.p_very_sparse:
        regime, rate = 'very_sparse', _uniform(generator, *cfg.very_sparse_drop)
    else:
        regime, rate = 'empty', 1.0
    raw = target.clone()
    if regime != 'empty':
        if _uniform(generator) < cfg.p_noise:
            sigma = _uniform(generator, *cfg.noise_sigma)
            noise = torch.randn(raw.shape, generator=generator) * sigma
            noise = _drop(noise, _uniform(generator), generator)
            raw = raw + noise * valid
        if _uniform(generator) < p_blur:
            raw = nearest_blur(raw, cfg.blur_factors[_randint(generator, len(cfg.blur_factors))])
        raw = raw.clamp(0.0, 1.0)
        if _uniform(generator) < cfg.p_holes:
            raw = raw * random_hole_mask(raw.shape[-2], raw.shape[-1], generator)
    raw = _drop(raw, rate, generator)
    return SimulatedInput(raw, regime, rate)


@dataclass(frozen=True)
class LidarSimConfig:
    """LiDAR-shaped degradations of a scan, the patterns the release never saw.

    Attributes:
        p_beam_subsample: chance of keeping only every k-th beam, k drawn from ``beam_steps``
            (64 lines -> 32 with k=2, 16 with k=4).
        num_beams: beam count used to bin elevation when the scan has no ``ring`` field.
        p_missing_sector: chance of removing 1..``max_sectors`` azimuth sectors, each
            ``sector_width_deg`` wide, centred on the azimuth of a random visible point.
        p_range_limit: chance of a maximum range drawn from ``max_range_m`` (metres).
        min_range_m: points nearer than this are always removed.
        p_point_dropout: chance of uniform per-point dropout at a rate in ``point_dropout``.
    """

    p_beam_subsample: float = 0.5
    beam_steps: tuple[int, ...] = (2, 4)
    num_beams: int = 64
    p_missing_sector: float = 0.3
    max_sectors: int = 2
    sector_width_deg: tuple[float, float] = (10.0, 60.0)
    p_range_limit: float = 0.3
    max_range_m: tuple[float, float] = (15.0, 60.0)
    min_range_m: float = 0.5
    p_point_dropout: float = 0.3
    point_dropout: tuple[float, float] = (0.0, 0.5)

    def __post_init__(self) -> None:
        for name in ('p_beam_subsample', 'p_missing_sector', 'p_range_limit', 'p_point_dropout'):
            _check_prob(f'simulation.lidar.{name}', getattr(self, name))
        if not self.beam_steps or not all(isinstance(k, int) and k >= 1 for k in self.beam_steps):
            msg = f"parameter 'simulation.lidar.beam_steps' must be integers >= 1; got {self.beam_steps!r}"
            raise ConfigError(msg)
        if not (isinstance(self.num_beams, int) and self.num_beams >= 1):
            msg = f"parameter 'simulation.lidar.num_beams' must be an integer >= 1; got {self.num_beams!r}"
            raise ConfigError(msg)
        if not (isinstance(self.max_sectors, int) and self.max_sectors >= 1):
            msg = f"parameter 'simulation.lidar.max_sectors' must be an integer >= 1; got {self.max_sectors!r}"
            raise ConfigError(msg)
        _check_range('simulation.lidar.sector_width_deg', tuple(self.sector_width_deg), 0.0, 360.0)
        _check_range('simulation.lidar.max_range_m', tuple(self.max_range_m), 0.0, 1e6)
        _check_range('simulation.lidar.point_dropout', tuple(self.point_dropout), 0.0, 1.0)
        if not (isinstance(self.min_range_m, (int, float)) and self.min_range_m >= 0):
            msg = f"parameter 'simulation.lidar.min_range_m' must be >= 0; got {self.min_range_m!r}"
            raise ConfigError(msg)


class LidarSimResult(NamedTuple):
    """Which points survive (``keep`` (N,) bool) and the degradations drawn."""

    keep: np.ndarray
    beam_step: int
    sectors_deg: tuple[tuple[float, float], ...]
    max_range_m: float
    dropout: float


def beam_index(points: np.ndarray, ring: np.ndarray | None, num_beams: int) -> np.ndarray:
    """Beam number per point: the ``ring`` field, or elevation binned into ``num_beams``.

    Args:
        points: (N, 3) LiDAR frame (x fwd, y left, z up), metres.
        ring: (N,) integer beam ids, or ``None``.
    """
    if ring is not None:
        return np.asarray(ring).astype(np.int64)
    elevation = np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1]))
    if elevation.size == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = float(elevation.min()), float(elevation.max())
    span = max(high - low, 1e-9)
    return np.minimum(((elevation - low) / span * num_beams).astype(np.int64), num_beams - 1)


def simulate_lidar_scan(points: np.ndarray, rng: np.random.Generator, *,
                        ring: np.ndarray | None = None, in_view: np.ndarray | None = None,
                        config: LidarSimConfig | None = None) -> LidarSimResult:
    """Draw LiDAR-shaped degradations of one scan: beam subsampling, sectors, range limits.

    Args:
        points: (N, 3) float, LiDAR frame, metres.
        rng: numpy Generator supplying every draw.
        ring: (N,) beam ids if the scan has them (else elevation is binned).
        in_view: (N,) bool, points seen by the camera; sector centres are drawn among them.
        config: degradations; defaults when ``None``.

    Raises:
        ShapeError: ``points`` is not (N, 3) or ``ring``/``in_view`` length differs.
    """
    cfg = config or LidarSimConfig()
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        msg = f'points must be (N, 3); got {points.shape}'
        raise ShapeError(msg)
    count = points.shape[0]
    for name, extra in (('ring', ring), ('in_view', in_view)):
        if extra is not None and np.asarray(extra).shape != (count,):
            msg = f'{name} must be ({count},) like points; got {np.asarray(extra).shape}'
            raise ShapeError(msg)
    keep = np.ones(count, dtype=bool)
    beam_step = 1
    if rng.random() < cfg.p_beam_subsample:
        beam_step = int(cfg.beam_steps[rng.integers(len(cfg.beam_steps))])
        beams = beam_index(points, ring, cfg.num_beams)
        keep &= (beams - int(rng.integers(beam_step))) % beam_step == 0
    sectors: list[tuple[float, float]] = []
    if rng.random() < cfg.p_missing_sector and count:
        azimuth = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
        candidates = np.flatnonzero(in_view) if in_view is not None else np.arange(count)
        if candidates.size:
            for _ in range(1 + int(rng.integers(cfg.max_sectors))):
                centre = float(azimuth[candidates[rng.integers(candidates.size)]])
                width = float(rng.uniform(*cfg.sector_width_deg))
                sectors.append((centre, width))
                offset = (azimuth - centre + 180.0) % 360.0 - 180.0
                keep &= np.abs(offset) > width / 2
    ranges = np.linalg.norm(points, axis=1)
    keep &= ranges >= cfg.min_range_m
    max_range = math.inf
    if rng.random() < cfg.p_range_limit:
        max_range = float(rng.uniform(*cfg.max_range_m))
        keep &= ranges <= max_range
    dropout = 0.0
    if rng.random() < cfg.p_point_dropout:
        dropout = float(rng.uniform(*cfg.point_dropout))
        keep &= rng.random(count) >= dropout
    return LidarSimResult(keep, beam_step, tuple(sectors), max_range, dropout)


def simulate_lidar_image(sparse: Tensor, generator: torch.Generator, *, max_depth: float,
                         config: LidarSimConfig | None = None) -> Tensor:
    """Image-space LiDAR degradations for datasets without raw scans (KITTI, PNG folders).

    Without per-point beam ids only the image-space analogues apply: a missing sector is a
    band of image columns, a range limit zeroes depths beyond it, and uniform dropout.

    Args:
        sparse: (1, H, W) normalised sparse depth (0 = no point).
        generator: CPU torch Generator.
        max_depth: metres per normalised unit (for the range limit).
    """
    cfg = config or LidarSimConfig()
    out = sparse.clone()
    width = out.shape[-1]
    if _uniform(generator) < cfg.p_missing_sector:
        for _ in range(1 + _randint(generator, cfg.max_sectors)):
            # A sector of the camera's ~90 deg view: width_deg / 90 of the image width.
            band = int(round(min(1.0, _uniform(generator, *cfg.sector_width_deg) / 90.0) * width))
            start = _randint(generator, max(1, width - band + 1))
            out[..., start:start + band] = 0.0
    if _uniform(generator) < cfg.p_range_limit:
        limit = _uniform(generator, *cfg.max_range_m) / max_depth
        out = torch.where(out > limit, torch.zeros_like(out), out)
    if _uniform(generator) < cfg.p_point_dropout:
        out = _drop(out, _uniform(generator, *cfg.point_dropout), generator)
    return out
