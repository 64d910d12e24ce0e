"""Per-image depth scale, the push-pull pre-fill, and the seed network's input/output options
(scale, pre-fill input, residual head, pinning), with real checkpoints saved and loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.models import create_model
from g2mono_ros.models.checkpoint import load_checkpoint, save_checkpoint
from g2mono_ros.models import prefill
from g2mono_ros.models.prefill import (guided_nearest_fill, jump_flood_fill, nearest_point_coords,
                                       nearest_point_fill, push_pull_fill, scanline_fill,
                                       sparse_median, torch_nearest_only)

OPTIONS = {'depth_norm': 'log', 'prefill_input': True, 'residual': True, 'pin_points': True}


def _sparse(seed: int = 0, shape: tuple[int, int] = (64, 128)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    depth = torch.zeros(2, 1, *shape)
    depth[:, :, ::6, ::3] = torch.rand(2, 1, len(range(0, shape[0], 6)),
                                        len(range(0, shape[1], 3)), generator=gen) * 0.2 + 0.01
    return depth


def test_sparse_median_per_image_and_empty_fallback() -> None:
    depth = torch.zeros(2, 1, 4, 4)
    depth[0, 0, 0, :3] = torch.tensor([1.0, 5.0, 3.0])
    median = sparse_median(depth, (depth > 0).float(), empty=0.25)
    assert median.shape == (2, 1, 1, 1)
    assert median.flatten().tolist() == [3.0, 0.25]


def test_sparse_median_is_torch_nanmedian_of_the_points() -> None:
    """Sort-and-gather (exportable) against torch.nanmedian (the lower median for even counts),
    with masked-out and non-positive values ignored."""
    gen = torch.Generator().manual_seed(5)
    depth = torch.rand(4, 1, 9, 11, generator=gen) * 30.0
    mask = (torch.rand(4, 1, 9, 11, generator=gen) < 0.2).float()
    mask[1, 0, 0, :2] = 1.0
    depth[1, 0, 0, 0] = -2.0  # a masked-in non-positive value is not a point
    mask[2] = 0.0
    mask[3, 0, 0, 0] = 1.0
    mask[3, 0, 0, 1:] = 1.0
    mask[3, 0, 1:] = 0.0  # 11 points: an odd count
    mask[0] = 0.0
    mask[0, 0, 2, 3:7] = 1.0  # 4 points: an even count
    valid = (mask > 0.5) & (depth > 0)
    reference = torch.nanmedian(torch.where(valid, depth, torch.nan).flatten(1), dim=1).values
    reference = torch.where(torch.isnan(reference), torch.tensor(0.25), reference)
    got = sparse_median(depth, mask, empty=0.25).flatten()
    assert torch.equal(got, reference), (got, reference)
    assert int(valid[3].sum()) == 11 and int(valid[0].sum()) == 4


def test_torch_nearest_only_takes_jump_flooding_on_the_cpu() -> None:
    sparse = _sparse(3)
    mask = (sparse > 0).float()
    with torch_nearest_only():
        assert torch.equal(nearest_point_fill(sparse, mask), jump_flood_fill(sparse, mask))
        coords = nearest_point_coords(mask)
    _, row, col = prefill._jump_flood(torch.ones_like(mask), mask)
    width = mask.shape[-1]
    assert torch.equal(coords, (row * width + col).long())


def test_push_pull_keeps_points_and_fills_every_pixel() -> None:
    sparse = _sparse()
    mask = (sparse > 0).float()
    filled = push_pull_fill(sparse, mask)
    assert torch.equal(filled[mask > 0], sparse[mask > 0])
    assert (filled > 0).all()
    assert float(filled.max()) <= float(sparse.max()) + 1e-6  # a mean never overshoots
    assert float(filled.min()) >= float(sparse[mask > 0].min()) - 1e-6


def test_push_pull_reproduces_a_constant_and_odd_sizes() -> None:
    values = torch.full((1, 1, 37, 53), 2.5)
    mask = torch.zeros_like(values)
    mask[0, 0, 5, 7] = mask[0, 0, 30, 40] = 1.0
    torch.testing.assert_close(push_pull_fill(values, mask), values)
    empty = push_pull_fill(values, torch.zeros_like(values))
    assert torch.equal(empty, torch.zeros_like(values))
    with pytest.raises(ShapeError, match='values must be'):
        push_pull_fill(values[0], mask[0])


def test_residual_network_starts_at_the_prefill_and_pins_points() -> None:
    torch.manual_seed(0)
    model = create_model('seed_small', **{**OPTIONS, 'pin_points': False}).eval()
    sparse = _sparse(1)
    mask = (sparse > 0).float()
    rgb = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        out = model(rgb, sparse, mask)
    scale = sparse_median(sparse, mask)
    log_ratio = torch.where(mask > 0, torch.log(sparse.clamp_min(1e-9) / scale), 0.0)
    expected = torch.exp(push_pull_fill(log_ratio, mask)) * scale
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-7)
    model.pin_points = True
    with torch.no_grad():
        pinned = model(rgb, sparse, mask)
    assert torch.equal(pinned[mask > 0], sparse[mask > 0])


@pytest.mark.parametrize('norm', ['fixed', 'median', 'log'])
def test_options_forward_backward_every_parameter(norm: str) -> None:
    torch.manual_seed(0)
    model = create_model('seed_small', depth_norm=norm, prefill_input=True, residual=True)
    sparse = _sparse(2, (64, 64))
    rgb = torch.rand(2, 3, 64, 64)
    with torch.no_grad():  # ReZero alphas and the residual head start at 0: no gradient behind
        for name, p in model.named_parameters():
            if name.endswith('alpha'):
                p.fill_(0.1)
        model.head.weight.normal_(0.0, 1e-3)
    out = model(rgb, sparse, (sparse > 0).float())
    (out - 0.05).abs().mean().backward()
    assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all() and (out >= 0).all()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_depth_scale_invariance_of_the_normalised_variants() -> None:
    """Scaling every input depth by k scales the output by k (per-image normalisation)."""
    torch.manual_seed(0)
    model = create_model('seed_small', depth_norm='log', prefill_input=True).eval()
    sparse = _sparse(3)
    rgb = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        a = model(rgb, sparse, (sparse > 0).float())
        b = model(rgb, sparse * 4.0, (sparse > 0).float())
    torch.testing.assert_close(b, 4.0 * a, rtol=1e-4, atol=1e-6)


def test_options_survive_a_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model('seed_small', **OPTIONS)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.01)
    path = save_checkpoint(tmp_path / 'm.pt', model, variant='seed_small', model_kwargs=OPTIONS,
                           max_depth=200.0, input_height=64, input_width=128)
    loaded = load_checkpoint(path)
    assert loaded.model.depth_norm == 'log' and loaded.model.pin_points
    assert loaded.model.first.conv.in_channels == 6
    sparse = _sparse(4)
    rgb = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(rgb, sparse, (sparse > 0).float()),
                                   model.eval()(rgb, sparse, (sparse > 0).float()))


def test_plain_seed_is_unchanged_by_the_options() -> None:
    """Default kwargs are the G2 formulation: 5 input channels, ReLU head, same output."""
    torch.manual_seed(0)
    model = create_model('seed_small').eval()
    assert model.plain and model.first.conv.in_channels == 5
    sparse = _sparse(5)
    rgb = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        out = model(rgb, sparse, (sparse > 0).float())
        x = model.first(torch.cat((rgb, sparse, (sparse > 0).float()), 1))
        feats = [x]
        for enc in model.encoders:
            feats.append(enc(feats[-1]))
        y = feats[-1]
        for level in range(len(model.decoders), 0, -1):
            y = model.decoders[level - 1](y) + feats[level - 1]
        torch.testing.assert_close(out, torch.relu(model.head(y)))


def test_unknown_depth_norm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match='depth_norm must be one of fixed, median, log'):
        create_model('seed_small', depth_norm='sqrt')


def test_numpy_inputs_of_the_fill_match_a_hand_example() -> None:
    """2x2 image, one known pixel: every pixel takes its value; two known: the holes take
    the bilinear upsample of their mean."""
    values = torch.tensor([[[[4.0, 0.0], [0.0, 0.0]]]])
    mask = (values > 0).float()
    assert push_pull_fill(values, mask).flatten().tolist() == [4.0] * 4
    values = torch.tensor([[[[4.0, 0.0], [0.0, 2.0]]]])
    out = push_pull_fill(values, (values > 0).float()).flatten().numpy()
    np.testing.assert_allclose(out, [4.0, 3.0, 3.0, 2.0])


@pytest.mark.parametrize(('fill', 'slack_px'), [(jump_flood_fill, 0.0),
                                                (nearest_point_fill, 0.25)])
def test_nearest_point_fill_takes_a_nearest_point_everywhere(fill, slack_px: float) -> None:
    """Brute force over all points: each pixel's value is one of its equally nearest points'
    (jump flooding); OpenCV's 5x5 distance mask (the CPU path) may pick a point up to a
    quarter pixel farther than the nearest, on a few pixels in 10^4."""
    rng = np.random.default_rng(0)
    shape = (29, 41)
    batch = []
    for _ in range(2):
        mask = rng.random(shape) < 0.04
        batch.append(np.where(mask, rng.uniform(1.0, 10.0, shape), 0.0).astype(np.float32))
    depth = np.stack(batch)[:, None]
    out = fill(torch.from_numpy(depth), torch.from_numpy((depth > 0).astype(np.float32))).numpy()
    for b in range(2):
        py, px = np.nonzero(depth[b, 0])
        values = depth[b, 0][py, px]
        for y in range(shape[0]):
            for x in range(shape[1]):
                dist = np.sqrt((py - y) ** 2 + (px - x) ** 2)
                assert out[b, 0, y, x] in values[dist <= dist.min() + slack_px], (b, y, x)
    empty = fill(torch.ones(1, 1, 5, 5), torch.zeros(1, 1, 5, 5))
    assert torch.equal(empty, torch.zeros(1, 1, 5, 5))


def test_cpu_nearest_fill_matches_jump_flooding_on_a_scan() -> None:
    sparse = _sparse(9, (96, 160))
    mask = (sparse > 0).float()
    fast = nearest_point_fill(sparse, mask)
    torch.testing.assert_close(fast, jump_flood_fill(sparse, mask))


def test_nearest_prefill_kind_starts_at_the_nearest_fill() -> None:
    torch.manual_seed(0)
    model = create_model('seed_small', depth_norm='median', prefill_input=True, residual=True,
                         prefill_kind='nearest').eval()
    sparse = _sparse(6)
    mask = (sparse > 0).float()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 128), sparse, mask)
    torch.testing.assert_close(out, nearest_point_fill(sparse, mask))
    with pytest.raises(ConfigError, match='prefill_kind must be one of push_pull, nearest, scanline'):
        create_model('seed_small', prefill_kind='bilateral')


def _fill(depth: np.ndarray, **kwargs) -> np.ndarray:
    t = torch.from_numpy(np.asarray(depth, np.float32))[None, None]
    return scanline_fill(t, (t > 0).float(), **kwargs)[0, 0].numpy()


def test_scanline_fill_interpolates_inverse_depth_between_lines_by_hand() -> None:
    """Points at rows 0 and 4 of a column, 2 m and 4 m: row 2 is halfway in inverse depth,
    1 / (0.5 / 2 + 0.5 / 4) = 8/3 m (a plane's depth there), not the 3 m of depth itself."""
    depth = np.zeros((5, 1), np.float32)
    depth[0, 0], depth[4, 0] = 2.0, 4.0
    out = _fill(depth, edge_ratio=3.0)[:, 0]
    expected = [2.0, 1 / (0.75 / 2 + 0.25 / 4), 8 / 3, 1 / (0.25 / 2 + 0.75 / 4), 4.0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_scanline_fill_takes_the_nearer_line_at_a_depth_edge() -> None:
    """2 m above, 10 m below (ratio 5 > edge_ratio): no ramp through free space."""
    depth = np.zeros((5, 1), np.float32)
    depth[0, 0], depth[4, 0] = 2.0, 10.0
    np.testing.assert_array_equal(_fill(depth)[:, 0], [2.0, 2.0, 2.0, 10.0, 10.0])


def test_scanline_fill_is_exact_on_a_plane_where_nearest_fill_is_not() -> None:
    """A tilted plane (inverse depth affine in the pixel coordinates) seen by 6 scan lines:
    every pixel between the first and last line is exact; nearest fill leaves a staircase."""
    rows, cols = np.mgrid[0:40, 0:30].astype(np.float64)
    truth = (1.0 / (0.1 + 0.004 * rows + 0.002 * cols)).astype(np.float32)
    sparse = np.zeros_like(truth)
    sparse[3:40:7] = truth[3:40:7]
    out = _fill(sparse)
    inner = slice(3, 39)
    np.testing.assert_allclose(out[inner], truth[inner], rtol=1e-5)
    t = torch.from_numpy(sparse)[None, None]
    nearest = nearest_point_fill(t, (t > 0).float())[0, 0].numpy()
    assert np.abs(nearest[inner] - truth[inner]).max() > 0.1
    # Below the last line the plane comes nearer: continued exactly. Above the first line it
    # recedes (a plane seen towards its horizon): the nearest point, in the same column here.
    np.testing.assert_allclose(out[39], truth[39], rtol=1e-5)
    np.testing.assert_array_equal(out[:3], np.repeat(truth[3:4], 3, axis=0))


def test_scanline_fill_continues_a_floor_below_the_lowest_line_by_hand() -> None:
    """Lowest points 4 m (row 2) and 2 m (row 6): inverse depth 0.25 -> 0.5, +1/16 per row;
    row 8 gets 1 / 0.625 = 1.6 m. ``min_fraction`` 0.7 stops it at 1.4 m (rows >= 9)."""
    depth = np.zeros((12, 1), np.float32)
    depth[2, 0], depth[6, 0] = 4.0, 2.0
    out = _fill(depth, edge_ratio=3.0)[:, 0]
    np.testing.assert_allclose(out[7:], 1.0 / (0.5 + np.arange(1, 6) / 16.0), rtol=1e-6)
    capped = _fill(depth, edge_ratio=3.0, min_fraction=0.7)[:, 0]
    np.testing.assert_allclose(capped[7:], np.maximum(1.0 / (0.5 + np.arange(1, 6) / 16.0), 1.4),
                               rtol=1e-6)
    # Two lowest points on different surfaces (ratio 2 > edge_ratio 1.25): the nearest point.
    np.testing.assert_array_equal(_fill(depth)[7:, 0], [2.0] * 5)
    # A surface that recedes downwards (a table top seen from below): the nearest point too.
    depth[2, 0], depth[6, 0] = 2.0, 2.2
    np.testing.assert_array_equal(_fill(depth)[7:, 0], np.float32([2.2] * 5))


def test_scanline_fill_keeps_points_falls_back_to_nearest_and_is_scale_free() -> None:
    rng = np.random.default_rng(4)
    sparse = np.zeros((24, 32), np.float32)
    sparse[2:24:5, 4:20] = rng.uniform(1.0, 5.0, sparse[2:24:5, 4:20].shape)
    out = _fill(sparse)
    np.testing.assert_array_equal(out[sparse > 0], sparse[sparse > 0])
    t = torch.from_numpy(sparse)[None, None]
    nearest = nearest_point_fill(t, (t > 0).float())[0, 0].numpy()
    # Columns 20.. have no point at all: the nearest-point fill, one column more than the
    # closed row gap (max_row_gap=1 extends each line by one pixel).
    np.testing.assert_array_equal(out[:, 21:], nearest[:, 21:])
    np.testing.assert_allclose(_fill(sparse * 7.5), out * 7.5, rtol=1e-5)
    assert np.all(out > 0)
    assert not _fill(np.zeros((4, 4), np.float32)).any()


@pytest.mark.parametrize('norm', ['median', 'log'])
def test_scanline_prefill_kind_starts_at_the_scanline_fill(norm: str) -> None:
    torch.manual_seed(0)
    model = create_model('seed_small', depth_norm=norm, prefill_input=True, residual=True,
                         prefill_kind='scanline').eval()
    sparse = _sparse(7)
    mask = (sparse > 0).float()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 128), sparse, mask)
    torch.testing.assert_close(out, scanline_fill(sparse, mask), rtol=1e-5, atol=1e-7)


