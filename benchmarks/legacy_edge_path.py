"""The node's per-frame path before issue 12's edge-aware work (commit 29f5d72), kept only so
``frame_path.py`` can measure it beside the current one in the same run (the ``prev`` rows).

Verbatim copies of that commit's ``fusion.projection.project_points``, the numpy part of
``fusion.sparse.SparseProjector`` and ``models.upsample_host`` (only this docstring, the
imports and the projector's device branch differ); not part of the package, not for new code.
The depth messages of that path were ``codecs.depth_to_image`` afresh every frame.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.projection import (ProjectedPoints, _check_range, _output_camera,
                                          _transform32, distort_normalized,
                                          distortion_radius_limit)
from g2mono_ros.fusion.sparse import SparseMaps
from g2mono_ros.imaging import network_pixel_index, zbuffer_nearest

__all__ = ['SparseProjector', 'edge_aware_upsample_host', 'project_points']


def project_points(points_lidar: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel, *,
                   out_hw: tuple[int, int] | None = None, min_range: float = 0.5,
                   max_range: float = 100.0) -> ProjectedPoints:
    """Which LiDAR points land in the image, and where: the culling of
    ``project_points_to_depth`` without the z-buffer (same arithmetic, same survivors).

    Args and Raises: as ``project_points_to_depth``.

    Returns:
        ``ProjectedPoints(index, row, col, depth)``; several points may share a pixel.
    """
    pts = np.asarray(points_lidar)
    if pts.ndim != 2 or pts.shape[1] != 3:
        msg = f'points_lidar must have shape (N, 3); got {pts.shape}'
        raise ShapeError(msg)
    _check_range(min_range, max_range)
    rt = _transform32(T_cam_lidar, camera)
    cam = _output_camera(camera, out_hw)
    h, w = cam.height, cam.width
    if pts.dtype != np.float32:
        pts = pts.astype(np.float32)
    f32 = np.float32
    lx, ly, lz = pts[:, 0], pts[:, 1], pts[:, 2]
    with np.errstate(invalid='ignore', over='ignore'):
        # Depth first, on every point; x, y and the rest only for the survivors.
        z = f32(rt[2][0]) * lx + f32(rt[2][1]) * ly + f32(rt[2][2]) * lz + f32(rt[2][3])
        idx = np.flatnonzero((z >= f32(min_range)) & (z <= f32(max_range)) & (z > 0))
        lx, ly, lz, z = lx[idx], ly[idx], lz[idx], z[idx]
        x = f32(rt[0][0]) * lx + f32(rt[0][1]) * ly + f32(rt[0][2]) * lz + f32(rt[0][3])
        y = f32(rt[1][0]) * lx + f32(rt[1][1]) * ly + f32(rt[1][2]) * lz + f32(rt[1][3])
        xn = x / z
        yn = y / z
        xd, yd = distort_normalized(xn, yn, cam)
        k = [float(np.float32(v)) for v in (cam.K[0, 0], cam.K[0, 1], cam.K[0, 2],
                                             cam.K[1, 1], cam.K[1, 2])]
        u = f32(k[0]) * xd + f32(k[1]) * yd + f32(k[2])
        v = f32(k[3]) * yd + f32(k[4])
        inside = (u >= f32(-0.5)) & (u < f32(w - 0.5)) & (v >= f32(-0.5)) & (v < f32(h - 0.5))
        limit = distortion_radius_limit(cam)
        if np.isfinite(limit):
            inside &= xn * xn + yn * yn <= f32(limit * limit)
    keep = np.flatnonzero(inside)
    # u + 0.5 >= 0 here, so truncation is floor: round half up, as the pixel-centre convention.
    cols = (u[keep] + f32(0.5)).astype(np.int64)
    rows = (v[keep] + f32(0.5)).astype(np.int64)
    return ProjectedPoints(idx[keep], rows, cols, z[keep])


class _Buffer:
    """A flat map reused frame after frame: only the pixels written last time are cleared."""

    def __init__(self, size: int) -> None:
        self.flat = np.zeros(size, np.float32)
        self.written = np.zeros(0, np.int64)

    def fill(self, lin: np.ndarray, depths: np.ndarray) -> None:
        self.flat[self.written] = 0.0
        zbuffer_nearest(self.flat, lin, depths)
        self.written = lin


class SparseProjector:
    """Projects a scan once per pair into the network-size and image-size sparse depth maps.

    On a CUDA (or any torch) ``device`` the points are uploaded and projected there and the
    maps are tensors on it (``scatter_reduce`` z-buffers, no host sync); on the CPU the numpy
    projector runs and the maps live in per-size buffers allocated once.

    The numpy maps returned by :meth:`project` are views of those buffers: valid until the next
    call (the node's worker publishes them before it takes the next pair). Pass
    ``reuse_buffers=False`` for fresh arrays every call.

    Args:
        device: None or ``'cpu'`` for numpy; a ``torch.device`` (or its name) for torch.
        reuse_buffers: keep the numpy output buffers between calls.
    """

    def __init__(self, device: Any = None, *, reuse_buffers: bool = True) -> None:
        self._device = None if device is None or str(device) == 'cpu' else device
        self._reuse = reuse_buffers
        self._buffers: dict[tuple[str, int], _Buffer] = {}
        self._staging: Any = None  # pinned host points (CUDA)

    @property
    def on_device(self) -> bool:
        """True when the maps are torch tensors on an accelerator."""
        return self._device is not None

    def project(self, points_lidar: Any, T_cam_lidar: np.ndarray, camera: CameraModel,
                net_hw: tuple[int, int], *, min_range: float, max_range: float,
                want_full: bool) -> SparseMaps:
        """Project ``points_lidar`` once; z-buffer it at the network size (and image size).

        Args:
            points_lidar: (N, 3) float32, LiDAR frame, metres (numpy, or a tensor on the
                device).
            T_cam_lidar: (4, 4) float64, LiDAR -> camera optical.
            camera: the camera's model at the image size (H, W).
            net_hw: (h, w) network input size.
            min_range, max_range: depth window, metres.
            want_full: also return the (H, W) map.

        Returns:
            ``SparseMaps(net, full)``; nearest point per pixel, 0 where none landed.

        Raises:
            ShapeError: bad points, T or ``net_hw``; ConfigError: bad range window.
        """
        h, w = (int(v) for v in net_hw)
        hit = project_points(points_lidar, T_cam_lidar, camera, min_range=min_range,
                             max_range=max_range)
        H, W = camera.height, camera.width
        full = full_pixels = None
        if want_full:
            full_pixels = hit.row * W + hit.col
            full = self._render('full', H * W, full_pixels, hit.depth).reshape(H, W)
        if (h, w) == (H, W) and full is not None:
            return SparseMaps(full, full, full_pixels)
        lin = (network_pixel_index(hit.row, H, h) * w + network_pixel_index(hit.col, W, w))
        net = self._render('net', h * w, lin, hit.depth).reshape(h, w)
        return SparseMaps(net, full, full_pixels)

    def _render(self, role: str, size: int, lin: np.ndarray, depths: np.ndarray) -> np.ndarray:
        if not self._reuse:
            flat = np.zeros(size, np.float32)
            zbuffer_nearest(flat, lin, depths)
            return flat
        buffer = self._buffers.get((role, size))
        if buffer is None:
            # One buffer per role: a camera that changes size replaces it, never piles up.
            self._buffers = {key: b for key, b in self._buffers.items() if key[0] != role}
            buffer = self._buffers[(role, size)] = _Buffer(size)
        buffer.fill(lin, depths)
        return buffer.flat


class _Axis(NamedTuple):
    """Source coordinates of one output axis (as ``upsample._source_coords``)."""

    low: np.ndarray  # (out,) int64 lower neighbour
    high: np.ndarray  # (out,) int64 upper neighbour, clamped to in_size - 1
    frac: np.ndarray  # (out,) float32 weight of the upper neighbour
    start: np.ndarray  # (in,) int64 first output index whose lower neighbour is this index
    stop: np.ndarray  # (in,) int64 one past the last


@functools.lru_cache(maxsize=16)
def _axis(out_size: int, in_size: int) -> _Axis:
    # float32 throughout, in the order torch evaluates ``(arange + 0.5) * (in / out) - 0.5``.
    pos = ((np.arange(out_size, dtype=np.float32) + np.float32(0.5))
           * np.float32(in_size / out_size) - np.float32(0.5))
    pos = np.clip(pos, np.float32(0.0), np.float32(in_size - 1))
    low_f = np.floor(pos)
    frac = pos - low_f
    low = low_f.astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    cells = np.arange(in_size)
    start = np.searchsorted(low, cells, side='left')
    stop = np.searchsorted(low, cells, side='right')
    for array in (low, high, frac, start, stop):
        array.flags.writeable = False  # shared through the cache
    return _Axis(low, high, frac, start, stop)


def _unit(colours: np.ndarray) -> np.ndarray:
    """uint8 guide values -> float32 [0, 1] exactly as torch's ``u8.float() / 255.0`` (a true
    division, checked in the tests); float guides pass through as float32."""
    if colours.dtype == np.uint8:
        return colours.astype(np.float32) / np.float32(255.0)
    return colours.astype(np.float32, copy=False)


def edge_aware_upsample_host(depth: np.ndarray, guide_lr: np.ndarray, guide_hr: np.ndarray, *,
                             edge_ratio: float = 1.1, distance_weight: float = 0.3) -> np.ndarray:
    """``upsample.edge_aware_upsample`` for one image of host arrays.

    Bilinear (half-pixel centres, OpenCV) where the four low-resolution neighbours span at most
    ``edge_ratio`` (max / min); elsewhere the depth of the neighbour minimising
    ``|guide_hr - guide_lr[neighbour]|_1 + distance_weight * (1 - bilinear weight)``, the first
    of (top-left, top-right, bottom-left, bottom-right) on ties, computed in float32 in the
    torch version's order so that the same neighbour wins.

    Args:
        depth: (h, w) float32 depth, any unit (0 = none).
        guide_lr: (h, w, C) guide at the depth's size: uint8 0..255 (scaled by 1/255 as torch
            does) or float [0, 1]; any strides (e.g. a view of a permuted tensor).
        guide_hr: (H, W, C) the guide at the output size, same dtype kind.
        edge_ratio: > 1.
        distance_weight: how strongly nearer neighbours win colour ties.

    Returns:
        (H, W) float32, a new array.

    Raises:
        ShapeError: shapes that do not fit together.
    """
    import cv2

    depth = np.ascontiguousarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        msg = f'depth must be (h, w); got {depth.shape}'
        raise ShapeError(msg)
    h, w = depth.shape
    if guide_lr.ndim != 3 or guide_lr.shape[:2] != (h, w):
        msg = f'guide_lr must be ({h}, {w}, C) like depth; got {guide_lr.shape}'
        raise ShapeError(msg)
    if guide_hr.ndim != 3 or guide_hr.shape[2] != guide_lr.shape[2]:
        msg = f'guide_hr must be (H, W, {guide_lr.shape[2]}); got {guide_hr.shape}'
        raise ShapeError(msg)
    height, width = guide_hr.shape[:2]
    out = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
    ay, ax = _axis(height, h), _axis(width, w)

    # Edge cells: a low-resolution cell (i, j) and its right/lower neighbours (clamped) are
    # the four neighbours of every output pixel whose lower neighbours are (i, j): a 2x2
    # erosion / dilation anchored at the top-left, borders replicated (exact min / max; for
    # finite depth the same as numpy's pairwise minimum / maximum, in a third of the time).
    window = np.ones((2, 2), np.uint8)
    low = cv2.erode(depth, window, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    high = cv2.dilate(depth, window, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    np.maximum(high, np.float32(0.0), out=high)  # the torch version starts its maximum at 0
    cells = np.flatnonzero(high > np.float32(edge_ratio) * low)
    if cells.size == 0:
        return out
    cell_i, cell_j = np.divmod(cells, w)
    rows = ay.stop[cell_i] - ay.start[cell_i]
    cols = ax.stop[cell_j] - ax.start[cell_j]
    # Inner cells cover at most ~ceil(H / h) x ceil(W / w) output pixels, border cells (the
    # clamped first and last) a few more: each kind as (pixel in the cell, cell) arrays padded
    # to its largest cell, so that the cells' colours broadcast (no per-pixel gathers) and few
    # numpy calls run; the padding is masked out.
    inner_rows, inner_cols = int(ay.stop[h // 2] - ay.start[h // 2]) + 1, \
        int(ax.stop[w // 2] - ax.start[w // 2]) + 1
    inner = (rows <= inner_rows) & (cols <= inner_cols)
    flat_out = out.reshape(-1)
    lr_rows, hr_rows = _rows(guide_lr), _rows(guide_hr)
    for group in (np.flatnonzero(inner), np.flatnonzero(~inner)):
        if group.size == 0:
            continue
        g_rows, g_cols = rows[group], cols[group]
        n_rows, n_cols = int(g_rows.max()), int(g_cols.max())
        if n_rows == 0 or n_cols == 0:
            continue  # shrinking: no output pixel has these lower neighbours
        gi, gj = cell_i[group], cell_j[group]
        dy, dx = np.divmod(np.arange(n_rows * n_cols), n_cols)
        y = np.minimum(ay.start[gi] + dy[:, None], height - 1)  # (S, K)
        x = np.minimum(ax.start[gj] + dx[:, None], width - 1)
        pixel = y * width + x
        chosen = _choose(depth, lr_rows, _gather_rows(hr_rows, pixel), gi, gj,
                         ay.frac.take(y), ax.frac.take(x), distance_weight)
        valid = (dy[:, None] < g_rows) & (dx[:, None] < g_cols)
        if valid.all():
            flat_out[pixel] = chosen
        else:
            flat_out[pixel[valid]] = chosen[valid]
    return out


def _choose(depth: np.ndarray, lr_rows: np.ndarray, colour_hr: np.ndarray, cell_i: np.ndarray,
            cell_j: np.ndarray, fy: np.ndarray, fx: np.ndarray,
            distance_weight: float) -> np.ndarray:
    """The chosen neighbour's depth for (S, K) output pixels of K cells: ``colour_hr``
    (S, K, C), ``fy``/``fx`` (S, K) upper-neighbour weights, cells (K,) at (i, j)."""
    h, w = depth.shape
    below_i, right_j = np.minimum(cell_i + 1, h - 1), np.minimum(cell_j + 1, w - 1)
    corners = (cell_i * w + cell_j, cell_i * w + right_j, below_i * w + cell_j,
               below_i * w + right_j)
    corner_depth = depth.reshape(-1).take(corners)  # (4, K)
    channels = colour_hr.shape[2]
    hr = _unit(np.ascontiguousarray(np.moveaxis(colour_hr, 2, 0)))  # (C, S, K)
    one = np.float32(1.0)
    gy, gx = one - fy, one - fx
    weights = (gy * gx, gy * fx, fy * gx, fy * fx)
    dw = np.float32(distance_weight)
    best_cost = np.full(fy.shape, np.inf, np.float32)
    best_corner = np.zeros(fy.shape, np.uint8)
    for index, (corner, weight) in enumerate(zip(corners, weights)):
        colour = _unit(_gather_rows(lr_rows, corner)).T  # (C, K)
        cost = np.abs(hr[0] - colour[0])
        for c in range(1, channels):  # torch sums the channels in order
            cost += np.abs(hr[c] - colour[c])
        cost += dw * (one - weight)
        better = cost < best_cost  # strict: the first corner wins ties, as in torch
        np.minimum(best_cost, cost, out=best_cost)
        # Branch-free select (a masked write is ~10x slower on random masks): a later
        # corner's index is larger than any earlier one.
        np.maximum(best_corner, better.view(np.uint8) * np.uint8(index), out=best_corner)
    return corner_depth.reshape(-1).take(best_corner.astype(np.intp) * corner_depth.shape[1]
                                         + np.arange(corner_depth.shape[1]))


def _rows(guide: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H * W, C), a view when the pixels are contiguous."""
    return guide.reshape(-1, guide.shape[2])


def _gather_rows(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``rows[index]`` for (N, C) pixels without copying all of ``rows``.

    ``take`` first makes a strided array contiguous: every pixel of the channel-reversed view
    of a bgr8 message (26 ms at 1080p, against 3 for the whole upsampling). Such a view is
    gathered from its contiguous reverse and reversed back; other strided ones by fancy
    indexing, which follows the strides.
    """
    if rows.flags.c_contiguous:
        return rows.take(index, axis=0)
    if rows[:, ::-1].flags.c_contiguous:
        return rows[:, ::-1].take(index, axis=0)[..., ::-1]
    return rows[index]
