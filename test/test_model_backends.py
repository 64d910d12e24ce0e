"""Engine backends: the choice at start-up, the oneDNN Graph copy and the ONNX Runtime session
and their parity checks, the camera-size path (area resize in, bilinear out), and the CUDA path
(skipped without CUDA)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.models import create_model, default_model_kwargs
from g2mono_ros.models.backends import (PARITY_TOLERANCE, OneDnnGraphModule,
                                        OnnxRuntimeBackend, check_against_module,
                                        onednn_graph_kernels, onednn_graph_unavailable)
from g2mono_ros.models.checkpoint import save_checkpoint
from g2mono_ros.imaging import area_resize
from g2mono_ros.models.engine import DepthEngine

from test_model_engine import _frame, _with_alphas  # noqa: E402 - the same tiny networks

MAX_DEPTH = 40.0
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def _onednn_graph_fuses_here() -> str | None:
    """None when oneDNN Graph fuses a Conv1x1 -> LayerNorm -> GELU stem on this CPU, else why
    not. The build can have the fuser and still fuse nothing on some CPUs (then the engine
    falls back to the fused copy, tested in test_onednn_graph_copy_refused_or_required); only
    this machine's AVX-512/AMX CPU was available to check."""
    missing = onednn_graph_unavailable()
    if missing is not None:
        return missing
    from g2mono_ros.models.g2_seed import FirstModule, FusedSeedFirst

    try:
        stem = FirstModule(4, 8).eval()
        x = torch.randn(1, 4, 8, 8).contiguous(memory_format=torch.channels_last)
        graph = OneDnnGraphModule(FusedSeedFirst(stem, for_graph=True), (x,))
        fused = max(onednn_graph_kernels(graph, x) for _ in range(3))
    except Exception as exc:  # noqa: BLE001 - any TorchScript failure: the engine falls back
        return f'oneDNN Graph cannot run here: {type(exc).__name__}: {exc}'
    return None if fused else 'oneDNN Graph fuses nothing on this CPU'


_NO_ONEDNN_GRAPH = _onednn_graph_fuses_here()
needs_onednn_graph = pytest.mark.skipif(_NO_ONEDNN_GRAPH is not None,
                                        reason=str(_NO_ONEDNN_GRAPH))


@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    kwargs = default_model_kwargs('seed_small')
    model = _with_alphas(create_model('seed_small', **kwargs))
    path = tmp_path_factory.mktemp('backends') / 'seed_small.pt'
    return save_checkpoint(path, model, variant='seed_small', model_kwargs=kwargs,
                           max_depth=MAX_DEPTH, input_height=64, input_width=0)


def _config(weights: Path, **overrides) -> EngineConfig:
    values = {'weights': str(weights), 'device': 'cpu', 'input_height': 64}
    values.update(overrides)
    return EngineConfig(**values)


@needs_onednn_graph
def test_auto_picks_the_checked_onednn_graph_copy_and_torch_the_fused_copy(weights: Path) -> None:
    plain = DepthEngine(_config(weights), fuse_cpu=False)
    assert plain.backend == 'torch' and not plain.fused and plain.backend_error is None
    rgb, sparse = _frame(70, 200, seed=5)
    expected = plain.infer(rgb, sparse)
    auto = DepthEngine(_config(weights))
    assert auto.backend == 'torch+onednn_graph' and auto.fused and auto.backend_note == ''
    assert isinstance(auto.model.decoders[0], OneDnnGraphModule)
    fused = DepthEngine(_config(weights, backend='torch'))
    assert fused.backend == 'torch' and fused.fused and fused.backend_note == ''
    assert type(fused.model.decoders[0].blocks[0]).__name__ == 'FusedSeedBottleneck'
    for engine in (auto, fused):
        assert type(engine.model).__name__ == 'G2Seed' and engine.model is not plain.model
        assert engine.backend_error is not None and engine.backend_error <= PARITY_TOLERANCE
        np.testing.assert_allclose(engine.infer(rgb, sparse), expected, rtol=0,
                                   atol=1e-4 * MAX_DEPTH)
    assert auto.backend == 'torch+onednn_graph'  # still: it passed at the new size too


