"""Projection: OpenCV reference values, extrinsic conventions, z-buffer, culling, numpy == torch."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.fusion.projection import (
    distortion_radius_limit,
    project_camera_points,
    project_camera_points_torch,
    project_points,
    project_points_to_depth,
    project_points_to_depth_torch,
    project_points_torch,
)
from g2mono_ros.fusion.transforms import (
    R_OPTICAL_FROM_REP103,
    invert_transform,
    transform_from_translation_quaternion,
)

K_KITTI = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
D_PLUMB = np.array([-0.3691481, 0.1968681, 0.001353473, 0.0005677587, -0.06770705])
D_FISHEYE = np.array([0.1, -0.05, 0.01, -0.002])
D_RATIONAL = np.array([0.2, -0.1, 0.001, -0.002, 0.01, 0.3, -0.05, 0.02])
DISTORTIONS = {'none': np.zeros(0), 'plumb_bob': D_PLUMB, 'rational_polynomial': D_RATIONAL,
               'equidistant': D_FISHEYE}
T_IDENTITY = np.eye(4)
T_REP103 = np.eye(4)
T_REP103[:3, :3] = R_OPTICAL_FROM_REP103


def _kitti(model: str = 'plumb_bob') -> CameraModel:
    return CameraModel(width=1242, height=375, K=K_KITTI, D=DISTORTIONS[model],
                       distortion_model=model)  # type: ignore[arg-type]


def _small(model: str = 'plumb_bob') -> CameraModel:
    """64x128 camera with KITTI-like field of view."""
    return _kitti(model).scaled(128, 64)


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    """Points in a REP 103 LiDAR frame: a ring of walls and ground, 1..60 m."""
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(-np.pi, np.pi, n)
    elevation = rng.uniform(-0.4, 0.1, n)
    rng_m = rng.uniform(1.0, 60.0, n)
    return np.stack([rng_m * np.cos(elevation) * np.cos(azimuth),
                     rng_m * np.cos(elevation) * np.sin(azimuth),
                     rng_m * np.sin(elevation)], axis=1).astype(np.float32)


# -- reference values from OpenCV 5.0 ---------------------------------------------------------

REF_POINTS = np.array([[0.3, -0.2, 1.0], [-2.0, 0.5, 10.0]])
# cv2.projectPoints(REF_POINTS, zeros(3), zeros(3), K_KITTI, D_PLUMB)
REF_PLUMB = [[816.3305809856342, 35.168938782884595], [467.4958582301642, 208.41571779889696]]
# cv2.fisheye.projectPoints(REF_POINTS[:, None], zeros(3), zeros(3), K_KITTI, D_FISHEYE)
REF_FISHEYE = [[819.6528489549885, 32.79163403000766], [466.6693388232907, 208.57649029417735]]
# cv2.projectPoints(REF_POINTS, zeros(3), zeros(3), K_KITTI, D_RATIONAL)
REF_RATIONAL = [[822.5954511844263, 30.798632576715704], [465.6791706457326, 208.83936501469185]]


@pytest.mark.parametrize(('model', 'expected'), [('plumb_bob', REF_PLUMB),
                                                 ('equidistant', REF_FISHEYE),
                                                 ('rational_polynomial', REF_RATIONAL)])
def test_reference_values(model: str, expected: list) -> None:
    np.testing.assert_allclose(project_camera_points(REF_POINTS, _kitti(model)), expected,
                               atol=1e-9)
    torch_uv = project_camera_points_torch(torch.from_numpy(REF_POINTS), _kitti(model))
    np.testing.assert_allclose(torch_uv.numpy(), expected, atol=1e-9)


def _opencv(points: np.ndarray, cam: CameraModel) -> np.ndarray:
    zero = np.zeros(3)
    if cam.distortion_model == 'equidistant':
        uv, _ = cv2.fisheye.projectPoints(points[:, None, :], zero, zero, cam.K, cam.D)
    else:
        uv, _ = cv2.projectPoints(points, zero, zero, cam.K, cam.D)
    return uv.reshape(-1, 2)


@pytest.mark.parametrize('model', list(DISTORTIONS))
def test_matches_opencv_random(model: str) -> None:
    rng = np.random.default_rng(7)
    pts = np.stack([rng.uniform(-1, 1, 500), rng.uniform(-0.3, 0.3, 500),
                    rng.uniform(1.5, 50, 500)], axis=1)
    cam = _kitti(model)
    np.testing.assert_allclose(project_camera_points(pts, cam), _opencv(pts, cam), atol=1e-7)
    # float32 path (the one the depth projector uses) within a thousandth of a pixel
    uv32 = project_camera_points(pts.astype(np.float32), cam)
    assert uv32.dtype == np.float32
    np.testing.assert_allclose(uv32, _opencv(pts, cam), atol=2e-3)


def test_project_camera_points_batch_and_shape() -> None:
    pts = np.random.default_rng(1).uniform(0.5, 5, size=(3, 7, 3))
    out = project_camera_points(pts, _kitti())
    assert out.shape == (3, 7, 2)
    for b in range(3):
        np.testing.assert_array_equal(out[b], project_camera_points(pts[b], _kitti()))
    tout = project_camera_points_torch(torch.from_numpy(pts), _kitti())
    assert tuple(tout.shape) == (3, 7, 2)
    np.testing.assert_allclose(tout.numpy(), out, rtol=1e-12)
    with pytest.raises(ShapeError, match=r'points_cam must have shape \(\*, 3\); got \(7, 2\)'):
        project_camera_points(np.zeros((7, 2)), _kitti())
    with pytest.raises(ShapeError, match=r'points_cam must have shape \(\*, 3\); got \(7, 4\)'):
        project_camera_points_torch(torch.zeros(7, 4), _kitti())


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', 'equidistant'])
def test_torch_gradcheck(model: str) -> None:
    pts = torch.tensor([[0.3, -0.2, 1.0], [-2.0, 0.5, 10.0], [0.1, 0.1, 3.0]],
                       dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: project_camera_points_torch(p, _kitti(model)),
                                    (pts,))


# -- depth images ---------------------------------------------------------------------------

def test_smoke_shapes_and_dtypes() -> None:
    depth, mask = project_points_to_depth(_cloud(3000), T_REP103, _small())
    assert depth.shape == (64, 128) and depth.dtype == np.float32
    assert mask.shape == (64, 128) and mask.dtype == np.bool_
    assert mask.sum() > 50
    np.testing.assert_array_equal(mask, depth > 0)
    tdepth, tmask = project_points_to_depth_torch(torch.from_numpy(_cloud(3000)), T_REP103,
                                                  _small())
    assert tdepth.shape == (64, 128) and tdepth.dtype == torch.float32
    assert tmask.dtype == torch.bool


def test_point_ten_metres_ahead_is_depth_ten() -> None:
    """A camera 0.2 m ahead of and 0.1 m above the LiDAR, looking along the LiDAR's +x:
    the extrinsic is built the way a user would read it off the robot (camera pose in the
    LiDAR frame, ROS's body->optical quaternion), then inverted."""
    T_lidar_cam = transform_from_translation_quaternion([0.2, 0.0, 0.1], [-0.5, 0.5, -0.5, 0.5])
    T_cam_lidar = invert_transform(T_lidar_cam)
    cam = CameraModel(width=128, height=64, K=[[100, 0, 64], [0, 100, 32], [0, 0, 1]], D=[],
                      distortion_model='none')
    ahead = np.array([[10.2, 0.0, 0.1]])  # 10 m in front of the camera, on its axis
    for project in (project_points_to_depth, project_points_to_depth_torch):
        depth, mask = project(ahead if project is project_points_to_depth
                              else torch.from_numpy(ahead), T_cam_lidar, cam)
        depth = np.asarray(depth)
        assert np.asarray(mask).sum() == 1
        assert depth[32, 64] == pytest.approx(10.0, abs=1e-5)
    # left of the camera -> left half of the image; above -> top half
    left, _ = project_points_to_depth(np.array([[10.2, 2.0, 0.1]]), T_cam_lidar, cam)
    up, _ = project_points_to_depth(np.array([[10.2, 0.0, 1.1]]), T_cam_lidar, cam)
    assert np.argwhere(left > 0)[0].tolist() == [32, 64 - 20]
    assert np.argwhere(up > 0)[0].tolist() == [32 - 10, 64]
    # behind the LiDAR -> behind the camera -> nothing
    behind, _ = project_points_to_depth(np.array([[-10.0, 0.0, 0.1]]), T_cam_lidar, cam,
                                        min_range=0.0)
    assert not behind.any()


def _ray_cloud(cam: CameraModel, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on the rays through chosen pixel centres, several depths per ray, shuffled.

    Camera frame = LiDAR frame (identity extrinsic) and z exact in float32, so the expected
    depth image is exactly the per-pixel minimum.
    """
    rng = np.random.default_rng(seed)
    pix = rng.choice(cam.width * cam.height, size=400, replace=False)
    rows, cols = np.divmod(pix, cam.width)
    xn = (cols - cam.cx) / cam.fx
    yn = (rows - cam.cy) / cam.fy
    expected = np.zeros((cam.height, cam.width), np.float32)
    pts = []
    for r, c, x, y in zip(rows, cols, xn, yn):
        depths = rng.uniform(1.0, 50.0, rng.integers(1, 6)).astype(np.float32)
        expected[r, c] = depths.min()
        pts += [[x * d, y * d, d] for d in depths]
    pts = np.asarray(pts, np.float32)
    return pts[rng.permutation(len(pts))], expected


@pytest.mark.parametrize('seed', range(3))
def test_zbuffer_nearest_wins(seed: int) -> None:
    cam = CameraModel(width=128, height=64, K=[[80, 0, 63.5], [0, 80, 31.5], [0, 0, 1]], D=[],
                      distortion_model='none')
    pts, expected = _ray_cloud(cam, seed)
    depth, _ = project_points_to_depth(pts, T_IDENTITY, cam, min_range=0.1)
    np.testing.assert_array_equal(depth, expected)
    tdepth, _ = project_points_to_depth_torch(torch.from_numpy(pts), T_IDENTITY, cam,
                                              min_range=0.1)
    np.testing.assert_array_equal(tdepth.numpy(), expected)
    # write order must not matter
    rev, _ = project_points_to_depth(pts[::-1].copy(), T_IDENTITY, cam, min_range=0.1)
    np.testing.assert_array_equal(rev, expected)


@pytest.mark.parametrize('model', list(DISTORTIONS))
def test_project_points_is_the_depth_image_before_zbuffer(model: str) -> None:
    pts = _cloud(5000, seed=6)
    cam = _small(model)
    hit = project_points(pts, T_REP103, cam, min_range=1.0, max_range=50.0)
    assert hit.index.dtype == np.int64 and np.all(np.diff(hit.index) > 0)
    assert len(hit.index) == len(hit.row) == len(hit.col) == len(hit.depth) > 100
    assert hit.depth.dtype == np.float32
    assert (hit.row >= 0).all() and (hit.row < 64).all() and (hit.col >= 0).all()
    assert (hit.col < 128).all() and (hit.depth >= 1.0).all() and (hit.depth <= 50.0).all()
    # the rows it names project where it says (OpenCV, float64)
    pc = pts[hit.index].astype(np.float64) @ T_REP103[:3, :3].T
    uv = _opencv(pc, cam)
    assert (np.abs(uv[:, 0] - hit.col) <= 0.5 + 1e-3).all()
    assert (np.abs(uv[:, 1] - hit.row) <= 0.5 + 1e-3).all()
    np.testing.assert_allclose(hit.depth, pc[:, 2], rtol=1e-6)
    # the depth image is the per-pixel minimum over these points
    expected = np.full((64, 128), np.inf, np.float32)
    np.minimum.at(expected, (hit.row, hit.col), hit.depth)
    expected[np.isinf(expected)] = 0
    depth, _ = project_points_to_depth(pts, T_REP103, cam, min_range=1.0, max_range=50.0)
    np.testing.assert_array_equal(depth, expected)


def test_project_points_errors() -> None:
    with pytest.raises(ShapeError, match=r'points_lidar must have shape \(N, 3\); got \(5, 2\)'):
        project_points(np.zeros((5, 2)), T_REP103, _small())
    with pytest.raises(ConfigError, match='need 0 <= min_range < max_range'):
        project_points(np.zeros((5, 3)), T_REP103, _small(), min_range=2.0, max_range=1.0)


def test_zbuffer_occlusion_far_point_hidden() -> None:
    cam = _small('none')
    near_then_far = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 20.0], [0.0, 0.0, 7.0]])
    for order in (near_then_far, near_then_far[::-1].copy()):
        depth, mask = project_points_to_depth(order, T_IDENTITY, cam)
        assert mask.sum() == 1 and depth.max() == 5.0


def _loop_reference(points: np.ndarray, transform: np.ndarray, cam: CameraModel,
                    min_range: float, max_range: float) -> np.ndarray:
    """Per-point Python loop in float64 with OpenCV for the lens: the obvious implementation."""
    depth = np.zeros((cam.height, cam.width))
    limit = distortion_radius_limit(cam)
    for p in points.astype(np.float64):
        pc = transform[:3, :3] @ p + transform[:3, 3]
        if not (pc[2] > 0 and min_range <= pc[2] <= max_range):
            continue
        if (pc[0] / pc[2]) ** 2 + (pc[1] / pc[2]) ** 2 > limit ** 2:
            continue
        u, v = _opencv(pc[None], cam)[0]
        col, row = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
        if 0 <= col < cam.width and 0 <= row < cam.height:
            if depth[row, col] == 0 or pc[2] < depth[row, col]:
                depth[row, col] = pc[2]
    return depth


@pytest.mark.parametrize('model', list(DISTORTIONS))
def test_matches_loop_reference(model: str) -> None:
    pts = _cloud(2000, seed=11)
    transform = T_REP103.copy()
    transform[:3, 3] = [0.05, -0.1, -0.2]
    cam = _small(model)
    depth, mask = project_points_to_depth(pts, transform, cam, min_range=2.0, max_range=40.0)
    ref = _loop_reference(pts, transform, cam, 2.0, 40.0)
    # float32 vs float64: a point within ~1e-4 px of a pixel edge may land one pixel over.
    agree = (ref > 0) == mask
    assert agree.mean() > 0.998, f'{(~agree).sum()} pixels disagree'
    both = (ref > 0) & mask
    assert both.sum() > 100
    close = np.isclose(depth[both], ref[both], rtol=1e-5)
    assert close.mean() > 0.995


@pytest.mark.parametrize('model', ['none', 'plumb_bob', 'rational_polynomial', 'equidistant'])
def test_depth_image_round_trip(model: str) -> None:
    """Unproject every depth pixel with OpenCV's undistortion, project again: same image."""
    cam = _small(model)
    depth, mask = project_points_to_depth(_cloud(4000, seed=8), T_REP103, cam)
    rows, cols = np.nonzero(mask)
    pix = np.stack([cols, rows], axis=1).astype(np.float64)[:, None, :]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)
    if model == 'equidistant':
        norm = cv2.fisheye.undistortPoints(pix, cam.K, cam.D, criteria=criteria)
    elif model == 'none':
        norm = (pix - [cam.cx, cam.cy]) / [cam.fx, cam.fy]
    else:
        norm = cv2.undistortPoints(pix, cam.K, cam.D, criteria=criteria)
    norm = norm.reshape(-1, 2)
    # Near the fold (r -> distortion_radius_limit) the lens curve is flat and OpenCV's
    # iterative undistortion stops short; keep the pixels it inverted exactly.
    rays = np.concatenate([norm, np.ones((len(norm), 1))], axis=1)
    converged = np.abs(project_camera_points(rays, cam) - pix.reshape(-1, 2)).max(axis=1) < 1e-6
    assert converged.mean() > 0.98
    rows, cols, norm = rows[converged], cols[converged], norm[converged]
    d = depth[rows, cols].astype(np.float64)
    pts = np.concatenate([norm * d[:, None], d[:, None]], axis=1)
    again, again_mask = project_points_to_depth(pts, T_IDENTITY, cam)
    expected = np.zeros_like(depth)
    expected[rows, cols] = depth[rows, cols]
    np.testing.assert_array_equal(again_mask, expected > 0)
    np.testing.assert_allclose(again, expected, rtol=1e-6)


def test_range_window_is_depth_along_axis() -> None:
    cam = _small('none')
    # on-axis points: depth == range; off-axis point at z=10 but Euclidean 11.2
    # each point on its own pixel (x/z differs); depth z, not the Euclidean distance, is tested
    pts = np.array([[-0.1, 0, 0.49], [-0.1, 0, 0.5], [-2.0, 0.3, 20.0], [20.0, 0, 100.0],
                    [30.0, 0, 100.01], [5.0, 0.0, 10.0]], np.float32)
    cam_wide = CameraModel(width=128, height=64, K=[[20, 0, 63.5], [0, 20, 31.5], [0, 0, 1]],
                           D=[], distortion_model='none')
    depth, _ = project_points_to_depth(pts, T_IDENTITY, cam_wide, min_range=0.5, max_range=100.0)
    assert sorted(depth[depth > 0].tolist()) == pytest.approx([0.5, 10.0, 20.0, 100.0])
    depth, _ = project_points_to_depth(pts, T_IDENTITY, cam_wide, min_range=0.5, max_range=10.5)
    assert sorted(depth[depth > 0].tolist()) == pytest.approx([0.5, 10.0])
    tdepth, _ = project_points_to_depth_torch(torch.from_numpy(pts), T_IDENTITY, cam_wide,
                                              min_range=0.5, max_range=10.5)
    np.testing.assert_array_equal(tdepth.numpy(), depth)
    assert cam.width == 128


def test_outside_image_and_pixel_edges() -> None:
    cam = CameraModel(width=4, height=2, K=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], D=[],
                      distortion_model='none')
    # u = x at z = 1: pixel 0 covers [-0.5, 0.5), pixel 3 covers [2.5, 3.5)
    pts = np.array([[-0.5, 0, 1], [-0.5001, 0, 1], [3.49, 0, 1], [3.5, 0, 1], [0.49, 1.49, 1],
                    [0, 1.5, 1]], np.float32)
    depth, mask = project_points_to_depth(pts, T_IDENTITY, cam, min_range=0.1)
    assert np.argwhere(mask).tolist() == [[0, 0], [0, 3], [1, 0]]
    tdepth, tmask = project_points_to_depth_torch(torch.from_numpy(pts), T_IDENTITY, cam,
                                                  min_range=0.1)
    np.testing.assert_array_equal(tmask.numpy(), mask)


