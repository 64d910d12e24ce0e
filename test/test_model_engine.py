"""DepthEngine, sparse resizing and colorizing, on small real checkpoints saved to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from g2mono_ros.models.checkpoint import load_checkpoint, save_checkpoint
from g2mono_ros.config import EngineConfig
from g2mono_ros.models.engine import DepthEngine, resize_sparse_depth
from g2mono_ros.errors import CheckpointError, ConfigError, ShapeError
from g2mono_ros.models import create_model, default_model_kwargs, to_release_state_dict
from g2mono_ros.visualize import colorize_depth, depth_colour_scale

MAX_DEPTH = 40.0


def _with_alphas(model: nn.Module, value: float = 0.3) -> nn.Module:
    """Non-zero ReZero scalars, and a head conv rescaled so that random weights give depths
    inside (0, 1): raw random outputs are O(1-10) and would all clip, hiding any difference."""
    captured = []
    hook = model.head.register_forward_hook(lambda mod, args, out: captured.append(out))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('alpha'):
                param.fill_(value)
        gen = torch.Generator().manual_seed(0)
        rgb = torch.rand(2, 3, 64, 128, generator=gen)
        hole = (torch.rand(2, 1, 64, 128, generator=gen) < 0.1).float()
        model.eval()(rgb, hole * torch.rand(2, 1, 64, 128, generator=gen), hole)
        hook.remove()
        raw = captured[0]
        scale = 0.15 / float(raw.std())
        model.head.weight.mul_(scale)
        model.head.bias.mul_(scale).add_(0.5 - scale * float(raw.mean()))
    return model


@pytest.fixture(scope='module')
def seed_small_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    kwargs = default_model_kwargs('seed_small')
    model = _with_alphas(create_model('seed_small', **kwargs))
    path = tmp_path_factory.mktemp('weights') / 'seed_small.pt'
    return save_checkpoint(path, model, variant='seed_small', model_kwargs=kwargs,
                           max_depth=MAX_DEPTH, input_height=64, input_width=0)


def _frame(height: int, width: int, points: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    sparse = np.zeros((height, width), np.float32)
    rows = rng.integers(0, height, points)
    cols = rng.integers(0, width, points)
    sparse[rows, cols] = rng.uniform(1.0, 60.0, points).astype(np.float32)
    return rgb, sparse


# --------------------------------------------------------------------------- engine


def test_engine_on_size_not_multiple_of_64(seed_small_weights: Path) -> None:
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64))
    assert engine.max_depth == MAX_DEPTH
    assert engine.device == torch.device('cpu')
    assert engine.network_input_size(70, 130) == (64, 128)
    rgb, sparse = _frame(70, 130)
    depth = engine.infer(rgb, sparse)
    assert depth.shape == (70, 130) and depth.dtype == np.float32
    assert np.isfinite(depth).all()
    assert depth.min() >= 0.0 and depth.max() <= MAX_DEPTH


def test_engine_zero_point_input(seed_small_weights: Path) -> None:
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64))
    rgb, _ = _frame(70, 130)
    depth = engine.infer(rgb, np.zeros((70, 130), np.float32))
    assert depth.shape == (70, 130) and np.isfinite(depth).all()


def test_engine_follows_release_conventions(seed_small_weights: Path) -> None:
    """At the network size nothing is resized: compare with a hand-normalised forward pass."""
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64, input_width=128))
    rgb, sparse = _frame(64, 128, seed=3)
    sparse[0, 0] = 500.0  # beyond max depth: clipped to 1.0 at the input
    sparse[1, 1] = np.nan  # not a point
    depth = engine.infer(rgb, sparse)

    model = engine.model
    clean = np.where(np.isfinite(sparse), sparse, 0.0)
    rgb_t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    point = torch.from_numpy(np.clip(clean / MAX_DEPTH, 0, 1)).float()[None, None]
    hole = torch.from_numpy(clean > 0).float()[None, None]
    with torch.no_grad():
        expected = model(rgb_t, point, hole).clamp(0, 1)[0, 0].numpy() * MAX_DEPTH
    np.testing.assert_allclose(depth, expected, rtol=1e-5, atol=1e-5 * MAX_DEPTH)


def test_engine_accepts_sparse_at_network_size(seed_small_weights: Path) -> None:
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64))
    rgb, _ = _frame(70, 130)
    _, sparse_net = _frame(64, 128, seed=1)
    depth = engine.infer(rgb, sparse_net)
    assert depth.shape == (70, 130)
    with pytest.raises(ShapeError, match=r'sparse_depth must be \(70, 130\) .* or \(64, 128\)'):
        engine.infer(rgb, np.zeros((10, 10), np.float32))
    with pytest.raises(ShapeError, match=r'rgb must be \(H, W, 3\) uint8'):
        engine.infer(rgb.astype(np.float32), sparse_net)


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_engine_autocast_close_to_fp32(seed_small_weights: Path, precision: str) -> None:
    rgb, sparse = _frame(64, 128, seed=2)
    results = {}
    for name in ('fp32', precision):
        engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                          precision=name, input_height=64))
        results[name] = engine.infer(rgb, sparse)
    assert np.isfinite(results[precision]).all()
    assert 0.1 * MAX_DEPTH < results['fp32'].mean() < 0.9 * MAX_DEPTH  # not clipped away
    assert not np.array_equal(results[precision], results['fp32'])  # autocast really applied
    error = np.abs(results[precision] - results['fp32'])
    assert error.mean() < 0.01 * MAX_DEPTH and error.max() < 0.1 * MAX_DEPTH


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_engine_cuda_matches_cpu(seed_small_weights: Path, precision: str) -> None:
    """Pinned buffers + non-blocking copies: two frames in a row give the CPU's result."""
    cpu = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                   input_height=64))
    gpu = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cuda',
                                   precision=precision, input_height=64))
    assert gpu.device.type == 'cuda'
    for seed in (4, 5):
        rgb, sparse = _frame(70, 130, seed=seed)
        expected = cpu.infer(rgb, sparse)
        got = gpu.infer(rgb, sparse)
        tolerance = 0.02 if precision == 'fp32' else 0.05  # cuDNN may use TF32 for fp32
        assert np.abs(got - expected).max() < tolerance * MAX_DEPTH


