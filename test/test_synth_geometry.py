"""Cross-check of the generator against the core projection: LiDAR points projected with
``project_points_to_depth`` land on the ray-cast ground-truth depth.

A point falls anywhere inside its pixel while the ground truth is the depth at the pixel centre,
so on a slanted surface the two differ by up to half a pixel's depth gradient. The checks are:
(1) on locally planar pixels the difference stays within that gradient bound, and (2) where the
surface is nearly fronto-parallel (gradient < 1 cm/pixel) the median difference is < 1 cm. The
negative controls show that a 3 cm depth-axis or 10 cm lateral extrinsic error, a 0.5 degree
tilt, ignoring the lens distortion or a half-pixel principal-point error each break these checks,
so the test can fail. (A 3 cm lateral error is below what a 256 px wide image resolves here.)
"""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.projection import project_points_to_depth
from g2mono_ros.synth import SyntheticFrame, SyntheticSequence

H, W = 192, 256


def _consistency(frame: SyntheticFrame, T_cam_lidar: np.ndarray | None = None,
                 camera: CameraModel | None = None) -> tuple[float, float, int]:
    """(share of planar pixels within the gradient bound, median |diff| on flat pixels, count)."""
    depth, mask = project_points_to_depth(
        frame.points_lidar, frame.T_cam_lidar if T_cam_lidar is None else T_cam_lidar,
        frame.camera if camera is None else camera, max_range=80.0)
    gt = frame.depth_gt.astype(np.float64)
    pad = np.pad(gt, 1, mode='edge')
    left, right = pad[1:-1, :-2], pad[1:-1, 2:]
    up, down = pad[:-2, 1:-1], pad[2:, 1:-1]
    window = np.lib.stride_tricks.sliding_window_view(pad, (3, 3))
    gradient = 0.5 * (0.5 * np.abs(right - left) + 0.5 * np.abs(down - up))
    curvature = np.maximum(np.abs(left + right - 2 * gt), np.abs(up + down - 2 * gt))
    # Away from depth edges: full neighbourhood has depth and the surface is locally planar.
    planar = mask & (window.min(axis=(-1, -2)) > 0) & (curvature < 0.02 * gt + 0.01)
    diff = np.abs(depth.astype(np.float64) - gt)
    within = diff[planar] <= 1.1 * gradient[planar] + 2e-3
    flat = planar & (gradient < 0.01)
    median_flat = float(np.median(diff[flat])) if flat.any() else float('nan')
    return float(within.mean()), median_flat, int(flat.sum())


@pytest.mark.parametrize(('seed', 'options'), [
    (2, {'beams': 16}),
    (3, {'beams': 32, 'distortion': True}),
])
def test_projected_points_land_on_ground_truth(seed, options):
    seq = SyntheticSequence(seed, num_frames=10, width=W, height=H, **options)
    for index in (0, 7):
        frame = seq.render(index)
        within, median_flat, flat_count = _consistency(frame)
        assert within > 0.98, f'frame {index}: only {within:.3f} of points within the bound'
        assert flat_count >= 20
        assert median_flat < 0.01, f'frame {index}: median |diff| {median_flat:.4f} m'


@pytest.fixture(scope='module')
def distorted_frame() -> SyntheticFrame:
    return SyntheticSequence(2, num_frames=1, width=W, height=H, distortion=True).render(0)


def test_reference_frame_passes(distorted_frame):
    within, median_flat, _ = _consistency(distorted_frame)
    assert within > 0.98 and median_flat < 0.01


@pytest.mark.parametrize('error', ['translation_z_3cm', 'translation_x_10cm', 'no_distortion',
                                   'principal_point_half_pixel', 'rotation_0.5deg'])
def test_wrong_geometry_is_detected(distorted_frame, error):
    T = distorted_frame.T_cam_lidar.copy()
    camera = distorted_frame.camera
    if error == 'translation_z_3cm':
        T[2, 3] += 0.03
    elif error == 'translation_x_10cm':
        T[0, 3] += 0.10
    elif error == 'no_distortion':
        camera = CameraModel(camera.width, camera.height, camera.K, np.zeros(5))
    elif error == 'principal_point_half_pixel':
        K = camera.K.copy()
        K[:2, 2] -= 0.5
        camera = CameraModel(camera.width, camera.height, K, camera.D)
    else:
        angle = np.deg2rad(0.5)
        tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(angle), -np.sin(angle)],
                         [0.0, np.sin(angle), np.cos(angle)]])
        T[:3, :3] = tilt @ T[:3, :3]
    within, median_flat, _ = _consistency(distorted_frame, T, camera)
    assert within < 0.9 or median_flat > 0.01, (within, median_flat)


@pytest.mark.parametrize('options', [{'beams': 16}, {'beams': 64, 'distortion': True,
                                                     'fov_x_deg': 120.0}])
def test_camera_sector_projects_like_the_full_sweep(options):
    """render() casts only the beams that can reach the image; nothing visible is lost."""
    seq = SyntheticSequence(1, num_frames=1, width=96, height=64, **options)
    sector, full = seq.render(0), seq.render(0, full_sweep=True)
    assert len(full.points_lidar) > 1.5 * len(sector.points_lidar)
    depth_sector, _ = project_points_to_depth(sector.points_lidar, sector.T_cam_lidar,
                                              sector.camera, min_range=0.1, max_range=200.0)
    depth_full, _ = project_points_to_depth(full.points_lidar, full.T_cam_lidar, full.camera,
                                            min_range=0.1, max_range=200.0)
    assert np.array_equal(depth_sector, depth_full)
