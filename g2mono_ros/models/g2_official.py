"""The ``official`` G2-MonoDepth network (Wang-xjtu/G2-MonoDepth, TPAMI release).

Blocks, the network, Kaiming init, then the checkpoint filter that maps the release's nested
``block.2.block.2...`` keys onto this module's flat names (and back), then the named variant.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2mono_ros.errors import CheckpointError
from g2mono_ros.models.g2_seed import check_network_inputs

__all__ = [
    'OFFICIAL_VARIANTS',
    'FusedOfficialBottleneck',
    'G2Official',
    'OfficialBottleneck',
    'official_checkpoint_filter',
    'release_key_to_ours',
    'to_release_state_dict',
]

NEGATIVE_SLOPE = 0.2


# --------------------------------------------------------------------------- blocks


class OfficialBottleneck(nn.Module):
    """Pre-activation ReZero bottleneck without normalisation.

    ``a = LeakyReLU(x)``; branch = Conv1x1 in->in/4, LeakyReLU, Conv3x3, LeakyReLU, Conv1x1 ->out;
    ``out = alpha * branch(a) + shortcut(a)`` with shortcut = identity or Conv1x1.

    The shortcut takes the *activated* input on purpose: the release applies its first
    LeakyReLU in place, so its shortcut sees LeakyReLU(x) too, and the released weights were
    trained that way. Here it is written out-of-place, with the same result.
    """

    def __init__(self, in_chans: int, out_chans: int, *,
                 negative_slope: float = NEGATIVE_SLOPE) -> None:
        super().__init__()
        mid = in_chans // 4
        self.negative_slope = negative_slope
        self.conv_reduce = nn.Conv2d(in_chans, mid, 1)
        self.conv_mid = nn.Conv2d(mid, mid, 3, padding=1)
        self.conv_expand = nn.Conv2d(mid, out_chans, 1)
        self.shortcut = nn.Identity() if in_chans == out_chans else nn.Conv2d(in_chans, out_chans, 1)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        slope = self.negative_slope
        x = F.leaky_relu(x, slope)
        # In place only on fresh conv outputs; one fused multiply-add for the ReZero sum.
        branch = F.leaky_relu(self.conv_reduce(x), slope, inplace=True)
        branch = F.leaky_relu(self.conv_mid(branch), slope, inplace=True)
        return torch.addcmul(self.shortcut(x), self.alpha, self.conv_expand(branch))


class FusedOfficialBottleneck(nn.Module):
    """Inference-only CPU form of :class:`OfficialBottleneck` using oneDNN post-ops (fp32).

    The two inner LeakyReLUs run inside conv_reduce and conv_mid; alpha is folded into
    conv_expand's weights, and the shortcut sum runs inside that convolution too, saving four
    passes over memory per block. Same result to float32 rounding. Built from a trained block
    by :meth:`G2Official.fused_for_cpu_inference`; later changes to that block are not seen.
    """

    def __init__(self, block: OfficialBottleneck) -> None:
        super().__init__()
        self.negative_slope = block.negative_slope
        self.conv_reduce = block.conv_reduce
        self.conv_mid = block.conv_mid
        self.shortcut = block.shortcut
        alpha = block.alpha.detach()
        self.register_buffer('expand_weight', block.conv_expand.weight.detach() * alpha)
        self.register_buffer('expand_bias', block.conv_expand.bias.detach() * alpha)

    def forward(self, x: Tensor) -> Tensor:
        pointwise = torch.ops.mkldnn._convolution_pointwise
        slope = self.negative_slope
        x = F.leaky_relu(x, slope)
        ones = [1, 1]
        branch = pointwise(x, self.conv_reduce.weight, self.conv_reduce.bias, [0, 0], ones, ones,
                           1, 'leaky_relu', [slope], '')
        branch = pointwise(branch, self.conv_mid.weight, self.conv_mid.bias, ones, ones, ones, 1,
                           'leaky_relu', [slope], '')
        return pointwise.binary(branch, self.shortcut(x), self.expand_weight, self.expand_bias,
                                [0, 0], ones, ones, 1, 'add', None, None, [], None)


def stacked_bottlenecks(in_chans: int, out_chans: int, num_bottle: int) -> nn.Sequential:
    """First bottleneck changes the width; the rest keep it."""
    return nn.Sequential(*(OfficialBottleneck(in_chans if i == 0 else out_chans, out_chans)
                           for i in range(num_bottle)))


# --------------------------------------------------------------------------- network


class G2Official(nn.Module):
    """The release's recursive UNet, unrolled into flat lists of stages.

    Level ``k`` (1..L) = Conv3x3 stride 2, stacked bottlenecks, level ``k+1``, stacked
    bottlenecks (2 x width_k -> width_{k-1}), nearest upsample x2, and its output is the
    concatenation of its input and that result. The innermost level has no inner level and no
    second stack. Around it: Conv3x3 5->w0, stacked bottlenecks, ..., stacked bottlenecks
    2w0 -> w0, Conv3x3 w0 -> 1 with no output activation (the caller clips).

    Args:
        widths: channels per level, full resolution first.
        num_bottle: bottlenecks per stack (3 in the release).
        in_chans: input channels (RGB + sparse depth + validity mask).
    """

    def __init__(self, *, widths: Sequence[int] = (64, 128, 256, 512, 512, 512, 512),
                 num_bottle: int = 3, in_chans: int = 5) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 4 or num_bottle < 1:
            msg = f'G2Official needs >= 2 widths >= 4 and num_bottle >= 1; got {widths}, {num_bottle}'
            raise ValueError(msg)
        self.widths = widths
        self.input_multiple = 2 ** (len(widths) - 1)
        levels = len(widths) - 1
        self.stem = nn.Conv2d(in_chans, widths[0], 3, padding=1)
        self.stem_blocks = stacked_bottlenecks(widths[0], widths[0], num_bottle)
        self.down = nn.ModuleList(nn.Conv2d(widths[k], widths[k + 1], 3, stride=2, padding=1)
                                  for k in range(levels))
        self.enc_blocks = nn.ModuleList(stacked_bottlenecks(widths[k + 1], widths[k + 1], num_bottle)
                                        for k in range(levels))
        # dec_blocks[k] belongs to level k+1; it sees that level's width twice (the concat).
        self.dec_blocks = nn.ModuleList(stacked_bottlenecks(2 * widths[k + 1], widths[k], num_bottle)
                                        for k in range(levels - 1))
        self.head_blocks = stacked_bottlenecks(2 * widths[0], widths[0], num_bottle)
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        init_official_weights(self)

    def forward(self, rgb: Tensor, point: Tensor, hole_point: Tensor) -> Tensor:
        """Normalised depth (B,1,H,W), unclipped, from rgb [0,1], point [0,1], mask {0,1}."""
        check_network_inputs(rgb, point, hole_point, self.input_multiple)
        x = self.stem_blocks(self.stem(torch.cat((rgb, point, hole_point), dim=1)))
        inputs = []  # input of each level, outermost first
        for down, blocks in zip(self.down, self.enc_blocks):
            inputs.append(x)
            x = blocks(down(x))
        # Innermost level: its "result" is its encoder output, upsampled.
        x = torch.cat((inputs[-1], F.interpolate(x, scale_factor=2.0, mode='nearest')), dim=1)
        for k in range(len(self.dec_blocks) - 1, -1, -1):
            x = F.interpolate(self.dec_blocks[k](x), scale_factor=2.0, mode='nearest')
            x = torch.cat((inputs[k], x), dim=1)
        return self.head(self.head_blocks(x))

    def fused_for_cpu_inference(self) -> G2Official:
        """A copy for fp32 CPU inference with every bottleneck fused (oneDNN post-ops).

        Shares the convolution weights with this model; alphas are folded at call time.

        Raises:
            RuntimeError: this PyTorch build has no oneDNN (``torch.ops.mkldnn``) fusion ops.
        """
        if not (torch.backends.mkldnn.is_available()
                and hasattr(torch.ops.mkldnn, '_convolution_pointwise')):
            msg = 'this PyTorch build has no oneDNN convolution fusion'
            raise RuntimeError(msg)
        fused = copy.copy(self)
        fused._modules = dict(self._modules)
        for name in ('stem_blocks', 'head_blocks'):
            fused._modules[name] = _fused_stack(getattr(self, name))
        for name in ('enc_blocks', 'dec_blocks'):
            fused._modules[name] = nn.ModuleList(_fused_stack(stack) for stack in getattr(self, name))
        fused.training = False
        return fused


def _fused_stack(stack: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*(FusedOfficialBottleneck(block) for block in stack))


# --------------------------------------------------------------------------- init


def init_official_weights(model: nn.Module) -> None:
    """The release's init: Kaiming normal (a=0.2) for every convolution, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=NEGATIVE_SLOPE)
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- checkpoint filter

