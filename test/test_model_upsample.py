"""Edge-aware output upsampling, pinning at the camera size, the flying-pixel measure, and the
engine's ``upsample`` setting with a real checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.evaluation.quality import flying_pixel_mask, scanline_input
from g2mono_ros.models import create_model
from g2mono_ros.models.checkpoint import save_checkpoint
from g2mono_ros.models.engine import DepthEngine
from g2mono_ros.models.upsample import edge_aware_upsample, pin_to_points, upsample_depth


def _step_scene(h: int = 8, w: int = 12, scale: int = 4) -> tuple[torch.Tensor, ...]:
    """A near object (2 m, red) on the left of a far wall (10 m, blue), at two sizes."""
    depth = torch.full((1, 1, h, w), 10.0)
    depth[..., : w // 2 - 1] = 2.0
    guide_hr = torch.zeros(1, 3, h * scale, w * scale)
    guide_hr[:, 2] = 1.0
    edge_hr = (w // 2 - 1) * scale
    guide_hr[:, :, :, :edge_hr] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    guide_lr = F.interpolate(guide_hr, size=(h, w), mode='area')
    return depth, guide_lr, guide_hr


def test_smooth_depth_equals_torch_bilinear() -> None:
    gen = torch.Generator().manual_seed(0)
    depth = 5.0 + 0.02 * torch.rand(1, 1, 6, 10, generator=gen)  # spans < 10 %: no edge
    guide_lr = torch.rand(1, 3, 6, 10, generator=gen)
    guide_hr = torch.rand(1, 3, 15, 23, generator=gen)
    expected = F.interpolate(depth, size=(15, 23), mode='bilinear', align_corners=False)
    torch.testing.assert_close(edge_aware_upsample(depth, guide_lr, guide_hr), expected)


def test_step_edge_has_no_flying_pixels_and_follows_the_colour_edge() -> None:
    depth, guide_lr, guide_hr = _step_scene()
    bilinear = upsample_depth(depth, guide_hr.shape[-2:], mode='bilinear')[0, 0].numpy()
    aware = upsample_depth(depth, guide_hr.shape[-2:], mode='edge_aware', guide_lr=guide_lr,
                           guide_hr=guide_hr)[0, 0].numpy()
    assert flying_pixel_mask(bilinear).sum() > 0
    assert flying_pixel_mask(aware).sum() == 0
    assert set(np.unique(aware)) == {2.0, 10.0}
    red = guide_hr[0, 0].numpy() > 0.5
    np.testing.assert_array_equal(aware == 2.0, red)


def test_upsample_checks() -> None:
    depth, guide_lr, guide_hr = _step_scene()
    with pytest.raises(ShapeError, match='guide_lr must be'):
        edge_aware_upsample(depth, guide_lr[..., :-1], guide_hr)
    with pytest.raises(ShapeError, match='depth must be'):
        edge_aware_upsample(depth[0], guide_lr, guide_hr)
    with pytest.raises(ShapeError, match="'edge_aware'"):
        upsample_depth(depth, (10, 10), mode='edge_aware')


def test_pin_to_points() -> None:
    depth = torch.ones(1, 1, 2, 3)
    sparse = torch.tensor([[[[0.0, 4.0, float('nan')], [-1.0, 0.0, 7.0]]]])
    assert pin_to_points(depth, sparse).flatten().tolist() == [1.0, 4.0, 1.0, 1.0, 1.0, 7.0]


def test_flying_pixel_mask_hand_example() -> None:
    depth = np.array([[5.0, 5.0, 5.0, 5.0, 5.0],
                      [2.0, 2.0, 6.0, 10.0, 10.0],   # 6 lies between 2 and 10, >= 10 % from both
                      [2.0, 2.0, 9.5, 10.0, 10.0],   # 9.5 is within 10 % of 10: a surface pixel
                      [5.0, 5.0, 5.0, 5.0, 5.0]])
    mask = flying_pixel_mask(depth)
    assert np.argwhere(mask).tolist() == [[1, 2]]


def test_scanline_input_rows_and_columns() -> None:
    gt = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    gt[9, 4] = 0.0
    sparse = scanline_input(gt, 2, column_step=2, rows=(0.0, 1.0))
    assert sorted(set(np.nonzero(sparse)[0].tolist())) == [0, 9]
    assert np.nonzero(sparse[0])[0].tolist() == [0, 2, 4, 6, 8]
    assert np.nonzero(sparse[9])[0].tolist() == [0, 2, 6, 8]  # no ground truth at (9, 4)
    assert np.all(sparse[sparse > 0] == gt[sparse > 0])


@pytest.fixture(scope='module')
def pinning_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    kwargs = {'depth_norm': 'log', 'prefill_input': True, 'residual': True, 'pin_points': True}
    model = create_model('seed_small', **kwargs)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 1e-2)
    return save_checkpoint(tmp_path_factory.mktemp('w') / 'pin.pt', model, variant='seed_small',
                           model_kwargs=kwargs, max_depth=200.0, input_height=64, input_width=128)


def test_engine_pins_points_at_the_camera_size(pinning_weights: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)
    sparse = np.zeros((100, 200), np.float32)
    sparse[::7, ::3] = rng.uniform(1.0, 6.0, sparse[::7, ::3].shape)
    for mode in ('edge_aware', 'bilinear'):
        engine = DepthEngine(EngineConfig(weights=str(pinning_weights), device='cpu',
                                          input_height=64, input_width=128, upsample=mode))
        depth = engine.infer(rgb, sparse)
        assert depth.shape == (100, 200) and np.isfinite(depth).all() and (depth > 0).all()
        np.testing.assert_array_equal(depth[sparse > 0], sparse[sparse > 0])


def test_engine_edge_aware_mode_has_fewer_flying_pixels(pinning_weights: Path) -> None:
    rgb = np.zeros((128, 256, 3), np.uint8)
    rgb[:, :100] = (200, 30, 30)
    sparse = np.zeros((128, 256), np.float32)
    sparse[::9, ::4] = np.where(np.arange(0, 256, 4) < 100, 1.5, 8.0)[None, :]
    out = {}
    for mode in ('edge_aware', 'bilinear'):
        engine = DepthEngine(EngineConfig(weights=str(pinning_weights), device='cpu',
                                          input_height=64, input_width=128, upsample=mode))
        with torch.no_grad():  # the untrained head's noise would look like edges everywhere
            engine.model.head.weight.zero_()
        out[mode] = engine.infer(rgb, sparse)
    flying = {mode: int(flying_pixel_mask(depth).sum()) for mode, depth in out.items()}
    assert flying['edge_aware'] < flying['bilinear'], flying
    assert not np.array_equal(out['edge_aware'], out['bilinear'])


def test_engine_config_rejects_unknown_upsample() -> None:
    with pytest.raises(ConfigError, match="'upsample' must be one of"):
        EngineConfig(weights='w.pt', upsample='cubic')


@pytest.mark.parametrize('kind', ['nearest', 'scanline'])
def test_prefill_guided_mode_keeps_the_camera_size_fill_of_an_untrained_network(tmp_path,
                                                                              kind: str):
    """With a zero correction head the network outputs its pre-fill; the prefill_guided mode
    then returns the same fill of the camera-size points (finer than the network's)."""
    from g2mono_ros.models.prefill import nearest_point_fill, scanline_fill

    kwargs = {'depth_norm': 'log', 'prefill_input': True, 'prefill_kind': kind,
              'residual': True, 'pin_points': True}
    torch.manual_seed(0)
    model = create_model('seed_small', **kwargs)
    path = save_checkpoint(tmp_path / 'n.pt', model, variant='seed_small', model_kwargs=kwargs,
                           max_depth=200.0, input_height=64, input_width=128)
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 255, (128, 256, 3), dtype=np.uint8)
    sparse = np.zeros((128, 256), np.float32)
    sparse[::5, ::2] = rng.uniform(1.0, 9.0, sparse[::5, ::2].shape)
    engine = DepthEngine(EngineConfig(weights=str(path), device='cpu', input_height=64,
                                      input_width=128, upsample='prefill_guided'))
    depth = engine.infer(rgb, sparse)
    t = torch.from_numpy(sparse)[None, None]
    fill = nearest_point_fill if kind == 'nearest' else scanline_fill
    expected = fill(t, (t > 0).float())[0, 0].numpy()
    np.testing.assert_allclose(depth, expected, rtol=1e-5)

