"""Training for real-world variety: indoor/solid-state synthetic data with real-camera
degradations, the per-image loss scale, and loadable weights beside every training state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from g2mono_ros.errors import ConfigError
from g2mono_ros.models import create_model
from g2mono_ros.models.checkpoint import load_checkpoint
from g2mono_ros.training.config import config_from_mapping
from g2mono_ros.training.datasets import TrainingDataset, build_source
from g2mono_ros.training.trainer import train, train_step

OPTIONS = {'depth_norm': 'log', 'prefill_input': True, 'residual': True, 'pin_points': True}


def quality_config(tmp_path: Path, **optim) -> dict:
    """A 64x64 run over indoor + outdoor sequences with 8-beam and solid-state scanners."""
    return {
        'seed': 3,
        'input_height': 64,
        'input_width': 64,
        'model': {'variant': 'seed_small', 'kwargs': {'widths': [8, 16, 16, 16], **OPTIONS},
                  'max_depth': 200.0, 'output_init': False},
        'train_data': {'kind': 'synthetic', 'seeds': [21, 22], 'frames_per_sequence': 2,
                       'frame_stride': 20, 'render_width': 64, 'render_height': 64,
                       'environments': ['indoor', 'outdoor'],
                       'lidar_patterns': ['spin8', 'solid'], 'fov_x_deg': [60.0, 90.0]},
        'simulation': {'p_photometric': 1.0},
        'optim': {'batch_size': 2, 'epochs': 1, 'lr': 1e-3, 'loss_scale': 'per_image', **optim},
        'run': {'output_dir': str(tmp_path / 'run'), 'checkpoint_every': 1, 'log_every': 1,
                'progress': False, 'device': 'cpu'},
    }


def test_dataset_items_with_variety_and_photometric_are_seeded(tmp_path: Path) -> None:
    config = config_from_mapping(quality_config(tmp_path))
    source = build_source(config.train_data, (64, 64), config.model.max_depth)
    assert source._variety(0)[:2] == ('indoor', 'spin8')
    assert source._variety(1)[:2] == ('outdoor', 'spin8')
    dataset = TrainingDataset(source, config, train=True)
    a, b = dataset[(0, 0)], dataset[(0, 0)]
    for key in ('rgb', 'input', 'target'):
        assert torch.equal(a[key], b[key])
    assert (a['input'] > 0).sum() > 10
    assert float(a['target'].max()) * 200.0 < 15.0  # the indoor room: metres / max_depth


def test_per_image_loss_is_invariant_to_the_scene_scale() -> None:
    """A room at 2 m and the same room at 20 m give the same loss with the per-image scale."""
    torch.manual_seed(0)
    model = create_model('seed_small', widths=[8, 16, 16, 16], **OPTIONS)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 1e-2)
    gen = torch.Generator().manual_seed(1)
    target = 0.01 + 0.02 * torch.rand(2, 1, 64, 64, generator=gen)
    raw = torch.where(torch.rand(2, 1, 64, 64, generator=gen) < 0.05, target, 0.0)
    rgb = torch.rand(2, 3, 64, 64, generator=gen)
    losses = []
    for k in (1.0, 10.0):
        net = create_model('seed_small', widths=[8, 16, 16, 16], **OPTIONS)
        net.load_state_dict(model.state_dict())
        optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
        batch = {'rgb': rgb, 'input': raw * k, 'target': target * k}
        logged, _ = train_step(net, batch, optimizer, loss_scale='per_image', dense_weight=1.0)
        losses.append(logged)
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor(losses[1]), rtol=1e-4,
                               atol=1e-6)


def test_training_writes_loadable_weights_with_every_state(tmp_path: Path) -> None:
    config = config_from_mapping(quality_config(tmp_path, max_steps=2))
    result = train(config, writer_factory=lambda _: None)
    assert result.step == 2
    latest = load_checkpoint(tmp_path / 'run' / 'latest.pt')
    assert latest.extra['step'] == 2
    assert latest.model_kwargs['depth_norm'] == 'log' and latest.model.pin_points


def test_photo_textures_are_a_validated_data_key(tmp_path: Path) -> None:
    config = quality_config(tmp_path)
    config['train_data']['photo_textures'] = 1.5
    with pytest.raises(ConfigError, match='train_data.photo_textures'):
        config_from_mapping(config)
    config['train_data']['photo_textures'] = 0.5
    assert config_from_mapping(config).train_data.photo_textures == 0.5


def test_loss_scale_is_validated(tmp_path: Path) -> None:
    mapping = quality_config(tmp_path, loss_scale='relative')
    with pytest.raises(ConfigError, match="'optim.loss_scale' must be global or per_image"):
        config_from_mapping(mapping)
