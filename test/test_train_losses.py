"""The G2 loss against values computed by hand on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from g2mono_ros.errors import ShapeError
from g2mono_ros.training.losses import (
    absolute_loss,
    g2_loss,
    gradient_loss,
    relative_loss,
    standardize,
)


def _img(values, h: int, w: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, h, w)


def test_absolute_loss_counts_only_input_points_over_the_batch():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0], [9.0, 9.0]]).view(2, 1, 2, 2)
    target = torch.ones(2, 1, 2, 2)
    mask = torch.tensor([[0, 1], [0, 1], [0, 0], [0, 0]], dtype=torch.float32).view(2, 1, 2, 2)
    # |2-1| + |4-1| over 2 points; the second sample has no input and adds nothing.
    assert absolute_loss(pred, target, mask).item() == pytest.approx(2.0, rel=1e-5)


def test_absolute_loss_is_zero_for_an_empty_input():
    pred = torch.rand(2, 1, 4, 4)
    assert absolute_loss(pred, torch.ones_like(pred), torch.zeros_like(pred)).item() == 0.0


def test_standardize_uses_mean_and_mean_absolute_deviation_of_valid_pixels():
    depth = _img([1.0, 2.0, 3.0, 4.0], 2, 2)
    std = standardize(depth, torch.ones_like(depth))
    # mean 2.5, MAD (1.5 + 0.5 + 0.5 + 1.5) / 4 = 1
    torch.testing.assert_close(std.flatten(), torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64),
                               rtol=1e-5, atol=1e-5)
    depth = _img([1.0, 2.0, 3.0, 100.0], 2, 2)
    std = standardize(depth, _img([1, 1, 1, 0], 2, 2))
    # mean 2, MAD 2/3 over the three valid pixels; the invalid one is scaled alike
    torch.testing.assert_close(std.flatten(), torch.tensor([-1.5, 0.0, 1.5, 147.0], dtype=torch.float64),
                               rtol=1e-5, atol=1e-4)


def test_relative_loss_hand_value_and_scale_invariance():
    valid = torch.ones(1, 1, 2, 2)
    pred = _img([1.0, 1.0, 1.0, 5.0], 2, 2)
    target = _img([1.0, 2.0, 3.0, 4.0], 2, 2)
    # pred std: mean 2, MAD 1.5 -> [-2/3, -2/3, -2/3, 2]; target std [-1.5, -0.5, 0.5, 1.5]
    expected = (abs(-2 / 3 + 1.5) + abs(-2 / 3 + 0.5) + abs(-2 / 3 - 0.5) + abs(2 - 1.5)) / 4
    value = relative_loss(standardize(pred, valid), standardize(target, valid), valid)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    scaled = relative_loss(standardize(3 * target + 2, valid), standardize(target, valid), valid)
    assert scaled.item() == pytest.approx(0.0, abs=1e-5)


def test_gradient_loss_single_impulse_4x4():
    residual = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    residual[0, 0, 0, 0] = 1.0
    valid = torch.ones_like(residual)
    # Only the top-left 3x3 window sees the impulse: Gx = -1, Gy = -1 -> 2; 1/2 scale is 2x2.
    value = gradient_loss(residual, torch.zeros_like(residual), valid)
    assert value.item() == pytest.approx(2.0 / 16, rel=1e-5)


def test_gradient_loss_accumulates_nearest_downsampled_scales_8x8():
    residual = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    residual[0, 0, 0, 0] = 1.0
    valid = torch.ones_like(residual)
    # Scale 1: 2; scale 1/2 (4x4, nearest keeps pixel (0,0)): 2; 1/4 is 2x2, no 3x3 window.
    value = gradient_loss(residual, torch.zeros_like(residual), valid)
    assert value.item() == pytest.approx(4.0 / 64, rel=1e-5)


def test_gradient_loss_ignores_invalid_pixels():
    residual = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    residual[0, 0, 0, 0] = 5.0
    valid = torch.ones_like(residual)
    valid[0, 0, 0, 0] = 0.0
    assert gradient_loss(residual, torch.zeros_like(residual), valid).item() == 0.0


def test_g2_loss_total_is_abs_plus_rel_plus_half_grad():
    target = torch.linspace(0.05, 0.8, 16).view(1, 1, 4, 4)
    pred = 2 * target  # same relative structure: L_rel = L_grad = 0
    raw = torch.zeros_like(target)
    raw[0, 0, 0, 0] = target[0, 0, 0, 0]
    terms = g2_loss(pred, target, raw)
    assert terms.abs.item() == pytest.approx(0.05, rel=1e-4)
    assert terms.rel.item() == pytest.approx(0.0, abs=1e-5)
    assert terms.grad.item() == pytest.approx(0.0, abs=1e-5)
    assert terms.total.item() == pytest.approx(0.05, rel=1e-3)


def test_g2_loss_combines_terms_with_weight_half():
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 8, 8, generator=gen)
    target = torch.rand(2, 1, 8, 8, generator=gen)
    target[0, 0, :2] = 0.0
    raw = target * (torch.rand(2, 1, 8, 8, generator=gen) > 0.7)
    terms = g2_loss(pred, target, raw)
    assert terms.total.item() == pytest.approx(
        terms.abs.item() + terms.rel.item() + 0.5 * terms.grad.item(), rel=1e-6)
    assert min(terms.abs.item(), terms.rel.item(), terms.grad.item()) > 0


def test_g2_loss_backpropagates_and_accepts_low_precision_inputs():
    pred = torch.rand(1, 1, 8, 8, requires_grad=True)
    target = torch.rand(1, 1, 8, 8)
    terms = g2_loss(pred.to(torch.bfloat16), target, target * 0)
    terms.total.backward()
    assert terms.total.dtype == torch.float32
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_g2_loss_shape_errors():
    with pytest.raises(ShapeError, match=r'pred must be \(B, 1, H, W\)'):
        g2_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ShapeError, match='target must have the shape of pred'):
        g2_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 4, 4))


def test_dense_term_is_off_by_default_and_hand_checked():
    target = torch.tensor([0.2, 0.4, 0.0, 0.8]).view(1, 1, 2, 2)
    pred = torch.tensor([0.3, 0.4, 0.9, 0.4]).view(1, 1, 2, 2)
    raw = torch.zeros_like(target)
    plain = g2_loss(pred, target, raw)
    # L1 over the 3 valid pixels: (0.1 + 0 + 0.4) / 3; the invalid pixel is ignored
    assert plain.dense.item() == pytest.approx(0.5 / 3, rel=1e-4)
    assert plain.total.item() == pytest.approx(plain.abs.item() + plain.rel.item()
                                               + 0.5 * plain.grad.item(), rel=1e-6)
    weighted = g2_loss(pred, target, raw, dense_weight=2.0)
    assert weighted.total.item() == pytest.approx(plain.total.item() + 2.0 * 0.5 / 3, rel=1e-5)
