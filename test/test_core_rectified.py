"""Raw vs rectified cameras: a rectified CameraInfo projects with P (no distortion, Tx/Ty of P),
checked against OpenCV's projectPoints and image_geometry's formulas; binning and ROI by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from g2mono_ros.errors import MessageError, ShapeError
from g2mono_ros.fusion.camera import CameraModel, camera_model_from_calibration
from g2mono_ros.fusion.projection import (project_camera_points, project_points_to_depth,
                                          project_points_to_depth_torch)

W, H = 640, 480
# A raw camera with strong barrel distortion, and the rectified camera image_proc would publish
# for it: P's 3x3 differs from K (cv2.getOptimalNewCameraMatrix-like), R a small rotation.
K = [500.0, 0.0, 318.0, 0.0, 505.0, 243.0, 0.0, 0.0, 1.0]
D = [-0.3, 0.09, 0.001, -0.002, 0.0]
P = [430.0, 0.0, 325.5, 0.0, 0.0, 430.0, 236.25, 0.0, 0.0, 0.0, 1.0, 0.0]
R = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0].reshape(-1).tolist()


def _calibration(**overrides):
    values = dict(width=W, height=H, K=K, D=D, distortion_model='plumb_bob', P=P)
    values.update(overrides)
    return values


def _scene() -> np.ndarray:
    """(N, 3) points in the camera optical frame reaching every part of the image, corners too."""
    rng = np.random.default_rng(3)
    z = rng.uniform(2.0, 30.0, 4000)
    x = rng.uniform(-0.75, 0.75, z.size) * z
    y = rng.uniform(-0.55, 0.55, z.size) * z
    return np.stack([x, y, z], axis=1)


def test_rectified_uses_p_without_distortion_as_opencv_projects_it() -> None:
    camera = camera_model_from_calibration(**_calibration(), camera_model='rectified')
    assert camera.distortion_model == 'none' and camera.D.size == 0
    np.testing.assert_array_equal(camera.K, np.reshape(P, (3, 4))[:, :3])
    pts = _scene()
    # Reference: cv2.projectPoints(pts, rvec 0, tvec 0, P[:3,:3], no distortion)
    ref, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                               np.reshape(P, (3, 4))[:, :3], None)
    np.testing.assert_allclose(project_camera_points(pts, camera), ref.reshape(-1, 2),
                               atol=1e-9)


def test_raw_vs_rectified_fails_if_distortion_is_applied_to_a_rectified_image() -> None:
    """The same CameraInfo gives different cameras; on a rectified image a point lands where P
    says, so applying D again (the old behaviour) puts it tens of pixels off at the corners."""
    raw = camera_model_from_calibration(**_calibration(), camera_model='raw')
    rect = camera_model_from_calibration(**_calibration(), camera_model='rectified')
    corner = np.array([[0.62 * 10.0, 0.47 * 10.0, 10.0]])  # near the bottom-right corner
    expected = np.reshape(P, (3, 4)) @ np.append(corner[0], 1.0)
    expected = expected[:2] / expected[2]
    np.testing.assert_allclose(project_camera_points(corner, rect)[0], expected, atol=1e-9)
    # The old behaviour (K + D) and D applied on P's matrix both miss by many pixels.
    p_with_d = CameraModel(W, H, np.reshape(P, (3, 4))[:, :3], D)
    for wrong in (raw, p_with_d):
        off = np.linalg.norm(project_camera_points(corner, wrong)[0] - expected)
        assert off > 5.0, f'distortion applied twice must show at a corner; got {off:.1f} px'
    # Through the LiDAR projection: the depth pixel is P's pixel, not the distorted one.
    depth, _ = project_points_to_depth(corner.astype(np.float32), np.eye(4), rect,
                                       min_range=0.1, max_range=100.0)
    row, col = np.argwhere(depth > 0)[0]
    assert (col, row) == tuple(int(np.floor(v + 0.5)) for v in expected)


def test_stereo_right_camera_tx_of_p_is_applied() -> None:
    """image_geometry: u = (fx' X + Tx) / Z + cx' with Tx = -fx' B (B the baseline)."""
    baseline = 0.12
    p = list(P)
    p[3] = -430.0 * baseline
    p[7] = 2.15  # a Ty too, to check the second row
    camera = camera_model_from_calibration(**_calibration(P=p), camera_model='rectified')
    np.testing.assert_allclose(camera.offset_m, [-baseline, 2.15 / 430.0, 0.0])
    pts = _scene()
    u = (430.0 * pts[:, 0] + p[3]) / pts[:, 2] + 325.5
    v = (430.0 * pts[:, 1] + p[7]) / pts[:, 2] + 236.25
    np.testing.assert_allclose(project_camera_points(pts, camera), np.stack([u, v], 1),
                               atol=1e-9)
    ref, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), camera.offset_m,
                               camera.K, None)
    np.testing.assert_allclose(project_camera_points(pts, camera), ref.reshape(-1, 2), atol=1e-9)
    # numpy and torch LiDAR projections agree, and depth stays the point's z.
    T = np.eye(4)
    depth_np, mask = project_points_to_depth(pts.astype(np.float32), T, camera)
    depth_t, _ = project_points_to_depth_torch(pts.astype(np.float32), T, camera)
    np.testing.assert_array_equal(depth_np, depth_t.numpy())
    inside = (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
    assert mask.sum() > 0.8 * inside.sum()
    assert set(np.round(depth_np[mask], 4)) <= set(np.round(pts[:, 2].astype(np.float32), 4))


def test_rectified_binning_and_roi_by_hand() -> None:
    """image_geometry (C++): shift by the ROI offset, then divide by the binning, on P."""
    camera = camera_model_from_calibration(**_calibration(), binning_x=2, binning_y=2,
                                           roi=(100, 40, 400, 300), camera_model='rectified')
    assert (camera.width, camera.height) == (200, 150)
    np.testing.assert_allclose(camera.K, [[215.0, 0.0, (325.5 - 100) / 2],
                                          [0.0, 215.0, (236.25 - 40) / 2], [0, 0, 1]])
    raw = camera_model_from_calibration(**_calibration(), binning_x=4, binning_y=1,
                                        camera_model='raw')
    assert (raw.width, raw.height) == (160, 480)
    np.testing.assert_allclose(raw.K, [[125.0, 0.0, 79.5], [0.0, 505.0, 243.0], [0, 0, 1]])
    np.testing.assert_array_equal(raw.D, D)  # distortion acts on normalised coordinates


def test_a_binned_image_sees_a_point_where_the_full_image_does() -> None:
    """Pixel u in the full image is u / binning in the binned one (image_geometry's rule)."""
    full = camera_model_from_calibration(**_calibration(), camera_model='rectified')
    half = camera_model_from_calibration(**_calibration(), binning_x=2, binning_y=2,
                                         camera_model='rectified')
    pts = _scene()
    np.testing.assert_allclose(project_camera_points(pts, half),
                               project_camera_points(pts, full) / 2.0, atol=1e-9)


@pytest.mark.parametrize(('overrides', 'pattern'), [
    ({'P': [0.0] * 12}, 'camera_model rectified needs CameraInfo P'),
    ({'P': [1.0] * 4}, 'camera_model rectified needs CameraInfo P'),
    ({'P': [430.0, 0, 320, 0, 0, 430, 240, 0, 0.1, 0, 1, 0]}, 'last row of its 3x3 part'),
    ({'roi': (600, 0, 100, 100)}, 'ROI x 600 y 0 100x100 lies outside the calibrated 640x480'),
    ({'camera_model': 'undistorted'}, 'camera_model must be one of raw, rectified'),
])
def test_bad_calibration_raises(overrides, pattern) -> None:
    values = {**_calibration(), 'camera_model': 'rectified', **overrides}
    with pytest.raises(ShapeError, match=pattern):
        camera_model_from_calibration(**values)


def test_offset_survives_scaling_and_equality() -> None:
    p = list(P)
    p[3] = -43.0
    camera = camera_model_from_calibration(**_calibration(P=p), camera_model='rectified')
    assert camera.scaled(320, 240).offset_m.tolist() == camera.offset_m.tolist()
    assert camera != camera_model_from_calibration(**_calibration(), camera_model='rectified')
    assert CameraModel(W, H, K, D).offset_m.tolist() == [0.0, 0.0, 0.0]


def test_camera_info_message_rectified_and_raw() -> None:
    pytest.importorskip('sensor_msgs.msg')
    from sensor_msgs.msg import CameraInfo

    from g2mono_ros.ros.codecs import camera_info_to_model

    msg = CameraInfo()
    msg.width, msg.height = W, H
    msg.k, msg.d, msg.r, msg.p = K, D, R, P
    msg.distortion_model = 'plumb_bob'
    msg.binning_x = 2
    rect = camera_info_to_model(msg, 'rectified')
    assert rect == camera_model_from_calibration(**_calibration(), binning_x=2,
                                                 camera_model='rectified')
    assert camera_info_to_model(msg) == camera_model_from_calibration(**_calibration(),
                                                                      binning_x=2)
    msg.p = [0.0] * 12  # an uncalibrated driver
    with pytest.raises(MessageError, match='invalid CameraInfo: camera_model rectified needs'):
        camera_info_to_model(msg, 'rectified')