@needs_onednn_graph
def test_onednn_graph_runs_layernorm_and_gelu_as_one_kernel() -> None:
    """Conv1x1 -> LayerNorm over channels -> GELU: two oneDNN Graph kernels once compiled
    (none while TorchScript profiles the size), the plain module's values."""
    from g2mono_ros.models.g2_seed import FirstModule, FusedSeedFirst

    torch.manual_seed(3)
    stem = FirstModule(4, 16).eval()
    x = torch.randn(1, 4, 16, 24).contiguous(memory_format=torch.channels_last)
    graph = OneDnnGraphModule(FusedSeedFirst(stem, for_graph=True), (torch.zeros(1, 4, 8, 8),))
    assert onednn_graph_kernels(graph, x) == 0  # first call with this size: profiled
    assert onednn_graph_kernels(graph, x) == 2  # the convolution; the norm with its GELU
    with torch.inference_mode():
        torch.testing.assert_close(graph(x), stem(x), rtol=1e-5, atol=1e-5)


@needs_onednn_graph
def test_onednn_graph_switch_is_on_only_while_our_graphs_run() -> None:
    """TorchScript's oneDNN Graph switch is process-wide: after our calls (also calls that
    overlap in two threads) it is back to what it was, for others' graphs (fusion while our
    graphs run shows in test_onednn_graph_runs_layernorm_and_gelu_as_one_kernel)."""
    import threading

    from g2mono_ros.models.g2_seed import FirstModule, FusedSeedFirst

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch._C._jit_llga_enabled())
            return x

    stem = FirstModule(4, 8).eval()
    graph = OneDnnGraphModule(FusedSeedFirst(stem, for_graph=True), (torch.zeros(1, 4, 8, 8),))
    probe = torch.nn.Sequential(graph, Probe())  # runs right after a graph call
    x = torch.randn(1, 4, 8, 8)
    for before in (False, True):
        torch._C._jit_set_llga_enabled(before)
        try:
            threads = [threading.Thread(target=lambda: [graph(x) for _ in range(5)])
                       for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            probe(x)
            assert torch._C._jit_llga_enabled() is before and seen[-1] is before
        finally:
            torch._C._jit_set_llga_enabled(False)


@needs_onednn_graph
def test_onednn_graph_copy_is_checked_again_at_each_new_input_size(weights: Path,
                                                                    monkeypatch) -> None:
    """A size first seen after start-up is compiled and checked before its result is used;
    a copy that differs there is dropped for the fused copy, and the note says where."""
    engine = DepthEngine(_config(weights))
    assert engine.backend == 'torch+onednn_graph'
    graph_copy = engine.model
    rgb, sparse = _frame(64, 128, seed=2)
    engine.infer(rgb, sparse)  # 64x128: checked at start-up
    rgb, sparse = _frame(64, 192, seed=3)

    def wrong_at_192(*inputs):
        out = graph_copy(*inputs)
        return out + 0.05 if inputs[0].shape[-1] == 192 else out  # 5 % of max depth

    monkeypatch.setattr(engine, '_forward', wrong_at_192)
    got = engine.infer(rgb, sparse)
    assert engine.backend == 'torch' and engine.fused
    assert 'oneDNN Graph copy dropped at input size (1, 3, 64, 192)' in engine.backend_note
    assert type(engine.model.decoders[0].blocks[0]).__name__ == 'FusedSeedBottleneck'
    expected = DepthEngine(_config(weights, backend='torch')).infer(rgb, sparse)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * MAX_DEPTH)


@needs_onednn_graph
def test_onednn_graph_copy_warmed_up_and_checked_at_a_fixed_size(weights: Path) -> None:
    engine = DepthEngine(_config(weights, input_width=128, backend='onednn_graph'))
    assert engine.backend == 'torch+onednn_graph'
    inputs = engine._example_inputs(64, 128)
    assert onednn_graph_kernels(engine.model, *inputs) > 0  # compiled at start-up


@needs_onednn_graph
def test_onednn_graph_copy_that_differs_is_refused(weights: Path, monkeypatch) -> None:
    from g2mono_ros.models.g2_seed import G2Seed

    build = G2Seed.fused_for_cpu_inference

    def shifted(self: G2Seed, *, onednn_graph: bool = False) -> G2Seed:
        fused = build(self, onednn_graph=onednn_graph)
        if onednn_graph:
            fused._modules = dict(fused._modules)
            head = torch.nn.Conv2d(self.head.in_channels, 1, 3, padding=1)
            head.load_state_dict(self.head.state_dict())
            with torch.no_grad():
                head.bias.add_(0.05)
            fused._modules['head'] = head
        return fused

    monkeypatch.setattr(G2Seed, 'fused_for_cpu_inference', shifted)
    engine = DepthEngine(_config(weights))
    assert engine.backend == 'torch' and engine.fused
    assert engine.backend_note.startswith('oneDNN Graph copy not used: backend output differs '
                                          'from the plain network')
    assert type(engine.model.decoders[0].blocks[0]).__name__ == 'FusedSeedBottleneck'


