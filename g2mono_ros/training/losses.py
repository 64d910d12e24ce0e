"""The G2-MonoDepth training loss: L_abs + L_rel + 0.5 L_grad (reference section 3).

Pure tensor functions on any device; depth tensors are (B, 1, H, W) in normalised units
(metres / max_depth), 0 marking "no value".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from g2mono_ros.errors import ShapeError

__all__ = [
    'G2Loss',
    'LossTerms',
    'absolute_loss',
    'g2_loss',
    'gradient_loss',
    'relative_loss',
    'standardize',
]

EPS = 1e-6
GRAD_SCALES = 4


class LossTerms(NamedTuple):
    """The total loss and its terms (all 0-d tensors); ``dense`` is logged even at weight 0."""

    total: Tensor
    abs: Tensor
    rel: Tensor
    grad: Tensor
    dense: Tensor


def _check(name: str, tensor: Tensor, like: Tensor | None = None) -> None:
    if tensor.dim() != 4 or tensor.shape[1] != 1:
        msg = f'{name} must be (B, 1, H, W); got {tuple(tensor.shape)}'
        raise ShapeError(msg)
    if like is not None and tensor.shape != like.shape:
        msg = f'{name} must have the shape of pred {tuple(like.shape)}; got {tuple(tensor.shape)}'
        raise ShapeError(msg)


def absolute_loss(pred: Tensor, target: Tensor, input_mask: Tensor) -> Tensor:
    """L1 where the raw input had a point, normalised by that count over the batch.

    Args:
        pred: (B, 1, H, W) normalised depth.
        target: (B, 1, H, W) normalised ground truth.
        input_mask: (B, 1, H, W) 1 where the network's raw input had a point, else 0.

    Returns:
        0-d tensor; 0 when no sample of the batch had an input point.
    """
    mask = input_mask.to(pred.dtype)
    return (torch.abs(pred - target) * mask).sum() / (mask.sum() + EPS)


def standardize(depth: Tensor, mask: Tensor) -> Tensor:
    """Per sample: subtract the masked mean, divide by the masked mean absolute deviation + 1e-6.

    Args:
        depth: (B, 1, H, W).
        mask: (B, 1, H, W) 1 on the pixels that define the statistics.
    """
    mask = mask.to(depth.dtype)
    count = mask.sum(dim=(1, 2, 3), keepdim=True).clamp_min(EPS)
    mean = (depth * mask).sum(dim=(1, 2, 3), keepdim=True) / count
    mad = (torch.abs(depth - mean) * mask).sum(dim=(1, 2, 3), keepdim=True) / count
    return (depth - mean) / (mad + EPS)


def relative_loss(pred_std: Tensor, target_std: Tensor, valid: Tensor) -> Tensor:
    """L1 between standardised prediction and target over the valid pixels of the batch."""
    mask = valid.to(pred_std.dtype)
    return (torch.abs(pred_std - target_std) * mask).sum() / (mask.sum() + EPS)


def _sobel_kernels(like: Tensor) -> Tensor:
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return torch.stack([gx, gx.t()]).unsqueeze(1).to(device=like.device, dtype=like.dtype)


def gradient_loss(pred_std: Tensor, target_std: Tensor, valid: Tensor,
                  scales: int = GRAD_SCALES) -> Tensor:
    """Multi-scale Sobel loss on the standardised residual.

    The residual is ``pred_std - target_std`` on valid pixels and 0 elsewhere; at each of
    ``scales`` scales (1, 1/2, 1/4, ... by nearest downsampling) the sum of |Gx| + |Gy| of a
    3x3 Sobel without padding is accumulated; the total is divided by the valid pixel count.
    """
    mask = valid.to(pred_std.dtype)
    residual = (pred_std - target_std) * mask
    kernels = _sobel_kernels(residual)
    total = residual.new_zeros(())
    for level in range(scales):
        if level == 0:
            scaled = residual
        else:
            scaled = F.interpolate(residual, scale_factor=1.0 / 2 ** level, mode='nearest',
                                   recompute_scale_factor=True)
        if scaled.shape[-1] < 3 or scaled.shape[-2] < 3:
            break
        total = total + torch.abs(F.conv2d(scaled, kernels)).sum()
    return total / (mask.sum() + EPS)


def g2_loss(pred: Tensor, target: Tensor, input_depth: Tensor,
            grad_weight: float = 0.5, dense_weight: float = 0.0) -> LossTerms:
    """The G2 loss ``L_abs + L_rel + grad_weight * L_grad`` (+ ``dense_weight * L_dense``).

    ``L_dense`` (L1 over every ground-truth pixel, normalised by their count) is not part of
    the release's recipe; at the default weight 0 the loss is exactly the G2 loss. It helps
    when the targets are dense and metric (the synthetic generator).

    Args:
        pred: (B, 1, H, W) network output, normalised depth.
        target: (B, 1, H, W) normalised ground truth, 0 where unknown.
        input_depth: (B, 1, H, W) the raw (simulated) network input, 0 where no point.
        grad_weight: weight of L_grad (0.5 in the release).
        dense_weight: weight of L_dense.

    Raises:
        ShapeError: shapes differ or are not (B, 1, H, W).
    """
    _check('pred', pred)
    _check('target', target, pred)
    _check('input_depth', input_depth, pred)
    pred = pred.float()
    target = target.float()
    valid = target > 0
    input_mask = input_depth > 0
    l_abs = absolute_loss(pred, target, input_mask)
    pred_std = standardize(pred, valid)
    target_std = standardize(target, valid)
    l_rel = relative_loss(pred_std, target_std, valid)
    l_grad = gradient_loss(pred_std, target_std, valid)
    l_dense = absolute_loss(pred, target, valid)
    total = l_abs + l_rel + grad_weight * l_grad
    if dense_weight:
        total = total + dense_weight * l_dense
    return LossTerms(total, l_abs, l_rel, l_grad, l_dense)


class G2Loss(torch.nn.Module):
    """Module wrapper of :func:`g2_loss` returning :class:`LossTerms`."""

    def __init__(self, grad_weight: float = 0.5, dense_weight: float = 0.0) -> None:
        super().__init__()
        self.grad_weight = grad_weight
        self.dense_weight = dense_weight

    def forward(self, pred: Tensor, target: Tensor, input_depth: Tensor) -> LossTerms:
        return g2_loss(pred, target, input_depth, self.grad_weight, self.dense_weight)
