"""Image-grid helpers shared by the codecs, fusion and the engine: resizing camera images,
and putting sparse depth on a coarser grid (nearest point per pixel).

OpenCV on uint8 before anything becomes float; ROS-free and torch-free.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from g2mono_ros.errors import ShapeError

__all__ = ['area_resize', 'network_pixel_index', 'network_pixel_table', 'zbuffer_nearest']


def _cv2() -> Any:
    import cv2

    return cv2


def area_resize(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Shrink (or grow) an image to ``out_hw`` without aliasing, fast at camera sizes.

    OpenCV's ``INTER_AREA`` averages whole source pixels: exact, but only its 2x path is fast
    (SIMD); any other factor takes its generic path (1920x1080 -> 576x320: 12 ms, and 6 ms
    even for the integer factor 3, on the benchmark CPU). So:

    - integer factors on both axes: one ``INTER_AREA`` (the exact result);
    - shrinking by other factors: halved with ``INTER_AREA`` (exact 2x2 means) while both
      axes still shrink by 2 or more and both sizes are even, then the remaining step, under
      2x, is bilinear (which does not alias below 2x; an odd size that blocks the halving
      leaves ``INTER_AREA`` for the rest);
    - growing on an axis: one ``INTER_AREA``.

    Against one exact ``INTER_AREA`` on a mosaic of photographs (skimage.data, at native
    resolution): 1920x1080 -> 576x320 differs by 1.6 grey levels on average (1.6 ms instead of
    12), 640x480 -> 448x320 by 0.8 (0.3 ms instead of 1.7); ``benchmarks/bench_node.py
    --frame-path --breakdown`` prints the stages.

    Args:
        image: (H, W) or (H, W, C) uint8 (any dtype OpenCV resizes).
        out_hw: (h, w) target size, positive.

    Returns:
        (h, w[, C]) in the input dtype; the input itself when the size already matches.

    Raises:
        ShapeError: ``out_hw`` not two positive sizes.
    """
    try:
        height, width = (int(v) for v in out_hw)
    except (TypeError, ValueError):
        height = width = 0
    if height <= 0 or width <= 0:
        msg = f'out_hw must be two positive sizes (height, width); got {out_hw!r}'
        raise ShapeError(msg)
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width) or in_h == 0 or in_w == 0:
        return image
    cv2 = _cv2()
    area = cv2.INTER_AREA
    if in_w % width == 0 and in_h % height == 0 or width > in_w or height > in_h:
        return cv2.resize(image, (width, height), interpolation=area)
    while (in_w >= 2 * width and in_h >= 2 * height and in_w % 2 == 0 and in_h % 2 == 0):
        in_w, in_h = in_w // 2, in_h // 2
        image = cv2.resize(image, (in_w, in_h), interpolation=area)
    small_step = in_w < 2 * width and in_h < 2 * height
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_LINEAR if small_step else area)


def network_pixel_index(index: Any, in_size: int, out_size: int) -> Any:
    """The output pixel that contains the centre of input pixel ``index`` (one axis).

    ``floor((index + 0.5) * out_size / in_size)`` in integers, as ``models.engine.resize_sparse_depth`` and ``fusion.sparse``.

    Args:
        index: integer numpy array or torch tensor of pixel indices in ``[0, in_size)``.
    """
    target = ((2 * index + 1) * out_size) // (2 * in_size)
    return target.clip(max=out_size - 1)  # numpy and torch both spell it so


@functools.lru_cache(maxsize=8)
def network_pixel_table(in_size: int, out_size: int) -> np.ndarray:
    """``network_pixel_index`` of every input index ``0 .. in_size - 1``: (in_size,) int64,
    read-only (cached per size pair), so that the points' indices are one ``take`` away
    (the integer division per point costs ~3x more)."""
    table = network_pixel_index(np.arange(in_size, dtype=np.int64), in_size, out_size)
    table.flags.writeable = False
    return table


def zbuffer_nearest(flat: np.ndarray, lin: np.ndarray, depths: np.ndarray) -> None:
    """Write ``depths`` at ``flat[lin]`` keeping the smallest where indices repeat.

    ``flat`` must be 0 at every index of ``lin``. Without sorting: write all, then rewrite
    only the points nearer than what landed on their pixel; the candidates shrink every round
    (usually 2-3), and the result does not depend on numpy's write order for repeats.

    Args:
        flat: (P,) float32, modified in place.
        lin: (M,) int64 flat pixel indices.
        depths: (M,) float32 metres, > 0.
    """
    flat[lin] = depths
    while lin.size:
        nearer = depths < flat[lin]
        if not nearer.any():
            break
        lin = lin[nearer]
        depths = depths[nearer]
        flat[lin] = depths
