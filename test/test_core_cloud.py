"""Depth image -> camera-frame points: geometry against the intrinsics, OpenCV's undistortion and
the LiDAR projection (a round trip), decimation, range limit, colours and the rgb packing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.cloud import depth_to_points, pack_rgb, pixel_rays
from g2mono_ros.fusion.projection import project_points_to_depth

K = np.array([[100.0, 0.0, 31.5], [0.0, 110.0, 23.5], [0.0, 0.0, 1.0]])


def _camera(distorted: bool = False) -> CameraModel:
    D = np.array([-0.2, 0.05, 0.001, -0.001, 0.0]) if distorted else np.zeros(5)
    return CameraModel(width=64, height=48, K=K, D=D, distortion_model='plumb_bob')


def test_pinhole_points_by_hand():
    depth = np.zeros((48, 64), np.float32)
    depth[10, 20] = 4.0  # (u, v) = (20, 10)
    depth[23, 31] = 2.0  # near the principal point
    xyz, colours = depth_to_points(depth, _camera())
    assert colours is None
    # row-major pixel order: (20, 10) first
    np.testing.assert_allclose(xyz, [[(20 - 31.5) / 100 * 4, (10 - 23.5) / 110 * 4, 4.0],
                                     [(31 - 31.5) / 100 * 2, (23 - 23.5) / 110 * 2, 2.0]],
                               rtol=1e-6)


def test_distorted_rays_match_opencv_undistort_points():
    camera = _camera(distorted=True)
    rays = pixel_rays(camera)
    pixel = np.array([[[5.0, 40.0]]])
    expected = cv2.undistortPoints(pixel, K, np.asarray(camera.D)).ravel()
    np.testing.assert_allclose(rays[40, 5, :2], expected, rtol=1e-5)
    assert rays.shape == (48, 64, 3) and not rays.flags.writeable
    assert pixel_rays(camera) is rays  # cached


@pytest.mark.parametrize('distorted', [False, True])
def test_projected_points_come_back_where_they_were(distorted):
    """LiDAR points in the camera frame -> sparse depth -> points: the same 3-D positions
    (up to the pixel rounding of the projection)."""
    camera = _camera(distorted)
    rng = np.random.default_rng(2)
    z = rng.uniform(2.0, 9.0, 200)
    pts = np.stack([rng.uniform(-0.2, 0.2, 200) * z, rng.uniform(-0.15, 0.15, 200) * z, z], 1)
    depth, mask = project_points_to_depth(pts.astype(np.float32), np.eye(4), camera,
                                          min_range=0.1, max_range=50.0)
    xyz, _ = depth_to_points(depth, camera)
    assert len(xyz) == mask.sum() > 100
    # each recovered point is within half a pixel's footprint of some original point
    nearest = np.min(np.linalg.norm(xyz[:, None, :] - pts[None, :, :], axis=2), axis=1)
    assert np.all(nearest < xyz[:, 2] * 0.8 / 100)


def test_decimation_range_limit_and_colours():
    camera = _camera()
    depth = np.full((48, 64), 5.0, np.float32)
    depth[:, 32:] = 30.0
    depth[0, 0] = np.nan  # REP 118 "no data" forms
    depth[0, 2] = 0.0
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = np.arange(64)
    xyz, colours = depth_to_points(depth, camera, decimation=2, max_range_m=20.0, rgb=rgb)
    assert len(xyz) == 24 * 16 - 2  # every other row/column, right half beyond 20 m, 2 holes
    assert np.all(xyz[:, 2] == 5.0)
    assert set(colours[:, 0].tolist()) == set(range(0, 32, 2))
    packed = pack_rgb(np.array([[255, 128, 1]], np.uint8))
    assert packed.dtype == np.float32 and packed.view(np.uint32)[0] == 0x00FF8001


def test_shapes_are_checked():
    camera = _camera()
    with pytest.raises(ShapeError, match=r'depth image is \(10, 10\)'):
        depth_to_points(np.zeros((10, 10), np.float32), camera)
    with pytest.raises(ShapeError, match='rgb must be'):
        depth_to_points(np.zeros((48, 64), np.float32), camera, rgb=np.zeros((48, 64), np.uint8))
    with pytest.raises(ShapeError, match='decimation must be >= 1'):
        pixel_rays(camera, 0)
    with pytest.raises(ShapeError, match=r'colours must be \(N, 3\) uint8'):
        pack_rgb(np.zeros((3, 3), np.float32))