def test_engine_infer_tensors(seed_small_weights: Path) -> None:
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64))
    rgb = torch.randint(0, 256, (2, 3, 64, 128), dtype=torch.uint8)
    sparse = torch.zeros(2, 1, 64, 128)
    sparse[:, :, ::7, ::5] = 12.0
    out = engine.infer_tensors(rgb, sparse)
    assert out.shape == (2, 1, 64, 128) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= MAX_DEPTH
    as_float = engine.infer_tensors(rgb.float() / 255.0, sparse)
    torch.testing.assert_close(out, as_float)
    dirty = sparse.clone()
    dirty[:, :, 1::7, ::5] = float('nan')  # non-finite and negative values are not points
    dirty[:, :, 2::7, ::5] = -3.0
    torch.testing.assert_close(engine.infer_tensors(rgb, dirty), out)
    with pytest.raises(ShapeError, match=r'sparse must be \(B, 1, h, w\)'):
        engine.infer_tensors(rgb, sparse[:, 0])


def test_engine_needs_weights_setting() -> None:
    with pytest.raises(ConfigError, match="parameter 'weights' is empty"):
        DepthEngine(EngineConfig(weights=''))


def test_engine_missing_weights_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / 'missing.pt'
    with pytest.raises(CheckpointError, match='not found: .*missing.pt'):
        DepthEngine(EngineConfig(weights=str(missing), device='cpu'))


def test_engine_release_weights_need_max_depth(tmp_path: Path) -> None:
    small = {'widths': (8, 16, 16, 32, 32, 32, 32)}
    release = to_release_state_dict(create_model('official', **small))
    # The release file itself is full-size; a small bare dict needs the variant's kwargs, so
    # this goes through our format to keep the test small, then the bare path separately.
    path = tmp_path / 'bare.pth'
    torch.save({'network': to_release_state_dict(create_model('official'))}, path)
    with pytest.raises(ConfigError, match="parameter 'max_depth' must be > 0"):
        DepthEngine(EngineConfig(weights=str(path), device='cpu', variant='official'))
    engine = DepthEngine(EngineConfig(weights=str(path), device='cpu', variant='official',
                                      max_depth=20.0, input_height=64))
    assert engine.max_depth == 20.0
    assert engine.loaded.variant == 'official'
    assert release  # the small dict is a valid release-format dict too
    rgb, sparse = _frame(64, 64)
    assert engine.infer(rgb, sparse).shape == (64, 64)


