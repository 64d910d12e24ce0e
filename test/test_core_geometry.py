"""CameraModel (validation, rescaling against cv2.resize) and rigid transforms."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.config import ExtrinsicConfig
from g2mono_ros.errors import ShapeError
from g2mono_ros.fusion.projection import project_camera_points
from g2mono_ros.fusion.transforms import (
    R_OPTICAL_FROM_REP103,
    invert_transform,
    quaternion_from_rotation,
    quaternion_to_rotation,
    transform_from_extrinsic,
    transform_from_translation_quaternion,
    transform_points,
)

K_KITTI = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])


def _camera(**overrides) -> CameraModel:
    args = dict(width=1242, height=375, K=K_KITTI, D=np.array([-0.1, 0.01, 0.0, 0.0, 0.0]),
                distortion_model='plumb_bob')
    args.update(overrides)
    return CameraModel(**args)


# -- CameraModel ----------------------------------------------------------------------------

def test_camera_smoke() -> None:
    cam = _camera()
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (721.5377, 721.5377, 609.5593, 172.854)
    assert cam.K.dtype == np.float64 and cam.K.shape == (3, 3) and cam.D.shape == (5,)
    assert cam.is_distorted
    assert not _camera(D=np.zeros(5)).is_distorted


def test_camera_is_frozen_and_read_only() -> None:
    cam = _camera()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cam.width = 10  # type: ignore[misc]
    with pytest.raises(ValueError, match='read-only'):
        cam.K[0, 0] = 1.0


def test_camera_equality_and_hash_by_value() -> None:
    a, b = _camera(), _camera(K=K_KITTI.reshape(-1).tolist())
    assert a == b and hash(a) == hash(b)
    assert a != _camera(width=1240)
    assert len({a, b}) == 1


def test_camera_coefficients_padded_and_trailing_zeros_trimmed() -> None:
    assert _camera(D=[0.1, 0.2, 0.0, 0.0]).D.tolist() == [0.1, 0.2, 0.0, 0.0, 0.0]
    assert _camera(D=[0.1, 0.2, 0, 0, 0, 0, 0, 0]).D.shape == (5,)
    assert _camera(distortion_model='rational_polynomial', D=[0.1] * 5 + [0.0] * 9).D.shape == (8,)
    assert _camera(distortion_model='none', D=[]).D.shape == (0,)


@pytest.mark.parametrize(('overrides', 'match'), [
    ({'width': 0}, r'camera size must be positive; got width 0, height 375'),
    ({'height': -3}, r'camera size must be positive; got width 1242, height -3'),
    ({'K': np.eye(2)}, r'K must be \(3, 3\) or 9 values; got shape \(2, 2\)'),
    ({'K': np.diag([0.0, 700.0, 1.0])}, r'positive focal lengths fx, fy; got fx=0.0, fy=700.0'),
    ({'K': np.diag([700.0, -1.0, 1.0])}, r'positive focal lengths fx, fy; got fx=700.0, fy=-1.0'),
    ({'K': np.full((3, 3), np.nan)}, r'K must be finite'),
    ({'distortion_model': 'fisheye62'}, r"unknown distortion model 'fisheye62'"),
    ({'D': [0.1, 0, 0, 0, 0, 0.5]}, r"'plumb_bob' takes 5 coefficients; got 6 with non-zero extras \[0.5\]"),
    ({'D': [np.nan]}, r'distortion coefficients must be finite'),
])
def test_camera_validation(overrides: dict, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        _camera(**overrides)


def test_scaled_intrinsics_formula() -> None:
    cam = _camera().scaled(621, 750)
    sx, sy = 0.5, 2.0
    np.testing.assert_allclose(cam.K, [[721.5377 * sx, 0, (609.5593 + 0.5) * sx - 0.5],
                                       [0, 721.5377 * sy, (172.854 + 0.5) * sy - 0.5],
                                       [0, 0, 1]])
    np.testing.assert_array_equal(cam.D, _camera().D)
    assert (cam.width, cam.height) == (621, 750)
    assert _camera().scaled(1242, 375) is not None
    with pytest.raises(ShapeError, match='scaled size must be positive; got width 0'):
        _camera().scaled(0, 10)


def test_scaled_round_trip() -> None:
    cam = _camera()
    back = cam.scaled(311, 94).scaled(1242, 375)
    np.testing.assert_allclose(back.K, cam.K, rtol=1e-12, atol=1e-9)


def test_scaled_matches_cv2_resize_pixel_centres() -> None:
    """A ramp image whose value is its own x (or y) coordinate, resized by OpenCV, tells which
    original coordinate each new pixel samples; the scaled camera must project there."""
    cam = CameraModel(width=128, height=64, K=[[90.0, 0, 61.3], [0, 95.0, 30.2], [0, 0, 1]],
                      D=[], distortion_model='none')
    ramp_u = np.tile(np.arange(128, dtype=np.float32), (64, 1))
    ramp_v = np.tile(np.arange(64, dtype=np.float32)[:, None], (1, 128))
    for width, height in ((64, 32), (200, 100), (96, 48)):
        small = cam.scaled(width, height)
        res_u = cv2.resize(ramp_u, (width, height), interpolation=cv2.INTER_LINEAR)
        res_v = cv2.resize(ramp_v, (width, height), interpolation=cv2.INTER_LINEAR)
        rng = np.random.default_rng(width)
        pts = np.stack([rng.uniform(-0.3, 0.3, 50), rng.uniform(-0.2, 0.2, 50), np.ones(50)], 1)
        uv_big = project_camera_points(pts, cam)
        uv_small = project_camera_points(pts, small)
        # The value OpenCV resamples at the new pixel nearest to each point, plus the
        # sub-pixel offset mapped back, must be the original coordinate of the point.
        cols = np.clip(np.rint(uv_small[:, 0]).astype(int), 1, width - 2)
        rows = np.clip(np.rint(uv_small[:, 1]).astype(int), 1, height - 2)
        sampled_u = res_u[rows, cols] + (uv_small[:, 0] - cols) * 128 / width
        sampled_v = res_v[rows, cols] + (uv_small[:, 1] - rows) * 64 / height
        np.testing.assert_allclose(sampled_u, uv_big[:, 0], atol=1e-3)
        np.testing.assert_allclose(sampled_v, uv_big[:, 1], atol=1e-3)


# -- transforms -----------------------------------------------------------------------------

def _quat_from_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.append(axis * np.sin(angle / 2), np.cos(angle / 2))


def test_quaternion_identity_and_axis_rotation() -> None:
    np.testing.assert_array_equal(quaternion_to_rotation([0, 0, 0, 1]), np.eye(3))
    rot_z = quaternion_to_rotation(_quat_from_axis_angle([0, 0, 1], np.pi / 2))
    np.testing.assert_allclose(rot_z @ [1, 0, 0], [0, 1, 0], atol=1e-15)


def test_quaternion_matches_cv2_rodrigues() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        axis = rng.normal(size=3)
        angle = rng.uniform(-np.pi, np.pi)
        rvec = axis / np.linalg.norm(axis) * angle
        expected, _ = cv2.Rodrigues(rvec)
        np.testing.assert_allclose(quaternion_to_rotation(_quat_from_axis_angle(axis, angle)),
                                   expected, atol=1e-12)


def test_quaternion_round_trip_all_branches() -> None:
    rng = np.random.default_rng(1)
    quats = list(rng.normal(size=(50, 4)))
    # Near-180-degree rotations about each axis exercise every branch of Shepperd's method.
    quats += [np.array([1, 0.01, 0, 0.001]), np.array([0, 1, 0.02, 0.001]),
              np.array([0.01, 0, 1, 0.001])]
    for q in quats:
        q = q / np.linalg.norm(q)
        back = quaternion_from_rotation(quaternion_to_rotation(q))
        assert back[3] >= 0
        np.testing.assert_allclose(back, q if q[3] >= 0 else -q, atol=1e-12)


def test_quaternion_normalised_and_errors() -> None:
    np.testing.assert_allclose(quaternion_to_rotation([0, 0, 0, 5.0]), np.eye(3))
    with pytest.raises(ShapeError, match=r'must have shape \(4,\); got \(3,\)'):
        quaternion_to_rotation([0, 0, 1])
    with pytest.raises(ShapeError, match='must be non-zero'):
        quaternion_to_rotation([0, 0, 0, 0])
    with pytest.raises(ShapeError, match='must be finite'):
        quaternion_to_rotation([0, 0, np.nan, 1])
    with pytest.raises(ShapeError, match='orthonormal with determinant'):
        quaternion_from_rotation(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ShapeError, match=r'rotation must have shape \(3, 3\)'):
        quaternion_from_rotation(np.eye(4))


def test_optical_rotation_matches_ros_convention() -> None:
    # ROS publishes body -> optical as rpy (-pi/2, 0, -pi/2), i.e. q = (-0.5, 0.5, -0.5, 0.5)
    # for T_body_optical; our LiDAR -> optical rotation is its inverse.
    np.testing.assert_allclose(quaternion_to_rotation([-0.5, 0.5, -0.5, 0.5]),
                               R_OPTICAL_FROM_REP103.T, atol=1e-15)
    np.testing.assert_allclose(quaternion_from_rotation(R_OPTICAL_FROM_REP103),
                               [0.5, -0.5, 0.5, 0.5])
    # forward -> +z (depth), left -> -x (image left), up -> -y (image up)
    np.testing.assert_array_equal(R_OPTICAL_FROM_REP103 @ [10, 0, 0], [0, 0, 10])
    np.testing.assert_array_equal(R_OPTICAL_FROM_REP103 @ [0, 1, 0], [-1, 0, 0])
    np.testing.assert_array_equal(R_OPTICAL_FROM_REP103 @ [0, 0, 1], [0, -1, 0])


def test_transform_and_inverse() -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        transform = transform_from_translation_quaternion(rng.normal(size=3), rng.normal(size=4))
        assert transform.shape == (4, 4) and transform.dtype == np.float64
        np.testing.assert_array_equal(transform[3], [0, 0, 0, 1])
        np.testing.assert_allclose(transform @ invert_transform(transform), np.eye(4), atol=1e-12)
        np.testing.assert_allclose(invert_transform(transform), np.linalg.inv(transform),
                                   atol=1e-12)


def test_transform_errors() -> None:
    with pytest.raises(ShapeError, match=r'translation must have shape \(3,\); got \(2,\)'):
        transform_from_translation_quaternion([0, 0], [0, 0, 0, 1])
    with pytest.raises(ShapeError, match=r'transform must have shape \(4, 4\); got \(3, 4\)'):
        invert_transform(np.zeros((3, 4)))
    with pytest.raises(ShapeError, match=r'points must have shape \(\.\.\., 3\); got \(5, 2\)'):
        transform_points(np.eye(4), np.zeros((5, 2)))


def test_transform_points_batch_and_dtype() -> None:
    transform = transform_from_translation_quaternion([1, 2, 3], [0, 0, 0.3826834, 0.9238795])
    pts = np.random.default_rng(3).normal(size=(2, 5, 3)).astype(np.float32)
    out = transform_points(transform, pts)
    assert out.shape == (2, 5, 3) and out.dtype == np.float32
    for b in range(2):
        np.testing.assert_allclose(out[b], transform_points(transform, pts[b]), rtol=1e-6)
    np.testing.assert_allclose(out[0, 0], transform[:3, :3] @ pts[0, 0] + [1, 2, 3], rtol=1e-5)


def test_transform_from_extrinsic_config() -> None:
    cfg = ExtrinsicConfig(translation=(0.1, -0.2, 0.3), rotation=(0.5, -0.5, 0.5, 0.5))
    transform = transform_from_extrinsic(cfg)
    np.testing.assert_allclose(transform[:3, :3], R_OPTICAL_FROM_REP103, atol=1e-15)
    np.testing.assert_array_equal(transform[:3, 3], [0.1, -0.2, 0.3])
