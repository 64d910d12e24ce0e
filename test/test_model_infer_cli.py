"""``python -m g2mono_ros infer`` end to end in a subprocess, on a tiny checkpoint in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from g2mono_ros.models.checkpoint import save_checkpoint
from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.infer_cli import read_sparse_depth
from g2mono_ros.models import create_model

REPO = Path(__file__).resolve().parent.parent
TINY = {'widths': [4, 8, 8, 8, 8, 8, 8], 'num_bottle': 1}


@pytest.fixture(scope='module')
def scene(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('infer')
    torch.manual_seed(0)
    weights = save_checkpoint(root / 'tiny.pt', create_model('seed', **TINY), variant='seed',
                              model_kwargs=TINY, max_depth=50.0, input_height=64,
                              input_width=0)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (70, 130, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / 'rgb.png')
    depth_mm = np.zeros((70, 130), np.uint16)
    depth_mm[rng.integers(0, 70, 300), rng.integers(0, 130, 300)] = rng.integers(500, 40000, 300)
    cv2.imwrite(str(root / 'sparse.png'), depth_mm)
    np.save(root / 'sparse.npy', depth_mm.astype(np.float32) / 1000.0)
    return {'root': root, 'weights': weights}


def _infer(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'g2mono_ros', 'infer', *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('sparse_name', ['sparse.png', 'sparse.npy'])
def test_infer_end_to_end(scene: dict[str, Path], sparse_name: str) -> None:
    root = scene['root']
    out = root / f'out_{sparse_name.replace(".", "_")}.npy'
    result = _infer('--weights', str(scene['weights']), '--rgb', str(root / 'rgb.png'),
                    '--sparse', str(root / sparse_name), '--input-height', '64',
                    '--device', 'cpu', '--out', str(out))
    assert result.returncode == 0, result.stderr
    depth = np.load(out)
    assert depth.shape == (70, 130) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and 0.0 <= depth.min() and depth.max() <= 50.0
    with Image.open(out.with_suffix('.png')) as png:
        assert png.size == (130, 70) and png.mode == 'RGB'
    points = int(np.count_nonzero(np.load(root / 'sparse.npy')))
    assert f'from {points} points' in result.stdout and 'colorized' in result.stdout


def test_infer_uses_recorded_input_size_by_default(scene: dict[str, Path]) -> None:
    root = scene['root']
    out = root / 'recorded.npy'
    result = _infer('--weights', str(scene['weights']), '--rgb', str(root / 'rgb.png'),
                    '--sparse', str(root / 'sparse.npy'), '--device', 'cpu', '--out', str(out))
    assert result.returncode == 0, result.stderr
    assert 'input 64xaspect' in result.stdout  # the checkpoint records height 64
    assert np.load(out).shape == (70, 130)


def test_png_and_npy_sparse_give_the_same_depth(scene: dict[str, Path]) -> None:
    root = scene['root']
    np.testing.assert_allclose(read_sparse_depth(root / 'sparse.png'),
                               read_sparse_depth(root / 'sparse.npy'), rtol=0, atol=1e-6)


def test_infer_without_weights_file_fails_cleanly(scene: dict[str, Path]) -> None:
    root = scene['root']
    result = _infer('--weights', str(root / 'absent.pt'), '--rgb', str(root / 'rgb.png'),
                    '--sparse', str(root / 'sparse.png'), '--out', str(root / 'x.npy'))
    assert result.returncode == 2
    assert 'checkpoint file not found' in result.stderr and 'absent.pt' in result.stderr


def test_infer_rejects_bad_input_height(scene: dict[str, Path]) -> None:
    root = scene['root']
    result = _infer('--weights', str(scene['weights']), '--rgb', str(root / 'rgb.png'),
                    '--sparse', str(root / 'sparse.png'), '--input-height', '100',
                    '--out', str(root / 'x.npy'))
    assert result.returncode == 2
    assert "'input_height' must be a positive multiple of 64" in result.stderr


def test_read_sparse_depth_errors(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'rgb8.png')
    with pytest.raises(ConfigError, match='single-channel 16-bit millimetres'):
        read_sparse_depth(tmp_path / 'rgb8.png')
    np.save(tmp_path / 'cube.npy', np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ShapeError, match=r'must be \(H, W\) metres'):
        read_sparse_depth(tmp_path / 'cube.npy')
    with pytest.raises(ConfigError, match='cannot read --sparse image'):
        read_sparse_depth(tmp_path / 'missing.png')


def test_infer_upsample_option_reaches_the_engine(scene: dict[str, Path]) -> None:
    """A pre-fill residual network (as the shipped weights): ``--upsample prefill_guided`` gives
    the engine's prefill_guided output, which differs from the default edge-aware one."""
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.infer_cli import read_rgb
    from g2mono_ros.models.engine import DepthEngine

    root = scene['root']
    kwargs = {**TINY, 'depth_norm': 'log', 'prefill_input': True, 'residual': True,
              'pin_points': True, 'prefill_kind': 'guided'}
    torch.manual_seed(1)
    weights = save_checkpoint(root / 'residual.pt', create_model('seed', **kwargs),
                              variant='seed', model_kwargs=kwargs, max_depth=50.0,
                              input_height=64, input_width=128)
    outputs = {}
    for mode in ('edge_aware', 'prefill_guided'):
        out = root / f'up_{mode}.npy'
        result = _infer('--weights', str(weights), '--rgb', str(root / 'rgb.png'),
                        '--sparse', str(root / 'sparse.npy'), '--device', 'cpu',
                        '--upsample', mode, '--out', str(out))
        assert result.returncode == 0, result.stderr
        assert f', {mode}); ' in result.stdout
        outputs[mode] = np.load(out)
    torch.set_num_threads(1)
    engine = DepthEngine(EngineConfig(weights=str(weights), device='cpu', input_height=64,
                                      input_width=128, upsample='prefill_guided'))
    expected = engine.infer(read_rgb(root / 'rgb.png'), read_sparse_depth(root / 'sparse.npy'))
    np.testing.assert_allclose(outputs['prefill_guided'], expected, rtol=1e-5, atol=1e-5)
    assert np.abs(outputs['prefill_guided'] - outputs['edge_aware']).max() > 0.01


def test_infer_rejects_unknown_upsample(scene: dict[str, Path]) -> None:
    root = scene['root']
    result = _infer('--weights', str(scene['weights']), '--rgb', str(root / 'rgb.png'),
                    '--sparse', str(root / 'sparse.png'), '--upsample', 'cubic',
                    '--out', str(root / 'x.npy'))
    assert result.returncode == 2 and "invalid choice: 'cubic'" in result.stderr
