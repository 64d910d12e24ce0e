"""The ``seed`` G2-MonoDepth UNet: the architecture the package was specified with.

Reads top-down like a timm model file: building blocks, the network, weight init, a checkpoint
filter, then the named variants (``seed``, ``seed_small``) as plain configs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2mono_ros.errors import ShapeError
from g2mono_ros.models.prefill import (
    DEPTH_NORMS,
    PREFILL_KINDS,
    nearest_point_fill,
    push_pull_fill,
    scanline_fill,
    sparse_median,
)

__all__ = [
    'SEED_VARIANTS',
    'FirstModule',
    'G2Seed',
    'LayerNorm2d',
    'SeedBottleneck',
    'UNetModule',
    'check_network_inputs',
    'seed_checkpoint_filter',
]

LayerFactory = Callable[[int], nn.Module]


# --------------------------------------------------------------------------- blocks


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor, at each pixel.

    The permute makes a channels-last view, which is already contiguous when the network runs in
    ``torch.channels_last`` memory format, so the norm needs no copy there.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SeedBottleneck(nn.Module):
    """ReZero inverted bottleneck: ``act(x + alpha * branch(x))``.

    branch = Conv1x1 C->eC, LN, GELU, depthwise Conv3x3, LN, GELU, Conv1x1 eC->C, LN;
    ``alpha`` is a learnable scalar initialised to 0, so a fresh block is ``act(x)``.
    """

    def __init__(self, channels: int, *, expansion: int = 2, use_act: bool = True,
                 norm_layer: LayerFactory = LayerNorm2d,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        hidden = channels * expansion
        self.conv_expand = nn.Conv2d(channels, hidden, 1)
        self.norm1 = norm_layer(hidden)
        self.act1 = act_layer()
        self.conv_dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.norm2 = norm_layer(hidden)
        self.act2 = act_layer()
        self.conv_project = nn.Conv2d(hidden, channels, 1)
        self.norm3 = norm_layer(channels)
        self.alpha = nn.Parameter(torch.zeros(()))
        self.act_out = act_layer() if use_act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        branch = self.act1(self.norm1(self.conv_expand(x)))
        branch = self.act2(self.norm2(self.conv_dw(branch)))
        branch = self.norm3(self.conv_project(branch))
        return self.act_out(torch.addcmul(x, self.alpha, branch))  # x + alpha * branch


def stacked_bottlenecks(channels: int, num_bottle: int, **kwargs: Any) -> nn.Sequential:
    """``num_bottle`` SeedBottlenecks of constant width in a row."""
    return nn.Sequential(*(SeedBottleneck(channels, **kwargs) for _ in range(num_bottle)))


class FirstModule(nn.Module):
    """Stem at full resolution: Conv3x3 (stride 1), channel LayerNorm, GELU."""

    def __init__(self, in_chans: int, out_chans: int, *,
                 norm_layer: LayerFactory = LayerNorm2d,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, 3, padding=1)
        self.norm = norm_layer(out_chans)
        self.act = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class UNetModule(nn.Module):
    """One UNet stage: a resampling convolution then stacked bottlenecks.

    ``mode='down'``: Conv3x3 stride 2. ``mode='up'``: nearest Upsample x2 then Conv1x1.
    ``mode='same'``: Conv3x3 stride 1.

    A 1x1 convolution commutes with nearest upsampling, so 'up' runs the convolution first, at
    a quarter of the pixels, with a bit-identical result.
    """

    def __init__(self, in_chans: int, out_chans: int, *,
                 mode: Literal['down', 'up', 'same'] = 'same', num_bottle: int = 3,
                 **block_kwargs: Any) -> None:
        super().__init__()
        self.mode = mode
        if mode == 'down':
            self.conv = nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1)
        elif mode == 'up':
            self.conv = nn.Conv2d(in_chans, out_chans, 1)
        elif mode == 'same':
            self.conv = nn.Conv2d(in_chans, out_chans, 3, padding=1)
        else:
            msg = f"UNetModule mode must be 'down', 'up' or 'same'; got {mode!r}"
            raise ValueError(msg)
        self.blocks = stacked_bottlenecks(out_chans, num_bottle, **block_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.mode == 'up':
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        return self.blocks(x)


def check_network_inputs(rgb: Tensor, point: Tensor, hole_point: Tensor,
                         multiple: int) -> None:
    """Check the (B,3,H,W), (B,1,H,W), (B,1,H,W) network inputs, H and W multiples of ``multiple``.

    Raises:
        ShapeError: wrong rank, channel count, mismatched sizes, or H/W not a multiple.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        msg = f'rgb must be (B, 3, H, W); got {tuple(rgb.shape)}'
        raise ShapeError(msg)
    batch, _, height, width = rgb.shape
    for name, tensor in (('point', point), ('hole_point', hole_point)):
        if tuple(tensor.shape) != (batch, 1, height, width):
            msg = f'{name} must be {(batch, 1, height, width)} like rgb; got {tuple(tensor.shape)}'
            raise ShapeError(msg)
    if height % multiple or width % multiple:
        msg = f'network input height and width must be multiples of {multiple}; got {height}x{width}'
        raise ShapeError(msg)


