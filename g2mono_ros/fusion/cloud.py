"""Depth image -> 3-D points in the camera optical frame (the node's PointCloud2 output).

ROS-free: arrays in, arrays out. Pixel rays come from the camera model (lens distortion undone
with OpenCV) and are cached per camera and decimation, so a frame costs one multiply.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.camera import CameraModel

__all__ = ['depth_to_points', 'pack_rgb', 'pixel_rays']


@lru_cache(maxsize=8)
def _rays(camera: CameraModel, decimation: int) -> np.ndarray:
    rows = np.arange(0, camera.height, decimation, dtype=np.float64)
    cols = np.arange(0, camera.width, decimation, dtype=np.float64)
    u, v = np.meshgrid(cols, rows)
    if camera.is_distorted:
        import cv2

        pixels = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        normalised = cv2.undistortPoints(pixels, np.asarray(camera.K, np.float64),
                                         np.asarray(camera.D, np.float64)).reshape(u.shape + (2,))
        x, y = normalised[..., 0], normalised[..., 1]
    else:
        x = (u - camera.cx) / camera.fx
        y = (v - camera.cy) / camera.fy
    rays = np.stack([x, y, np.ones_like(x)], axis=-1).astype(np.float32)
    rays.setflags(write=False)
    return rays


def pixel_rays(camera: CameraModel, decimation: int = 1) -> np.ndarray:
    """Rays through every ``decimation``-th pixel centre, scaled to z = 1.

    Args:
        camera: intrinsics (and distortion) of the depth image.
        decimation: keep rows and columns 0, n, 2n, ... (>= 1).

    Returns:
        (ceil(H/n), ceil(W/n), 3) float32 ``[x/z, y/z, 1]``, camera optical frame; read-only.

    Raises:
        ShapeError: ``decimation`` < 1.
    """
    if decimation < 1:
        msg = f'decimation must be >= 1; got {decimation}'
        raise ShapeError(msg)
    return _rays(camera, int(decimation))


def depth_to_points(depth_m: np.ndarray, camera: CameraModel, *, decimation: int = 1,
                    max_range_m: float = 0.0, rgb: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Back-project a depth image: ``p = depth(u, v) * ray(u, v)`` for each kept pixel.

    Args:
        depth_m: (H, W) float32 metres of camera depth (z), 0 or non-finite = no data (REP 118).
        camera: the camera model of that image (same H, W).
        decimation: keep every n-th row and column.
        max_range_m: drop points deeper than this (z, metres); 0 = no limit.
        rgb: optional (H, W, 3) uint8 colour of the same image.

    Returns:
        ``(xyz (N, 3) float32 metres in the camera optical frame, colours (N, 3) uint8 or
        None)``, row-major pixel order, only pixels with depth.

    Raises:
        ShapeError: the depth, colour and camera sizes differ, or decimation < 1.
    """
    depth = np.asarray(depth_m)
    if depth.shape != (camera.height, camera.width):
        msg = (f'depth image is {depth.shape}, camera model is '
               f'{(camera.height, camera.width)}; expected the same (H, W)')
        raise ShapeError(msg)
    if rgb is not None and rgb.shape != (camera.height, camera.width, 3):
        msg = f'rgb must be {(camera.height, camera.width, 3)}; got {rgb.shape}'
        raise ShapeError(msg)
    rays = pixel_rays(camera, decimation).reshape(-1, 3)
    z = depth[::decimation, ::decimation].astype(np.float32, copy=False).reshape(-1)
    keep = (z > 0) & np.isfinite(z)
    if max_range_m > 0:
        keep &= z <= max_range_m
    # Flat indices + take: about 4x faster than boolean-mask indexing of the (H, W, 3) arrays.
    index = np.flatnonzero(keep)
    xyz = np.take(rays, index, axis=0)
    xyz *= z[index][:, None]
    colours = None if rgb is None else np.take(
        rgb[::decimation, ::decimation].reshape(-1, 3), index, axis=0)
    return xyz, colours


def pack_rgb(colours: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N,) float32 holding 0x00RRGGBB, the PCL/rviz ``rgb`` field.

    Raises:
        ShapeError: not (N, 3) uint8.
    """
    if colours.ndim != 2 or colours.shape[1] != 3 or colours.dtype != np.uint8:
        msg = f'colours must be (N, 3) uint8; got {colours.shape} {colours.dtype}'
        raise ShapeError(msg)
    c = colours.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)