def test_engine_fuses_official_on_cpu_fp32(tmp_path: Path) -> None:
    small = {'widths': [8, 16, 16, 32, 32, 32, 32], 'num_bottle': 3}
    torch.manual_seed(1)
    path = save_checkpoint(tmp_path / 'official_small.pt',
                           _with_alphas(create_model('official', **small)), variant='official',
                           model_kwargs=small, max_depth=MAX_DEPTH, input_height=64,
                           input_width=0)
    # The fused copy is the torch backend's ('auto' would pick ONNX Runtime).
    config = EngineConfig(weights=str(path), device='cpu', input_height=64, backend='torch')
    fused = DepthEngine(config)
    plain = DepthEngine(config, fuse_cpu=False)
    bf16 = DepthEngine(EngineConfig(weights=str(path), device='cpu', input_height=64,
                                    precision='bf16'))
    assert fused.fused and not plain.fused and not bf16.fused
    rgb, sparse = _frame(70, 130, seed=7)
    np.testing.assert_allclose(fused.infer(rgb, sparse), plain.infer(rgb, sparse),
                               rtol=0, atol=1e-4 * MAX_DEPTH)


def test_engine_cuda_unavailable_is_config_error(seed_small_weights: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    with pytest.raises(ConfigError, match="parameter 'device' is 'cuda'"):
        DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cuda'))


def test_engine_with_in_memory_model() -> None:
    model = create_model('official', widths=(8, 16, 16, 32, 32, 32, 32))
    engine = DepthEngine(EngineConfig(weights='<in-memory>', device='cpu', max_depth=10.0,
                                      input_height=64), model=model)
    assert engine.model is model and not engine.fused  # a bare module is never swapped
    rgb, sparse = _frame(64, 64)
    assert engine.infer(rgb, sparse).shape == (64, 64)


def test_engine_with_loaded_model_uses_its_max_depth(seed_small_weights: Path) -> None:
    loaded = load_checkpoint(seed_small_weights)
    engine = DepthEngine(EngineConfig(weights='label', device='cpu', input_height=64),
                         model=loaded)
    assert engine.max_depth == MAX_DEPTH and engine.loaded is loaded
    # It runs that network: itself, or (CPU fp32) its fused copy sharing the same weights.
    assert engine.fused and engine.model is not loaded.model
    assert engine.model.head.weight is loaded.model.head.weight
    unfused = DepthEngine(EngineConfig(weights='label', device='cpu', input_height=64),
                          model=loaded, fuse_cpu=False)
    assert unfused.model is loaded.model


def test_network_input_size_keeps_aspect(seed_small_weights: Path) -> None:
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=320))
    assert engine.network_input_size(480, 640) == (320, 448)  # 426.7 -> 448
    assert engine.network_input_size(375, 1242) == (320, 1088)  # KITTI
    assert engine.network_input_size(1000, 50) == (320, 64)  # never below one block
    fixed = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                     input_height=256, input_width=512))
    assert fixed.network_input_size(480, 640) == (256, 512)


# --------------------------------------------------------------------------- sparse resize


def test_resize_keeps_nearest_point_per_target_pixel() -> None:
    depth = np.zeros((4, 4), np.float32)
    depth[0, 0] = 9.0
    depth[1, 1] = 3.0  # same target pixel (0, 0) at 2x2: the nearer survives
    depth[0, 1] = 5.0
    depth[3, 3] = 7.0
    out = resize_sparse_depth(depth, (2, 2))
    np.testing.assert_array_equal(out, [[3.0, 0.0], [0.0, 7.0]])


def test_resize_never_invents_or_blends() -> None:
    rng = np.random.default_rng(0)
    depth = np.zeros((97, 203), np.float32)
    idx = rng.choice(depth.size, 3000, replace=False)
    depth.reshape(-1)[idx] = rng.uniform(0.5, 80.0, idx.size)
    for out_hw in ((32, 64), (64, 128), (200, 400)):
        out = resize_sparse_depth(depth, out_hw)
        assert out.shape == out_hw and out.dtype == np.float32
        values = out[out > 0]
        assert np.isin(values, depth[depth > 0]).all()
        # every kept value is the minimum of the input points mapped to its pixel
        assert values.size == min(np.count_nonzero(depth > 0), values.size)
    up = resize_sparse_depth(depth, (194, 406))
    assert np.count_nonzero(up) == np.count_nonzero(depth)  # upsampling loses no point


