"""``g2mono synth`` end to end through the package CLI: writes a bag, refuses bad options."""

from __future__ import annotations

import numpy as np

from g2mono_ros import bagio
from g2mono_ros.cli import main
from g2mono_ros.synth import default_T_cam_lidar


def test_synth_writes_a_readable_bag(tmp_path, capsys):
    out = tmp_path / 'demo'
    status = main(['synth', '--out', str(out), '--frames', '4', '--width', '64', '--height',
                   '48', '--beams', '32', '--seed', '7', '--quiet'])
    assert status == 0
    printed = capsys.readouterr().out
    assert f'wrote {out}: 4 images 64x48' in printed and '/lidar/points' in printed
    with bagio.open_bag(out) as bag:
        assert bag.topics['/camera/image_raw'].count == 4
        rings = np.concatenate([e['ring'] for _, _, e in bag.point_clouds('/lidar/points',
                                                                          ('ring',))])
        assert rings.max() == 31
        assert np.allclose(bagio.read_extrinsic(bag), default_T_cam_lidar())


def test_synth_refuses_an_existing_output(tmp_path, capsys):
    status = main(['synth', '--out', str(tmp_path), '--frames', '1', '--quiet'])
    assert status == 2
    assert 'exists already; not overwriting' in capsys.readouterr().err


def test_synth_rejects_zero_frames(tmp_path, capsys):
    status = main(['synth', '--out', str(tmp_path / 'x'), '--frames', '0', '--quiet'])
    assert status == 2
    assert '--frames must be >= 1' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_synth_rejects_a_tiny_image(tmp_path, capsys):
    status = main(['synth', '--out', str(tmp_path / 'x'), '--width', '4', '--quiet'])
    assert status == 2
    assert 'image size must be at least 8x8' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_synth_indoor_room_with_an_8_beam_pattern(tmp_path, capsys):
    out = tmp_path / 'room'
    status = main(['synth', '--out', str(out), '--frames', '2', '--width', '64', '--height',
                   '48', '--environment', 'indoor', '--lidar', 'spin8', '--quiet'])
    assert status == 0
    with bagio.open_bag(out) as bag:
        depths = [d for _, d in bag.depth_images('/ground_truth/depth')]
        rings = np.concatenate([e['ring'] for _, _, e in bag.point_clouds('/lidar/points',
                                                                          ('ring',))])
    assert all((d > 0).all() and d.max() < 12.0 for d in depths)  # a closed room
    assert rings.max() == 7
    status = main(['synth', '--out', str(tmp_path / 'y'), '--lidar', 'vlp17', '--quiet'])
    assert status == 2
    assert 'unknown LiDAR pattern' in capsys.readouterr().err
