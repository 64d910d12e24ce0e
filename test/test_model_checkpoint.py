"""Checkpoint tests: our format round trip, the release format, and refusing unsafe pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from g2mono_ros.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from g2mono_ros.errors import CheckpointError, ConfigError
from g2mono_ros.models import create_model, default_model_kwargs, to_release_state_dict

SMALL_OFFICIAL = {'widths': [8, 16, 16, 32, 32, 32, 32], 'num_bottle': 3}


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return model


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_records_everything(tmp_path: Path) -> None:
    kwargs = default_model_kwargs('seed_small')
    model = _randomise(create_model('seed_small', **kwargs))
    path = save_checkpoint(tmp_path / 'sub' / 'w.pt', model, variant='seed_small',
                           model_kwargs=kwargs, max_depth=80.0, input_height=256,
                           input_width=512, extra={'step': 12, 'note': 'test', 'rmse': [1.5]})
    loaded = load_checkpoint(path)
    assert loaded.variant == 'seed_small'
    assert loaded.model_kwargs['widths'] == list(kwargs['widths'])
    assert (loaded.max_depth, loaded.input_height, loaded.input_width) == (80.0, 256, 512)
    assert loaded.extra == {'step': 12, 'note': 'test', 'rmse': [1.5]}
    assert not loaded.model.training
    assert _same_weights(loaded.model, model)


def test_seed_family_accepts_seed_small_and_custom_widths(tmp_path: Path) -> None:
    model = _randomise(create_model('seed', widths=(8, 8, 16, 16, 16, 16, 16), num_bottle=1))
    path = save_checkpoint(tmp_path / 'w.pt', model, variant='seed',
                           model_kwargs={'widths': (8, 8, 16, 16, 16, 16, 16), 'num_bottle': 1},
                           max_depth=10.0, input_height=320, input_width=0)
    loaded = load_checkpoint(path, variant='seed')
    assert loaded.model.widths == (8, 8, 16, 16, 16, 16, 16)
    assert _same_weights(loaded.model, model)


def test_wrong_variant_is_refused(tmp_path: Path) -> None:
    model = create_model('seed_small')
    path = save_checkpoint(tmp_path / 'w.pt', model, variant='seed_small', model_kwargs={},
                           max_depth=10.0, input_height=320, input_width=0)
    with pytest.raises(CheckpointError, match="holds variant 'seed_small', but variant 'official'"):
        load_checkpoint(path, variant='official')


def test_bare_seed_state_dict_as_official_names_missing_and_unexpected(tmp_path: Path) -> None:
    path = tmp_path / 'bare.pt'
    torch.save(create_model('seed_small').state_dict(), path)
    with pytest.raises(CheckpointError, match=r'missing keys: stem\.weight.*unexpected keys: first'):
        load_checkpoint(path, variant='official')
    with pytest.raises(CheckpointError, match='without a recorded variant'):
        load_checkpoint(path)
    loaded = load_checkpoint(path, variant='seed_small')
    assert loaded.max_depth == 0.0  # a bare dict records no max depth


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    model = create_model('seed_small')
    state = model.state_dict()
    state['head.weight'] = torch.zeros(1, 17, 3, 3)
    torch.save({'format': CHECKPOINT_FORMAT, 'variant': 'seed_small', 'model_kwargs': {},
                'max_depth': 10.0, 'input_height': 320, 'input_width': 0, 'extra': {},
                'state_dict': state}, tmp_path / 'w.pt')
    with pytest.raises(CheckpointError, match=r'shape mismatches: head\.weight: expected '
                                              r'\(1, 16, 3, 3\), got \(1, 17, 3, 3\)'):
        load_checkpoint(tmp_path / 'w.pt')


def test_release_format_and_bare_release_dict_load(tmp_path: Path) -> None:
    # The release file holds the full-size network; build it once and save both layouts.
    source = _randomise(create_model('official'))
    release = to_release_state_dict(source)
    torch.save({'network': release, 'epoch': 100}, tmp_path / 'epoch_100.pth')
    torch.save(release, tmp_path / 'bare.pth')
    torch.save({'network': {f'module.{k}': v for k, v in release.items()}}, tmp_path / 'ddp.pth')
    for name in ('epoch_100.pth', 'bare.pth', 'ddp.pth'):
        loaded = load_checkpoint(tmp_path / name)  # auto: release keys mean official
        assert loaded.variant == 'official'
        assert loaded.max_depth == 0.0 and loaded.input_height == 320
        assert _same_weights(loaded.model, source)


def test_release_dict_with_missing_key_is_named(tmp_path: Path) -> None:
    release = to_release_state_dict(create_model('official'))
    del release['block.4.bias']
    torch.save({'network': release}, tmp_path / 'cut.pth')
    with pytest.raises(CheckpointError, match=r'missing keys: head\.bias'):
        load_checkpoint(tmp_path / 'cut.pth', variant='official')


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / 'nope.pt'
    with pytest.raises(CheckpointError, match='checkpoint file not found: .*nope.pt'):
        load_checkpoint(path)


def test_garbage_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / 'junk.pt'
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='junk.pt'):
        load_checkpoint(path)


def test_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    torch.save({'weights': [1, 2, 3]}, tmp_path / 'odd.pt')
    with pytest.raises(CheckpointError, match='neither a g2mono_ros checkpoint'):
        load_checkpoint(tmp_path / 'odd.pt')


class _Payload:
    """Pickles to a call of os.system that would create a marker file if ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_torch_checkpoint_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pt'
    torch.save({'network': _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match='refused to load .*nothing in it was executed'):
        load_checkpoint(path)
    assert not marker.exists()


def test_malicious_plain_pickle_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned2'
    path = tmp_path / 'evil.pkl'
    with path.open('wb') as handle:
        pickle.dump(_Payload(marker), handle, protocol=2)
    with pytest.raises(CheckpointError, match='refused to load'):
        load_checkpoint(path)
    assert not marker.exists()


def test_payload_really_has_a_side_effect(tmp_path: Path) -> None:
    """Guards the two tests above: unpickled unsafely, the payload does create the file."""
    marker = tmp_path / 'control'
    pickle.loads(pickle.dumps(_Payload(marker)))  # noqa: S301 - the point of the test
    assert marker.exists()


def test_save_validates_settings(tmp_path: Path) -> None:
    model = create_model('seed_small')
    with pytest.raises(ConfigError, match='max_depth must be > 0'):
        save_checkpoint(tmp_path / 'w.pt', model, variant='seed_small', model_kwargs={},
                        max_depth=0.0, input_height=320, input_width=0)
    with pytest.raises(ConfigError, match='multiples of 64'):
        save_checkpoint(tmp_path / 'w.pt', model, variant='seed_small', model_kwargs={},
                        max_depth=10.0, input_height=300, input_width=0)
    with pytest.raises(ConfigError, match="unknown model variant 'tiny'"):
        save_checkpoint(tmp_path / 'w.pt', model, variant='tiny', model_kwargs={},
                        max_depth=10.0, input_height=320, input_width=0)


def test_official_small_round_trip(tmp_path: Path) -> None:
    model = _randomise(create_model('official', **SMALL_OFFICIAL))
    path = save_checkpoint(tmp_path / 'o.pt', model, variant='official',
                           model_kwargs=SMALL_OFFICIAL, max_depth=20.0, input_height=64,
                           input_width=128)
    loaded = load_checkpoint(path, variant='official')
    assert _same_weights(loaded.model, model)