def test_onednn_graph_copy_refused_or_required(weights: Path, tmp_path: Path,
                                               monkeypatch) -> None:
    """``auto`` falls back to the fused copy (saying why) where ``onednn_graph`` is an error."""
    import g2mono_ros.models.backends as backends
    import g2mono_ros.models.engine as engine_module

    with pytest.raises(ConfigError, match="'backend' is 'onednn_graph', which runs fp32 on the "
                                          'CPU; got device cpu precision bf16'):
        DepthEngine(_config(weights, backend='onednn_graph', precision='bf16'))
    with pytest.raises(ConfigError, match="'backend' is 'onednn_graph' but the official "
                                          'network has no oneDNN Graph form'):
        DepthEngine(_config(_official_weights(tmp_path), backend='onednn_graph'))
    monkeypatch.setattr(engine_module, 'onednn_graph_kernels', lambda model, *inputs: 0)
    engine = DepthEngine(_config(weights))
    assert engine.backend == 'torch' and engine.fused
    assert 'oneDNN Graph copy not used: oneDNN Graph fused no kernel' in engine.backend_note
    monkeypatch.setattr(backends, 'onednn_graph_unavailable', lambda: 'no LLGA here')
    engine = DepthEngine(_config(weights))
    assert engine.backend == 'torch' and engine.fused
    assert engine.backend_note == 'oneDNN Graph copy not used: no LLGA here'
    with pytest.raises(ConfigError, match="'backend' is 'onednn_graph' but it cannot run: no "
                                          'LLGA here'):
        DepthEngine(_config(weights, backend='onednn_graph'))


def test_fused_copy_that_differs_is_refused(weights: Path, monkeypatch) -> None:
    """A fused copy off by more than the parity tolerance is not used; the note says why."""
    from g2mono_ros.models.g2_seed import G2Seed

    build = G2Seed.fused_for_cpu_inference

    def shifted(self: G2Seed) -> G2Seed:
        fused = build(self)
        fused._modules = dict(fused._modules)
        head = torch.nn.Conv2d(self.head.in_channels, 1, 3, padding=1)
        head.load_state_dict(self.head.state_dict())
        with torch.no_grad():
            head.bias.add_(0.05)  # a depth offset: 5 % of max depth in log space and more
        fused._modules['head'] = head
        return fused

    monkeypatch.setattr(G2Seed, 'fused_for_cpu_inference', shifted)
    engine = DepthEngine(_config(weights, backend='torch'))
    assert not engine.fused and engine.backend == 'torch' and engine.backend_error is None
    assert 'fused CPU copy not used' in engine.backend_note
    assert 'differs from the plain network' in engine.backend_note
    assert type(engine.model.decoders[0].blocks[0]).__name__ == 'SeedBottleneck'


def test_onnxruntime_backend_is_checked_and_matches_torch(weights: Path) -> None:
    pytest.importorskip('onnxruntime')
    ort_engine = DepthEngine(_config(weights, backend='onnxruntime'))
    torch_engine = DepthEngine(_config(weights, backend='torch'))
    assert ort_engine.backend == 'onnxruntime'
    assert ort_engine.backend_error is not None and ort_engine.backend_error <= 1e-3
    # Exported at 64x64, checked at 64x128, used here at a third size (dynamic axes).
    rgb, sparse = _frame(70, 200, seed=4)
    got, expected = ort_engine.infer(rgb, sparse), torch_engine.infer(rgb, sparse)
    assert ort_engine.network_input_size(70, 200) == (64, 192)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3 * MAX_DEPTH)


def _official_weights(tmp_path: Path) -> Path:
    small = {'widths': [8, 16, 16, 32, 32, 32, 32], 'num_bottle': 1}
    torch.manual_seed(1)
    return save_checkpoint(tmp_path / 'official_small.pt',
                           _with_alphas(create_model('official', **small)), variant='official',
                           model_kwargs=small, max_depth=MAX_DEPTH, input_height=64,
                           input_width=0)