_BOTTLENECK_RELEASE_TO_OURS = {'left.1': 'conv_reduce', 'left.3': 'conv_mid',
                               'left.5': 'conv_expand', 'right': 'shortcut'}
_BOTTLENECK_OURS_TO_RELEASE = {v: k for k, v in _BOTTLENECK_RELEASE_TO_OURS.items()}
_STACK_RE = re.compile(r'^block\.(\d+)\.(.+)$')


def _map_bottleneck_suffix(suffix: str, table: Mapping[str, str]) -> str | None:
    if suffix == 'alpha':
        return suffix
    for old, new in table.items():
        if suffix.startswith(old + '.') and suffix.count('.') == old.count('.') + 1:
            return new + suffix[len(old):]
    return None


def _map_stack(rest: str) -> str | None:
    """``block.<j>.<bottleneck param>`` (release) -> ``<j>.<our bottleneck param>``."""
    match = _STACK_RE.match(rest)
    if match is None:
        return None
    suffix = _map_bottleneck_suffix(match.group(2), _BOTTLENECK_RELEASE_TO_OURS)
    return None if suffix is None else f'{match.group(1)}.{suffix}'


def release_key_to_ours(key: str) -> str | None:
    """Our parameter name for one release state-dict key, or None when it has no counterpart.

    The release nests ``block.2.`` once per level; level ``k`` (0-based) holds ``block.0``
    (stride-2 conv -> ``down.k``), ``block.1`` (-> ``enc_blocks.k``), ``block.2`` (level k+1)
    and ``block.3`` (-> ``dec_blocks.k``). At the top: ``block.0`` stem conv, ``block.1`` stem
    stack, ``block.2`` level 0, ``block.3`` head stack, ``block.4`` head conv.
    """
    top = re.match(r'^block\.(\d)\.(.+)$', key)
    if top is None:
        return None
    index, rest = top.groups()
    if index in ('0', '4'):
        if rest not in ('weight', 'bias'):
            return None
        return f'{"stem" if index == "0" else "head"}.{rest}'
    if index in ('1', '3'):
        mapped = _map_stack(rest)
        return None if mapped is None else f'{"stem_blocks" if index == "1" else "head_blocks"}.{mapped}'
    if index != '2':
        return None
    level = 0
    while True:
        match = re.match(r'^block\.(\d)\.(.+)$', rest)
        if match is None:
            return None
        index, rest = match.groups()
        if index == '2':
            level += 1
            continue
        if index == '0':
            return f'down.{level}.{rest}' if rest in ('weight', 'bias') else None
        mapped = _map_stack(rest)
        if mapped is None or index not in ('1', '3'):
            return None
        return f'{"enc_blocks" if index == "1" else "dec_blocks"}.{level}.{mapped}'


