"""Images encoded straight into the message's own buffer: the bytes of the previous encoders
(a temporary array, then a copy into an ``array('B')``), and a buffer the message owns."""

from __future__ import annotations

import array

import numpy as np
import pytest

from g2mono_ros.ros.codecs import depth_to_image, image_to_numpy, numpy_to_image

_UINT16_MAX = 65535


def _previous_clean_encoding(depth: np.ndarray, encoding: str) -> bytes:
    """What ``depth_to_image(..., clean=True)`` produced before it wrote into the message."""
    if encoding == '32FC1':
        return np.where(depth > 0, depth, np.float32(np.nan)).tobytes()
    millimetres = np.rint(depth * np.float32(1000.0))
    millimetres[millimetres > _UINT16_MAX] = 0.0
    return millimetres.astype(np.uint16).tobytes()


@pytest.mark.parametrize('encoding', ['32FC1', '16UC1'])
@pytest.mark.parametrize('density', [1.0, 0.02])
def test_clean_depth_bytes_equal_the_previous_encoder(encoding: str, density: float) -> None:
    rng = np.random.default_rng(7)
    depth = rng.uniform(0.01, 90.0, (37, 53)).astype(np.float32)
    depth[rng.random(depth.shape) >= density] = 0.0  # dense engine output / sparse projection
    depth[0, :3] = (0.0, 70.0, 65.535)  # no data, too far for 16 bits, the last that fits
    msg = depth_to_image(depth, None, encoding, clean=True)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    assert len(msg.data) == msg.step * msg.height
    assert bytes(msg.data) == _previous_clean_encoding(depth, encoding)  # NaN bits included


def test_the_message_owns_its_buffer_and_nothing_holds_it() -> None:
    depth = np.full((4, 5), 3.0, np.float32)
    msg = depth_to_image(depth, None, '32FC1', clean=True)
    depth[:] = 9.0  # the message is not a view of the input
    assert (image_to_numpy(msg) == 3.0).all()
    msg.data.append(0)  # resizable: no numpy view still exports the buffer
    msg.data.pop()
    assert len(msg.data) == 4 * 5 * 4


def test_numpy_to_image_writes_native_order_once() -> None:
    big = np.arange(12, dtype='>u2').reshape(3, 4)
    msg = numpy_to_image(big, '16UC1')
    assert msg.is_bigendian == (0 if np.little_endian else 1)
    np.testing.assert_array_equal(image_to_numpy(msg), big)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)[:, ::-1]  # not contiguous
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(rgb, 'rgb8')), rgb)
    empty = numpy_to_image(np.zeros((0, 4, 3), np.uint8), 'rgb8')
    assert len(empty.data) == 0 and empty.step == 12
