"""Contract tests for the networks: shapes, gradients, parameter counts, release parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2mono_ros.errors import CheckpointError, ConfigError, ShapeError
from g2mono_ros.models import (
    MODEL_VARIANTS,
    G2Official,
    G2Seed,
    checkpoint_filter,
    create_model,
    to_release_state_dict,
    variant_family,
)
from g2mono_ros.models.g2_official import OfficialBottleneck, release_key_to_ours
from g2mono_ros.models.prefill import PREFILL_KINDS

TSV = Path(__file__).resolve().parent / 'data' / 'g2_official_state_dict.tsv'
SMALL = {'widths': (8, 16, 16, 32, 32, 32, 32)}


def _inputs(batch: int = 1, height: int = 64, width: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=gen)
    point = torch.rand(batch, 1, height, width, generator=gen)
    hole = (torch.rand(batch, 1, height, width, generator=gen) < 0.3).float()
    return rgb, point * hole, hole


def _set_alphas(model: nn.Module, seed: int = 1, low: float = 0.2, high: float = 0.6) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('alpha'):
                param.copy_(low + (high - low) * torch.rand((), generator=gen))


def _read_tsv() -> dict[str, tuple[int, ...]]:
    lines = TSV.read_text().splitlines()
    assert lines[0].split('\t') == ['key', 'shape']
    table = {}
    for line in lines[1:]:
        key, shape = line.split('\t')
        table[key] = tuple(int(d) for d in shape.strip('[]').split(',') if d)
    return table


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize('variant', MODEL_VARIANTS)
def test_full_size_forward_shape_and_finite(variant: str) -> None:
    model = create_model(variant).eval()
    _set_alphas(model)
    with torch.no_grad():
        out = model(*_inputs(batch=2, height=64, width=128))
    assert out.shape == (2, 1, 64, 128)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('variant', ['seed', 'official'])
def test_every_parameter_gets_a_gradient(variant: str) -> None:
    torch.manual_seed(0)
    model = create_model(variant, **SMALL).train()
    _set_alphas(model)  # with alpha = 0 the branch weights would get no gradient
    out = model(*_inputs(batch=2))
    (out.square().mean() + out.mean()).backward()
    no_grad = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_seed_output_is_non_negative_relu_head() -> None:
    model = create_model('seed_small').eval()
    _set_alphas(model)
    with torch.no_grad():
        out = model(*_inputs())
    assert (out >= 0).all()


@pytest.mark.parametrize('variant', ['seed_small', 'official'])
def test_rejects_sizes_not_multiple_of_64(variant: str) -> None:
    model = create_model(variant, **SMALL)
    with pytest.raises(ShapeError, match='multiples of 64; got 70x128'):
        model(*_inputs(height=70, width=128))


def test_rejects_wrong_channel_count() -> None:
    model = create_model('seed_small')
    rgb, point, hole = _inputs()
    with pytest.raises(ShapeError, match=r'rgb must be \(B, 3, H, W\)'):
        model(rgb[:, :2], point, hole)
    with pytest.raises(ShapeError, match='hole_point must be'):
        model(rgb, point, hole[:, :, :32])


def test_unknown_variant_and_kwarg() -> None:
    with pytest.raises(ConfigError, match="unknown model variant 'big'"):
        create_model('big')
    with pytest.raises(ConfigError, match="cannot build model variant 'seed'"):
        create_model('seed', depth=3)
    assert variant_family('seed_small') == 'seed'


def test_alphas_start_at_zero() -> None:
    for variant, count in (('seed', 36), ('official', 39)):
        alphas = [p for n, p in create_model(variant).named_parameters() if n.endswith('alpha')]
        assert len(alphas) == count
        assert all(float(a.detach()) == 0.0 for a in alphas)


# --------------------------------------------------------------------------- parameter counts


def _conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return cin // groups * cout * k * k + cout


def _seed_count(widths: tuple[int, ...], num_bottle: int = 3, expansion: int = 2) -> int:
    def bottleneck(c: int) -> int:
        h = c * expansion
        return (_conv(c, h, 1) + 2 * h + _conv(h, h, 3, groups=h) + 2 * h + _conv(h, c, 1)
                + 2 * c + 1)
    total = _conv(5, widths[0], 3) + 2 * widths[0] + _conv(widths[0], 1, 3)
    for i in range(1, len(widths)):
        total += _conv(widths[i - 1], widths[i], 3) + num_bottle * bottleneck(widths[i])
        total += _conv(widths[i], widths[i - 1], 1) + num_bottle * bottleneck(widths[i - 1])
    return total


def _official_count(widths: tuple[int, ...], num_bottle: int = 3) -> int:
    def bottleneck(cin: int, cout: int) -> int:
        m = cin // 4
        short = _conv(cin, cout, 1) if cin != cout else 0
        return _conv(cin, m, 1) + _conv(m, m, 3) + _conv(m, cout, 1) + short + 1

    def stack(cin: int, cout: int) -> int:
        return bottleneck(cin, cout) + (num_bottle - 1) * bottleneck(cout, cout)
    total = _conv(5, widths[0], 3) + stack(widths[0], widths[0])
    total += stack(2 * widths[0], widths[0]) + _conv(widths[0], 1, 3)
    for k in range(1, len(widths)):
        total += _conv(widths[k - 1], widths[k], 3) + stack(widths[k], widths[k])
        if k < len(widths) - 1:
            total += stack(2 * widths[k], widths[k - 1])
    return total


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_seed_parameter_count_matches_per_layer_formula() -> None:
    full = create_model('seed')
    assert _count(full) == _seed_count((64, 128, 256, 512, 512, 512, 512))
    # The true count of the specified network (the design note estimated ~30M).
    assert _count(full) == 34_065_253
    assert _count(create_model('seed_small')) == _seed_count((16, 32, 64, 128, 128, 128, 128))


def test_official_parameter_count() -> None:
    model = create_model('official')
    assert _count(model) == _official_count((64, 128, 256, 512, 512, 512, 512))
    assert _count(model) == 18_161_672
    table = _read_tsv()
    total = 0
    for shape in table.values():
        n = 1
        for d in shape:
            n *= d
        total += n
    assert total == 18_161_672


# --------------------------------------------------------------------------- release parity


def test_official_keys_and_shapes_equal_release_tsv() -> None:
    table = _read_tsv()
    assert len(table) == 301
    ours = {k: tuple(v.shape) for k, v in to_release_state_dict(create_model('official')).items()}
    assert ours == table
    assert sum(1 for k in table if k.endswith('alpha')) == 39


def test_release_filter_maps_every_key_one_to_one() -> None:
    model = create_model('official')
    table = _read_tsv()
    mapped = {release_key_to_ours(k) for k in table}
    assert None not in mapped
    assert mapped == set(model.state_dict())


def test_release_filter_refuses_unknown_release_key() -> None:
    model = create_model('official', **SMALL)
    state = to_release_state_dict(model)
    state['block.2.block.9.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r'block\.2\.block\.9\.weight'):
        checkpoint_filter('official', state, model)


def _release_bottleneck(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    # The release evaluates ``alpha * left(x) + shortcut(x)`` where left starts with an
    # in-place LeakyReLU: the shortcut therefore reads the activated x. Reproduced literally.
    y = F.leaky_relu(x, 0.2, inplace=True)
    y = F.leaky_relu(F.conv2d(y, sd[p + 'left.1.weight'], sd[p + 'left.1.bias']), 0.2)
    y = F.leaky_relu(F.conv2d(y, sd[p + 'left.3.weight'], sd[p + 'left.3.bias'], padding=1), 0.2)
    y = F.conv2d(y, sd[p + 'left.5.weight'], sd[p + 'left.5.bias'])
    branch = sd[p + 'alpha'] * y
    if p + 'right.weight' in sd:
        return branch + F.conv2d(x, sd[p + 'right.weight'], sd[p + 'right.bias'])
    return branch + x


def _release_stack(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    j = 0
    while f'{p}block.{j}.alpha' in sd:
        x = _release_bottleneck(x, sd, f'{p}block.{j}.')
        j += 1
    return x


def _release_level(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    y = F.conv2d(x, sd[p + 'block.0.weight'], sd[p + 'block.0.bias'], stride=2, padding=1)
    y = _release_stack(y, sd, p + 'block.1.')
    if p + 'block.2.block.0.weight' in sd:
        y = _release_level(y, sd, p + 'block.2.')
        y = _release_stack(y, sd, p + 'block.3.')
    y = F.interpolate(y, scale_factor=2, mode='nearest')
    return torch.cat((x, y), dim=1)


def release_forward(sd: dict[str, Tensor], rgb: Tensor, point: Tensor, hole: Tensor) -> Tensor:
    """Independent functional re-implementation driven only by the release's key names."""
    x = torch.cat((rgb, point, hole), dim=1)
    x = F.conv2d(x, sd['block.0.weight'], sd['block.0.bias'], padding=1)
    x = _release_stack(x, sd, 'block.1.')
    x = _release_level(x, sd, 'block.2.')
    x = _release_stack(x, sd, 'block.3.')
    return F.conv2d(x, sd['block.4.weight'], sd['block.4.bias'], padding=1)


