"""Scene variety for training: indoor rooms, 8-128 beam and solid-state LiDAR patterns, varied
intrinsics, and the real-camera degradations with their LiDAR dropouts."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.fusion.projection import project_points_to_depth
from g2mono_ros.synth.patterns import LIDAR_PATTERNS, SolidStateLidar, lidar_pattern, spinning_lidar
from g2mono_ros.synth.sequence import SyntheticSequence
from g2mono_ros.training.config import DataConfig
from g2mono_ros.training.photometric import (
    PhotometricConfig,
    photometric_augment,
    sensor_dropouts,
)


def test_indoor_room_is_closed_near_and_deterministic() -> None:
    seq = SyntheticSequence(11, width=96, height=64, environment='indoor', beams=16)
    frame = seq.render(3)
    depth = frame.depth_gt
    assert (depth > 0).all()  # walls and ceiling everywhere: no sky
    assert 0.2 < depth.min() and depth.max() < 12.0
    again = SyntheticSequence(11, width=96, height=64, environment='indoor', beams=16).render(3)
    np.testing.assert_array_equal(frame.rgb, again.rgb)
    np.testing.assert_array_equal(frame.points_lidar, again.points_lidar)
    sparse, mask = project_points_to_depth(frame.points_lidar, frame.T_cam_lidar, frame.camera)
    assert mask.sum() > 50
    # LiDAR and camera see the same room: projected points agree with the rendered depth
    # except at edges, where the two viewpoints differ.
    rel = np.abs(sparse[mask] - depth[mask]) / depth[mask]
    assert np.median(rel) < 0.01


def test_outdoor_scenes_are_unchanged_by_the_indoor_option() -> None:
    a = SyntheticSequence(5, width=64, height=48).render(0)
    b = SyntheticSequence(5, width=64, height=48, environment='outdoor').render(0)
    np.testing.assert_array_equal(a.depth_gt, b.depth_gt)
    with pytest.raises(ConfigError, match="environment must be 'outdoor' or 'indoor'"):
        SyntheticSequence(5, width=64, height=48, environment='space')


@pytest.mark.parametrize('name', sorted(LIDAR_PATTERNS))
def test_every_pattern_gives_unit_rays_and_ring_ids(name: str) -> None:
    model = lidar_pattern(name)
    dirs, ring = model.ray_directions()
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-9)
    assert ring.dtype == np.uint16 and ring.shape == (len(dirs),)
    assert int(ring.max()) < model.beams


def test_spinning_pattern_elevations_and_errors() -> None:
    model = spinning_lidar(8, low_deg=-10.0, high_deg=4.0)
    assert model.beams == 8 and model.elevations_deg[0] == -10.0 and model.elevations_deg[-1] == 4.0
    assert LIDAR_PATTERNS['os128'].beams == 128 and LIDAR_PATTERNS['spin8'].beams == 8
    with pytest.raises(ValueError, match='needs >= 2 beams'):
        spinning_lidar(1, low_deg=0.0, high_deg=1.0)
    with pytest.raises(ValueError, match='unknown LiDAR pattern'):
        lidar_pattern('vlp17')


def test_solid_state_rays_stay_in_the_cone_and_cover_it() -> None:
    model = SolidStateLidar(fov_deg=60.0, points_per_scan=5000)
    dirs, _ = model.ray_directions()
    off_axis = np.degrees(np.arccos(np.clip(dirs[:, 0], -1, 1)))
    assert off_axis.max() <= 30.0 + 1e-6
    assert off_axis.max() > 28.0 and off_axis.min() < 1.0
    # The rosette precesses: points fill every 45-degree slice of the cone.
    phase = np.degrees(np.arctan2(dirs[:, 2], dirs[:, 1])) % 360
    counts = np.histogram(phase[off_axis > 5], bins=8, range=(0, 360))[0]
    assert counts.min() > 0.5 * counts.mean()


def test_sequence_with_solid_state_scanner_projects_into_the_image() -> None:
    seq = SyntheticSequence(3, width=96, height=64, lidar=LIDAR_PATTERNS['solid'])
    frame = seq.render(0)
    _, mask = project_points_to_depth(frame.points_lidar, frame.T_cam_lidar, frame.camera)
    assert mask.sum() > 200


def test_data_config_checks_the_variety_keys() -> None:
    DataConfig(environments=('indoor', 'outdoor'), lidar_patterns=('spin8', 'solid'),
               fov_x_deg=(55.0, 100.0)).validate()
    with pytest.raises(ConfigError, match="'data.environments'"):
        DataConfig(environments=('cave',)).validate()
    with pytest.raises(ConfigError, match="'data.lidar_patterns'"):
        DataConfig(lidar_patterns=('vlp17',)).validate()
    with pytest.raises(ConfigError, match="'data.fov_x_deg'"):
        DataConfig(fov_x_deg=(100.0, 50.0)).validate()


def test_photometric_augment_is_seeded_and_keeps_shape() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    everything = PhotometricConfig(**{name: 1.0 for name in PhotometricConfig.__dataclass_fields__
                                      if name.startswith('p_')})
    a = photometric_augment(rgb, np.random.default_rng(5), everything)
    b = photometric_augment(rgb, np.random.default_rng(5), everything)
    assert a.rgb.shape == rgb.shape and a.rgb.dtype == np.uint8
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert a.specular.any()
    assert not np.array_equal(a.rgb, rgb)
    with pytest.raises(ShapeError, match='rgb must be'):
        photometric_augment(rgb[..., 0], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="'simulation.photometric.p_noise'"):
        PhotometricConfig(p_noise=1.5)


def test_sensor_dropouts_remove_dark_shiny_and_out_of_fov_points() -> None:
    sparse = np.full((40, 40), 5.0, np.float32)
    rgb = np.full((40, 40, 3), 200, np.uint8)
    rgb[:, :10] = 3  # a black surface
    specular = np.zeros((40, 40), bool)
    specular[20:25, 20:25] = True
    only = dict(p_dark_dropout=0.0, p_specular_dropout=0.0, p_partial_fov=0.0)
    rng = np.random.default_rng(0)
    out = sensor_dropouts(sparse, rgb, specular, rng,
                          PhotometricConfig(**{**only, 'p_specular_dropout': 1.0}))
    assert (out[specular] == 0).all() and (out[~specular] == 5.0).all()
    out = sensor_dropouts(sparse, rgb, specular, rng,
                          PhotometricConfig(**{**only, 'p_dark_dropout': 1.0}))
    assert (out[:, 10:] == 5.0).all() and (out[:, :10] == 0).mean() > 0.2
    out = sensor_dropouts(sparse, rgb, specular, np.random.default_rng(3),
                          PhotometricConfig(**{**only, 'p_partial_fov': 1.0}))
    empty_rows = (out == 0).all(axis=1)
    assert empty_rows.any() and (empty_rows[:1].all() or empty_rows[-1:].all())
    assert sparse.min() == 5.0  # the input is not modified


def test_photo_textures_change_colours_only_and_are_seeded() -> None:
    """Real photographs (scikit-image) on about half the surfaces: the same geometry, depth
    and scan as without them, other colours, the same image twice for one seed."""
    pytest.importorskip('skimage')
    from g2mono_ros.synth.sequence import SyntheticSequence
    from g2mono_ros.synth.textures import PHOTO_NAMES

    assert 'stereo_motorcycle' not in PHOTO_NAMES  # bench_quality's real frame
    plain = SyntheticSequence(31, width=96, height=64, environment='indoor').render(3)
    photo = SyntheticSequence(31, width=96, height=64, environment='indoor',
                              photo_textures=0.5).render(3)
    again = SyntheticSequence(31, width=96, height=64, environment='indoor',
                              photo_textures=0.5).render(3)
    np.testing.assert_array_equal(photo.depth_gt, plain.depth_gt)
    np.testing.assert_array_equal(photo.points_lidar, plain.points_lidar)
    np.testing.assert_array_equal(photo.rgb, again.rgb)
    assert (photo.rgb != plain.rgb).any(axis=2).mean() > 0.05
    with pytest.raises(ConfigError, match='photo_textures must be in'):
        SyntheticSequence(31, width=96, height=64, photo_textures=1.5)
