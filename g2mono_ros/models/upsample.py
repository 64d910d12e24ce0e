"""Depth upsampling from the network's grid to the camera's that does not blend across edges.

Bilinear interpolation mixes foreground and background at a depth step and puts points in free
space ("flying pixels"); ``edge_aware_upsample`` picks one of the four low-resolution neighbours
there, the one whose colour best matches the full-resolution pixel.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from g2mono_ros.config import UPSAMPLE_MODES
from g2mono_ros.errors import ConfigError, ShapeError

__all__ = ['PREFILL_GUIDED_KINDS', 'UPSAMPLE_MODES', 'UpsampleMode', 'edge_aware_upsample',
           'pin_to_points', 'prefill_guided_upsample', 'upsample_depth']

UpsampleMode = Literal['bilinear', 'edge_aware', 'prefill_guided']
#: the pre-fill kinds ``prefill_guided`` can recompute at the camera size (the point-copying
#: fills; push-pull is not among them).
PREFILL_GUIDED_KINDS: tuple[str, ...] = ('nearest', 'scanline', 'guided')


def _source_coords(out_size: int, in_size: int, device: torch.device
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Low-res neighbour indices (lower, upper) and the upper's weight per output index
    (half-pixel centres, as ``F.interpolate(..., align_corners=False)``)."""
    pos = (torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * (in_size / out_size) - 0.5
    pos = pos.clamp(0.0, in_size - 1)
    low = pos.floor()
    frac = pos - low
    low = low.long()
    return low, (low + 1).clamp(max=in_size - 1), frac


def edge_aware_upsample(depth: Tensor, guide_lr: Tensor, guide_hr: Tensor, *,
                        edge_ratio: float = 1.1, distance_weight: float = 0.3) -> Tensor:
    """Bilinear on smooth surfaces; at depth edges, the best-matching neighbour's depth.

    A pixel is at an edge when its four low-resolution neighbours span more than
    ``edge_ratio`` (max / min). There its depth is copied from the neighbour minimising
    ``|guide_hr - guide_lr[neighbour]|_1 + distance_weight * (1 - bilinear weight)``, so it
    always lies on one of the two surfaces.

    Args:
        depth: (B, 1, h, w) depth, any unit (0 = none).
        guide_lr: (B, C, h, w) guide image at the depth's size (the network's RGB input), float
            [0, 1] or uint8 0..255 (scaled by 1/255 here).
        guide_hr: (B, C, H, W) the guide at the output size, the same kind.
        edge_ratio: > 1.
        distance_weight: how strongly nearer neighbours win colour ties.

    Returns:
        (B, 1, H, W) depth.

    Raises:
        ShapeError: shapes that do not fit together.
    """
    if depth.ndim != 4 or depth.shape[1] != 1:
        msg = f'depth must be (B, 1, h, w); got {tuple(depth.shape)}'
        raise ShapeError(msg)
    batch, _, h, w = depth.shape
    if guide_lr.ndim != 4 or guide_lr.shape[0] != batch or guide_lr.shape[-2:] != depth.shape[-2:]:
        msg = f'guide_lr must be (B, C, {h}, {w}) like depth; got {tuple(guide_lr.shape)}'
        raise ShapeError(msg)
    if guide_hr.ndim != 4 or guide_hr.shape[:2] != guide_lr.shape[:2]:
        msg = f'guide_hr must be (B, {guide_lr.shape[1]}, H, W); got {tuple(guide_hr.shape)}'
        raise ShapeError(msg)
    if _host_path(depth, guide_lr, guide_hr):
        # One CPU image: the host version decides colours at the edge pixels only (~60x
        # faster at 1080p, the same result but float rounding off the edges).
        from g2mono_ros.models.upsample_host import edge_aware_upsample_host

        out = edge_aware_upsample_host(depth[0, 0].float().numpy(),
                                       guide_lr[0].permute(1, 2, 0).numpy(),
                                       guide_hr[0].permute(1, 2, 0).numpy(),
                                       edge_ratio=edge_ratio, distance_weight=distance_weight)
        return torch.from_numpy(out)[None, None]
    guide_lr, guide_hr = (g.float() / 255.0 if g.dtype == torch.uint8 else g
                          for g in (guide_lr, guide_hr))
    height, width = guide_hr.shape[-2:]
    device = depth.device
    y0, y1, fy = _source_coords(height, h, device)
    x0, x1, fx = _source_coords(width, w, device)
    depth_flat = depth.float().flatten(2)  # (B, 1, h*w)
    guide_flat = guide_lr.float().flatten(2)  # (B, C, h*w)
    guide_hr = guide_hr.float()
    fy, fx = fy[:, None], fx[None, :]
    corners = ((y0, x0, (1 - fy) * (1 - fx)), (y0, x1, (1 - fy) * fx),
               (y1, x0, fy * (1 - fx)), (y1, x1, fy * fx))
    bilinear = torch.zeros((batch, 1, height, width), device=device)
    low = torch.full_like(bilinear, float('inf'))
    high = torch.zeros_like(bilinear)
    best_cost = torch.full_like(bilinear, float('inf'))
    best_depth = torch.zeros_like(bilinear)
    for rows, cols, weight in corners:
        index = (rows[:, None] * w + cols[None, :]).reshape(-1)
        value = depth_flat[..., index].view(batch, 1, height, width)
        bilinear += weight * value
        low = torch.minimum(low, value)
        high = torch.maximum(high, value)
        colour = guide_flat[..., index].view(batch, -1, height, width)
        cost = (guide_hr - colour).abs().sum(1, keepdim=True) + distance_weight * (1 - weight)
        better = cost < best_cost
        best_cost = torch.where(better, cost, best_cost)
        best_depth = torch.where(better, value, best_depth)
    edge = high > edge_ratio * low
    return torch.where(edge, best_depth, bilinear)


def _host_path(depth: Tensor, *guides: Tensor) -> bool:
    """One CPU image without autograd, guides uint8 or float32: ``upsample_host`` runs it."""
    tensors = (depth, *guides)
    return (depth.shape[0] == 1 and all(t.device.type == 'cpu' for t in tensors)
            and all(g.dtype in (torch.uint8, torch.float32) for g in guides)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)))


