"""Solid (3D) procedural textures for the synthetic scene: checker, stripes and value noise;
and real photographs mapped onto surfaces (``photo``), for real-image texture statistics.

A solid texture is a function of the object-local hit point, so every primitive (plane, box,
cylinder, sphere) is textured without surface parameterisations, and the pattern's scale in the
image shrinks with distance, which is the depth cue the network is meant to learn from.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ['PHOTO_NAMES', 'TEXTURE_KINDS', 'TextureKind', 'photo_albedo', 'texture_mix']

TextureKind = Literal['checker', 'stripes', 'noise', 'plain', 'photo']
#: The procedural kinds (``photo`` is chosen separately: ``SyntheticSequence(photo_textures=)``).
TEXTURE_KINDS: tuple[TextureKind, ...] = ('checker', 'stripes', 'noise', 'plain')
#: Real photographs shipped inside scikit-image (no download), used as surface textures. The
#: Middlebury stereo pair (``stereo_motorcycle``) is left out: bench_quality scores on it.
PHOTO_NAMES: tuple[str, ...] = ('astronaut', 'coffee', 'chelsea', 'rocket', 'brick', 'grass',
                                'gravel', 'camera', 'moon', 'page', 'text', 'coins',
                                'hubble_deep_field', 'immunohistochemistry', 'cell', 'clock')
_PHOTO_SIDE = 256  # photos are kept at most this many pixels on a side
_photos: list[np.ndarray] | None = None

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


def _photo_library() -> list[np.ndarray]:
    """The photographs as (h, w, 3) float32 RGB in [0, 1], loaded once.

    Raises:
        ConfigError: scikit-image is not installed.
    """
    global _photos
    if _photos is None:
        try:
            import skimage.data
        except ImportError:
            from g2mono_ros.errors import ConfigError

            msg = 'photo textures need scikit-image (pip install scikit-image)'
            raise ConfigError(msg) from None
        import cv2

        photos = []
        for name in PHOTO_NAMES:
            image = np.asarray(getattr(skimage.data, name)())
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            image = image[..., :3].astype(np.float32) / 255.0
            step = max(image.shape[:2]) / _PHOTO_SIDE
            if step > 1:
                size = (round(image.shape[1] / step), round(image.shape[0] / step))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            photos.append(np.ascontiguousarray(image))
        _photos = photos
    return _photos


def photo_albedo(local_points: np.ndarray, normals: np.ndarray, scale_m: float,
                 salt: int) -> np.ndarray:
    """Colour of a photograph projected onto the surface, tiled with period ``scale_m``.

    The photo is projected along the normal's dominant axis (planar mapping per face, as a
    triplanar texture without blending), so walls, floors and box faces each show an
    undistorted tile whose size in the image shrinks with distance.

    Args:
        local_points: (N, 3) float64 hit points in the object's frame, metres.
        normals: (N, 3) unit normals (world frame; objects are only yawed, so the vertical
            axis is shared and the others are close enough for a texture).
        scale_m: width of one tile of the photo, metres.
        salt: picks the photo (per object).

    Returns:
        (N, 3) float64 RGB in [0, 1].
    """
    photos = _photo_library()
    photo = photos[int(salt) % len(photos)]
    height, width = photo.shape[:2]
    axis = np.abs(normals).argmax(axis=1)
    u_axis = np.where(axis == 0, 1, 0)
    v_axis = np.where(axis == 2, 1, 2)
    rows = np.arange(len(local_points))
    u = local_points[rows, u_axis] / scale_m
    v = -local_points[rows, v_axis] / scale_m * (width / height)
    cols = np.floor((u - np.floor(u)) * width).astype(np.int64) % width
    lines = np.floor((v - np.floor(v)) * height).astype(np.int64) % height
    return photo[lines, cols].astype(np.float64)
