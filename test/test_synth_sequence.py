"""SyntheticSequence: determinism, frame contents, stamps, beam layouts and exact geometry."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.errors import ConfigError
from g2mono_ros.synth import LIDAR_MODELS, SyntheticSequence, default_T_cam_lidar
from g2mono_ros.fusion.transforms import transform_points

H, W = 48, 64


def _seq(seed: int = 3, **kwargs) -> SyntheticSequence:
    return SyntheticSequence(seed, num_frames=6, width=W, height=H, **kwargs)


def test_same_seed_gives_identical_frames_and_scans():
    a, b = _seq(5).render(2), _seq(5).render(2)
    for name in ('rgb', 'depth_gt', 'points_lidar', 'intensity', 'ring', 'T_cam_lidar'):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.image_stamp_ns == b.image_stamp_ns
    scan_a, scan_b = _seq(5).scan(1), _seq(5).scan(1)
    assert scan_a.points.tobytes() == scan_b.points.tobytes()
    assert scan_a.stamp_ns == scan_b.stamp_ns


def test_different_seed_gives_different_scene():
    a, b = _seq(5).render(0), _seq(6).render(0)
    assert not np.array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.depth_gt, b.depth_gt)


def test_render_is_random_access():
    """Frame 4 does not depend on whether frames 0-3 were rendered first."""
    seq = _seq(9)
    for i in range(4):
        seq.render(i)
    assert np.array_equal(seq.render(4).rgb, _seq(9).render(4).rgb)


def test_frame_shapes_dtypes_and_ranges():
    frame = _seq(1).render(0)
    assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_gt.shape == (H, W) and frame.depth_gt.dtype == np.float32
    n = len(frame.points_lidar)
    assert n > 500
    assert frame.points_lidar.shape == (n, 3) and frame.points_lidar.dtype == np.float32
    assert frame.intensity.shape == (n,) and frame.intensity.dtype == np.float32
    assert frame.ring.shape == (n,) and frame.ring.dtype == np.uint16
    assert frame.intensity.min() >= 0 and frame.intensity.max() <= 255
    assert frame.intensity.std() > 1.0, 'intensity should vary with material and angle'
    assert set(np.unique(frame.ring)) <= set(range(16))
    valid = frame.depth_gt[frame.depth_gt > 0]
    assert 0.5 < valid.min() and valid.max() <= 80.0
    # Ground below the horizon has depth; the sky (top rows, looking up) has none.
    assert (frame.depth_gt[-1] > 0).all()
    assert frame.camera.width == W and frame.camera.height == H
    assert frame.rgb.std() > 10, 'textures should make the image non-flat'


def test_ground_truth_is_depth_not_ray_length():
    """On the flat ground, z = camera height / (ray's downward component / ray's z)."""
    seq = _seq(2)
    frame = seq.image_frame(0)
    T = frame.T_world_cam
    v, u = H - 1, 5
    ray = np.linalg.solve(frame.camera.K, [u, v, 1.0])  # undistorted camera: pinhole
    ray_world = T[:3, :3] @ ray
    expected_z = -T[2, 3] / ray_world[2]  # ray scaled so that its camera z is 1
    assert frame.depth_gt[v, u] == pytest.approx(expected_z, rel=1e-5)


def test_points_lie_on_surfaces_the_camera_sees_or_behind_occluders():
    """Exact geometry: the camera ray towards each LiDAR point stops at the point (visible) or
    before it (occluded), never beyond it; most points are visible."""
    seq = _seq(4)
    frame = seq.render(1)
    p_cam = transform_points(frame.T_cam_lidar, frame.points_lidar.astype(np.float64))
    p_cam = p_cam[p_cam[:, 2] > 0.1]
    dist = np.linalg.norm(p_cam, axis=1)
    T = seq.T_world_cam(frame.image_stamp_ns)
    hits = seq.scene.cast(T[:3, 3], (p_cam / dist[:, None]) @ T[:3, :3].T)
    assert np.all(hits.range_m <= dist + 1e-3)
    assert np.mean(np.abs(hits.range_m - dist) < 1e-3) > 0.85


def test_stamps_are_30_and_10_hz_and_not_aligned():
    seq = SyntheticSequence(0, num_frames=30, width=W, height=H)
    images = np.array([seq.image_stamp_ns(i) for i in range(30)])
    scans = np.array([seq.scan_stamp_ns(j) for j in range(seq.num_scans)])
    assert np.abs(np.diff(images) - 1e9 / 30).max() <= 2.1e6
    assert np.abs(np.diff(scans) - 1e8).max() <= 4.1e6
    assert len(scans) in (10, 11)
    gaps = np.abs(images[:, None] - scans[None, :]).min(axis=0)
    assert gaps.min() > 0, 'no sweep shares a stamp with an image'
    assert gaps.max() < 60e6, 'every sweep has an image within the sync window'


@pytest.mark.parametrize(('beams', 'low', 'high'), [(16, -15.0, 15.0), (32, -30.67, 10.67),
                                                    (64, -24.33, 2.0)])
def test_beam_layouts_match_the_sensors(beams, low, high):
    seq = _seq(0, beams=beams)
    elevations = np.asarray(seq.lidar.elevations_deg)
    assert len(elevations) == beams
    assert elevations[0] == pytest.approx(low) and elevations[-1] == pytest.approx(high)
    assert np.all(np.diff(elevations) > 0)
    scan = seq.scan(0)
    measured = np.rad2deg(np.arctan2(scan.points[:, 2],
                                     np.linalg.norm(scan.points[:, :2], axis=1)))
    per_ring = [np.median(measured[scan.ring == r]) for r in np.unique(scan.ring)]
    assert np.allclose(per_ring, elevations[np.unique(scan.ring)], atol=1e-3)


def test_vlp16_spacing_is_two_degrees():
    assert np.allclose(np.diff(LIDAR_MODELS['vlp16'].elevations_deg), 2.0)


def test_full_scan_covers_360_degrees_and_sector_covers_the_image():
    seq = _seq(7)
    azimuth = np.arctan2(seq.scan(0).points[:, 1], seq.scan(0).points[:, 0])
    assert azimuth.min() < -3.0 and azimuth.max() > 3.0
    frame = seq.render(0)
    full = seq.render(0, full_sweep=True)
    assert len(full.points_lidar) > 2 * len(frame.points_lidar)


def test_extrinsic_is_non_trivial_rigid_transform():
    T = default_T_cam_lidar()
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3))
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)
    assert 0.1 < np.linalg.norm(T[:3, 3]) < 0.5
    # LiDAR forward (x) is roughly camera forward (z), but not exactly.
    forward = T[:3, :3] @ [1.0, 0.0, 0.0]
    assert 0.99 < forward[2] < 0.99999


def test_distortion_changes_rendering_and_camera_model():
    plain, distorted = _seq(1), _seq(1, distortion=True)
    assert distorted.camera.is_distorted and not plain.camera.is_distorted
    assert distorted.camera.distortion_model == 'plumb_bob'
    assert not np.array_equal(plain.image_frame(0).depth_gt, distorted.image_frame(0).depth_gt)


def test_range_noise_is_seeded():
    a = _seq(1, range_noise_m=0.02).render(0).points_lidar
    b = _seq(1, range_noise_m=0.02).render(0).points_lidar
    exact = _seq(1).render(0).points_lidar
    assert np.array_equal(a, b)
    ranges = np.linalg.norm(a, axis=1) - np.linalg.norm(exact, axis=1)
    assert 0.01 < ranges.std() < 0.03


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'beams': 24}, 'beams must be 16, 32 or 64'),
    ({'width': 4}, 'image size must be at least 8x8'),
    ({'num_frames': 0}, 'num_frames must be >= 1'),
    ({'lidar_rate_hz': 0.0}, 'lidar_rate_hz must be > 0'),
    ({'range_noise_m': -1.0}, 'range_noise_m must be >= 0'),
    ({'T_cam_lidar': np.ones((4, 4))}, 'T_cam_lidar must be a'),
])
def test_bad_options_raise_config_error(kwargs, match):
    options = {'num_frames': 2, 'width': W, 'height': H, **kwargs}
    with pytest.raises(ConfigError, match=match):
        SyntheticSequence(0, **options)


def test_negative_index_and_seed_rejected():
    with pytest.raises(ConfigError, match='frame index must be an integer >= 0'):
        _seq(0).render(-1)
    with pytest.raises(ConfigError, match='seed must be an integer >= 0'):
        SyntheticSequence(-3)