def test_official_reproduces_release_forward_to_float32_rounding() -> None:
    torch.manual_seed(3)
    source = create_model('official')
    _set_alphas(source, low=-0.5, high=0.5)
    release_sd = to_release_state_dict(source)

    model = create_model('official')  # fresh weights, then the release dict loaded strictly
    model.load_state_dict(checkpoint_filter('official', release_sd, model), strict=True)
    model.eval()
    rgb, point, hole = _inputs(height=64, width=128, seed=5)
    with torch.no_grad():
        ours = model(rgb, point, hole)
        reference = release_forward(release_sd, rgb, point, hole)
    assert reference.abs().max() > 1e-3  # not a trivially zero output
    scale = float(reference.abs().max())
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5 * scale)


def test_bottleneck_matches_release_inplace_semantics() -> None:
    """The release's nn.Sequential(LeakyReLU(inplace=True), ...) order, built from nn layers."""
    torch.manual_seed(0)
    for cin, cout in ((16, 16), (32, 8)):
        ours = OfficialBottleneck(cin, cout)
        with torch.no_grad():
            ours.alpha.fill_(0.7)
        left = nn.Sequential(nn.LeakyReLU(0.2, inplace=True), ours.conv_reduce,
                             nn.LeakyReLU(0.2, inplace=True), ours.conv_mid,
                             nn.LeakyReLU(0.2, inplace=True), ours.conv_expand)
        right = None if cin == cout else ours.shortcut
        x = torch.randn(2, cin, 8, 8)
        with torch.no_grad():
            expected_input = x.clone()
            release = ours.alpha * left(x) + (x if right is None else right(x))
            torch.testing.assert_close(ours(expected_input), release)


