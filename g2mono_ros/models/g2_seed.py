"""The ``seed`` G2-MonoDepth UNet: the architecture the package was specified with.

Reads top-down like a timm model file: building blocks, the network, weight init, a checkpoint
filter, then the named variants (``seed``, ``seed_small``) as plain configs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2mono_ros.errors import ShapeError
from g2mono_ros.models.backends import OneDnnGraphModule
from g2mono_ros.models.prefill import (
    DEPTH_NORMS,
    PREFILL_KINDS,
    guided_nearest_fill,
    nearest_point_fill,
    push_pull_fill,
    scanline_fill,
    sparse_median,
)

__all__ = [
    'SEED_VARIANTS',
    'FirstModule',
    'FusedSeedBottleneck',
    'FusedSeedStage',
    'FusedSingleOutputConv3x3',
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


# --------------------------------------------------------------------------- fused CPU inference


def _conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv`` through oneDNN directly, bias inside the kernel.

    The eager 1x1 convolution on channels_last tensors falls back to a GEMM plus a strided
    broadcast copy of the bias, which at 256x512 costs more than the GEMM itself.
    """
    return torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
        conv.groups, 'none', [], '')


def _channel_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the channels of (B, C, H, W): no copy when ``x`` is channels_last."""
    rows = F.layer_norm(x.permute(0, 2, 3, 1), weight.shape, weight, bias, eps)
    return rows.permute(0, 3, 1, 2)


def _unit_weight(channels: int) -> Tensor:
    """(C, 1, 1, 1) ones: a 1x1 depthwise convolution with these multiplies by 1.0 exactly."""
    return torch.ones(channels, 1, 1, 1)


def _gelu(x: Tensor, unit_weight: Tensor) -> Tensor:
    """Exact (erf) GELU of (B, C, H, W) through oneDNN's eltwise kernel.

    It runs as the post-op of a 1x1 depthwise convolution with ``unit_weight`` (C ones); on
    the benchmark CPU that was faster than ``torch``'s in-place GELU.
    """
    return torch.ops.mkldnn._convolution_pointwise(x, unit_weight, None, [0, 0], [1, 1], [1, 1],
                                                   x.shape[1], 'gelu', [], 'none')


def _norm_gelu(x: Tensor, norm: nn.LayerNorm, unit_weight: Tensor) -> Tensor:
    return _gelu(_channel_norm(x, norm.weight, norm.bias, norm.eps), unit_weight)


def _graph_norm_gelu(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    """GELU(LayerNorm over the channels of (B, C, H, W)) in plain torch ops, for a traced graph.

    The norm and the GELU are adjacent operations on the channels-last rows, which oneDNN
    Graph runs as one kernel (:class:`~g2mono_ros.models.backends.OneDnnGraphModule`).
    """
    rows = F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias,
                        norm.eps)
    return F.gelu(rows).permute(0, 3, 1, 2)


def _require_exact_gelu(*modules: nn.Module) -> None:
    """The fused forms hard-wire exact (erf) GELU; refuse blocks built with another one."""
    for module in modules:
        if not (isinstance(module, nn.GELU) and module.approximate == 'none'):
            msg = f'the fused CPU copy knows exact GELU only; got {module}'
            raise RuntimeError(msg)


class FusedSeedBottleneck(nn.Module):
    """Inference-only CPU form of :class:`SeedBottleneck` (fp32, channels_last).

    Convolutions run in oneDNN with the bias inside the kernel, so do the GELUs (:func:`_gelu`),
    and alpha is folded into norm3's affine, so the ReZero sum is one in-place add. Same result
    to float32 rounding. The block is split into :meth:`expand` (per pixel) and
    :meth:`finish` so that a stage ending in a nearest upsampling can run the per-pixel part
    before it (:class:`FusedSeedStage`). Built from a trained block by
    :meth:`G2Seed.fused_for_cpu_inference`; later changes to that block are not seen.

    ``for_graph``: the same computation in plain torch operations, to be traced for oneDNN
    Graph (each LayerNorm and its GELU adjacent, the ReZero sum and the last GELU adjacent);
    ``finish`` then wants ``x`` at the size of the output.
    """

    def __init__(self, block: SeedBottleneck, *, for_graph: bool = False) -> None:
        super().__init__()
        _require_exact_gelu(block.act1, block.act2)
        self.for_graph = for_graph
        self.conv_expand = block.conv_expand
        self.norm1 = block.norm1
        self.conv_dw = block.conv_dw
        self.norm2 = block.norm2
        self.conv_project = block.conv_project
        self.norm3_eps = float(block.norm3.eps)
        self.norm3_shape = tuple(block.norm3.normalized_shape)  # ints, not traced sizes
        alpha = block.alpha.detach()
        self.register_buffer('norm3_weight', block.norm3.weight.detach() * alpha)
        self.register_buffer('norm3_bias', block.norm3.bias.detach() * alpha)
        self.act_out = not isinstance(block.act_out, nn.Identity)
        if self.act_out:
            _require_exact_gelu(block.act_out)
        self.register_buffer('unit_hidden', _unit_weight(block.conv_expand.out_channels))
        self.register_buffer('unit_out', _unit_weight(block.conv_project.out_channels))

    def expand(self, x: Tensor) -> Tensor:
        """GELU(LN(Conv1x1(x))): (B, C, H, W) -> (B, eC, H, W), each pixel on its own."""
        if self.for_graph:
            return _graph_norm_gelu(self.conv_expand(x), self.norm1)
        return _norm_gelu(_conv(x, self.conv_expand), self.norm1, self.unit_hidden)

    def finish(self, x: Tensor, expanded: Tensor) -> Tensor:
        """The rest of the block from its input ``x`` (B, C, H, W) and ``expand(x)``.

        ``x`` may also be (B, C, H/2, W/2), the input before a nearest x2 upsampling: it is
        then added to each 2x2 cell without being upsampled first (not ``for_graph``).
        """
        if self.for_graph:
            branch = _graph_norm_gelu(self.conv_dw(expanded), self.norm2)
            rows = F.layer_norm(self.conv_project(branch).permute(0, 2, 3, 1),
                                self.norm3_shape, self.norm3_weight, self.norm3_bias,
                                self.norm3_eps)
            rows = rows + x.permute(0, 2, 3, 1)
            return (F.gelu(rows) if self.act_out else rows).permute(0, 3, 1, 2)
        branch = _norm_gelu(_conv(expanded, self.conv_dw), self.norm2, self.unit_hidden)
        out = _channel_norm(_conv(branch, self.conv_project), self.norm3_weight,
                            self.norm3_bias, self.norm3_eps)
        if x.shape[-2:] == out.shape[-2:]:
            out.add_(x)
        else:
            # The norm's output is contiguous channels-last: (B, H, 2, W, 2, C) as a view.
            batch, channels, height, width = x.shape
            cells = out.permute(0, 2, 3, 1).view(batch, height, 2, width, 2, channels)
            cells.add_(x.permute(0, 2, 3, 1).reshape(batch, height, 1, width, 1, channels))
        return _gelu(out, self.unit_out) if self.act_out else out

    def forward(self, x: Tensor) -> Tensor:
        return self.finish(x, self.expand(x))


class FusedSeedFirst(nn.Module):
    """Inference-only CPU form of :class:`FirstModule`: oneDNN convolution and GELU
    (``for_graph``: plain torch operations, to be traced for oneDNN Graph)."""

    def __init__(self, module: FirstModule, *, for_graph: bool = False) -> None:
        super().__init__()
        _require_exact_gelu(module.act)
        self.for_graph = for_graph
        self.conv = module.conv
        self.norm = module.norm
        self.register_buffer('unit', _unit_weight(module.conv.out_channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.for_graph:
            return _graph_norm_gelu(self.conv(x), self.norm)
        return _norm_gelu(_conv(x, self.conv), self.norm, self.unit)


class FusedSeedStage(nn.Module):
    """Inference-only CPU form of :class:`UNetModule` with fused bottlenecks.

    In an ``up`` stage the first block's per-pixel part (Conv1x1, LN, GELU) commutes with the
    nearest upsampling before it, so it runs at a quarter of the pixels and is upsampled
    instead: the same values, and that block's widest GEMM and norm cost a quarter. Its
    residual is added without upsampling it first (``for_graph``: upsampled, as the traced
    graph wants every shape fixed by the input's).
    """

    def __init__(self, stage: UNetModule, *, for_graph: bool = False) -> None:
        super().__init__()
        self.mode = stage.mode
        self.conv = stage.conv
        self.for_graph = for_graph
        self.blocks = nn.Sequential(*(FusedSeedBottleneck(block, for_graph=for_graph)
                                      for block in stage.blocks))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x) if self.for_graph else _conv(x, self.conv)
        blocks = list(self.blocks)
        if self.mode == 'up':
            if blocks:
                first = blocks.pop(0)
                expanded = F.interpolate(first.expand(x), scale_factor=2.0, mode='nearest')
                if self.for_graph:
                    x = F.interpolate(x, scale_factor=2.0, mode='nearest')
                x = first.finish(x, expanded)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        for block in blocks:
            x = block(x)
        return x


class FusedSingleOutputConv3x3(nn.Conv2d):
    """Inference-only CPU form of a 3x3, stride 1, padding 1 convolution to one channel (the
    head): a GEMM gives each tap's response (B, H+2, W+2, 9), then nine shifted adds.

    oneDNN runs a one-channel 3x3 convolution far below its GEMM speed (2x slower at 256x512).
    A ``Conv2d`` holding the same weight and bias Parameters as ``conv``, read at each call, so
    it follows changes to them (``head.weight`` works as before).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        shape_ok = (conv.out_channels == 1 and conv.kernel_size == (3, 3) and conv.groups == 1
                    and conv.stride == (1, 1) and conv.padding == (1, 1)
                    and conv.dilation == (1, 1) and conv.bias is not None)
        if not shape_ok:
            msg = f'the fused head knows a 3x3 convolution to one channel with a bias; got {conv}'
            raise RuntimeError(msg)
        super().__init__(conv.in_channels, 1, 3, padding=1)
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        # (9, C, 1, 1): tap k = 3 * dy + dx. Padding 1 on a 1x1 convolution gives the
        # zero border the shifted windows read.
        taps_weight = self.weight[0].permute(1, 2, 0).reshape(9, channels, 1, 1)
        taps = torch.ops.mkldnn._convolution_pointwise(
            x, taps_weight.contiguous(), None, [1, 1], [1, 1], [1, 1], 1, 'none', [], '')
        taps = taps.permute(0, 2, 3, 1)  # (B, H + 2, W + 2, 9)
        out = self.bias.view(1, 1, 1).expand(batch, height, width).clone()
        for k in range(9):
            dy, dx = divmod(k, 3)
            out += taps[:, dy:dy + height, dx:dx + width, k]
        return out[:, None].contiguous(memory_format=torch.channels_last)


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
            on planes; ``models.prefill.scanline_fill``) or ``guided`` (each pixel a nearby
            point of its colour in the RGB input: ``models.prefill.guided_nearest_fill``).
        pin_points: output the measured depth itself where a point exists.
        residual_shrink: with ``residual``, the correction is soft-thresholded by this much
            (in the network's depth units: a log ratio for ``log``, so 0.05 = 5 %): smaller
            corrections are dropped, larger ones reduced by it. It removes the network's
            low-amplitude noise where the pre-fill is already right (dense scans, planes),
            which costs more MAE there than the corrections gain. In training the gradient
            passes through it unchanged (straight-through), so fine-tuning moves small
            corrections too.
    """

    def __init__(self, *, widths: Sequence[int] = (64, 128, 256, 512, 512, 512, 512),
                 num_bottle: int = 3, expansion: int = 2, in_chans: int = 5,
                 depth_norm: str = 'fixed', prefill_input: bool = False, residual: bool = False,
                 pin_points: bool = False, prefill_kind: str = 'push_pull',
                 residual_shrink: float = 0.0) -> None:
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
        if not (0.0 <= residual_shrink < 1.0 and (self.residual or residual_shrink == 0.0)):
            msg = f'residual_shrink must be in [0, 1) and needs residual; got {residual_shrink!r}'
            raise ValueError(msg)
        self.residual_shrink = float(residual_shrink)
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

    def fused_for_cpu_inference(self, *, onednn_graph: bool = False) -> G2Seed:
        """A copy for fp32 CPU inference with the stem and every stage fused (oneDNN).

        Only the UNet's modules are swapped: pre- and post-processing (depth scaling, pre-fill,
        residual, pinning) are this class's own code, so the copy follows every option.
        Shares the weights with this model; alphas are folded when the copy is made. Measured
        with ``benchmarks/bench_model.py`` (seed, 256x512, one thread, busy 2-core machine):
        the engine ran 1.83-1.89x eager fp32 with this copy, 1.55-1.60x without (CPU time).

        Args:
            onednn_graph: run the stem and each stage as a TorchScript graph compiled by oneDNN
                Graph (:class:`~g2mono_ros.models.backends.OneDnnGraphModule`): each
                LayerNorm and its GELU, and each ReZero sum and its GELU, become one kernel.
                The weights become constants of the graphs. Each new input shape runs slower
                on its first two calls (profiling). Check the copy before use: the engine does.
                Measured (``bench_model.py``, seed 256x512, busy 2-core machine, same runs):
                engine 2.19x eager fp32 at one thread (CPU time; this copy without the graphs
                1.81x) and 2.24x at two (wall; 2.08x); the shipped seed_small at 128x192, a
                640x480 frame end to end at one thread: 76 ms against 105 ms.

        Raises:
            RuntimeError: this PyTorch build has no oneDNN (``torch.ops.mkldnn``) convolution
                (or, with ``onednn_graph``, no oneDNN Graph), or a block has a norm or
                activation the fused form does not know.
        """
        if not (torch.backends.mkldnn.is_available()
                and hasattr(torch.ops.mkldnn, '_convolution_pointwise')):
            msg = 'this PyTorch build has no oneDNN convolution fusion'
            raise RuntimeError(msg)
        norms = [m for m in self.modules() if isinstance(m, nn.LayerNorm)]
        if any(type(m) is not LayerNorm2d for m in norms):
            msg = 'the fused copy knows LayerNorm2d only'
            raise RuntimeError(msg)
        fused = copy.copy(self)
        fused._modules = dict(self._modules)
        first: nn.Module = FusedSeedFirst(self.first, for_graph=onednn_graph)
        encoders: list[nn.Module] = [FusedSeedStage(stage, for_graph=onednn_graph)
                                     for stage in self.encoders]
        decoders: list[nn.Module] = [FusedSeedStage(stage, for_graph=onednn_graph)
                                     for stage in self.decoders]
        if onednn_graph:
            # Traced at a small size: the graphs take any size (see OneDnnGraphModule).
            def example(module: nn.Module, channels: int) -> tuple[Tensor]:
                weight = next(module.parameters())
                x = torch.zeros(1, channels, 8, 8, dtype=weight.dtype, device=weight.device)
                return (x.contiguous(memory_format=torch.channels_last),)

            first = OneDnnGraphModule(first, example(first, self.first.conv.in_channels))
            encoders = [OneDnnGraphModule(stage, example(stage, stage.conv.in_channels))
                        for stage in encoders]
            decoders = [OneDnnGraphModule(stage, example(stage, stage.conv.in_channels))
                        for stage in decoders]
        fused._modules['first'] = first
        fused._modules['encoders'] = nn.ModuleList(encoders)
        fused._modules['decoders'] = nn.ModuleList(decoders)
        fused._modules['head'] = FusedSingleOutputConv3x3(self.head)
        fused.training = False
        return fused

    def _unet(self, inputs: Tensor) -> Tensor:
        features = [self.first(inputs)]
        for encoder in self.encoders:
            features.append(encoder(features[-1]))
        x = features[-1]
        for level in range(len(self.decoders), 0, -1):
            x = self.decoders[level - 1](x) + features[level - 1]
        return self.head(x)

    def _prefill(self, scaled: Tensor, positive: Tensor, mask: Tensor, rgb: Tensor) -> Tensor:
        """The classical fill in the network's depth units (``scaled``: log ratio for ``log``).

        ``positive`` is the same depth before any log (ratio to the median, or the fixed-scale
        depth): the scan-line fill interpolates inverse depth, which needs positive values.
        ``rgb`` (B, 3, H, W) [0, 1] guides the ``guided`` fill.
        """
        if self.prefill_kind == 'nearest':
            return nearest_point_fill(scaled, mask)
        if self.prefill_kind == 'guided':
            # Copies point values only, so it works on log depth as on depth.
            return guided_nearest_fill(scaled, mask, rgb)
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
            base = self._prefill(scaled, positive, mask, rgb)
        if self.prefill_input:
            channels.append(base)
        out = self._unet(torch.cat(channels, dim=1))
        if self.residual:
            if self.residual_shrink:
                shrunk = F.softshrink(out, self.residual_shrink)
                # Training sees the thresholded output but passes the gradient straight through:
                # the soft threshold's zero gradient inside its dead band would otherwise freeze
                # every small correction, and fine-tuning the shipped weights could not move them.
                out = out + (shrunk - out).detach() if self.training else shrunk
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