def test_residual_shrink_drops_small_corrections_and_reduces_large_ones() -> None:
    """Head bias set to a log-correction of 0.03 (below the 0.05 threshold): the output is the
    fill; at 0.25 the fill times exp(0.25 - 0.05). Recorded as a constructor option."""
    torch.manual_seed(0)
    model = create_model('seed_small', depth_norm='log', prefill_input=True, residual=True,
                         prefill_kind='scanline', residual_shrink=0.05).eval()
    sparse = _sparse(8)
    mask = (sparse > 0).float()
    fill = scanline_fill(sparse, mask)
    with torch.no_grad():
        model.head.bias.fill_(0.03)
        small = model(torch.rand(2, 3, 64, 128), sparse, mask)
        model.head.bias.fill_(0.25)
        large = model(torch.rand(2, 3, 64, 128), sparse, mask)
    torch.testing.assert_close(small, fill, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(large, fill * float(np.exp(0.20)), rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match='residual_shrink must be in'):
        create_model('seed_small', residual_shrink=0.05)  # no residual head


def test_residual_shrink_passes_the_gradient_straight_through_in_training() -> None:
    """A correction inside the dead band has zero output effect but, in training, the gradient
    of the loss reaches the head as without the threshold (fine-tuning can move it); the
    forward value in training is the thresholded one, as in inference."""
    torch.manual_seed(0)
    sparse = _sparse(8)
    mask = (sparse > 0).float()
    rgb = torch.rand(2, 3, 64, 128)
    grads, outputs = {}, {}
    for shrink in (0.0, 0.05):
        torch.manual_seed(0)
        model = create_model('seed_small', depth_norm='log', prefill_input=True, residual=True,
                             prefill_kind='scanline', residual_shrink=shrink).train()
        with torch.no_grad():
            model.head.bias.fill_(0.03)  # inside the 0.05 dead band
        out = model(rgb, sparse, mask)
        out.mean().backward()
        grads[shrink], outputs[shrink] = model.head.bias.grad.clone(), out.detach()
    fill = scanline_fill(sparse, mask)
    torch.testing.assert_close(outputs[0.05], fill, rtol=1e-5, atol=1e-7)
    assert grads[0.05].abs().item() > 0
    # The gradient of exp(log depth) is taken at the output: exp(0.03) larger without the
    # threshold on every unpinned pixel (pinned ones pass none in either case).
    assert (grads[0.0] / grads[0.05]).item() == pytest.approx(float(np.exp(0.03)), rel=1e-4)


def _two_surfaces() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scan lines at rows 0 and 8 of a 9x12 image; a red leaf (1 m) crosses the top line and
    reaches down to row 6 in columns 0-5; the rest is a blue wall (2 m)."""
    depth = torch.zeros(1, 1, 9, 12)
    depth[0, 0, 0, :] = torch.tensor([1.0] * 6 + [2.0] * 6)
    depth[0, 0, 8, :] = 2.0
    rgb = torch.zeros(1, 3, 9, 12)
    rgb[0, 2] = 1.0  # blue wall
    rgb[0, :, :7, :6] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # red leaf, rows 0-6
    return depth, (depth > 0).float(), rgb


def test_guided_fill_follows_the_colour_where_nearest_fill_cuts_half_way() -> None:
    depth, mask, rgb = _two_surfaces()
    guided = guided_nearest_fill(depth, mask, rgb, step=1, rings=3)[0, 0]
    nearest = nearest_point_fill(depth, mask)[0, 0]
    # Rows 5-6 of the leaf are nearer the bottom line: nearest fill gives them the wall's 2 m.
    assert (nearest[5:7, :6] == 2.0).all()
    # Guided, the leaf's rows take the leaf's points (1 m) and the wall keeps 2 m, except the
    # blurred colour's transition at the leaf's outline (the blur's sigma is half a step).
    assert (guided[1:7, :5] == 1.0).all()
    assert (guided[1:8, 7:] == 2.0).all() and (guided[8] == 2.0).all()
    torch.testing.assert_close(guided[mask[0, 0] > 0], depth[0, 0][mask[0, 0] > 0])


def test_guided_fill_edge_cases() -> None:
    depth, mask, rgb = _two_surfaces()
    as_uint8 = (rgb * 255).round().to(torch.uint8)
    torch.testing.assert_close(guided_nearest_fill(depth, mask, as_uint8, step=1),
                               guided_nearest_fill(depth, mask, rgb, step=1))
    empty = torch.zeros_like(depth)
    assert (guided_nearest_fill(empty, empty, rgb) == 0).all()
    batch = guided_nearest_fill(torch.cat([depth, empty]), torch.cat([mask, empty]),
                                torch.cat([rgb, rgb]), step=1)
    torch.testing.assert_close(batch[:1], guided_nearest_fill(depth, mask, rgb, step=1))
    assert (batch[1] == 0).all()
    with pytest.raises(ShapeError, match='guide must be'):
        guided_nearest_fill(depth, mask, rgb[:, :, :4])


def test_nearest_point_coords_point_at_a_nearest_point_on_cpu_and_by_jump_flooding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sparse = _sparse(4, (40, 56))
    mask = (sparse > 0).float()
    mask[1] = 0.0  # an image without points: -1 everywhere
    rows, cols = torch.meshgrid(torch.arange(40.0), torch.arange(56.0), indexing='ij')
    points = torch.nonzero(mask[0, 0] > 0).float()
    true_nearest = torch.cdist(torch.stack([rows.flatten(), cols.flatten()], 1), points).min(1).values

    def check(index: torch.Tensor, slack_px: float) -> None:
        assert (index[1] == -1).all()
        chosen = index[0, 0].flatten()
        assert (mask[0, 0].flatten()[chosen] > 0).all()
        dist = torch.hypot(rows.flatten() - (chosen // 56).float(),
                           cols.flatten() - (chosen % 56).float())
        assert (dist - true_nearest).max() <= slack_px

    check(nearest_point_coords(mask), 0.5)  # OpenCV's 5x5 distance mask: a fraction of a pixel

    def no_opencv(*args: object) -> None:
        raise ImportError('forced: the torch path')

    monkeypatch.setattr(prefill, '_opencv_nearest_fill', no_opencv)
    check(nearest_point_coords(mask), 1e-4)  # jump flooding: exact on this scan


def test_guided_prefill_kind_starts_at_the_guided_fill() -> None:
    torch.manual_seed(0)
    model = create_model('seed_small', depth_norm='median', prefill_input=True, residual=True,
                         prefill_kind='guided').eval()
    sparse = _sparse(8)
    mask = (sparse > 0).float()
    rgb = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        out = model(rgb, sparse, mask)
    torch.testing.assert_close(out, guided_nearest_fill(sparse, mask, rgb))
