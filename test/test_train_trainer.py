"""The trainer: config validation, overfitting a tiny batch, exact resume, outputs on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from g2mono_ros.models.checkpoint import load_checkpoint
from g2mono_ros.errors import CheckpointError, ConfigError
from g2mono_ros.models import create_model
from g2mono_ros.training.config import config_from_mapping, load_train_config
from g2mono_ros.training.datasets import TrainingDataset, build_source, collate_samples
from g2mono_ros.training.trainer import (
    CosineWithWarmup,
    init_output_layer,
    load_training_state,
    train,
    train_step,
)

TINY_WIDTHS = [8, 16, 16, 16]


def tiny_config(tmp_path: Path, **overrides) -> dict:
    """A run small enough for the shared CPU: 64x64 inputs, a 4-level 8..16-channel network."""
    config = {
        'seed': 5,
        'input_height': 64,
        'input_width': 64,
        'model': {'variant': 'seed_small', 'kwargs': {'widths': TINY_WIDTHS}, 'max_depth': 80.0},
        'train_data': {'kind': 'synthetic', 'seeds': [11, 12], 'frames_per_sequence': 3,
                       'frame_stride': 20, 'render_width': 64, 'render_height': 64,
                       'beams': [16, 64]},
        'val_data': {'kind': 'synthetic', 'seeds': [99], 'frames_per_sequence': 2,
                     'render_width': 64, 'render_height': 64},
        'optim': {'batch_size': 2, 'epochs': 2, 'lr': 1e-3, 'warmup_steps': 2},
        'run': {'output_dir': str(tmp_path / 'run'), 'checkpoint_every': 0, 'log_every': 1,
                'progress': False, 'device': 'cpu'},
    }
    for key, value in overrides.items():
        section, _, name = key.partition('.')
        if name:
            config[section][name] = value
        else:
            config[section] = value
    return config


def test_config_errors_name_the_key(tmp_path):
    base = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'optim.learning_rate'"):
        config_from_mapping({**base, 'optim': {'learning_rate': 1e-3}})
    with pytest.raises(ConfigError, match="parameter 'optim.lr' must be a number"):
        config_from_mapping({**base, 'optim': {'lr': 'fast'}})
    with pytest.raises(ConfigError, match="parameter 'optim.amp' must be one of none, bf16, fp16"):
        config_from_mapping({**base, 'optim': {'amp': 'fp8'}})
    with pytest.raises(ConfigError, match="parameter 'val_data.kind' must be one of"):
        config_from_mapping({**base, 'val_data': {'kind': 'lidar'}})
    with pytest.raises(ConfigError, match="parameter 'train_data.path' must be a non-empty path"):
        config_from_mapping({**base, 'train_data': {'kind': 'kitti'}})
    with pytest.raises(ConfigError, match="missing key 'train_data'"):
        config_from_mapping({'seed': 1})
    with pytest.raises(ConfigError, match="parameter 'simulation.lidar.p_range_limit'"):
        config_from_mapping({**base, 'simulation': {'lidar': {'p_range_limit': -0.1}}})
    with pytest.raises(ConfigError, match="parameter 'train_data.odom_topic' must be set"):
        config_from_mapping({**base, 'train_data': {'kind': 'rosbag', 'path': 'x.bag',
                                                    'merge_neighbours': 2}})
    bad_yaml = tmp_path / 'bad.yaml'
    bad_yaml.write_text('train_data: [unclosed\n')
    with pytest.raises(ConfigError, match='cannot read training config'):
        load_train_config(bad_yaml)


def test_input_size_must_fit_the_network(tmp_path):
    config = config_from_mapping(tiny_config(tmp_path, input_width=60))
    with pytest.raises(ConfigError, match="'input_width' must be a multiple of 8"):
        train(config)


def test_shipped_training_configs_load(repo_root):
    paths = sorted((repo_root / 'config').glob('train_*.yaml'))
    assert paths, 'no config/train_*.yaml shipped'
    for path in paths:
        load_train_config(path)


def test_cosine_schedule_shape():
    schedule = CosineWithWarmup(total_steps=10, warmup_steps=2, min_ratio=0.1)
    assert schedule(0) == pytest.approx(0.5)
    assert schedule(1) == pytest.approx(1.0)
    assert schedule(2) == pytest.approx(1.0)
    assert schedule(6) == pytest.approx(0.1 + 0.9 * 0.5)
    assert schedule(10) == pytest.approx(0.1)


def test_overfits_a_tiny_batch(tmp_path):
    # Two real synthetic frames with their full LiDAR scans as input, fixed (no augmentation).
    config = config_from_mapping(tiny_config(
        tmp_path, simulation={'p_full_scan': 1.0, 'hflip': 0.0, 'color_jitter': 0.0}))
    source = build_source(config.train_data, (64, 64), 80.0)
    dataset = TrainingDataset(source, config, train=True)
    batch = collate_samples([dataset[(0, 0)], dataset[(0, 3)]])
    assert (batch['input'] > 0).any() and (batch['target'] > 0).any()
    torch.manual_seed(0)
    model = create_model('seed_small', widths=TINY_WIDTHS)
    init_output_layer(model, 0.2)
    steps = 250
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, CosineWithWarmup(steps, 20))
    losses = []
    for _ in range(steps):
        losses.append(train_step(model, batch, optimizer, grad_clip=1.0)[0][0])
        scheduler.step()
    assert losses[-1] <= 0.1 * losses[0], f'loss {losses[0]:.3f} -> {losses[-1]:.3f}'


def test_resume_is_bit_exact_and_outputs_are_written(tmp_path):
    # 6 frames, batch 2 -> 3 steps per epoch, 2 epochs: stop at step 4 (mid-epoch), resume.
    full = config_from_mapping(tiny_config(tmp_path / 'full'))
    result_full = train(full)
    assert result_full.step == 6
    half = config_from_mapping(tiny_config(tmp_path / 'half', **{'optim.max_steps': 4}))
    result_half = train(half)
    assert result_half.step == 4
    state_path = tmp_path / 'half' / 'run' / 'state_00000004.pt'
    state = load_training_state(state_path)
    assert state['step'] == 4 and isinstance(state['rng']['torch'], torch.Tensor)
    resumed = config_from_mapping(tiny_config(tmp_path / 'half'))
    result_resumed = train(resumed, resume=state_path)
    assert result_resumed.step == 6
    a = result_full.model.state_dict()
    b = result_resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # N/2 steps alone must differ from N (the test would pass vacuously otherwise).
    assert not all(torch.equal(a[k], result_half.model.state_dict()[k]) for k in a)

    run_dir = tmp_path / 'full' / 'run'
    loaded = load_checkpoint(run_dir / 'model.pt')
    assert loaded.variant == 'seed_small' and loaded.input_height == 64
    assert loaded.extra['step'] == 6 and 'rmse' in loaded.extra['val_metrics']
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, a[key])
    assert list((run_dir / 'tensorboard').glob('events.out.tfevents.*'))
    assert result_full.val_metrics['rmse'] > 0 and result_full.val_metrics['count'] > 0


def test_resume_refuses_a_weights_file(tmp_path):
    config = config_from_mapping(tiny_config(tmp_path, **{'optim.max_steps': 1}))
    train(config)
    with pytest.raises(CheckpointError, match='is not a training-state file'):
        load_training_state(tmp_path / 'run' / 'model.pt')
    with pytest.raises(CheckpointError, match='does not exist'):
        load_training_state(tmp_path / 'run' / 'nope.pt')


def test_train_cli_runs_a_yaml_config(tmp_path, capsys):
    import yaml

    from g2mono_ros.cli import main

    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    out_dir = tmp_path / 'cli_run'
    assert main(['train', '--config', str(path), '--max-steps', '2',
                 '--output-dir', str(out_dir)]) == 0
    assert 'weights: ' in capsys.readouterr().out
    assert load_checkpoint(out_dir / 'model.pt').extra['step'] == 2
    assert main(['train', '--config', str(tmp_path / 'missing.yaml')]) == 2
    assert 'cannot read training config' in capsys.readouterr().err
