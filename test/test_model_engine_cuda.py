"""The engine's CUDA path: half precision only where it is safe, the start-up checks, the frame's
one synchronisation, pinned buffers, the benchmark and GPU check scripts.

What does not need a GPU runs here on the CPU through the same code (the conversion and its
start-up check are device-independent); the rest is skipped without CUDA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import ConfigError
from g2mono_ros.models import engine as engine_module
from g2mono_ros.models.checkpoint import load_checkpoint
from g2mono_ros.models.engine import (REDUCED_PRECISION_TOLERANCE, DepthEngine,
                                      reduced_precision_core)
from g2mono_ros.models.prefill import torch_nearest_only
from g2mono_ros.weights import DEMO_WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def _network_inputs(height: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    """rgb [0, 1], point [0, 1] and mask as the engine builds them (5 % of pixels hold points)."""
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (1, 3, height, width), generator=gen).float() / 255.0
    mask = (torch.rand(1, 1, height, width, generator=gen) < 0.05).float()
    return rgb, torch.rand(1, 1, height, width, generator=gen) * mask, mask


# --------------------------------------------------------------------------- CPU


@pytest.mark.parametrize(('precision', 'bound'), [('fp16', 0.005), ('bf16', 0.02)])
def test_reduced_precision_core_runs_only_the_convolutions_at_half(precision: str,
                                                                    bound: float) -> None:
    """The shipped network (log depth, colour-guided pre-fill, residual, pinning): the stack
    at half precision, head and pre/post-processing float32, close to the float32 network.

    Bounds: measured 0.0007 (fp16) and 0.005 (bf16) with the v5 weights; converting the whole
    network instead (the pre-fill in half precision) gave 0.44-0.9 there."""
    dtype = DTYPES[precision]
    model = load_checkpoint(DEMO_WEIGHTS).model.eval()
    inputs = _network_inputs(64, 128, seed=1)
    with torch.inference_mode():
        expected = model(*inputs)
        assert reduced_precision_core(model, dtype)
        got = model(*inputs)
    assert model.first.conv.weight.dtype == dtype and model.encoders[0].conv.weight.dtype == dtype
    assert model.head.weight.dtype == torch.float32 and got.dtype == torch.float32
    assert 0.0 < float((got - expected).abs().max()) <= bound


def test_reduced_precision_core_leaves_other_networks_alone() -> None:
    """No ``head`` convolution: nothing converted, no hook (the engine converts it whole)."""
    model = nn.Sequential(nn.Conv2d(5, 1, 3, padding=1))
    assert not reduced_precision_core(model, torch.float16)
    assert model[0].weight.dtype == torch.float32 and not model[0]._forward_pre_hooks


def _engine_converted_on_cpu(precision: str) -> DepthEngine:
    """A CPU engine put through the CUDA conversion (``_convert_for_cuda``) instead of its
    autocast: the same method as on CUDA, run with CPU kernels."""
    engine = DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu',
                                      precision=precision), tune_allocator=False)
    engine._autocast_dtype = None
    engine._convert_for_cuda(DTYPES[precision])
    return engine


def test_cuda_conversion_is_checked_against_float32_at_start_up(monkeypatch) -> None:
    engine = _engine_converted_on_cpu('bf16')
    assert 0.0 < engine.backend_error <= REDUCED_PRECISION_TOLERANCE['bf16']
    assert engine._input_dtype == torch.float32  # the network casts at its stack
    rgb = np.random.default_rng(0).integers(0, 256, (128, 192, 3), dtype=np.uint8)
    sparse = np.zeros((128, 192), np.float32)
    sparse[64::4, ::3] = np.random.default_rng(1).uniform(2.0, 150.0, (16, 64))
    reference = DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu'),
                            tune_allocator=False, fuse_cpu=False)
    with torch_nearest_only():  # both the same nearest-point search
        got = engine.infer(rgb, sparse)
        expected = reference.infer(rgb, sparse)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() <= 0.01 * engine.max_depth  # measured 0.005 (0.96 m)
    monkeypatch.setitem(engine_module.REDUCED_PRECISION_TOLERANCE, 'fp16', 1e-9)
    with pytest.raises(ConfigError, match="parameter 'precision' is 'fp16' but the network"):
        _engine_converted_on_cpu('fp16')


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
def test_bench_model_without_cuda_says_so(capsys) -> None:
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    try:
        import bench_model
    finally:
        sys.path.remove(str(ROOT / 'benchmarks'))
    assert bench_model.main(['--device', 'cuda']) == 2
    assert 'no CUDA device is available' in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
def test_gpu_check_script_parses_and_stops_without_cuda(tmp_path: Path) -> None:
    script = ROOT / 'benchmarks' / 'gpu_check.sh'
    subprocess.run(['bash', '-n', str(script)], check=True)
    env = {**os.environ, 'OUT': str(tmp_path)}
    result = subprocess.run(['bash', str(script), sys.executable], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'no CUDA device' in (tmp_path / 'env.txt').read_text()


# --------------------------------------------------------------------------- CUDA


def _demo_cuda(precision: str = 'fp16', **overrides) -> DepthEngine:
    return DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cuda',
                                    precision=precision, **overrides))


def _scene(height: int, width: int, seed: int):
    from g2mono_ros.fusion.camera import CameraModel

    rng = np.random.default_rng(seed)
    camera = CameraModel(width=width, height=height,
                         K=np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2],
                                     [0, 0, 1]]), D=np.zeros(0), distortion_model='none')
    points = np.stack([rng.uniform(-8, 8, 20000), rng.uniform(-1, 2, 20000),
                       rng.uniform(2, 60, 20000)], axis=1).astype(np.float32)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return camera, points, rgb


@needs_cuda
@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
def test_cuda_half_precision_checked_and_close_to_cpu(precision: str) -> None:
    gpu = _demo_cuda(precision)
    assert 0.0 <= gpu.backend_error <= REDUCED_PRECISION_TOLERANCE[precision]
    assert gpu.model.first.conv.weight.dtype == DTYPES[precision]
    assert gpu.model.head.weight.dtype == torch.float32
    cpu = DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu'), fuse_cpu=False)
    h, w = gpu.input_height, gpu.input_width
    for seed in (1, 2):  # two frames: pinned buffers reused
        rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
        sparse = np.zeros((h, w), np.float32)
        sparse[h // 2::4, ::2] = np.random.default_rng(seed).uniform(2, 150, (h // 8, w // 2))
        with torch_nearest_only():  # the CPU searches nearest points as the GPU does
            expected = cpu.infer(rgb, sparse)
        got = gpu.infer(rgb, sparse)
        assert got.dtype == np.float32
        # On the CPU with the same conversion: 0.0004 (fp16) and 0.005 (bf16) of max depth.
        bound = {'fp16': 0.005, 'bf16': 0.01}[precision]
        assert np.abs(got - expected).max() <= bound * gpu.max_depth


@needs_cuda
def test_cuda_graph_captured_checked_and_fed_fresh_inputs() -> None:
    graph = _demo_cuda('fp16', cuda_graph=True)
    eager = _demo_cuda('fp16')
    assert graph.backend == 'torch+cuda_graph' and eager.backend == 'torch'
    h, w = graph.input_height, graph.input_width
    results = []
    for seed in (3, 4):
        rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
        sparse = np.zeros((h, w), np.float32)
        sparse[::5, ::3] = np.random.default_rng(seed).uniform(2, 150, (-(-h // 5), w // 3))
        results.append(graph.infer(rgb, sparse))
        np.testing.assert_allclose(results[-1], eager.infer(rgb, sparse), rtol=0,
                                   atol=1e-3 * graph.max_depth)
    assert not np.array_equal(results[0], results[1])  # the replay read the new inputs


@needs_cuda
def test_cuda_frame_synchronises_once() -> None:
    """The node's path (device projection, image-size sparse map, network as a CUDA graph,
    edge-aware upsampling, depth into the message buffer), counted by torch's own sync
    debug mode: at most the frame's one ``stream.synchronize()``."""
    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.sparse import SparseProjector

    gpu = _demo_cuda('fp16', cuda_graph=True, upsample='edge_aware')
    camera, points, rgb = _scene(200, 300, seed=5)
    projector = SparseProjector(gpu.device)
    out = np.empty((200, 300), np.float32)

    def frame():
        return process_pair(gpu, PairInputs(rgb, points, camera), np.eye(4), min_range=0.5,
                            max_range=100.0, want_sparse=True, want_colorized=False,
                            projector=projector, out=out)
    frame()
    frame()  # buffers allocated, kernels loaded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            work = frame()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    syncs = [w for w in caught if 'synchroniz' in str(w.message).lower()]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]
    assert work.depth_m is out and np.isfinite(out).all()


@needs_cuda
def test_cuda_projector_refills_its_pinned_points_each_frame() -> None:
    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.projection import project_points_to_depth
    from g2mono_ros.fusion.sparse import SparseProjector

    gpu = _demo_cuda('fp32')
    projector = SparseProjector(gpu.device)
    for seed, count in ((6, 20000), (7, 5000), (8, 30000)):  # shrinking and growing scans
        camera, points, rgb = _scene(96, 160, seed=seed)
        points = points[:count]
        work = process_pair(gpu, PairInputs(rgb, points, camera), np.eye(4), min_range=0.5,
                            max_range=100.0, want_sparse=True, want_colorized=False,
                            projector=projector)
        expected, _ = project_points_to_depth(points, np.eye(4), camera)
        np.testing.assert_array_equal(work.sparse_m, expected)