def _our_key_to_release(key: str) -> str:
    parts = key.split('.')
    name = parts[0]
    if name in ('stem', 'head'):
        return f'block.{0 if name == "stem" else 4}.{parts[1]}'
    if name in ('stem_blocks', 'head_blocks'):
        prefix, stack_index, rest = f'block.{1 if name == "stem_blocks" else 3}', parts[1], parts[2:]
    else:
        level = int(parts[1])
        prefix = 'block.2.' + 'block.2.' * level
        if name == 'down':
            return f'{prefix}block.0.{parts[2]}'
        prefix += 'block.1' if name == 'enc_blocks' else 'block.3'
        stack_index, rest = parts[2], parts[3:]
    suffix = _map_bottleneck_suffix('.'.join(rest), _BOTTLENECK_OURS_TO_RELEASE)
    if suffix is None:
        msg = f'no release name for parameter {key!r}'
        raise CheckpointError(msg)
    return f'{prefix}.block.{stack_index}.{suffix}'


def to_release_state_dict(model: G2Official) -> dict[str, Tensor]:
    """This model's state dict under the release's key names (loadable by the release code)."""
    return {_our_key_to_release(key): value for key, value in model.state_dict().items()}


def official_checkpoint_filter(state_dict: Mapping[str, Tensor],
                               model: nn.Module) -> dict[str, Tensor]:
    """Map a release state dict (``block.*`` keys) onto :class:`G2Official`, strictly.

    A state dict already in our naming passes through unchanged. In a release state dict every
    key must map; none is dropped or ignored.

    Raises:
        CheckpointError: some release keys have no counterpart here (named in the message).
    """
    del model
    keys = list(state_dict)
    if keys and all(key.startswith('module.') for key in keys):
        state_dict = {key[len('module.'):]: value for key, value in state_dict.items()}
        keys = list(state_dict)
    if not any(key.startswith('block.') for key in keys):
        return dict(state_dict)
    mapped: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        ours = release_key_to_ours(key)
        if ours is None:
            unmapped.append(key)
        else:
            mapped[ours] = value
    if unmapped:
        shown = ', '.join(unmapped[:8]) + (' ...' if len(unmapped) > 8 else '')
        msg = (f'{len(unmapped)} key(s) of the release-format state dict do not belong to the '
               f'official G2-MonoDepth network: {shown}')
        raise CheckpointError(msg)
    return mapped


# --------------------------------------------------------------------------- variants

#: named variant -> constructor kwargs (the release: 18,161,672 parameters, 39 ReZero alphas).
OFFICIAL_VARIANTS: dict[str, dict[str, Any]] = {
    'official': {'widths': (64, 128, 256, 512, 512, 512, 512), 'num_bottle': 3},
}
