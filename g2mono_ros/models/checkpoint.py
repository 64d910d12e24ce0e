"""Saving and safely loading network weights: our checkpoint format and the official release's.

Every load goes through ``torch.load(weights_only=True)``, so a file whose pickle would run code
is refused before anything in it executes.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from g2mono_ros.errors import CheckpointError, ConfigError
from g2mono_ros.models import (
    MODEL_VARIANTS,
    checkpoint_filter,
    create_model,
    default_model_kwargs,
    variant_family,
)

__all__ = [
    'CHECKPOINT_FORMAT',
    'LoadedModel',
    'load_checkpoint',
    'load_state_dict_strict',
    'resolve_input_size',
    'save_checkpoint',
]

#: marker of our own checkpoint dict; bumped if the layout below changes.
CHECKPOINT_FORMAT = 'g2mono_ros.checkpoint/1'
#: the release's checkpoint has no record of these; the release recommends ~320 px height.
RELEASE_INPUT_HEIGHT = 320
#: network input height when neither the settings nor the weights give one (a bare network).
DEFAULT_INPUT_HEIGHT = 320


@dataclass
class LoadedModel:
    """A network with its weights loaded, and the settings recorded beside them.

    Attributes:
        model: the network, in eval mode, on ``map_location``.
        variant: named variant (``seed``, ``seed_small``, ``official``).
        model_kwargs: constructor kwargs that rebuild ``model``.
        max_depth: metres that map to 1.0; 0.0 when the file does not record it (release format).
        input_height: network input height it was trained/meant for.
        input_width: network input width; 0 keeps the camera's aspect ratio.
        extra: free-form metadata saved with the weights (training step, metrics...).
    """

    model: nn.Module
    variant: str
    model_kwargs: dict[str, Any]
    max_depth: float
    input_height: int
    input_width: int
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_input_size(input_height: int, input_width: int,
                       loaded: LoadedModel | None) -> tuple[int, int]:
    """The network input size to run at: the one rule shared by the node, evaluator and infer.

    An explicit ``input_height`` wins, with ``input_width`` as given (0 = keep the camera's
    aspect). ``input_height`` 0 means "as the checkpoint records": its height, and its width
    unless ``input_width`` is set. Weights that record no height fall back to
    ``DEFAULT_INPUT_HEIGHT`` (320 px, the release's recommendation).

    Args:
        input_height: px, a multiple of 64, or 0 (from the checkpoint).
        input_width: px, a multiple of 64, or 0 (the checkpoint's, else keep aspect).
        loaded: the loaded weights and what they record, or None.

    Returns:
        (height, width) in px; width 0 = keep the camera's aspect ratio.
    """
    if input_height:
        return int(input_height), int(input_width)
    recorded_height = int(loaded.input_height) if loaded is not None else 0
    if not recorded_height:
        return DEFAULT_INPUT_HEIGHT, int(input_width)
    return recorded_height, int(input_width or loaded.input_width)


def _plain(value: Any) -> Any:
    """Tuples -> lists recursively, so kwargs survive a weights-only load and compare equal."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def save_checkpoint(path: str | Path, model: nn.Module, *, variant: str,
                    model_kwargs: Mapping[str, Any], max_depth: float, input_height: int,
                    input_width: int, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with what is needed to rebuild and run it.

    Args:
        path: destination file (parents are created).
        model: the network; its state dict is saved on CPU.
        variant: named variant it was built as.
        model_kwargs: constructor kwargs given to :func:`create_model` (ints, floats, lists).
        max_depth: metres that map to 1.0, > 0.
        input_height: network input height, a multiple of 64.
        input_width: network input width, a multiple of 64, or 0 (keep aspect).
        extra: metadata of plain types (str, numbers, lists, dicts), loadable weights-only.

    Raises:
        ConfigError: unknown variant, or max_depth/input size out of range.
    """
    variant_family(variant)
    if not max_depth > 0:
        msg = f'max_depth must be > 0 metres; got {max_depth!r}'
        raise ConfigError(msg)
    if input_height <= 0 or input_height % 64 or input_width < 0 or input_width % 64:
        msg = f'input size must be multiples of 64 (width 0 = keep aspect); got {input_height}x{input_width}'
        raise ConfigError(msg)
    payload = {
        'format': CHECKPOINT_FORMAT,
        'variant': variant,
        'model_kwargs': _plain(dict(model_kwargs)),
        'max_depth': float(max_depth),
        'input_height': int(input_height),
        'input_width': int(input_width),
        'extra': _plain(dict(extra or {})),
        'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Tensor], *,
                           source: str) -> None:
    """Load every tensor of ``state_dict`` into ``model``; any difference is an error.

    Raises:
        CheckpointError: missing keys, unexpected keys or shape mismatches, each named.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [f'{key}: expected {tuple(expected[key].shape)}, got {tuple(value.shape)}'
                  for key, value in state_dict.items()
                  if key in expected and tuple(value.shape) != tuple(expected[key].shape)]
    if missing or unexpected or mismatched:
        def show(items: list[str]) -> str:
            return ', '.join(items[:6]) + (f' ... ({len(items)} in all)' if len(items) > 6 else '')
        problems = []
        if missing:
            problems.append(f'missing keys: {show(missing)}')
        if unexpected:
            problems.append(f'unexpected keys: {show(unexpected)}')
        if mismatched:
            problems.append(f'shape mismatches: {show(mismatched)}')
        msg = f'{source} does not fit the network: ' + '; '.join(problems)
        raise CheckpointError(msg)
    model.load_state_dict(state_dict, strict=True)


def _read(path: Path, map_location: str | torch.device) -> Any:
    if not path.is_file():
        msg = f'checkpoint file not found: {str(path)!r}'
        raise CheckpointError(msg)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = (f'refused to load {str(path)!r}: it is not a weights-only checkpoint (its pickle '
               f'would build arbitrary objects or run code); nothing in it was executed. {exc}')
        raise CheckpointError(msg) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        msg = f'cannot read checkpoint {str(path)!r}: {exc}'
        raise CheckpointError(msg) from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def load_checkpoint(path: str | Path, *, variant: str = 'auto',
                    map_location: str | torch.device = 'cpu') -> LoadedModel:
    """Load our checkpoint, the release's ``{'network': state_dict}`` file, or a bare state dict.

    Args:
        path: the weights file.
        variant: ``auto`` (from our checkpoint's record, or ``official`` for release-format keys),
            a named variant, or ``seed`` to accept any seed-family checkpoint (``seed_small``).
        map_location: where tensors are loaded.

    Raises:
        CheckpointError: missing or unreadable file, unsafe pickle, wrong variant, or keys/shapes
            that do not fit (missing/unexpected keys named).
        ConfigError: unknown variant name.
    """
    if variant != 'auto':
        variant_family(variant)
    path = Path(path)
    obj = _read(path, map_location)
    source = f'checkpoint {str(path)!r}'

    if isinstance(obj, Mapping) and obj.get('format') == CHECKPOINT_FORMAT:
        recorded = obj.get('variant')
        if recorded not in MODEL_VARIANTS:
            msg = f'{source} records unknown variant {recorded!r}'
            raise CheckpointError(msg)
        if variant != 'auto' and variant_family(variant) != variant_family(recorded):
            msg = f'{source} holds variant {recorded!r}, but variant {variant!r} was asked for'
            raise CheckpointError(msg)
        model_kwargs = dict(obj.get('model_kwargs') or {})
        model = create_model(recorded, **model_kwargs)
        load_state_dict_strict(model, checkpoint_filter(recorded, obj['state_dict'], model),
                               source=source)
        return LoadedModel(model=model.eval(), variant=recorded, model_kwargs=model_kwargs,
                           max_depth=float(obj['max_depth']),
                           input_height=int(obj['input_height']),
                           input_width=int(obj['input_width']), extra=dict(obj.get('extra') or {}))

    # The release's file ({'network': state_dict, ...}) or a bare state dict.
    state_dict = obj.get('network') if isinstance(obj, Mapping) and 'network' in obj else obj
    if not _is_state_dict(state_dict):
        msg = (f'{source} is neither a g2mono_ros checkpoint, a release checkpoint with a '
               f"'network' state dict, nor a bare state dict")
        raise CheckpointError(msg)
    if variant == 'auto':
        if not any(key.startswith(('block.', 'module.block.')) for key in state_dict):
            msg = (f'{source} is a bare state dict without a recorded variant; '
                   f"set variant to 'seed', 'seed_small' or 'official'")
            raise CheckpointError(msg)
        variant = 'official'
    model_kwargs = default_model_kwargs(variant)
    model = create_model(variant)
    load_state_dict_strict(model, checkpoint_filter(variant, state_dict, model), source=source)
    return LoadedModel(model=model.eval(), variant=variant, model_kwargs=_plain(model_kwargs),
                       max_depth=0.0, input_height=RELEASE_INPUT_HEIGHT, input_width=0)