# --------------------------------------------------------------------------- network


class G2Seed(nn.Module):
    """The specified 7-level G2-MonoDepth UNet with additive skips.

    Level 0 is the stem at full resolution; levels 1..6 each halve the resolution. Decoder stage
    ``i`` maps level ``i`` back to level ``i-1`` and adds the encoder's level ``i-1`` features.

    Args:
        widths: channels per level, full resolution first (7 entries for the specified network).
        num_bottle: bottlenecks per stage.
        expansion: bottleneck width factor (2 in the specification).
        in_chans: input channels (RGB + sparse depth + validity mask), + 1 with ``prefill_input``.
        depth_norm: how the sparse depth is scaled for the network (``models.prefill``):
            ``fixed`` (as given, depth / max_depth: the G2 formulation), ``median`` (divided by
            the image's median point) or ``log`` (log of that ratio). The output is mapped back,
            so the forward contract (normalised depth in and out) is the same for all three.
        prefill_input: add a classical fill of the (scaled) points as an input channel.
        residual: the head predicts a correction to that fill; the head starts at zero, so a
            fresh network outputs the fill.
        prefill_kind: ``push_pull`` (smooth masked-average pyramid), ``nearest`` (each pixel
            the nearest point's value: sharp edges) or ``scanline`` (inverse depth interpolated
            down each column between scan lines, nearest at edges and outside the lines: exact
            on planes; ``models.prefill.scanline_fill``).
        pin_points: output the measured depth itself where a point exists.
    """

    def __init__(self, *, widths: Sequence[int] = (64, 128, 256, 512, 512, 512, 512),
                 num_bottle: int = 3, expansion: int = 2, in_chans: int = 5,
                 depth_norm: str = 'fixed', prefill_input: bool = False, residual: bool = False,
                 pin_points: bool = False, prefill_kind: str = 'push_pull') -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1 or num_bottle < 0:
            msg = f'G2Seed needs >= 2 positive widths and num_bottle >= 0; got {widths}, {num_bottle}'
            raise ValueError(msg)
        if depth_norm not in DEPTH_NORMS:
            msg = f'depth_norm must be one of {", ".join(DEPTH_NORMS)}; got {depth_norm!r}'
            raise ValueError(msg)
        if prefill_kind not in PREFILL_KINDS:
            msg = f'prefill_kind must be one of {", ".join(PREFILL_KINDS)}; got {prefill_kind!r}'
            raise ValueError(msg)
        self.depth_norm = depth_norm
        self.prefill_kind = prefill_kind
        self.prefill_input = bool(prefill_input)
        self.residual = bool(residual)
        self.pin_points = bool(pin_points)
        in_chans = in_chans + int(self.prefill_input)
        self.widths = widths
        self.input_multiple = 2 ** (len(widths) - 1)
        block_kwargs = {'num_bottle': num_bottle, 'expansion': expansion}
        self.first = FirstModule(in_chans, widths[0])
        self.encoders = nn.ModuleList(
            UNetModule(widths[i - 1], widths[i], mode='down', **block_kwargs)
            for i in range(1, len(widths)))
        self.decoders = nn.ModuleList(
            UNetModule(widths[i], widths[i - 1], mode='up', **block_kwargs)
            for i in range(1, len(widths)))
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.head_act = nn.ReLU()
        init_seed_weights(self)
        if self.residual:
            nn.init.zeros_(self.head.weight)  # start exactly at the pre-fill
            nn.init.zeros_(self.head.bias)

    @property
    def plain(self) -> bool:
        """True for the G2 formulation (fixed scale, no pre-fill, no residual, no pinning)."""
        return (self.depth_norm == 'fixed' and not self.prefill_input and not self.residual
                and not self.pin_points)

    def _unet(self, inputs: Tensor) -> Tensor:
        features = [self.first(inputs)]
        for encoder in self.encoders:
            features.append(encoder(features[-1]))
        x = features[-1]
        for level in range(len(self.decoders), 0, -1):
            x = self.decoders[level - 1](x) + features[level - 1]
        return self.head(x)

    def _prefill(self, scaled: Tensor, positive: Tensor, mask: Tensor) -> Tensor:
        """The classical fill in the network's depth units (``scaled``: log ratio for ``log``).

        ``positive`` is the same depth before any log (ratio to the median, or the fixed-scale
        depth): the scan-line fill interpolates inverse depth, which needs positive values.
        """
        if self.prefill_kind == 'nearest':
            return nearest_point_fill(scaled, mask)
        if self.prefill_kind == 'push_pull':
            return push_pull_fill(scaled, mask)
        filled = scanline_fill(torch.where(mask > 0.5, positive, torch.zeros_like(positive)),
                               mask)
        if self.depth_norm == 'log':
            # An image without points fills 0: log of the floor, as the other fills' 0 input.
            return torch.where(filled > 0, torch.log(filled.clamp_min(1e-6)),
                               torch.zeros_like(filled))
        return filled

    def forward(self, rgb: Tensor, point: Tensor, hole_point: Tensor) -> Tensor:
        """Normalised depth (B,1,H,W) from rgb (B,3,H,W) [0,1], point (B,1,H,W) [0,1], mask {0,1}."""
        check_network_inputs(rgb, point, hole_point, self.input_multiple)
        if self.plain:
            return self.head_act(self._unet(torch.cat((rgb, point, hole_point), dim=1)))
        valid = (hole_point > 0.5) & (point > 0)
        mask = valid.to(point.dtype)
        if self.depth_norm == 'fixed':
            scale = torch.ones_like(point[:, :, :1, :1])
            positive = scaled = point * mask
        else:
            scale = sparse_median(point, mask)
            positive = torch.where(valid, point / scale, torch.zeros_like(point))
            scaled = positive
            if self.depth_norm == 'log':
                scaled = torch.where(valid, torch.log(positive.clamp_min(1e-6)),
                                     torch.zeros_like(positive))
        channels = [rgb, scaled, mask]
        base = None
        if self.prefill_input or self.residual:
            base = self._prefill(scaled, positive, mask)
        if self.prefill_input:
            channels.append(base)
        out = self._unet(torch.cat(channels, dim=1))
        if self.residual:
            out = out + base
        if self.depth_norm == 'log':
            out = torch.exp(out.clamp(-8.0, 8.0)) * scale
        else:
            out = self.head_act(out) * scale
        if self.pin_points:
            out = torch.where(valid, point, out)
        return out


# --------------------------------------------------------------------------- init


def init_seed_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions (fan_out, ReLU gain), zero biases; LN is ones/zeros already.

    ReZero alphas stay 0, so a fresh network is a plain conv stack that trains stably.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            if module.bias is not None:
                nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- checkpoint filter


def seed_checkpoint_filter(state_dict: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map a foreign state dict onto :class:`G2Seed`; ours is already in its naming.

    Only the ``module.`` prefix of a DistributedDataParallel save is removed (from every key or
    none); nothing is dropped, so the strict load that follows names any missing/unexpected key.
    """
    del model
    keys = list(state_dict)
    if keys and all(key.startswith('module.') for key in keys):
        return {key[len('module.'):]: value for key, value in state_dict.items()}
    return dict(state_dict)


# --------------------------------------------------------------------------- variants

#: named variant -> constructor kwargs (recorded in our checkpoints).
SEED_VARIANTS: dict[str, dict[str, Any]] = {
    'seed': {'widths': (64, 128, 256, 512, 512, 512, 512), 'num_bottle': 3, 'expansion': 2},
    'seed_small': {'widths': (16, 32, 64, 128, 128, 128, 128), 'num_bottle': 3, 'expansion': 2},
}