def test_resize_min_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    depth = np.where(rng.random((30, 50)) < 0.3, rng.uniform(1, 9, (30, 50)), 0).astype(np.float32)
    out = resize_sparse_depth(depth, (7, 11))
    expected = np.zeros((7, 11), np.float32)
    for r, c in zip(*np.nonzero(depth)):
        tr = min(int((r + 0.5) * 7 / 30), 6)
        tc = min(int((c + 0.5) * 11 / 50), 10)
        v = depth[r, c]
        expected[tr, tc] = v if expected[tr, tc] == 0 else min(expected[tr, tc], v)
    np.testing.assert_array_equal(out, expected)


def test_resize_ignores_invalid_and_checks_shapes() -> None:
    depth = np.array([[np.nan, -1.0], [np.inf, 2.0]], np.float32)
    np.testing.assert_array_equal(resize_sparse_depth(depth, (2, 2)), [[0, 0], [0, 2.0]])
    np.testing.assert_array_equal(resize_sparse_depth(depth, (1, 1)), [[2.0]])
    assert not resize_sparse_depth(np.zeros((8, 8)), (4, 4)).any()
    with pytest.raises(ShapeError, match=r'sparse depth must be \(H, W\)'):
        resize_sparse_depth(np.zeros((2, 2, 1)), (1, 1))
    with pytest.raises(ShapeError, match='out_hw must be two positive sizes'):
        resize_sparse_depth(np.zeros((2, 2)), (0, 1))


# --------------------------------------------------------------------------- colorize


def test_colorize_depth() -> None:
    depth = np.array([[0.0, 1.0, 10.0, 100.0], [np.nan, -1.0, 5.0, 20.0]], np.float32)
    image = colorize_depth(depth, 10.0)
    assert image.shape == (2, 4, 3) and image.dtype == np.uint8
    assert (image[0, 0] == 0).all() and (image[1, 0] == 0).all() and (image[1, 1] == 0).all()
    assert (image[0, 2] == image[0, 3]).all()  # saturates beyond max depth
    assert image[0, 2].any()  # the far end is dark but not the no-data black
    # near is brighter than far (monotone luminance of the colormap)
    luminance = image.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert luminance[0, 1] > luminance[1, 2] > luminance[0, 2]
    with pytest.raises(ShapeError, match='max_depth must be a positive'):
        colorize_depth(depth, 0.0)
    with pytest.raises(ShapeError, match=r'depth_m must be \(H, W\)'):
        colorize_depth(depth[None], 10.0)


def test_depth_colour_scale_follows_the_scene() -> None:
    room = np.linspace(1.0, 5.0, 1000, dtype=np.float32).reshape(20, 50)
    room[0, :5] = 0.0  # no data is ignored
    room[1, :5] = np.nan
    scale = depth_colour_scale(room)
    assert scale == pytest.approx(1.1 * float(np.percentile(room[room > 0], 99)))
    assert 5.0 < scale < 5.6
    assert depth_colour_scale(np.zeros((3, 3), np.float32), default=7.0) == 7.0
    # A room at 1-5 m on its own scale spans the colour map; on a 200 m clamp it is one colour.
    own = colorize_depth(room, scale).reshape(-1, 3)[10:]
    clamp = colorize_depth(room, 200.0).reshape(-1, 3)[10:]
    assert len(np.unique(own, axis=0)) > 150 and len(np.unique(clamp, axis=0)) < 10
    # A 1080p frame is subsampled (cost), within 1 % of the full percentile on a smooth scene.
    rows = np.linspace(1.0, 30.0, 1080, dtype=np.float32)[:, None]
    frame = np.broadcast_to(rows, (1080, 1920)).copy()
    full = 1.1 * float(np.percentile(frame, 99))
    assert depth_colour_scale(frame) == pytest.approx(full, rel=0.01)


# --------------------------------------------------------------------------- allocator


def test_tune_cpu_allocator_is_idempotent() -> None:
    import platform

    from g2mono_ros.models.engine import tune_cpu_allocator

    first = tune_cpu_allocator()
    assert tune_cpu_allocator() is first
    if platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc':
        assert first is True


