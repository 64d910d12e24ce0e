"""``g2mono export``: our checkpoint -> ONNX, checked against PyTorch with onnxruntime.

The graph takes ``rgb`` (B,3,H,W) in [0,1], ``point`` (B,1,H,W) normalised depth and
``hole_point`` (B,1,H,W) in {0,1}, and returns ``depth`` (B,1,H,W) normalised (x max_depth =
metres); the batch dimension is dynamic, H and W are fixed at export.
"""

from __future__ import annotations

import argparse
import inspect
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from g2mono_ros.errors import ConfigError

__all__ = ['DEFAULT_OPSET', 'ExportReport', 'add_arguments', 'export_onnx', 'run']

#: ONNX opset used unless ``--opset`` says otherwise.
DEFAULT_OPSET = 17
INPUT_NAMES = ('rgb', 'point', 'hole_point')


class ExportReport(NamedTuple):
    """Where the model went and how closely onnxruntime matched PyTorch (normalised units)."""

    path: Path
    opset: int
    height: int
    width: int
    max_abs_diff: float


def _example_inputs(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand(1, 3, height, width, generator=gen)
    keep = (torch.rand(1, 1, height, width, generator=gen) < 0.05).float()
    point = torch.rand(1, 1, height, width, generator=gen) * keep
    return rgb, point, keep


def export_onnx(weights: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET,
                height: int = 0, width: int = 0, variant: str = 'auto',
                tolerance: float = 1e-3) -> ExportReport:
    """Export a checkpoint to ONNX and compare onnxruntime with PyTorch on one input.

    Args:
        weights: our checkpoint (or the release's, with ``variant='official'``).
        out: the .onnx file to write.
        opset: ONNX opset version.
        height, width: network input size (multiples of 64); 0 = the checkpoint's record.
        variant: passed to ``load_checkpoint``.
        tolerance: largest accepted |onnxruntime - torch| (normalised depth units).

    Raises:
        CheckpointError: the weights cannot be loaded.
        ConfigError: no usable size, or the exported graph disagrees with PyTorch.
    """
    import onnxruntime

    from g2mono_ros.models.checkpoint import load_checkpoint
    from g2mono_ros.models.prefill import torch_nearest_only

    loaded = load_checkpoint(weights, variant=variant)
    height = height or loaded.input_height
    width = width or loaded.input_width
    if width == 0:
        msg = ('the checkpoint keeps the camera aspect (input_width 0): pass --width '
               '(a multiple of 64)')
        raise ConfigError(msg)
    if height % 64 or width % 64 or height <= 0 or width <= 0:
        msg = f'--height and --width must be positive multiples of 64; got {height}x{width}'
        raise ConfigError(msg)
    model = loaded.model.eval().float()
    inputs = _example_inputs(height, width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        options['dynamo'] = False  # the TorchScript exporter: dynamic_axes, no onnxscript needed
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, inputs, str(out), opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=['depth'],
                          dynamic_axes={name: {0: 'batch'} for name in (*INPUT_NAMES, 'depth')},
                          **options)
        with torch_nearest_only():  # the nearest-point search the graph recorded
            expected = model(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    feeds = {name: tensor.numpy() for name, tensor in zip(INPUT_NAMES, inputs)}
    got = session.run(['depth'], feeds)[0]
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= tolerance:
        msg = f'onnxruntime output differs from PyTorch by {diff:.3g} (> {tolerance:g})'
        raise ConfigError(msg)
    return ExportReport(out, opset, height, width, diff)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``g2mono export``."""
    parser.add_argument('--weights', required=True, help='our checkpoint (.pt)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset version (default {DEFAULT_OPSET})')
    parser.add_argument('--height', type=int, default=0,
                        help="input height, a multiple of 64 (default: the checkpoint's)")
    parser.add_argument('--width', type=int, default=0,
                        help="input width, a multiple of 64 (default: the checkpoint's)")
    parser.add_argument('--variant', default='auto',
                        help="checkpoint variant (auto; 'official' for the release's file)")


def run(args: argparse.Namespace) -> int:
    """Export and print the parity check."""
    report = export_onnx(args.weights, args.out, opset=args.opset, height=args.height,
                         width=args.width, variant=args.variant)
    print(f'wrote {report.path} (opset {report.opset}, input {report.height}x{report.width}, '
          f'dynamic batch); onnxruntime vs PyTorch max abs diff {report.max_abs_diff:.3g} '
          '(normalised depth)')
    return 0