def test_auto_picks_onnxruntime_for_the_official_network(tmp_path: Path) -> None:
    pytest.importorskip('onnxruntime')
    path = _official_weights(tmp_path)
    auto = DepthEngine(_config(path))
    assert auto.backend == 'onnxruntime' and auto.backend_note == ''
    assert not auto.fused and auto.backend_error <= 1e-3
    fused = DepthEngine(_config(path, backend='torch'))
    assert fused.backend == 'torch' and fused.fused
    rgb, sparse = _frame(70, 130, seed=9)
    np.testing.assert_allclose(auto.infer(rgb, sparse), fused.infer(rgb, sparse), rtol=0,
                               atol=1e-3 * MAX_DEPTH)


def test_auto_falls_back_to_torch_without_onnxruntime(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import now raises ImportError
    engine = DepthEngine(_config(_official_weights(tmp_path)))
    assert engine.backend == 'torch' and engine.fused
    assert 'ONNX Runtime not used' in engine.backend_note
    assert 'onnxruntime package is not installed' in engine.backend_note


def test_onnxruntime_needs_cpu_fp32(weights: Path) -> None:
    with pytest.raises(ConfigError, match="'backend' is 'onnxruntime', which runs fp32 on the "
                                          'CPU; got device cpu precision bf16'):
        DepthEngine(_config(weights, backend='onnxruntime', precision='bf16'))


def test_onnxruntime_missing_is_a_config_error(weights: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import now raises ImportError
    with pytest.raises(ConfigError, match='onnxruntime package is not installed'):
        DepthEngine(_config(weights, backend='onnxruntime'))


def test_onnxruntime_for_the_shipped_weights_is_a_clear_config_error() -> None:
    """The demo weights' pre-fills record the input size in the exported graph: ONNX Runtime
    cannot run them at the check's other size, which is a start-up ConfigError (not ONNX
    Runtime's own exception); ``auto`` keeps torch for them."""
    from g2mono_ros.weights import DEMO_WEIGHTS

    with pytest.raises(ConfigError, match='does not run at another input size in ONNX Runtime'):
        DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu', input_height=64,
                                 input_width=64, backend='onnxruntime', num_threads=1))


def test_backend_setting_is_validated(weights: Path) -> None:
    with pytest.raises(ConfigError, match="parameter 'backend' must be one of auto, torch, "
                                          "onednn_graph, onnxruntime; got 'tensorrt'"):
        _config(weights, backend='tensorrt')
    with pytest.raises(ConfigError, match="parameter 'cuda_graph' must be true or false"):
        _config(weights, cuda_graph='yes')


def test_parity_check_refuses_a_backend_that_differs() -> None:
    """A wrong backend (here: the network's output shifted by 1 %) is refused before use."""
    model = create_model('seed_small').eval()
    inputs = (torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64), torch.ones(1, 1, 64, 64))
    assert check_against_module(model, model, inputs) == 0.0
    with pytest.raises(ConfigError, match=r'differs from the plain network by 0\.01 .*allowed '
                                          r'0\.001'):
        check_against_module(lambda *x: model(*x) + 0.01, model, inputs)
    with pytest.raises(ConfigError, match=r'backend output shape \(1, 1, 32, 64\)'):
        check_against_module(lambda *x: model(*x)[..., :32, :], model, inputs)


def test_onnxruntime_backend_alone_matches_the_module() -> None:
    pytest.importorskip('onnxruntime')
    torch.manual_seed(2)
    model = _with_alphas(create_model('seed_small')).eval()
    example = (torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64), torch.ones(1, 1, 64, 64))
    backend = OnnxRuntimeBackend(model, example, num_threads=1)
    other = (torch.rand(2, 3, 128, 64), torch.rand(2, 1, 128, 64), torch.ones(2, 1, 128, 64))
    assert check_against_module(backend, model, other) < 1e-4


