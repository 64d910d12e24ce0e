"""Image resizing shared by the codecs (camera images to the network size) and the engine.

OpenCV on uint8 before anything becomes float; ROS-free and torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from g2mono_ros.errors import ShapeError

__all__ = ['area_resize']


def _cv2() -> Any:
    import cv2

    return cv2


def area_resize(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Shrink (or grow) an image to ``out_hw`` without aliasing, fast at camera sizes.

    OpenCV's ``INTER_AREA`` averages whole source pixels; it is fast for integer factors and
    several times slower otherwise (12 ms vs 0.6 ms for 1920x1080 -> 576x320 on the benchmark
    CPU). So when both factors are at least 2 and divide the size, whole ``kx x ky`` blocks are
    averaged first (the exact area result for that step) and the remaining step, under 2x, is
    bilinear (which does not alias below 2x). Otherwise one ``INTER_AREA`` call.

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
    kx, ky = in_w // width, in_h // height
    if kx >= 2 and ky >= 2 and in_w % kx == 0 and in_h % ky == 0 \
            and (in_w // kx, in_h // ky) != (width, height):
        blocks = cv2.resize(image, (in_w // kx, in_h // ky), interpolation=cv2.INTER_AREA)
        return cv2.resize(blocks, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
