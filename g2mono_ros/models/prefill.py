"""Per-image depth scale from the sparse points, and a fast classical pre-fill in torch.

Used inside the seed networks (``depth_norm``, ``prefill``): the network sees depth relative to
the scene's own scale and starts from a dense guess that it only has to correct.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from g2mono_ros.errors import ShapeError

__all__ = ['DEPTH_NORMS', 'DepthNorm', 'push_pull_fill', 'sparse_median']

DepthNorm = Literal['fixed', 'median', 'log']
#: ``fixed``: depth / max_depth as the release; ``median``: depth / per-image median of the
#: points; ``log``: log(depth / median).
DEPTH_NORMS: tuple[str, ...] = ('fixed', 'median', 'log')
#: scale used for an image without any point (normalised units), so the network still runs.
EMPTY_SCALE = 0.1


def _check(name: str, tensor: Tensor) -> None:
    if tensor.ndim != 4 or tensor.shape[1] != 1:
        msg = f'{name} must be (B, 1, H, W); got {tuple(tensor.shape)}'
        raise ShapeError(msg)


def sparse_median(depth: Tensor, mask: Tensor, *, empty: float = EMPTY_SCALE) -> Tensor:
    """Median of the valid sparse depths of each image.

    Args:
        depth: (B, 1, H, W) depth in any unit.
        mask: (B, 1, H, W) 1 where a point exists.
        empty: value for an image without points.

    Returns:
        (B, 1, 1, 1) positive medians, in the unit of ``depth``.
    """
    _check('depth', depth)
    valid = (mask > 0.5) & (depth > 0)
    flat = torch.where(valid, depth, torch.full_like(depth, float('nan'))).flatten(1)
    median = torch.nanmedian(flat, dim=1).values
    median = torch.where(torch.isfinite(median) & (median > 0), median,
                         torch.full_like(median, empty))
    return median.view(-1, 1, 1, 1)


def push_pull_fill(values: Tensor, mask: Tensor) -> Tensor:
    """Fill the holes of a sparse map by a masked-average image pyramid (push-pull).

    Push: each coarser level holds the mean of the valid values below it. Pull: from the
    coarsest level back down, a pixel without a value takes the bilinear upsample of the level
    above; pixels with values keep their own mean. O(pixels), a few pooling calls.

    Args:
        values: (B, 1, H, W) values (any unit; log depth works too), ignored where mask is 0.
        mask: (B, 1, H, W) 1 where a value exists.

    Returns:
        (B, 1, H, W): the input values where the mask is set, interpolated elsewhere; 0 for an
        image without any value.
    """
    _check('values', values)
    _check('mask', mask)
    weight = (mask > 0.5).to(values.dtype)
    sums = [values * weight]
    counts = [weight]
    while min(sums[-1].shape[-2:]) > 1:
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
        counts.append(F.avg_pool2d(counts[-1], 2, ceil_mode=True))
    filled = sums[-1] / counts[-1].clamp_min(1e-12)
    for level in range(len(sums) - 2, -1, -1):
        up = F.interpolate(filled, size=sums[level].shape[-2:], mode='bilinear',
                           align_corners=False)
        own = counts[level] > 0
        filled = torch.where(own, sums[level] / counts[level].clamp_min(1e-12), up)
    return filled


def _shift(tensor: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """``out[..., y, x] = tensor[..., y + dy, x + dx]``, ``fill`` outside the image."""
    height, width = tensor.shape[-2:]
    out = torch.full_like(tensor, fill)
    if abs(dy) >= height or abs(dx) >= width:
        return out
    ys, yd = slice(max(dy, 0), height + min(dy, 0)), slice(max(-dy, 0), height + min(-dy, 0))
    xs, xd = slice(max(dx, 0), width + min(dx, 0)), slice(max(-dx, 0), width + min(-dx, 0))
    out[..., yd, xd] = tensor[..., ys, xs]
    return out


def nearest_point_fill(values: Tensor, mask: Tensor) -> Tensor:
    """Each pixel takes the value of its nearest valid pixel (jump flooding, O(pixels log size)).

    Approximates the exact Euclidean nearest point (as ``evaluation.baselines.nearest_fill``)
    up to rare ties; keeps depth edges sharp, unlike :func:`push_pull_fill`.

    Args:
        values: (B, 1, H, W), ignored where mask is 0.
        mask: (B, 1, H, W) 1 where a value exists.

    Returns:
        (B, 1, H, W); 0 for an image without any value.
    """
    _check('values', values)
    _check('mask', mask)
    height, width = values.shape[-2:]
    valid = mask > 0.5
    grid_y = torch.arange(height, device=values.device, dtype=values.dtype).view(1, 1, -1, 1)
    grid_x = torch.arange(width, device=values.device, dtype=values.dtype).view(1, 1, 1, -1)
    far = float(4 * (height + width))
    seed_y = torch.where(valid, grid_y.expand_as(values), torch.full_like(values, far))
    seed_x = torch.where(valid, grid_x.expand_as(values), torch.full_like(values, far))
    best = torch.where(valid, values, torch.zeros_like(values))
    step = 1 << max(0, (max(height, width) - 1).bit_length() - 1)
    steps = []
    while step >= 1:
        steps.append(step)
        step //= 2
    for step in steps + [1]:  # one extra pass of 1 fixes most jump-flooding errors
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if dy == 0 and dx == 0:
                    continue
                cand_y = _shift(seed_y, dy, dx, far)
                cand_x = _shift(seed_x, dy, dx, far)
                cand_v = _shift(best, dy, dx, 0.0)
                d_new = (cand_y - grid_y) ** 2 + (cand_x - grid_x) ** 2
                d_old = (seed_y - grid_y) ** 2 + (seed_x - grid_x) ** 2
                better = d_new < d_old
                seed_y = torch.where(better, cand_y, seed_y)
                seed_x = torch.where(better, cand_x, seed_x)
                best = torch.where(better, cand_v, best)
    return best
