"""ONNX export of our checkpoint, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from g2mono_ros.models.checkpoint import save_checkpoint
from g2mono_ros.cli import main
from g2mono_ros.errors import CheckpointError, ConfigError
from g2mono_ros.models import create_model, default_model_kwargs
from g2mono_ros.training.export import export_onnx


@pytest.fixture(scope='module')
def seed_small_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model('seed_small')
    # Non-zero ReZero scalars so the bottleneck branches take part in the comparison.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 0 or name.endswith('alpha'):
                param.fill_(0.5)
    path = tmp_path_factory.mktemp('w') / 'seed_small.pt'
    save_checkpoint(path, model, variant='seed_small', model_kwargs=default_model_kwargs('seed_small'),
                    max_depth=80.0, input_height=64, input_width=128)
    return path, model


def test_export_matches_pytorch_and_has_dynamic_batch(seed_small_weights, tmp_path):
    path, model = seed_small_weights
    report = export_onnx(path, tmp_path / 'm.onnx', opset=17)
    assert (report.height, report.width, report.opset) == (64, 128, 17)
    assert report.max_abs_diff < 1e-4
    graph = onnx.load(str(tmp_path / 'm.onnx'))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == ['rgb', 'point', 'hole_point']
    # An independent input at batch 2 through onnxruntime vs the original module.
    gen = torch.Generator().manual_seed(3)
    rgb = torch.rand(2, 3, 64, 128, generator=gen)
    hole = (torch.rand(2, 1, 64, 128, generator=gen) < 0.1).float()
    point = torch.rand(2, 1, 64, 128, generator=gen) * hole
    session = onnxruntime.InferenceSession(str(tmp_path / 'm.onnx'), providers=['CPUExecutionProvider'])
    got = session.run(None, {'rgb': rgb.numpy(), 'point': point.numpy(), 'hole_point': hole.numpy()})[0]
    with torch.no_grad():
        expected = model.eval()(rgb, point, hole).numpy()
    assert got.shape == (2, 1, 64, 128)
    assert np.max(np.abs(got - expected)) < 1e-4


def test_export_cli_prints_the_parity(seed_small_weights, tmp_path, capsys):
    path, _ = seed_small_weights
    out = tmp_path / 'cli.onnx'
    assert main(['export', '--weights', str(path), '--out', str(out), '--height', '64',
                 '--width', '64', '--opset', '18']) == 0
    text = capsys.readouterr().out
    assert 'opset 18' in text and '64x64' in text and 'max abs diff' in text
    assert out.is_file()


def test_export_errors(seed_small_weights, tmp_path):
    path, _ = seed_small_weights
    with pytest.raises(ConfigError, match='multiples of 64'):
        export_onnx(path, tmp_path / 'x.onnx', height=100)
    with pytest.raises(CheckpointError):
        export_onnx(tmp_path / 'missing.pt', tmp_path / 'x.onnx')


def test_export_of_the_shipped_weights_matches_pytorch(tmp_path):
    """The demo weights (log depth scale, colour-guided pre-fill, residual head, pinning):
    their median and blur once stopped the export (no ONNX nanmedian, kernels of unknown
    shape). Compared with PyTorch on the jump-flooding path the graph records."""
    from g2mono_ros.models.checkpoint import load_checkpoint
    from g2mono_ros.models.prefill import torch_nearest_only
    from g2mono_ros.weights import DEMO_WEIGHTS

    report = export_onnx(DEMO_WEIGHTS, tmp_path / 'demo.onnx', height=64, width=64)
    assert report.max_abs_diff < 1e-4
    gen = torch.Generator().manual_seed(4)
    rgb = torch.rand(1, 3, 64, 64, generator=gen)
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., ::8, ::2] = 1.0  # scan lines
    point = (0.01 + 0.05 * torch.rand(1, 1, 64, 64, generator=gen)) * hole
    session = onnxruntime.InferenceSession(str(tmp_path / 'demo.onnx'),
                                           providers=['CPUExecutionProvider'])
    got = session.run(None, {'rgb': rgb.numpy(), 'point': point.numpy(),
                             'hole_point': hole.numpy()})[0]
    model = load_checkpoint(DEMO_WEIGHTS).model.eval()
    with torch.no_grad(), torch_nearest_only():
        expected = model(rgb, point, hole).numpy()
    assert np.max(np.abs(got - expected)) < 1e-4 * float(expected.max())
    np.testing.assert_array_equal(got[hole.numpy() > 0], point.numpy()[hole.numpy() > 0])