def test_seed_and_official_are_distinct_classes() -> None:
    assert isinstance(create_model('seed_small'), G2Seed)
    assert isinstance(create_model('official', **SMALL), G2Official)


def test_fused_cpu_copy_matches_plain_network() -> None:
    torch.manual_seed(4)
    model = create_model('official', **SMALL).eval()
    _set_alphas(model, low=-0.5, high=0.5)
    fused = model.fused_for_cpu_inference()
    assert type(fused.enc_blocks[2][0]).__name__ == 'FusedOfficialBottleneck'
    assert type(model.enc_blocks[2][0]).__name__ == 'OfficialBottleneck'  # original untouched
    inputs = _inputs(height=64, width=128, seed=6)
    with torch.inference_mode():
        expected = model(*inputs)
        got = fused(*[t.contiguous(memory_format=torch.channels_last) for t in inputs])
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def _randomise_norms_and_head(model: nn.Module, seed: int) -> None:
    """Non-trivial LayerNorm affines (the fused copy folds alpha into one) and a head that is
    not zero (residual networks start with one), so every part of the UNet shows in the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
        model.head.weight.copy_(0.05 * torch.randn(model.head.weight.shape, generator=gen))
        model.head.bias.fill_(0.3)


SEED_OPTION_SETS = [
    {},  # the G2 formulation
    {'depth_norm': 'log', 'prefill_input': True, 'residual': True, 'pin_points': True,
     'prefill_kind': 'nearest'},
    {'depth_norm': 'median', 'residual': True},
    {'depth_norm': 'log', 'prefill_input': True, 'residual': True, 'residual_shrink': 0.05,
     'pin_points': True, 'prefill_kind': 'scanline'},
    *({'depth_norm': 'log', 'prefill_input': True, 'prefill_kind': kind}
      for kind in PREFILL_KINDS),
]


def _no_onednn_graph() -> str | None:
    # The build must have the fuser and it must fuse on this CPU (probed once, there).
    from test_model_backends import _NO_ONEDNN_GRAPH

    return _NO_ONEDNN_GRAPH


@pytest.mark.parametrize('onednn_graph', [
    False, pytest.param(True, marks=pytest.mark.skipif(_no_onednn_graph() is not None,
                                                       reason=str(_no_onednn_graph())))],
    ids=['fused', 'onednn_graph'])
@pytest.mark.parametrize('options', SEED_OPTION_SETS,
                         ids=lambda o: '-'.join(f'{k}={v}' for k, v in o.items()) or 'plain')
def test_fused_seed_copy_matches_plain_network(options: dict, onednn_graph: bool) -> None:
    """The fused CPU copy of the seed network equals the plain one to float32 rounding, at two
    sizes (the second with a batch of two), with and without the pre-fill/residual/pinning
    options, channels_last or not; also as oneDNN Graph TorchScript graphs, on the calls
    that profile a size and on the compiled ones after them."""
    from g2mono_ros.models.backends import OneDnnGraphModule, onednn_graph_kernels

    torch.manual_seed(4)
    model = create_model('seed_small', **options).eval()
    _set_alphas(model, low=-0.5, high=0.5)
    _randomise_norms_and_head(model, seed=5)
    fused = model.fused_for_cpu_inference(onednn_graph=onednn_graph)
    stage_type = OneDnnGraphModule if onednn_graph else type(fused.decoders[0])
    assert all(isinstance(stage, stage_type) for stage in (*fused.encoders, *fused.decoders))
    if not onednn_graph:
        assert type(fused.decoders[0].blocks[0]).__name__ == 'FusedSeedBottleneck'
    assert type(model.decoders[0].blocks[0]).__name__ == 'SeedBottleneck'  # original untouched
    for seed, (batch, height, width) in enumerate(((1, 64, 64), (2, 128, 192))):
        inputs = _inputs(batch=batch, height=height, width=width, seed=10 + seed)
        channels_last = [t.contiguous(memory_format=torch.channels_last) for t in inputs]
        with torch.inference_mode():
            expected = model(*inputs)
            for _ in range(3 if onednn_graph else 1):  # profiled twice, then compiled
                got = fused(*channels_last)
            got_nchw = fused(*inputs)
        if onednn_graph:
            assert onednn_graph_kernels(fused, *channels_last) > 0
        assert float(expected.std()) > 1e-3  # not a constant that hides differences
        tolerance = 1e-5 * float(expected.abs().max())
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=tolerance)
        torch.testing.assert_close(got_nchw, expected, rtol=1e-5, atol=tolerance)


def test_fused_seed_copy_refuses_what_it_does_not_implement() -> None:
    model = create_model('seed_small').eval()
    model.encoders[1].blocks[0].act2 = nn.GELU(approximate='tanh')
    with pytest.raises(RuntimeError, match='knows exact GELU only'):
        model.fused_for_cpu_inference()


def test_seed_up_stage_equals_upsample_then_conv() -> None:
    """The 'up' stage convolves before upsampling; the specified order gives the same values."""
    from g2mono_ros.models.g2_seed import UNetModule

    torch.manual_seed(2)
    stage = UNetModule(32, 16, mode='up', num_bottle=1).eval()
    x = torch.randn(2, 32, 8, 16)
    with torch.no_grad():
        specified = stage.blocks(stage.conv(F.interpolate(x, scale_factor=2.0, mode='nearest')))
        torch.testing.assert_close(stage(x), specified, rtol=1e-6, atol=1e-6)
    assert stage(x).shape == (2, 16, 16, 32)