def test_camera_size_image_is_area_resized_and_depth_upsampled(weights: Path) -> None:
    """``infer`` on a camera-size image = the network on the uint8 area resize, upsampled
    bilinearly; and an image already at the network size with ``out_hw`` gives the same."""
    engine = DepthEngine(_config(weights, upsample='bilinear'))
    rgb, sparse = _frame(96, 200, seed=6)
    h, w = engine.network_input_size(96, 200)
    small = area_resize(rgb, (h, w))
    from g2mono_ros.models.engine import resize_sparse_depth

    sparse_net = resize_sparse_depth(sparse, (h, w))
    rgb_t = torch.from_numpy(small).permute(2, 0, 1)[None]
    net = engine.infer_tensors(rgb_t, torch.from_numpy(sparse_net)[None, None])[0, 0].numpy()
    expected = cv2.resize(net, (200, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(engine.infer(rgb, sparse), expected)
    np.testing.assert_array_equal(
        engine.infer(small, sparse_net, out_hw=(96, 200), sparse_clean=True), expected)
    # Same arithmetic as F.interpolate(bilinear, align_corners=False), within float rounding.
    torch_up = torch.nn.functional.interpolate(torch.from_numpy(net)[None, None], size=(96, 200),
                                               mode='bilinear', align_corners=False)[0, 0]
    np.testing.assert_allclose(expected, torch_up.numpy(), rtol=0, atol=1e-4)


def test_edge_aware_upsampling_takes_the_camera_image_as_guide(weights: Path) -> None:
    """Network-size rgb + camera-size guide = the camera-size call; no guide is an error."""
    engine = DepthEngine(_config(weights, upsample='edge_aware'))
    rgb, sparse = _frame(96, 200, seed=8)
    h, w = engine.network_input_size(96, 200)
    from g2mono_ros.models.engine import resize_sparse_depth

    sparse_net = resize_sparse_depth(sparse, (h, w))
    expected = engine.infer(rgb, sparse_net)
    got = engine.infer(area_resize(rgb, (h, w)), sparse_net, out_hw=(96, 200), guide=rgb)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ShapeError, match='upsample edge_aware needs the camera-size image'):
        engine.infer(area_resize(rgb, (h, w)), sparse_net, out_hw=(96, 200))


@needs_cuda
@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
def test_cuda_weights_converted_once_and_close_to_cpu(weights: Path, precision: str) -> None:
    gpu = DepthEngine(_config(weights, device='cuda', precision=precision))
    assert next(gpu.model.parameters()).dtype == {'fp16': torch.float16,
                                                  'bf16': torch.bfloat16}[precision]
    assert torch.backends.cudnn.benchmark
    cpu = DepthEngine(_config(weights))
    for seed in (1, 2):  # two frames in a row: pinned buffers reused safely
        rgb, sparse = _frame(70, 130, seed=seed)
        assert np.abs(gpu.infer(rgb, sparse) - cpu.infer(rgb, sparse)).max() < 0.05 * MAX_DEPTH


@needs_cuda
def test_cuda_graph_replay_matches_eager(weights: Path) -> None:
    eager = DepthEngine(_config(weights, device='cuda', input_width=128))
    graph = DepthEngine(_config(weights, device='cuda', input_width=128, cuda_graph=True))
    assert graph.backend == 'torch+cuda_graph' and eager.backend == 'torch'
    for seed in (3, 4):
        rgb, sparse = _frame(64, 128, seed=seed)
        np.testing.assert_allclose(graph.infer(rgb, sparse), eager.infer(rgb, sparse),
                                   rtol=0, atol=1e-3 * MAX_DEPTH)


@needs_cuda
def test_cuda_full_path_with_device_projection(weights: Path) -> None:
    """process_pair on CUDA: projection on the device, sparse map downloaded with the depth."""
    from g2mono_ros.fusion.camera import CameraModel
    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.projection import project_points_to_depth
    from g2mono_ros.fusion.sparse import SparseProjector

    gpu = DepthEngine(_config(weights, device='cuda'))
    camera = CameraModel(width=128, height=64, K=np.array([[60.0, 0, 64], [0, 60.0, 32],
                                                          [0, 0, 1]]),
                         D=np.zeros(0), distortion_model='none')
    rng = np.random.default_rng(3)
    points = np.stack([rng.uniform(-4, 4, 3000), rng.uniform(-2, 2, 3000),
                       rng.uniform(2, 15, 3000)], axis=1).astype(np.float32)
    rgb = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    projector = SparseProjector(gpu.device)
    for _ in range(2):
        work = process_pair(gpu, PairInputs(rgb, points, camera), np.eye(4), min_range=0.5,
                            max_range=100.0, want_sparse=True, want_colorized=False,
                            projector=projector)
        expected, _ = project_points_to_depth(points, np.eye(4), camera)
        np.testing.assert_array_equal(work.sparse_m, expected)
        assert work.depth_m.shape == (64, 128) and np.isfinite(work.depth_m).all()
