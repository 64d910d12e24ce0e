"""The host (numpy + OpenCV) edge-aware upsampler against the torch one it replaces on the CPU:
the same neighbour chosen at every edge pixel, float rounding elsewhere; dispatch and guides."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from g2mono_ros.errors import ShapeError
from g2mono_ros.models import upsample
from g2mono_ros.models.upsample import edge_aware_upsample
from g2mono_ros.models.upsample_host import _axis, _tables, _unit, edge_aware_upsample_host

SIZES = [((8, 12), (32, 48)), ((6, 10), (15, 23)), ((32, 64), (107, 250)), ((20, 30), (20, 30)),
         ((16, 24), (9, 13))]


def _scene(h: int, w: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Depth with many ratios near the 1.1 edge threshold, random uint8 guides (worst case)."""
    rng = np.random.default_rng(seed)
    depth = (rng.random((h, w), dtype=np.float32) * 4 + 1).astype(np.float32)
    depth[rng.random((h, w)) < 0.2] *= np.float32(1.1)
    depth[rng.random((h, w)) < 0.05] = 0.0
    guide_lr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    guide_hr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return depth, guide_lr, guide_hr


def _torch_reference(depth: np.ndarray, guide_lr: np.ndarray, guide_hr: np.ndarray) -> np.ndarray:
    """The torch version: a batch of two never takes the host path."""
    d = torch.from_numpy(depth)[None, None].repeat(2, 1, 1, 1)
    lr = (torch.from_numpy(guide_lr).permute(2, 0, 1)[None].float() / 255.0).repeat(2, 1, 1, 1)
    hr = (torch.from_numpy(guide_hr).permute(2, 0, 1)[None].float() / 255.0).repeat(2, 1, 1, 1)
    return edge_aware_upsample(d, lr, hr)[0, 0].numpy()


@pytest.mark.parametrize(('out_size', 'in_size'), [(15, 6), (1080, 320), (1920, 576), (9, 16),
                                                    (7, 7), (1, 3)])
def test_axis_is_the_torch_source_coordinates_to_the_bit(out_size, in_size):
    low, high, frac = (t.numpy() for t in upsample._source_coords(out_size, in_size,
                                                                   torch.device('cpu')))
    axis = _axis(out_size, in_size)
    np.testing.assert_array_equal(axis.low, low)
    np.testing.assert_array_equal(axis.high, high)
    assert axis.frac.dtype == np.float32
    np.testing.assert_array_equal(axis.frac.view(np.uint32), frac.view(np.uint32))
    for cell in range(in_size):  # the output range of each lower neighbour
        np.testing.assert_array_equal(np.flatnonzero(low == cell),
                                      np.arange(axis.start[cell], axis.stop[cell]))


def test_uint8_guides_are_scaled_as_torch_scales_them():
    values = torch.arange(256, dtype=torch.uint8)
    np.testing.assert_array_equal(_unit(values.numpy()), (values.float() / 255.0).numpy())


@pytest.mark.parametrize(('low_hw', 'high_hw'), SIZES)
def test_host_chooses_the_same_neighbour_as_torch(low_hw, high_hw):
    depth, guide_lr, guide_hr = _scene(*low_hw, *high_hw)
    expected = _torch_reference(depth, guide_lr, guide_hr)
    got = edge_aware_upsample_host(depth, guide_lr, guide_hr)
    assert got.shape == high_hw and got.dtype == np.float32
    # Pixels decided by colour are a neighbour's depth: identical. Elsewhere bilinear
    # (OpenCV vs torch): float rounding, far below the 10 % a wrong neighbour would differ by.
    bilinear = F.interpolate(torch.from_numpy(depth)[None, None], size=high_hw,
                             mode='bilinear', align_corners=False)[0, 0].numpy()
    chosen = np.abs(expected - bilinear) > 1e-3 * np.maximum(bilinear, 1e-3)
    assert chosen.sum() > 0.05 * chosen.size  # the scene exercises the colour choice
    np.testing.assert_array_equal(got[chosen], expected[chosen])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(('low_hw', 'high_hw'), [*SIZES, ((320, 576), (1080, 1920)),
                                                ((320, 448), (480, 640))])
