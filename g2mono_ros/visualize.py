"""Depth to colour for people: a perceptual (viridis) colormap in plain numpy.

Near is bright yellow, far is dark violet, no data is black.
"""

from __future__ import annotations

import numpy as np

from g2mono_ros.errors import ShapeError

__all__ = ['colorize_depth', 'depth_colour_scale']

# Viridis sampled at 0, 1/8, ..., 1 (RGB in [0, 1]); piecewise-linear between the anchors
# stays within a few levels of the full table.
_VIRIDIS_ANCHORS = np.array([
    [0.267004, 0.004874, 0.329415],
    [0.282623, 0.140926, 0.457517],
    [0.229739, 0.322361, 0.545706],
    [0.172719, 0.448791, 0.557885],
    [0.127568, 0.566949, 0.550556],
    [0.175707, 0.697900, 0.491033],
    [0.369214, 0.788888, 0.382914],
    [0.678489, 0.863742, 0.189503],
    [0.993248, 0.906157, 0.143936],
])


def _lookup_table(levels: int = 256) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
    t = np.linspace(0.0, 1.0, levels)
    table = np.stack([np.interp(t, positions, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=1)
    return np.round(table * 255.0).astype(np.uint8)


_LUT = _lookup_table()
# Pixels depth_colour_scale looks at, at most about.
_SCALE_SAMPLES = 65536


def colorize_depth(depth_m: np.ndarray, max_depth: float) -> np.ndarray:
    """Colour a depth map.

    Args:
        depth_m: (H, W) metres; 0, negative or non-finite = no data.
        max_depth: metres at the far end of the colormap (> 0); farther values saturate.

    Returns:
        (H, W, 3) uint8 RGB; no-data pixels are (0, 0, 0).

    Raises:
        ShapeError: depth_m is not 2-D, or max_depth is not a positive finite number.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        msg = f'depth_m must be (H, W); got shape {depth.shape}'
        raise ShapeError(msg)
    if not (np.isfinite(max_depth) and max_depth > 0):
        msg = f'max_depth must be a positive finite number of metres; got {max_depth!r}'
        raise ShapeError(msg)
    valid = np.isfinite(depth) & (depth > 0)
    nearness = 1.0 - np.clip(np.where(valid, depth, 0.0) / max_depth, 0.0, 1.0)
    index = np.round(nearness * (len(_LUT) - 1)).astype(np.intp)
    image = _LUT[index]
    image[~valid] = 0
    return image


def depth_colour_scale(depth_m: np.ndarray, *, default: float = 10.0) -> float:
    """Metres for the far end of the colour map of this depth map: 1.1x its 99th percentile.

    For weights whose ``max_depth`` is only an output clamp (200 m for the normalised seed
    weights), a room at 1-5 m against that scale is one colour.

    Args:
        depth_m: (H, W) metres; 0, negative or non-finite = no data.
        default: returned when there is no data.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim == 2 and depth.size > 2 * _SCALE_SAMPLES:
        # A regular subsample: a 1080p percentile would cost ~20 ms of the node's worker.
        stride = int(np.ceil(np.sqrt(depth.size / _SCALE_SAMPLES)))
        depth = depth[::stride, ::stride]
    valid = depth[np.isfinite(depth) & (depth > 0)]
    return float(np.percentile(valid, 99)) * 1.1 if valid.size else float(default)