def test_engine_applies_num_threads_on_cpu(seed_small_weights):
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.models.engine import DepthEngine

    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                     num_threads=threads, input_height=64))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_network_inputs_drop_every_non_finite_or_non_positive_point(seed_small_weights):
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64))
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e-45, 3.0, 3.4e38, MAX_DEPTH * 2]
    sparse = torch.tensor(values + [0.0] * 6, dtype=torch.float32).view(1, 1, 4, 4)
    rgb = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    _, point, hole = engine._network_inputs(rgb, sparse)
    valid = torch.isfinite(sparse) & (sparse > 0)  # the definition
    assert torch.equal(hole.bool(), valid)
    expected = torch.where(valid, sparse / MAX_DEPTH, 0.0).clamp(0.0, 1.0)
    assert torch.equal(point, expected.contiguous(memory_format=torch.channels_last))


def test_host_network_inputs_are_the_torch_ones_to_the_bit(seed_small_weights):
    """The CPU path builds the network inputs in numpy: the same tensors as _network_inputs
    (values, dtype, channels_last strides), for clean maps and for every kind of bad point."""
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64))
    rgb, sparse = _frame(64, 128, points=500, seed=3)
    dirty = sparse.copy()
    dirty[0, :9] = [np.nan, np.inf, -np.inf, -0.0, -1.0, 1e-45, 3.4e38, MAX_DEPTH * 2, 3.0]
    for points in (sparse, dirty):
        with torch.inference_mode():
            expected = engine._network_inputs(torch.from_numpy(rgb).permute(2, 0, 1)[None],
                                              torch.from_numpy(points)[None, None])
        got = engine._host_network_inputs(rgb, points)
        for want, have in zip(expected, got):
            assert have.dtype == want.dtype and have.shape == want.shape
            assert have.stride() == want.stride()
            assert torch.equal(have, want)


@pytest.mark.parametrize('upsample', ['bilinear', 'edge_aware'])
def test_cpu_infer_is_the_torch_path_to_the_bit(seed_small_weights, upsample: str) -> None:
    """infer on the CPU (numpy inputs and scaling) = infer_tensors followed by the upsampling
    the engine ran before: cv2 bilinear on the host, edge-aware through its torch entry
    point; bit for bit, from a camera-size and a network-size image."""
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64, upsample=upsample))
    rgb, sparse = _frame(96, 200, points=400, seed=4)
    h, w = engine.network_input_size(96, 200)
    from g2mono_ros.imaging import area_resize

    small, sparse_net = area_resize(rgb, (h, w)), resize_sparse_depth(sparse, (h, w))
    rgb_t = torch.from_numpy(small).permute(2, 0, 1)[None]
    net = engine.infer_tensors(rgb_t, torch.from_numpy(sparse_net)[None, None])
    if upsample == 'bilinear':
        expected = engine._upsample_on_host(net[0, 0].numpy(), (96, 200))
    else:
        with torch.inference_mode():
            expected = engine._to_camera_size(net, (96, 200), rgb_t, rgb, None)[0, 0].numpy()
    np.testing.assert_array_equal(engine.infer(rgb, sparse), expected)
    np.testing.assert_array_equal(
        engine.infer(small, sparse_net, out_hw=(96, 200), sparse_clean=True, guide=rgb),
        expected)
    np.testing.assert_array_equal(engine.infer(small, sparse_net), net[0, 0].numpy())