def test_cell_blocks_cover_every_output_pixel_once_by_its_lower_neighbours(low_hw, high_hw):
    """Hand reference of the slot tables: the slots of cell (i, j) are exactly the output
    pixels whose lower neighbours are (i, j) (padding repeats one of them), and the cells of
    the inner group fit its slots."""
    (h, w), (height, width) = low_hw, high_hw
    t = _tables(height, width, h, w)
    ay, ax = _axis(height, h), _axis(width, w)
    (inner_rows, inner_cols), (max_rows, max_cols) = t.slots
    assert t.row_offset.shape == (max_rows, h) and t.col.shape == (max_cols, w)
    for i in range(h):
        expected = {y * width for y in np.flatnonzero(ay.low == i)}
        group = t.group[i]
        assert group == (2 if not expected else 0 if len(expected) <= inner_rows else 1)
        if expected:
            assert set(t.row_offset[:, i]) == expected
            assert set(t.row_offset[:inner_rows if group == 0 else max_rows, i]) == expected
    for j in range(w):
        expected = set(np.flatnonzero(ax.low == j))
        group = t.group[h + j]
        assert group == (2 if not expected else 0 if len(expected) <= inner_cols else 1)
        if expected:
            assert set(t.col[:inner_cols if group == 0 else max_cols, j]) == expected
    # The distance weights of each slot are the axis weights of its pixel.
    np.testing.assert_array_equal(t.row_weight[1], ay.frac[t.row_offset // width])
    np.testing.assert_array_equal(t.row_weight[0], np.float32(1.0) - ay.frac[t.row_offset // width])
    np.testing.assert_array_equal(t.col_weight[1], ax.frac[t.col])


def test_host_matches_torch_at_the_node_scale_with_edges_on_every_border():
    """The node's ratio (320 -> 1080 rows, 576 -> 1920 columns, at an eighth of the size):
    the larger clamped first / last blocks (their own group) included, and a ratio <= 1."""
    depth, guide_lr, guide_hr = _scene(40, 72, 135, 240, seed=5)
    depth[0, ::3] = 9.0  # steps along the first row and column: the border cells' group
    depth[::4, 0] = 0.5
    depth[-1, ::2] = 7.0
    expected = _torch_reference(depth, guide_lr, guide_hr)
    got = edge_aware_upsample_host(depth, guide_lr, guide_hr)
    bilinear = cv2.resize(depth, (240, 135), interpolation=cv2.INTER_LINEAR)
    chosen = got != bilinear
    assert chosen[:5].any() and chosen[:, :5].any() and chosen[-2:].any()
    np.testing.assert_array_equal(got[chosen], expected[chosen])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # edge_ratio 1 (every unequal cell an edge) and negative depth: the torch maximum from 0.
    depth[5:9, 5:9] = -1.0
    d, lr, hr = (torch.from_numpy(a) for a in (depth, guide_lr, guide_hr))
    for ratio in (1.0, 0.9):
        expected = edge_aware_upsample(d[None, None].repeat(2, 1, 1, 1),
                                       lr.permute(2, 0, 1)[None].repeat(2, 1, 1, 1),
                                       hr.permute(2, 0, 1)[None].repeat(2, 1, 1, 1),
                                       edge_ratio=ratio)[0, 0].numpy()
        got = edge_aware_upsample_host(depth, guide_lr, guide_hr, edge_ratio=ratio)
        chosen = got != cv2.resize(depth, (240, 135), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(got[chosen], expected[chosen])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_float_and_uint8_guides_and_strided_views_agree():
    depth, guide_lr, guide_hr = _scene(12, 20, 37, 61, seed=3)
    from_uint8 = edge_aware_upsample_host(depth, guide_lr, guide_hr)
    np.testing.assert_array_equal(
        edge_aware_upsample_host(depth, _unit(guide_lr), _unit(guide_hr)), from_uint8)
    # Channel-first storage seen as (H, W, C): the engine's permuted tensors.
    planar_lr = np.ascontiguousarray(guide_lr.transpose(2, 0, 1)).transpose(1, 2, 0)
    planar_hr = np.ascontiguousarray(guide_hr.transpose(2, 0, 1)).transpose(1, 2, 0)
    np.testing.assert_array_equal(edge_aware_upsample_host(depth, planar_lr, planar_hr),
                                  from_uint8)
    # A bgr8 message's pixels seen as RGB (channels reversed by strides; the node's guide).
    bgr_hr = np.ascontiguousarray(guide_hr[:, :, ::-1])
    np.testing.assert_array_equal(edge_aware_upsample_host(depth, guide_lr, bgr_hr[:, :, ::-1]),
                                  from_uint8)
    # Mono repeated by a zero stride: neither contiguous nor reversed-contiguous.
    grey_hr = guide_hr[:, :, :1]
    np.testing.assert_array_equal(
        edge_aware_upsample_host(depth, guide_lr, np.broadcast_to(grey_hr, guide_hr.shape)),
        edge_aware_upsample_host(depth, guide_lr, np.repeat(grey_hr, 3, axis=2)))


def test_smooth_depth_is_opencv_bilinear_and_a_step_follows_the_colour():
    import cv2

    rng = np.random.default_rng(1)
    smooth = (5.0 + 0.02 * rng.random((6, 10))).astype(np.float32)
    guide_lr = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    guide_hr = rng.integers(0, 256, (15, 23, 3), dtype=np.uint8)
    np.testing.assert_array_equal(edge_aware_upsample_host(smooth, guide_lr, guide_hr),
                                  cv2.resize(smooth, (23, 15), interpolation=cv2.INTER_LINEAR))
    # A near object (2 m, red) left of a far wall (10 m, blue), 4x: every pixel on one side.
    depth = np.full((8, 12), 10.0, np.float32)
    depth[:, :5] = 2.0
    guide_hr = np.zeros((32, 48, 3), np.uint8)
    guide_hr[..., 2] = 255
    guide_hr[:, :20] = (255, 0, 0)
    guide_lr = cv2.resize(guide_hr, (12, 8), interpolation=cv2.INTER_AREA)
    out = edge_aware_upsample_host(depth, guide_lr, guide_hr)
    assert set(np.unique(out)) == {2.0, 10.0}
    np.testing.assert_array_equal(out == 2.0, guide_hr[..., 0] > 127)


def test_edge_aware_upsample_dispatches_one_cpu_image_to_the_host():
    depth, guide_lr, guide_hr = _scene(8, 12, 30, 41, seed=2)
    d = torch.from_numpy(depth)[None, None]
    lr = torch.from_numpy(guide_lr).permute(2, 0, 1)[None]
    hr = torch.from_numpy(guide_hr).permute(2, 0, 1)[None]
    host = edge_aware_upsample_host(depth, guide_lr, guide_hr)
    np.testing.assert_array_equal(edge_aware_upsample(d, lr, hr)[0, 0].numpy(), host)
    np.testing.assert_array_equal(  # float guides in [0, 1]: the same
        edge_aware_upsample(d, lr.float() / 255.0, hr.float() / 255.0)[0, 0].numpy(), host)
    # uint8 guides on the torch path (a batch) are scaled like float ones.
    batch = [t.repeat(2, 1, 1, 1) for t in (d, lr, hr)]
    np.testing.assert_array_equal(edge_aware_upsample(*batch)[1, 0].numpy(),
                                  _torch_reference(depth, guide_lr, guide_hr))
    # Autograd keeps the torch path (the host one has no gradient).
    d_grad = d.clone().requires_grad_(True)
    out = edge_aware_upsample(d_grad, lr.float() / 255.0, hr.float() / 255.0)
    out.sum().backward()
    assert d_grad.grad is not None and d_grad.grad.abs().sum() > 0


def test_host_checks_shapes():
    depth, guide_lr, guide_hr = _scene(8, 12, 16, 24)
    with pytest.raises(ShapeError, match=r'depth must be \(h, w\)'):
        edge_aware_upsample_host(depth[None], guide_lr, guide_hr)
    with pytest.raises(ShapeError, match=r'guide_lr must be \(8, 12, C\)'):
        edge_aware_upsample_host(depth, guide_lr[:, :-1], guide_hr)
    with pytest.raises(ShapeError, match=r'guide_hr must be \(H, W, 3\)'):
        edge_aware_upsample_host(depth, guide_lr, guide_hr[..., :2])


def test_host_writes_into_out_bit_for_bit():
    """``out``: a depth message's buffer in the node (an ``array('B')`` seen as float32)."""
    import array

    depth, guide_lr, guide_hr = _scene(16, 24, 54, 80, seed=9)
    expected = edge_aware_upsample_host(depth, guide_lr, guide_hr)
    buffer = array.array('B', bytes(54 * 80 * 4))
    out = np.frombuffer(buffer, np.float32).reshape(54, 80)
    assert edge_aware_upsample_host(depth, guide_lr, guide_hr, out=out) is out
    assert bytes(buffer) == expected.tobytes()
    with pytest.raises(ShapeError, match='out must be a C-contiguous'):
        edge_aware_upsample_host(depth, guide_lr, guide_hr, out=np.zeros((54, 81), np.float32))
