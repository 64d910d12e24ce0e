"""One projection per camera/LiDAR pair: the network-size sparse depth map and, when wanted, the
image-size one, both z-buffered from the same projected points (numpy, or torch on any device).

The transform and lens model run once per scan at the image size; the network-size map takes
each point to the network pixel that contains the centre of its image pixel, which is exactly
``resize_sparse_depth`` (nearest point kept) applied to the image-size map.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.projection import project_points, project_points_torch
from g2mono_ros.imaging import network_pixel_index, network_pixel_table, zbuffer_nearest

__all__ = ['SparseMaps', 'SparseProjector', 'network_pixel_index']


class SparseMaps(NamedTuple):
    """The projected scan of one pair.

    Attributes:
        net: (h, w) float32 metres at the network input size, 0 = no point (finite, >= 0).
        full: (H, W) float32 metres at the image size, or None when not asked for.
        full_pixels: (M,) int64 flat indices into ``full`` outside which it is 0 (repeats
            possible), so an encoder need not scan the whole map; None on a device or
            without ``full``.
    """

    net: Any
    full: Any | None
    full_pixels: np.ndarray | None = None


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
        self._staging_read: Any = None  # CUDA event: the last upload out of _staging is done

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
        h, w = _size(net_hw)
        if self._device is not None:
            return self._project_torch(points_lidar, T_cam_lidar, camera, (h, w),
                                       min_range=min_range, max_range=max_range,
                                       want_full=want_full)
        hit = project_points(points_lidar, T_cam_lidar, camera, min_range=min_range,
                             max_range=max_range)
        H, W = camera.height, camera.width
        full = full_pixels = None
        if want_full:
            full_pixels = hit.row * W + hit.col
            full = self._render('full', H * W, full_pixels, hit.depth).reshape(H, W)
        if (h, w) == (H, W) and full is not None:
            return SparseMaps(full, full, full_pixels)
        lin = network_pixel_table(H, h).take(hit.row) * w
        lin += network_pixel_table(W, w).take(hit.col)
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

    def _staged(self, points: Any) -> Any:
        """The points in a pinned host buffer kept between frames (grown, never shrunk).

        Pinning a fresh tensor every frame costs a page-locking allocation. Before a refill,
        the previous upload out of it must be done: the engine's one synchronisation per frame
        has normally seen to that (then the wait on its event returns at once), but a frame
        that failed between this upload and the engine's synchronisation has not.
        """
        import torch

        n = int(points.shape[0])
        if self._staging_read is not None and not self._staging_read.query():
            self._staging_read.synchronize()
        if self._staging is None or self._staging.shape[0] < n:
            self._staging = torch.empty((max(n, 1), 3), dtype=torch.float32, pin_memory=True)
        staged = self._staging[:n]
        staged.copy_(points)
        return staged

    def _project_torch(self, points_lidar: Any, T_cam_lidar: np.ndarray, camera: CameraModel,
                       net_hw: tuple[int, int], *, min_range: float, max_range: float,
                       want_full: bool) -> SparseMaps:
        import torch

        if not isinstance(points_lidar, torch.Tensor):
            points_lidar = torch.from_numpy(np.ascontiguousarray(points_lidar, np.float32))
        device = points_lidar.device if self._device is None else torch.device(self._device)
        if points_lidar.device != device:
            staged = points_lidar.device.type == 'cpu' and device.type == 'cuda'
            if staged:
                points_lidar = self._staged(points_lidar.to(torch.float32))
            points_lidar = points_lidar.to(device, non_blocking=True)
            if staged:
                if self._staging_read is None:
                    self._staging_read = torch.cuda.Event()
                self._staging_read.record(torch.cuda.current_stream(device))  # after it
        rows, cols, z, valid = project_points_torch(points_lidar, T_cam_lidar, camera,
                                                    min_range=min_range, max_range=max_range)
        H, W = camera.height, camera.width
        h, w = net_hw
        full = None
        if want_full:
            full = _scatter_nearest(rows * W + cols, z, valid, H * W).view(H, W)
        if (h, w) == (H, W) and full is not None:
            return SparseMaps(full, full)
        lin = network_pixel_index(rows, H, h) * w + network_pixel_index(cols, W, w)
        net = _scatter_nearest(lin, z, valid, h * w).view(h, w)
        return SparseMaps(net, full)


def _scatter_nearest(lin: Any, z: Any, valid: Any, size: int) -> Any:
    import torch

    # Culled points go to a spare last slot that is cut off; include_self=False leaves
    # untouched pixels at 0 and gives touched ones the minimum of their points.
    lin = torch.where(valid, lin, torch.full_like(lin, size))
    flat = torch.zeros(size + 1, dtype=torch.float32, device=z.device)
    flat.scatter_reduce_(0, lin, z, reduce='amin', include_self=False)
    return flat[:size]


def _size(net_hw: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in net_hw)
    except (TypeError, ValueError):
        h = w = 0
    if h <= 0 or w <= 0:
        msg = f'net_hw must be two positive sizes (height, width); got {net_hw!r}'
        raise ShapeError(msg)
    return h, w