def upsample_depth(depth: Tensor, size: tuple[int, int], *, mode: str = 'bilinear',
                   guide_lr: Tensor | None = None, guide_hr: Tensor | None = None) -> Tensor:
    """(B, 1, h, w) -> (B, 1, H, W) with ``mode`` ``bilinear`` or ``edge_aware`` (needs guides).

    Raises:
        ShapeError: unknown mode or missing guides.
    """
    if mode == 'bilinear':
        return F.interpolate(depth, size=size, mode='bilinear', align_corners=False)
    if mode != 'edge_aware' or guide_lr is None or guide_hr is None:
        msg = f"upsample mode must be 'bilinear' or 'edge_aware' (with guides); got {mode!r}"
        raise ShapeError(msg)
    return edge_aware_upsample(depth, guide_lr, guide_hr)


def prefill_guided_upsample(depth: Tensor, sparse_lr: Tensor, sparse_hr: Tensor,
                            guide_lr: Tensor, guide_hr: Tensor, *,
                            kind: str = 'nearest') -> Tensor:
    """Upsample the network's correction, not its depth, for pre-fill residual networks.

    Such a network outputs ``fill(points) * correction`` (``kind``: ``nearest``,
    ``scanline`` or ``guided``, ``models.prefill``). The correction (output / fill at the network size) is
    upsampled edge-aware and applied to the same fill of the points at the camera size, which
    keeps the detail of a scan denser than the network's grid. Pixels whose camera-size fill is
    empty take the edge-aware upsampled depth.

    Args:
        depth: (B, 1, h, w) network output, metres.
        sparse_lr: (B, 1, h, w) the points the network saw, metres (0 = none).
        sparse_hr: (B, 1, H, W) the points at the camera size, metres (0 = none).
        guide_lr, guide_hr: as for :func:`edge_aware_upsample`.

    Returns:
        (B, 1, H, W) metres.
    """
    from g2mono_ros.models.prefill import guided_nearest_fill, nearest_point_fill, scanline_fill

    fills = {'nearest': lambda values, mask, guide: nearest_point_fill(values, mask),
             'scanline': lambda values, mask, guide: scanline_fill(values, mask),
             'guided': guided_nearest_fill}
    if kind not in fills:
        msg = f'prefill_guided kind must be one of {", ".join(fills)}; got {kind!r}'
        raise ConfigError(msg)
    fill = fills[kind]
    if sparse_lr.shape != depth.shape or sparse_hr.shape[-2:] != guide_hr.shape[-2:]:
        msg = (f'sparse_lr must be {tuple(depth.shape)} and sparse_hr (B, 1, '
               f'{tuple(guide_hr.shape[-2:])}); got {tuple(sparse_lr.shape)}, {tuple(sparse_hr.shape)}')
        raise ShapeError(msg)
    valid_lr = torch.isfinite(sparse_lr) & (sparse_lr > 0)
    valid_hr = torch.isfinite(sparse_hr) & (sparse_hr > 0)
    base_lr = fill(torch.where(valid_lr, sparse_lr, 0.0), valid_lr.float(), guide_lr)
    ratio = torch.where(base_lr > 0, depth / base_lr.clamp_min(1e-6), torch.ones_like(depth))
    ratio_hr = edge_aware_upsample(ratio, guide_lr, guide_hr)
    base_hr = fill(torch.where(valid_hr, sparse_hr, 0.0).float(), valid_hr.float(), guide_hr)
    plain = edge_aware_upsample(depth, guide_lr, guide_hr)
    return torch.where(base_hr > 0, base_hr * ratio_hr, plain)


def pin_to_points(depth: Tensor, sparse: Tensor) -> Tensor:
    """The measured depth where a point exists, ``depth`` elsewhere (same shape, same unit)."""
    if depth.shape != sparse.shape:
        msg = f'sparse must have the shape of depth {tuple(depth.shape)}; got {tuple(sparse.shape)}'
        raise ShapeError(msg)
    valid = torch.isfinite(sparse) & (sparse > 0)
    return torch.where(valid, sparse.to(depth.dtype), depth)
