"""The G2-MonoDepth networks: the specified ``seed`` UNet and the ``official`` release network.

``create_model(variant, **kwargs)`` builds a named variant; kwargs override its config and are
what our checkpoints record so the same network can be rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from torch import Tensor, nn

from g2mono_ros.errors import ConfigError
from g2mono_ros.models.g2_official import (
    OFFICIAL_VARIANTS,
    G2Official,
    official_checkpoint_filter,
    to_release_state_dict,
)
from g2mono_ros.models.g2_seed import SEED_VARIANTS, G2Seed, seed_checkpoint_filter

__all__ = [
    'MODEL_VARIANTS',
    'G2Official',
    'G2Seed',
    'ModelVariant',
    'checkpoint_filter',
    'create_model',
    'default_model_kwargs',
    'to_release_state_dict',
    'variant_family',
]

ModelVariant = Literal['seed', 'seed_small', 'official']

_FAMILY: dict[str, str] = {name: 'seed' for name in SEED_VARIANTS}
_FAMILY.update({name: 'official' for name in OFFICIAL_VARIANTS})
_CLASSES: dict[str, type[nn.Module]] = {'seed': G2Seed, 'official': G2Official}
_FILTERS: dict[str, Callable[[Mapping[str, Tensor], nn.Module], dict[str, Tensor]]] = {
    'seed': seed_checkpoint_filter, 'official': official_checkpoint_filter}

#: every named variant, in the order the CLI lists them.
MODEL_VARIANTS: tuple[str, ...] = tuple(_FAMILY)


def _require_variant(variant: str) -> None:
    if variant not in _FAMILY:
        msg = f'unknown model variant {variant!r}; expected one of {", ".join(MODEL_VARIANTS)}'
        raise ConfigError(msg)


def variant_family(variant: str) -> str:
    """``'seed'`` or ``'official'``: the architecture a named variant belongs to.

    Raises:
        ConfigError: unknown variant name.
    """
    _require_variant(variant)
    return _FAMILY[variant]


def default_model_kwargs(variant: str) -> dict[str, Any]:
    """The constructor kwargs of a named variant (a fresh copy).

    Raises:
        ConfigError: unknown variant name.
    """
    _require_variant(variant)
    table = SEED_VARIANTS if _FAMILY[variant] == 'seed' else OFFICIAL_VARIANTS
    return dict(table[variant])


def create_model(variant: str, **kwargs: Any) -> nn.Module:
    """Build a named variant with random (init-scheme) weights.

    Args:
        variant: ``seed`` | ``seed_small`` | ``official``.
        **kwargs: overrides of the variant's constructor kwargs (``widths``, ``num_bottle``...).

    Raises:
        ConfigError: unknown variant name or constructor keyword.
    """
    config = default_model_kwargs(variant)
    config.update(kwargs)
    cls = _CLASSES[_FAMILY[variant]]
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        msg = f'cannot build model variant {variant!r} with {config}: {exc}'
        raise ConfigError(msg) from exc


def checkpoint_filter(variant: str, state_dict: Mapping[str, Tensor],
                      model: nn.Module) -> dict[str, Tensor]:
    """Map a foreign/old state dict onto ``model`` (of ``variant``); drops nothing.

    Raises:
        ConfigError: unknown variant name.
        CheckpointError: keys that cannot belong to this variant (official release format).
    """
    return _FILTERS[variant_family(variant)](state_dict, model)
