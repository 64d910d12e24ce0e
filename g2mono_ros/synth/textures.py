"""Solid (3D) procedural textures for the synthetic scene: checker, stripes and value noise.

A solid texture is a function of the object-local hit point, so every primitive (plane, box,
cylinder, sphere) is textured without surface parameterisations, and the pattern's scale in the
image shrinks with distance, which is the depth cue the network is meant to learn from.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ['TEXTURE_KINDS', 'TextureKind', 'texture_mix']

TextureKind = Literal['checker', 'stripes', 'noise', 'plain']
TEXTURE_KINDS: tuple[TextureKind, ...] = ('checker', 'stripes', 'noise', 'plain')

# Large odd constants for the lattice hash (any fixed ones work; these decorrelate the axes).
_HASH_PRIMES = np.array([73856093, 19349663, 83492791], dtype=np.int64)


def _lattice_hash(cells: np.ndarray, salt: int) -> np.ndarray:
    """(N, 3) int64 lattice cells -> (N,) float64 in [0, 1), deterministic from ``salt``."""
    h = (cells * _HASH_PRIMES).sum(axis=-1) ^ np.int64(salt * 2654435761 % (2**31))
    h = (h ^ (h >> 13)) * np.int64(1274126177)
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float64) / 65536.0


def _value_noise(points: np.ndarray, salt: int) -> np.ndarray:
    """Trilinear value noise with smoothstep fade; (N, 3) float64 -> (N,) in [0, 1)."""
    base = np.floor(points)
    frac = points - base
    fade = frac * frac * (3.0 - 2.0 * frac)
    cells = base.astype(np.int64)
    out = np.zeros(points.shape[0], dtype=np.float64)
    for corner in range(8):
        offset = np.array([(corner >> 0) & 1, (corner >> 1) & 1, (corner >> 2) & 1])
        weight = np.prod(np.where(offset == 1, fade, 1.0 - fade), axis=-1)
        out += weight * _lattice_hash(cells + offset, salt)
    return out


def texture_mix(kind: TextureKind, local_points: np.ndarray, scale_m: float,
                salt: int) -> np.ndarray:
    """Blend weight between a material's two colours at object-local hit points.

    Args:
        kind: pattern name, one of ``TEXTURE_KINDS``.
        local_points: (N, 3) float64 hit points in the object's frame, metres.
        scale_m: pattern period (checker square / stripe width / noise cell), metres.
        salt: per-object integer so that noise differs between objects.

    Returns:
        (N,) float64 in [0, 1]: 0 = first colour, 1 = second colour.
    """
    p = local_points / scale_m
    if kind == 'checker':
        # The small offset keeps faces that lie exactly on a cell boundary from flickering.
        cells = np.floor(p + 1e-6).astype(np.int64)
        return (cells.sum(axis=-1) & 1).astype(np.float64)
    if kind == 'stripes':
        return (np.floor(p[:, 0] + 0.5 * p[:, 2] + 1e-6).astype(np.int64) & 1).astype(np.float64)
    if kind == 'noise':
        coarse = _value_noise(p, salt)
        fine = _value_noise(p * 4.0 + 17.0, salt + 1)
        return np.clip(0.7 * coarse + 0.3 * fine, 0.0, 1.0)
    return np.zeros(p.shape[0], dtype=np.float64)
