"""Images encoded straight into the message's own buffer: the bytes of the previous encoders
(a temporary array, then a copy into an ``array('B')``), and a buffer the message owns."""

from __future__ import annotations

import array

import numpy as np
import pytest

from g2mono_ros.errors import MessageError, ShapeError
from g2mono_ros.ros.codecs import (DepthImageEncoder, depth_to_image, image_to_numpy,
                                   numpy_to_image)

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


def test_dense_depth_without_a_hole_skips_nothing() -> None:
    """The dense path's shortcut (no hole: no mask pass) writes the same bytes; one hole in
    the last pixel still becomes NaN."""
    depth = np.random.default_rng(8).uniform(0.01, 90.0, (33, 47)).astype(np.float32)
    assert bytes(depth_to_image(depth, None, '32FC1', clean=True).data) == depth.tobytes()
    depth[-1, -1] = 0.0
    assert bytes(depth_to_image(depth, None, '32FC1', clean=True).data) == \
        _previous_clean_encoding(depth, '32FC1')


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


def test_sparse_depth_from_its_pixel_indices_equals_the_full_scan() -> None:
    from g2mono_ros.fusion.camera import CameraModel
    from g2mono_ros.fusion.sparse import SparseProjector

    rng = np.random.default_rng(3)
    z = rng.uniform(0.2, 40.0, 5000)
    points = np.stack([rng.uniform(-0.6, 0.6, 5000) * z, rng.uniform(-0.4, 0.4, 5000) * z, z],
                      axis=1).astype(np.float32)
    camera = CameraModel(width=96, height=54, K=np.array([[80.0, 0, 48], [0, 80.0, 27], [0, 0, 1]]),
                         D=np.zeros(5), distortion_model='plumb_bob')
    maps = SparseProjector().project(points, np.eye(4), camera, (32, 64), min_range=0.5,
                                     max_range=30.0, want_full=True)
    from_pixels = depth_to_image(maps.full, None, '32FC1', clean=True, pixels=maps.full_pixels)
    scanned = depth_to_image(maps.full, None, '32FC1', clean=True)
    assert bytes(from_pixels.data) == bytes(scanned.data)
    assert bytes(from_pixels.data) == _previous_clean_encoding(maps.full, '32FC1')


def test_the_reusing_encoder_writes_the_bytes_of_depth_to_image_frame_after_frame() -> None:
    """Dense and sparse frames in any order, a size change and an empty map: every message
    equals a fresh ``depth_to_image``, though the message object is the same while the size
    stays (its buffer allocated once)."""
    from std_msgs.msg import Header

    from g2mono_ros.fusion.camera import CameraModel
    from g2mono_ros.fusion.sparse import SparseProjector

    rng = np.random.default_rng(11)
    camera = CameraModel(width=96, height=54, K=np.array([[80.0, 0, 48], [0, 80.0, 27],
                                                          [0, 0, 1]]),
                         D=np.zeros(5), distortion_model='plumb_bob')
    projector = SparseProjector()
    encoder = DepthImageEncoder()
    first = None
    for frame, kind in enumerate(['sparse', 'sparse', 'dense', 'dense_hole', 'sparse', 'dense',
                                  'small', 'sparse', 'empty', 'sparse']):
        header = Header(frame_id=f'camera_{frame}')
        header.stamp.sec = frame
        pixels = None
        if kind in ('sparse', 'small'):
            z = rng.uniform(0.2, 40.0, 3000)
            points = np.stack([rng.uniform(-0.6, 0.6, 3000) * z,
                               rng.uniform(-0.4, 0.4, 3000) * z, z], axis=1).astype(np.float32)
            cam = camera if kind == 'sparse' else camera.scaled(48, 27)
            maps = projector.project(points, np.eye(4), cam, (16, 32), min_range=0.5,
                                     max_range=30.0, want_full=True)
            depth, pixels = maps.full, maps.full_pixels
        elif kind == 'empty':
            depth = np.zeros((0, 96), np.float32)
        else:
            depth = rng.uniform(0.01, 90.0, (54, 96)).astype(np.float32)
            if kind == 'dense_hole':
                depth[3, 4] = 0.0
        msg = encoder.encode(depth, header, pixels=pixels)
        expected = depth_to_image(depth, header, '32FC1', clean=True)
        assert bytes(msg.data) == bytes(expected.data), kind
        assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == \
            (expected.height, expected.width, expected.step, '32FC1', expected.is_bigendian)
        assert msg.header.frame_id == f'camera_{frame}' and msg.header.stamp.sec == frame
        if frame == 0:
            first = msg
        elif frame < 6:
            assert msg is first  # refilled, not rebuilt
    # millimetres: encoded afresh every frame (depth_to_image)
    mm = DepthImageEncoder('16UC1').encode(np.full((3, 4), 1.5, np.float32), None)
    assert mm.encoding == '16UC1' and bytes(mm.data) == np.full(12, 1500, np.uint16).tobytes()
    with pytest.raises(MessageError, match='32FC1 or 16UC1'):
        DepthImageEncoder('mono8')
    with pytest.raises(ShapeError, match=r'\(H, W\)'):
        encoder.encode(np.zeros(5, np.float32), None)


def test_encoder_target_is_written_in_place_then_encoded_without_a_copy() -> None:
    """A producer writes the depth into ``target()`` (the next message's pixels); ``encode``
    of that array maps its holes to NaN in place and gives the bytes of ``depth_to_image``;
    a sparse frame after it still resets every pixel."""
    encoder = DepthImageEncoder()
    rng = np.random.default_rng(12)
    depth = rng.uniform(0.01, 90.0, (20, 30)).astype(np.float32)
    depth[2, 3] = 0.0
    target = encoder.target((20, 30))
    target[:] = depth
    msg = encoder.encode(target, None)
    assert bytes(msg.data) == bytes(depth_to_image(depth, None, '32FC1', clean=True).data)
    assert np.isnan(target[2, 3])  # the caller's array is the message: NaN = no depth there
    sparse = np.zeros((20, 30), np.float32)
    sparse[5, 6] = 4.0
    msg = encoder.encode(sparse, None, pixels=np.array([5 * 30 + 6]))
    assert bytes(msg.data) == bytes(depth_to_image(sparse, None, '32FC1', clean=True).data)
    assert DepthImageEncoder('16UC1').target((20, 30)) is None


def test_positive_depth_is_encoded_without_its_zero_search_to_the_same_bytes() -> None:
    """``positive=True`` (the engine knows the depth has no zero) skips only the search for
    zeros: a positive frame gives the bytes of ``depth_to_image``, in place in ``target()``
    and copied in; the flag is the caller's promise, so a zero then stays 0, not NaN."""
    rng = np.random.default_rng(13)
    depth = rng.uniform(1e-6, 90.0, (20, 30)).astype(np.float32)
    expected = bytes(depth_to_image(depth, None, '32FC1', clean=True).data)
    encoder = DepthImageEncoder()
    assert bytes(encoder.encode(depth, None, positive=True).data) == expected
    target = encoder.target((20, 30))
    target[:] = depth
    assert bytes(encoder.encode(target, None, positive=True).data) == expected
    holed = depth.copy()
    holed[4, 5] = 0.0
    kept = image_to_numpy(encoder.encode(holed, None, positive=True))
    assert kept[4, 5] == 0.0
    assert np.isnan(image_to_numpy(encoder.encode(holed, None))[4, 5])