def test_upsampled_depth_stays_within_max_depth(seed_small_weights) -> None:
    """cv2's bilinear weights can sum to 1 + ulp: at max_depth the result is clipped; below
    it by more than a rounding margin the full-size clip is skipped (it would change
    nothing) and the result is cv2's, clipped or not alike."""
    import cv2

    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64, upsample='bilinear'))
    rng = np.random.default_rng(5)
    at_max = np.full((7, 11), MAX_DEPTH, np.float32)
    at_max[rng.random(at_max.shape) < 0.5] = np.nextafter(np.float32(MAX_DEPTH), 0)
    up = engine._upsample_on_host(at_max, (61, 97))
    assert up.max() <= np.float32(MAX_DEPTH) and up.min() >= 0
    below = (rng.random((7, 11)) * MAX_DEPTH * 0.999).astype(np.float32)
    below[0, 0] = 0.0
    plain = cv2.resize(below, (97, 61), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(engine._upsample_on_host(below, (61, 97)), plain)
    np.testing.assert_array_equal(np.clip(plain, 0.0, MAX_DEPTH), plain)


class _Flat(nn.Module):
    """A network whose normalised depth is ``value`` everywhere but ``corner`` at (0, 0)."""

    def __init__(self, value: float, corner: float) -> None:
        super().__init__()
        self.value, self.corner = value, corner

    def forward(self, rgb, point, hole):
        out = torch.full_like(hole, self.value)
        out[..., 0, 0] = self.corner
        return out


@pytest.mark.parametrize('upsample', ['bilinear', 'edge_aware'])
def test_last_depth_positive_is_true_only_when_the_result_has_no_zero(upsample: str) -> None:
    """``last_depth_positive`` (which lets the node's encoder skip its search for zeros) is
    decided at the network size on the CPU path the node takes: True when no pixel there is
    below 1e-6 m, and then the camera-size result has no zero (down to 1e-6 m: no
    underflow); False with a zero, after a failed call, and on the torch path (a sparse
    tensor), where nothing checks."""
    rgb, sparse = _frame(96, 200, points=400, seed=7)

    def node_call(engine: DepthEngine) -> np.ndarray:
        # As the node calls it: network-size inputs, the camera-size guide.
        from g2mono_ros.imaging import area_resize

        h, w = engine.network_input_size(96, 200)
        return engine.infer(area_resize(rgb, (h, w)), resize_sparse_depth(sparse, (h, w)),
                            out_hw=(96, 200), sparse_clean=True, guide=rgb)

    def engine_of(network: nn.Module) -> DepthEngine:
        return DepthEngine(EngineConfig(weights='flat', device='cpu', input_height=64,
                                        max_depth=MAX_DEPTH, upsample=upsample),
                           model=network)

    tiny = engine_of(_Flat(0.5, 1e-6 / MAX_DEPTH * 1.01))
    depth = node_call(tiny)
    assert tiny.last_depth_positive and depth.min() > 0
    zero = engine_of(_Flat(0.5, 0.0))
    depth = node_call(zero)
    assert not zero.last_depth_positive
    if upsample == 'bilinear':  # the corner pixel takes the corner value alone
        assert depth[0, 0] == 0.0
    node_call(tiny)
    with pytest.raises(ShapeError):
        tiny.infer(rgb[:, :, :2], sparse)
    assert not tiny.last_depth_positive
    node_call(tiny)
    assert tiny.last_depth_positive
    from g2mono_ros.imaging import area_resize

    h, w = tiny.network_input_size(96, 200)
    tiny.infer(area_resize(rgb, (h, w)), torch.from_numpy(resize_sparse_depth(sparse, (h, w))),
               out_hw=(96, 200), guide=rgb)  # a tensor: the torch path
    assert not tiny.last_depth_positive


@pytest.mark.parametrize('upsample', ['bilinear', 'edge_aware'])
def test_infer_writes_into_out_the_same_depth(seed_small_weights, upsample: str) -> None:
    """``out`` (a depth message's buffer in the node): the same bits as a new array, written
    there (the CPU upsamplers directly, the camera-size-network path by a copy); a wrong
    buffer fails before anything runs."""
    engine = DepthEngine(EngineConfig(weights=str(seed_small_weights), device='cpu',
                                      input_height=64, upsample=upsample))
    rgb, sparse = _frame(96, 200, points=400, seed=6)
    h, w = engine.network_input_size(96, 200)
    from g2mono_ros.imaging import area_resize

    small, sparse_net = area_resize(rgb, (h, w)), resize_sparse_depth(sparse, (h, w))
    expected = engine.infer(small, sparse_net, out_hw=(96, 200), sparse_clean=True, guide=rgb)
    out = np.full((96, 200), np.nan, np.float32)
    got = engine.infer(small, sparse_net, out_hw=(96, 200), sparse_clean=True, guide=rgb,
                       out=out)
    assert got is out
    np.testing.assert_array_equal(out, expected)
    same_size = np.full((h, w), np.nan, np.float32)  # no upsampling: copied into out
    assert engine.infer(small, sparse_net, out=same_size) is same_size
    np.testing.assert_array_equal(same_size, engine.infer(small, sparse_net))
    for bad in (np.zeros((96, 201), np.float32), np.zeros((96, 200), np.float64),
                np.zeros((200, 96), np.float32).T):
        with pytest.raises(ShapeError, match='out must be'):
            engine.infer(small, sparse_net, out_hw=(96, 200), sparse_clean=True, guide=rgb,
                         out=bad)
