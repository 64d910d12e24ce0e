"""Per-image depth scale from the sparse points, and a fast classical pre-fill in torch.

Used inside the seed networks (``depth_norm``, ``prefill``): the network sees depth relative to
the scene's own scale and starts from a dense guess that it only has to correct.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from g2mono_ros.errors import ShapeError

__all__ = ['DEPTH_NORMS', 'PREFILL_KINDS', 'DepthNorm', 'guided_nearest_fill', 'jump_flood_fill',
           'nearest_point_coords', 'nearest_point_fill', 'push_pull_fill', 'scanline_fill',
           'sparse_median', 'torch_nearest_only']

DepthNorm = Literal['fixed', 'median', 'log']
#: ``fixed``: depth / max_depth as the release; ``median``: depth / per-image median of the
#: points; ``log``: log(depth / median).
DEPTH_NORMS: tuple[str, ...] = ('fixed', 'median', 'log')
#: classical fills a seed network can start from (``G2Seed(prefill_kind=...)``).
PREFILL_KINDS: tuple[str, ...] = ('push_pull', 'nearest', 'scanline', 'guided')
#: scale used for an image without any point (normalised units), so the network still runs.
EMPTY_SCALE = 0.1
# Set by torch_nearest_only(): the nearest-point searches take the torch path on the CPU too.
_TORCH_NEAREST_ONLY = contextvars.ContextVar('torch_nearest_only', default=False)


@contextlib.contextmanager
def torch_nearest_only() -> Iterator[None]:
    """Within it, nearest-point fills and coordinates use jump flooding on the CPU too, the
    path that tracing and ONNX export record, so a reference computed in it matches an
    exported graph exactly (OpenCV's choice differs on rare ties and near-ties)."""
    token = _TORCH_NEAREST_ONLY.set(True)
    try:
        yield
    finally:
        _TORCH_NEAREST_ONLY.reset(token)


def _opencv_allowed(tensor: Tensor) -> bool:
    return (tensor.device.type == 'cpu' and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export() and not _TORCH_NEAREST_ONLY.get())


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
    # The lower median, as torch.nanmedian gives, by sort and gather: ONNX has no nanmedian
    # (`g2mono export` of the normalised seed networks failed on it).
    flat = torch.where(valid, depth, torch.full_like(depth, float('inf'))).flatten(1)
    ordered = torch.sort(flat, dim=1).values
    count = valid.flatten(1).sum(1, keepdim=True)
    median = ordered.gather(1, ((count - 1) // 2).clamp_min(0))[:, 0]
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
    """Each pixel takes the value of its nearest valid pixel; keeps depth edges sharp.

    On the CPU, OpenCV's distance transform with labels (5x5 mask: the chosen point is at most
    a fraction of a pixel farther than the true nearest, on a few pixels in 10^4); about 30x
    faster than jump flooding there. On other devices, and while exporting or tracing the
    network, :func:`jump_flood_fill` (torch only).

    Args:
        values: (B, 1, H, W), ignored where mask is 0.
        mask: (B, 1, H, W) 1 where a value exists.

    Returns:
        (B, 1, H, W); 0 for an image without any value.
    """
    _check('values', values)
    _check('mask', mask)
    if (_opencv_allowed(values) and values.dtype in (torch.float32, torch.float64)
            and not values.requires_grad):
        try:
            return _opencv_nearest_fill(values, mask)
        except ImportError:  # no OpenCV: the torch version below
            pass
    return jump_flood_fill(values, mask)


def _opencv_nearest_fill(values: Tensor, mask: Tensor) -> Tensor:
    import cv2

    out = torch.zeros_like(values)
    valid_all = (mask > 0.5).numpy()
    values_np = values.detach().numpy()
    for b in range(values.shape[0]):
        valid = valid_all[b, 0]
        if not valid.any():
            continue
        _, labels = cv2.distanceTransformWithLabels(
            np.where(valid, 0, 255).astype(np.uint8), cv2.DIST_L2, 5,
            labelType=cv2.DIST_LABEL_PIXEL)
        # Labels number the point pixels 1.. in raster order.
        table = np.zeros(int(valid.sum()) + 1, values_np.dtype)
        table[1:] = values_np[b, 0][valid]
        out[b, 0] = torch.from_numpy(table[labels])
    return out


def jump_flood_fill(values: Tensor, mask: Tensor) -> Tensor:
    """:func:`nearest_point_fill` by jump flooding (O(pixels log size), torch only): the same
    arguments and result, exact (as ``evaluation.baselines.nearest_fill``) up to rare ties."""
    _check('values', values)
    _check('mask', mask)
    return _jump_flood(values, mask)[0]


def _jump_flood(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(value, row, column) of each pixel's nearest point, by jump flooding; the row and column
    (float, exact integers) are far outside the image where there is no point."""
    height, width = (int(size) for size in values.shape[-2:])  # int(): traced shapes (export)
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
    return best, seed_y, seed_x


def nearest_point_coords(mask: Tensor) -> Tensor:
    """Flat index (row * W + column) of each pixel's nearest point, as :func:`nearest_point_fill`
    chooses it (OpenCV on the CPU, jump flooding elsewhere).

    Args:
        mask: (B, 1, H, W) 1 where a point exists.

    Returns:
        (B, 1, H, W) int64; -1 in an image without any point.
    """
    _check('mask', mask)
    height, width = mask.shape[-2:]
    flat = torch.arange(height * width, device=mask.device).view(1, 1, height, width)
    valid = mask > 0.5
    if _opencv_allowed(mask):
        try:
            index = _opencv_nearest_fill(flat.expand_as(mask).to(torch.float64), mask)
        except ImportError:
            pass
        else:
            return torch.where(valid.flatten(1).any(1).view(-1, 1, 1, 1), index.long(),
                               torch.full_like(flat, -1))
    ones = torch.ones_like(mask, dtype=torch.float32)
    _, row, col = _jump_flood(ones, valid.float())
    inside = (row < height) & (col < width)
    return torch.where(inside, (row * width + col).long(), torch.full_like(flat, -1))


def _gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W), edges replicated (torch only)."""
    radius = max(1, int(round(2.5 * sigma)))
    taps = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    # Constant kernel shapes (int channels, explicit taps): the ONNX exporter needs them.
    channels, size = int(image.shape[1]), 2 * radius + 1
    out = F.pad(image, (radius, radius, 0, 0), mode='replicate')
    out = F.conv2d(out, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode='replicate')
    return F.conv2d(out, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def guided_nearest_fill(values: Tensor, mask: Tensor, guide: Tensor, *, step: int | None = None,
                        rings: int = 3, colour_scale: float = 5.0 / 255.0,
                        extra_distance_weight: float = 1.0) -> Tensor:
    """Each pixel takes the value of a nearby point that looks like it (colour-guided nearest).

    Nearest fill puts a depth edge half-way between two scan lines, wherever the object's
    outline really is. Here each pixel chooses among candidate points: the nearest points of
    the pixels on a (2 * rings + 1)^2 grid around it, ``step`` pixels apart. The cost of a
    candidate is its distance relative to the nearest point's, plus its extra distance beyond
    the nearest point's in steps (times ``extra_distance_weight``), plus the colour difference
    (blurred guide, RGB) over ``colour_scale``, so a pixel of a leaf takes the depth of the
    leaf's points on the next line, not of the wall behind at the same column, while a pixel
    right beside a point keeps it unless the colour differs a lot. Like nearest
    fill, every value is a measured one: no depth is invented between two surfaces.

    Args:
        values: (B, 1, H, W), any unit (log depth too), ignored where mask is 0.
        mask: (B, 1, H, W) 1 where a point exists.
        guide: (B, 3, H, W) the image, float [0, 1] (or uint8 0..255, scaled here).
        step: candidate grid spacing (px); default W / 213, at least 1 (3 at 640-740 px, 2 at
            384, 1 at the networks' 192). The blur's sigma is half of it. Chosen on the two
            real frames of bench_quality (steps 2-6 tried): finer grids miss the leaves'
            points on the next line, coarser ones jump across thin structures.
        rings: candidate grid radius in steps.
        colour_scale: colour difference (Euclidean, [0, 1] RGB) worth one nearest-point distance.
        extra_distance_weight: weight of the extra distance term. Without it (0) a pixel one
            pixel from a point on its scan line readily takes a point of another line of
            slightly closer colour: worse at LiDAR hold-out points (20 % of the points held
            out: MAE up to 1.26x nearest fill's on the synthetic validation seeds; 1.14x
            with it).

    Returns:
        (B, 1, H, W); 0 in an image without any point.
    """
    _check('values', values)
    _check('mask', mask)
    if guide.ndim != 4 or guide.shape[0] != values.shape[0] or guide.shape[-2:] != values.shape[-2:]:
        msg = f'guide must be (B, C, H, W) of the values {tuple(values.shape)}; got {tuple(guide.shape)}'
        raise ShapeError(msg)
    batch, _, height, width = values.shape
    if step is None:
        step = max(1, (int(width) + 106) // 213)  # round(W / 213); int(): traced shapes
    guide = guide.to(values.dtype) / 255.0 if guide.dtype == torch.uint8 else guide.to(values.dtype)
    guide = _gaussian_blur(guide, step / 2.0)
    nearest = nearest_point_coords(mask)
    has_points = nearest[:, :, :1, :1] >= 0
    index = nearest.clamp_min(0).flatten(2)
    channels = guide.shape[1]
    # Each pixel's nearest point as (colour, row, column, value) maps: a candidate of the
    # pixel at offset o is then these maps shifted by o (edges replicated), no gather per
    # candidate.
    point = torch.cat([guide.flatten(2).gather(2, index.expand(-1, channels, -1)),
                       (index // width).to(values.dtype), (index % width).to(values.dtype),
                       values.flatten(2).gather(2, index)], dim=1).view(batch, channels + 3,
                                                                       height, width)
    grid_y = torch.arange(height, device=values.device, dtype=values.dtype).view(1, 1, -1, 1)
    grid_x = torch.arange(width, device=values.device, dtype=values.dtype).view(1, 1, 1, -1)
    nearest_distance = ((point[:, channels:channels + 1] - grid_y).square()
                        + (point[:, channels + 1:channels + 2] - grid_x).square()).sqrt()
    nearest_distance = nearest_distance.clamp_min(1.0)
    best_cost = torch.full_like(values, float('inf'))
    filled = point[:, channels + 2:]
    pad = step * rings
    padded = F.pad(point, (pad, pad, pad, pad), mode='replicate')
    for dy in range(-rings, rings + 1):
        for dx in range(-rings, rings + 1):
            top, left = pad + step * dy, pad + step * dx
            candidate = padded[..., top:top + height, left:left + width]
            # sqrt of squares, not hypot: ONNX has no hypot.
            distance = ((candidate[:, channels:channels + 1] - grid_y).square()
                        + (candidate[:, channels + 1:channels + 2] - grid_x).square()).sqrt()
            colour_diff = (candidate[:, :channels] - guide).square().sum(1, keepdim=True).sqrt()
            cost = (distance / nearest_distance
                    + extra_distance_weight * (distance - nearest_distance) / step
                    + colour_diff / colour_scale)
            better = cost < best_cost
            best_cost = torch.where(better, cost, best_cost)
            filled = torch.where(better, candidate[:, channels + 2:], filled)
    valid = mask > 0.5
    out = torch.where(valid, values, filled)
    return torch.where(has_points, out, torch.zeros_like(out))


def _fill_short_row_gaps(values: Tensor, valid: Tensor, max_gap: int) -> tuple[Tensor, Tensor]:
    """Close gaps of up to ``max_gap`` pixels along rows with the nearer end's value.

    A scan line crossing the image is a chain of points a pixel or two apart along the row;
    closing those gaps gives the vertical interpolation a point in every column the line
    crosses. Gaps wider than ``max_gap`` (a line ending, a missing sector) stay open.
    """
    filled, has = values, valid
    for dist in range(1, max_gap + 1):
        for dx in (-dist, dist):
            cand = _shift(values, 0, dx, 0.0)
            cand_ok = _shift(valid.to(values.dtype), 0, dx, 0.0) > 0.5
            take = cand_ok & ~has
            filled = torch.where(take, cand, filled)
            has = has | take
    return filled, has


def _last_point_at_or_above(has: Tensor) -> Tensor:
    """(B, 1, H, W) row index of the last ``has`` pixel at or above each pixel (-1: none)."""
    rows = torch.arange(has.shape[-2], device=has.device).view(1, 1, -1, 1).expand_as(has)
    return torch.where(has, rows, torch.full_like(rows, -1)).cummax(dim=2).values


def _extrapolate_down(values: Tensor, above: Tensor, edge_ratio: float,
                      min_fraction: float) -> tuple[Tensor, Tensor]:
    """Continue inverse depth linearly below the lowest point of each column.

    Uses the column's two lowest points (rows L > P): only where they lie on one surface
    (depth ratio <= ``edge_ratio``) that comes nearer downwards (a floor, a road), the case in
    which a plane's inverse depth keeps growing linearly; never nearer than ``min_fraction`` of
    the lowest point's depth.

    Returns:
        (depth, usable) for every pixel, meaningful below the lowest point.
    """
    height = values.shape[-2]
    rows = torch.arange(height, device=values.device).view(1, 1, -1, 1)
    # ``above`` (last point at or above each row; -1: none) of the row above: the last point
    # strictly above.
    previous = torch.cat([torch.full_like(above[:, :, :1], -1), above[:, :, :-1]], dim=2)
    low_row = above.clamp(0, height - 1)
    prev_row = previous.gather(2, low_row)
    low = values.gather(2, low_row)
    prev = values.gather(2, prev_row.clamp(0, height - 1))
    slope = ((1.0 / low.clamp_min(1e-12) - 1.0 / prev.clamp_min(1e-12))
             / (low_row - prev_row).clamp_min(1).to(values.dtype))
    ratio = torch.maximum(low, prev) / torch.minimum(low, prev).clamp_min(1e-12)
    usable = (above >= 0) & (prev_row >= 0) & (ratio <= edge_ratio) & (slope > 0)
    inverse = 1.0 / low.clamp_min(1e-12) + slope * (rows - low_row).to(values.dtype)
    depth = torch.maximum(1.0 / inverse.clamp_min(1e-12), min_fraction * low)
    return depth, usable


def scanline_fill(depth: Tensor, mask: Tensor, *, max_row_gap: int = 1,
                  edge_ratio: float = 1.25, min_fraction: float = 0.2) -> Tensor:
    """Inverse depth interpolated down each column between scan lines, and continued beyond.

    For a plane, inverse depth is an affine function of the pixel coordinates, so linear
    interpolation of ``1 / depth`` between the point above and the point below a pixel is exact
    on floors, walls and roads, where nearest fill leaves a staircase. Where the two points
    differ by more than ``edge_ratio`` (a depth edge between the lines) the pixel takes the
    nearer one, so no ramp is drawn through free space. Below the lowest point of a column
    (the floor or road in front of a robot, under a LiDAR's lowest beam) and above the highest
    (a ceiling), the two outermost points' plane is continued when they lie on one surface that
    approaches the camera (``_extrapolate_down``). Every other pixel (columns without points,
    solid-state patterns' gaps) takes the nearest-point fill.

    Args:
        depth: (B, 1, H, W) positive depth in any unit (scale-free: only ratios matter),
            ignored where mask is 0.
        mask: (B, 1, H, W) 1 where a point exists.
        max_row_gap: row gaps (pixels) between points of one line closed before interpolating.
        edge_ratio: > 1; larger depth ratios between two points are treated as an edge.
        min_fraction: a continued plane never comes nearer than this fraction of the
            outermost point's depth.

    Returns:
        (B, 1, H, W) depth; the input where the mask is set; 0 for an image without points.
    """
    _check('depth', depth)
    _check('mask', mask)
    height = depth.shape[-2]
    valid = (mask > 0.5) & (depth > 0)
    zero = torch.zeros_like(depth)
    points = torch.where(valid, depth, zero)
    out = nearest_point_fill(points, valid.to(depth.dtype))
    values, has = _fill_short_row_gaps(points, valid, max_row_gap)
    above = _last_point_at_or_above(has)
    # The same counted from the bottom (the image upside down); -1 there becomes height here.
    above_upside_down = _last_point_at_or_above(has.flip(2))
    below = height - 1 - above_upside_down.flip(2)  # first point at or below; height: none
    both = (above >= 0) & (below < height)
    value_above = values.gather(2, above.clamp(0, height - 1))
    value_below = values.gather(2, below.clamp(0, height - 1))
    rows = torch.arange(height, device=depth.device).view(1, 1, -1, 1)
    t = (rows - above).to(depth.dtype) / (below - above).clamp_min(1).to(depth.dtype)
    inverse = (1 - t) / value_above.clamp_min(1e-12) + t / value_below.clamp_min(1e-12)
    ratio = (torch.maximum(value_above, value_below)
             / torch.minimum(value_above, value_below).clamp_min(1e-12))
    between = torch.where(ratio > edge_ratio, torch.where(t <= 0.5, value_above, value_below),
                          1.0 / inverse.clamp_min(1e-12))
    out = torch.where(both, between, out)
    down, down_ok = _extrapolate_down(values, above, edge_ratio, min_fraction)
    out = torch.where((above >= 0) & (below >= height) & down_ok, down, out)
    # Above the highest point: the same, on the image turned upside down.
    up, up_ok = _extrapolate_down(values.flip(2), above_upside_down, edge_ratio, min_fraction)
    out = torch.where(((above < 0) & (below < height)) & up_ok.flip(2), up.flip(2), out)
    return torch.where(valid, depth, out)