def test_behind_camera_dropped_even_with_zero_min_range() -> None:
    cam = _small('none')
    pts = np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 0.0], [0.1, 0.1, -1e-3]], np.float32)
    depth, _ = project_points_to_depth(pts, T_IDENTITY, cam, min_range=0.0)
    assert not depth.any()
    tdepth, _ = project_points_to_depth_torch(torch.from_numpy(pts), T_IDENTITY, cam,
                                              min_range=0.0)
    assert not tdepth.any()


def test_non_finite_points_ignored_quietly() -> None:
    cam = _small('plumb_bob')
    pts = np.array([[np.nan, 0, 10], [0, np.inf, 10], [0, 0, np.inf], [0, 0, -np.inf],
                    [0.0, 0.0, 10.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        depth, mask = project_points_to_depth(pts, T_IDENTITY, cam)
    assert mask.sum() == 1 and depth.max() == 10.0
    tdepth, tmask = project_points_to_depth_torch(torch.from_numpy(pts), T_IDENTITY, cam)
    np.testing.assert_array_equal(tdepth.numpy(), depth)


def test_distortion_fold_guard() -> None:
    """k1 < 0 makes the radial curve turn over at r = 1/sqrt(-3 k1); OpenCV still maps points
    beyond it, mirrored into the image. They must not become depth."""
    cam = CameraModel(width=1242, height=375, K=K_KITTI, D=[-0.3, 0, 0, 0, 0],
                      distortion_model='plumb_bob')
    assert distortion_radius_limit(cam) == pytest.approx(1 / np.sqrt(0.9), rel=1e-3)
    far_off_axis = np.array([[1.9, 0.0, 1.0]])  # 62.2 degrees right of the axis
    u, v = _opencv(far_off_axis, cam)[0]
    assert 0 <= u < cam.width and 0 <= v < cam.height  # OpenCV folds it back in (left side)
    assert u < cam.cx
    depth, _ = project_points_to_depth(far_off_axis, T_IDENTITY, cam)
    assert not depth.any()
    tdepth, _ = project_points_to_depth_torch(torch.from_numpy(far_off_axis), T_IDENTITY, cam)
    assert not tdepth.any()
    inside = np.array([[0.5, 0.0, 1.0]])
    assert project_points_to_depth(inside, T_IDENTITY, cam)[1].sum() == 1


def test_radius_limit_values() -> None:
    assert distortion_radius_limit(_kitti('none')) == np.inf
    positive = CameraModel(width=10, height=10, K=np.eye(3) * [10, 10, 1], D=[0.1, 0.01, 0, 0, 0])
    assert distortion_radius_limit(positive) == np.inf
    fisheye = CameraModel(width=10, height=10, K=np.eye(3) * [10, 10, 1],
                          D=[-0.4, 0, 0, 0], distortion_model='equidistant')
    # theta_d = theta (1 - 0.4 theta^2) turns at theta = 1/sqrt(1.2)
    assert distortion_radius_limit(fisheye) == pytest.approx(np.tan(1 / np.sqrt(1.2)), rel=1e-3)
    rational = CameraModel(width=10, height=10, K=np.eye(3) * [10, 10, 1],
                           D=[0, 0, 0, 0, 0, -0.5, 0, 0], distortion_model='rational_polynomial')
    # r / (1 - 0.5 r^2) has a pole at r = sqrt(2)
    assert distortion_radius_limit(rational) == pytest.approx(np.sqrt(2), rel=1e-3)


def test_out_hw_scales_intrinsics() -> None:
    pts = _cloud(3000, seed=5)
    cam = _kitti('plumb_bob').scaled(256, 80)
    depth, mask = project_points_to_depth(pts, T_REP103, cam, out_hw=(40, 128))
    ref, ref_mask = project_points_to_depth(pts, T_REP103, cam.scaled(128, 40))
    np.testing.assert_array_equal(depth, ref)
    assert depth.shape == (40, 128) and mask.sum() > 50
    tdepth, _ = project_points_to_depth_torch(torch.from_numpy(pts), T_REP103, cam,
                                              out_hw=(40, 128))
    np.testing.assert_array_equal(tdepth.numpy(), ref)


@pytest.mark.parametrize('model', list(DISTORTIONS))
@pytest.mark.parametrize('seed', range(3))
def test_numpy_torch_agree(model: str, seed: int) -> None:
    pts = _cloud(5000, seed=seed)
    transform = transform_from_translation_quaternion([0.1, -0.05, -0.3],
                                                      [0.49, -0.51, 0.5, 0.5])
    cam = _small(model)
    depth, mask = project_points_to_depth(pts, transform, cam, min_range=1.0, max_range=50.0)
    tdepth, tmask = project_points_to_depth_torch(torch.from_numpy(pts), transform, cam,
                                                  min_range=1.0, max_range=50.0)
    if model == 'equidistant':
        # atan may differ by an ulp between numpy and torch: allow a point over a pixel edge
        assert (tmask.numpy() != mask).sum() <= 2
    else:
        np.testing.assert_array_equal(tmask.numpy(), mask)
        np.testing.assert_array_equal(tdepth.numpy(), depth)
    # float64 input gives the same as float32 input (computed in float32 either way)
    d64, _ = project_points_to_depth(pts.astype(np.float64), transform, cam, min_range=1.0,
                                     max_range=50.0)
    np.testing.assert_array_equal(d64, depth)


def test_torch_accepts_tensor_transform_and_numpy_points() -> None:
    pts = _cloud(2000, seed=3)
    ref, _ = project_points_to_depth(pts, T_REP103, _small())
    depth, _ = project_points_to_depth_torch(pts, torch.from_numpy(T_REP103), _small())
    np.testing.assert_array_equal(depth.numpy(), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_torch_cuda_matches_numpy() -> None:
    pts = _cloud(20000, seed=4)
    ref, ref_mask = project_points_to_depth(pts, T_REP103, _small())
    depth, mask = project_points_to_depth_torch(torch.from_numpy(pts).cuda(), T_REP103, _small())
    assert depth.is_cuda and mask.is_cuda
    # Same float32 operations in the same order; allow a point to tip over a pixel edge in
    # case the device rounds a division differently (not observed on the CPU).
    got_mask = mask.cpu().numpy()
    assert (got_mask != ref_mask).sum() <= 2
    both = got_mask & ref_mask
    np.testing.assert_allclose(depth.cpu().numpy()[both], ref[both], rtol=1e-6)


def test_empty_cloud() -> None:
    depth, mask = project_points_to_depth(np.zeros((0, 3), np.float32), T_REP103, _small())
    assert depth.shape == (64, 128) and not mask.any()
    tdepth, tmask = project_points_to_depth_torch(torch.zeros(0, 3), T_REP103, _small())
    assert tdepth.shape == (64, 128) and not tmask.any()


@pytest.mark.parametrize('project', [project_points_to_depth, project_points_to_depth_torch])
def test_input_errors(project) -> None:
    def points(shape):
        arr = np.zeros(shape, np.float32)
        return arr if project is project_points_to_depth else torch.from_numpy(arr)

    with pytest.raises(ShapeError, match=r'points_lidar must have shape \(N, 3\); got \(10, 4\)'):
        project(points((10, 4)), T_REP103, _small())
    with pytest.raises(ShapeError, match=r'points_lidar must have shape \(N, 3\); got \(3,\)'):
        project(points((3,)), T_REP103, _small())
    with pytest.raises(ShapeError, match=r'T_cam_lidar must have shape \(4, 4\); got \(3, 4\)'):
        project(points((10, 3)), T_REP103[:3], _small())
    with pytest.raises(ShapeError, match='T_cam_lidar must be finite'):
        project(points((10, 3)), np.full((4, 4), np.nan), _small())
    with pytest.raises(ShapeError, match=r'out_hw must be \(height, width\); got \(64,\)'):
        project(points((10, 3)), T_REP103, _small(), out_hw=(64,))
    with pytest.raises(ShapeError, match='scaled size must be positive'):
        project(points((10, 3)), T_REP103, _small(), out_hw=(0, 64))
    with pytest.raises(ConfigError, match='need 0 <= min_range < max_range'):
        project(points((10, 3)), T_REP103, _small(), min_range=5.0, max_range=5.0)
    with pytest.raises(ConfigError, match='min_range=-1.0'):
        project(points((10, 3)), T_REP103, _small(), min_range=-1.0)


@pytest.mark.parametrize('model', ['none', 'plumb_bob'])
@pytest.mark.parametrize('min_range', [0.0, 1.0])
def test_project_points_point_by_point_like_torch_with_skew_and_bad_rows(model: str,
                                                                         min_range: float
                                                                         ) -> None:
    """The numpy projector's short cuts (no skew term when K[0, 1] is 0, no z > 0 test when
    min_range > 0) keep every point the torch twin keeps, at the same pixel and depth."""
    pts = _cloud(4000, seed=7).astype(np.float64)
    pts[::97] = np.nan
    pts[::101, 1] = np.inf
    pts[::103] *= 1e37  # overflows float32: inf on the way
    pts[:50, 0] = 0.0  # on the camera plane after the REP 103 rotation: z = 0
    transform = T_REP103.copy()
    transform[:3, 3] = [0.05, -0.1, 0.0]
    for skew in (0.0, 2.5):
        K = K_KITTI.copy()
        K[0, 1] = skew
        cam = CameraModel(width=1242, height=375, K=K, D=DISTORTIONS[model],
                          distortion_model=model).scaled(256, 96)  # type: ignore[arg-type]
        hit = project_points(pts, transform, cam, min_range=min_range, max_range=50.0)
        with np.errstate(over='ignore'):
            pts32 = torch.from_numpy(pts.astype(np.float32))
        rows, cols, z, valid = (t.numpy() for t in project_points_torch(
            pts32, transform, cam, min_range=min_range, max_range=50.0))
        assert hit.index.size > 100
        np.testing.assert_array_equal(hit.row, rows[valid])
        np.testing.assert_array_equal(hit.col, cols[valid])
        np.testing.assert_array_equal(hit.depth.view(np.uint32), z[valid].view(np.uint32))
        assert np.isfinite(pts[hit.index]).all()
