"""The OpenCV decoding path against the numpy reference it replaced, area resizing on uint8,
the O(1) message checks the callbacks run, and the clean depth encoder."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from g2mono_ros.errors import MessageError, ShapeError
from g2mono_ros.imaging import area_resize
from g2mono_ros.ros.codecs import (
    IMAGE_ENCODINGS,
    RGB_ENCODINGS,
    check_image,
    check_pointcloud2,
    depth_to_image,
    image_to_numpy,
    pointcloud2_to_xyz,
    rgb_from_image,
    rgb_from_image_reference,
    rgb_view_of_image,
)

from test_core_codecs import _image_msg, _random_pixels  # noqa: E402 - the same hand-made messages


def _layout(encoding: str) -> str:
    return IMAGE_ENCODINGS[encoding].layout


@pytest.mark.parametrize('encoding', sorted(RGB_ENCODINGS))
@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('pad', [0, 6])
def test_opencv_decoding_matches_the_numpy_reference(encoding: str, big: bool, pad: int) -> None:
    pixels = _random_pixels(encoding, 6, 10, seed=len(encoding) + pad)
    msg = _image_msg(pixels, encoding, big=big, pad=pad)
    got = rgb_from_image(msg)
    expected = rgb_from_image_reference(msg)
    assert got.shape == expected.shape == (6, 10, 3) and got.dtype == np.uint8
    if _layout(encoding) in ('uyvy', 'yuyv'):
        # OpenCV's fixed-point BT.601 against the float coefficients: rounding only.
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, encoding
    else:
        np.testing.assert_array_equal(got, expected, err_msg=encoding)


@pytest.mark.parametrize('encoding', sorted(RGB_ENCODINGS))
@pytest.mark.parametrize('out_hw', [(3, 5), (4, 6), (12, 20)])
def test_resized_decoding_is_the_area_resize_of_the_full_image(encoding: str,
                                                               out_hw: tuple[int, int]) -> None:
    """Resizing before the channel reorder (8-bit layouts) gives exactly the same pixels."""
    pixels = _random_pixels(encoding, 12, 20, seed=5)
    msg = _image_msg(pixels, encoding, big=False, pad=4)
    full = rgb_from_image(msg)
    expected = area_resize(full, out_hw)
    got = rgb_from_image(msg, out_hw=out_hw)
    assert got.shape == (*out_hw, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected, err_msg=encoding)


def test_area_resize_averages_whole_pixels() -> None:
    """Hand value: a 2x2 block of 0, 100, 200, 100 becomes their mean, 100."""
    mono = np.array([[0, 100], [200, 100]], np.uint8)
    got = rgb_from_image(_image_msg(mono, 'mono8', big=False, pad=0), out_hw=(1, 1))
    np.testing.assert_array_equal(got, [[[100, 100, 100]]])


def test_area_resize_steps() -> None:
    """Integer factors: one INTER_AREA; other shrinking factors: 2x INTER_AREA steps while 2x
    or more remains on both axes (even sizes), then bilinear; an odd size that stops the
    halving early, or growing: INTER_AREA (references from OpenCV, calls noted)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (36, 60, 3), dtype=np.uint8)
    np.testing.assert_array_equal(area_resize(image, (12, 20)),
                                  cv2.resize(image, (20, 12), interpolation=cv2.INTER_AREA))
    halves = cv2.resize(image, (30, 18), interpolation=cv2.INTER_AREA)  # 2x2 means
    np.testing.assert_array_equal(area_resize(image, (10, 18)),
                                  cv2.resize(halves, (18, 10), interpolation=cv2.INTER_LINEAR))
    quarters = cv2.resize(halves, (15, 9), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(area_resize(image, (5, 7)),
                                  cv2.resize(quarters, (7, 5), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(area_resize(image, (25, 41)),
                                  cv2.resize(image, (41, 25), interpolation=cv2.INTER_LINEAR))
    odd = image[:35]  # 35 rows: no 2x step, 3.5x to go on that axis
    np.testing.assert_array_equal(area_resize(odd, (10, 18)),
                                  cv2.resize(odd, (18, 10), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(area_resize(image, (40, 50)),
                                  cv2.resize(image, (50, 40), interpolation=cv2.INTER_AREA))
    assert area_resize(image, (36, 60)) is image
    # Close to one exact area resize: the stepped result is a resampling, not a new image.
    exact = cv2.resize(image, (18, 10), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(area_resize(image, (10, 18)).astype(int) - exact).mean() < 12


def _photo_mosaic(height: int, width: int) -> np.ndarray:
    """Camera-size photograph content at native resolution: 128 px crops of skimage's
    images in turn (no upscaling, which would smooth away what resizing has to handle)."""
    data = pytest.importorskip('skimage.data')
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(6)
    mosaic = np.zeros((height, width, 3), np.uint8)
    for y in range(0, height, 128):
        for x in range(0, width, 128):
            photo = photos[(y // 128 + x // 128) % len(photos)]
            top = int(rng.integers(0, photo.shape[0] - 128))
            left = int(rng.integers(0, photo.shape[1] - 128))
            tile = mosaic[y:y + 128, x:x + 128]
            tile[...] = photo[top:top + tile.shape[0], left:left + tile.shape[1]]
    return mosaic


@pytest.mark.parametrize(('in_hw', 'out_hw'), [((1080, 1920), (320, 576)),
                                               ((720, 1280), (320, 576)),
                                               ((480, 640), (320, 448))])
def test_area_resize_is_close_to_one_exact_area_resize(in_hw: tuple[int, int],
                                                       out_hw: tuple[int, int]) -> None:
    """Photographs shrunk as the node shrinks camera frames for a 320-row network: within
    2.5 grey levels of one INTER_AREA on average (measured 1.5, 1.5 and 0.8), under 2 % of
    the pixels off by more than 16 (measured 1.1 %, 0.6 %, 0.1 %)."""
    image = _photo_mosaic(*in_hw)
    exact = cv2.resize(image, out_hw[::-1], interpolation=cv2.INTER_AREA).astype(int)
    got = area_resize(image, out_hw)
    assert got.shape == (*out_hw, 3) and got.dtype == np.uint8
    error = np.abs(got.astype(int) - exact)
    assert error.mean() < 2.5
    assert np.mean(error > 16) < 0.02


@pytest.mark.parametrize('encoding', sorted(RGB_ENCODINGS))
@pytest.mark.parametrize('pad', [0, 6])
def test_rgb_view_is_the_decoded_image_without_a_copy(encoding: str, pad: int) -> None:
    """8-bit RGB/BGR(A)/mono: a view of the message buffer with the decoder's values;
    encodings that need converting: None."""
    pixels = _random_pixels(encoding, 6, 10, seed=len(encoding) + pad)
    msg = _image_msg(pixels, encoding, big=False, pad=pad, kind='array')
    view = rgb_view_of_image(msg)
    if IMAGE_ENCODINGS[encoding].dtype != 'u1' or _layout(encoding) in (
            'uyvy', 'yuyv') or _layout(encoding).startswith('bayer_'):
        assert view is None
        return
    assert view.shape == (6, 10, 3) and view.dtype == np.uint8
    np.testing.assert_array_equal(view, rgb_from_image(msg))
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_resize_target_must_be_positive() -> None:
    msg = _image_msg(np.zeros((4, 4, 3), np.uint8), 'rgb8', big=False, pad=0)
    with pytest.raises(ShapeError, match=r'out_hw must be two positive sizes .*got \(0, 4\)'):
        rgb_from_image(msg, out_hw=(0, 4))


def test_yuv_odd_width_still_raises() -> None:
    msg = _image_msg(np.zeros((2, 3, 2), np.uint8), 'yuyv', big=False, pad=0)
    with pytest.raises(MessageError, match="'yuyv' needs an even width; got 3"):
        rgb_from_image(msg)


def test_check_image_reads_no_pixel_and_raises_like_the_decoder() -> None:
    pixels = _random_pixels('bgr8', 3, 4)
    assert check_image(_image_msg(pixels, 'bgr8', big=False, pad=2)) == (3, 4)
    short = _image_msg(pixels, 'bgr8', big=False, pad=0)
    short.data = short.data[:-1]
    for call in (check_image, image_to_numpy):
        with pytest.raises(MessageError, match='data has 35 bytes, expected step x height'):
            call(short)
    unknown = SimpleNamespace(height=1, width=1, encoding='nv12', is_bigendian=0, step=1,
                              data=b'\0')
    with pytest.raises(MessageError, match="unsupported image encoding 'nv12'"):
        check_image(unknown)


def _cloud(n: int, *, point_step: int = 16, data_len: int | None = None) -> SimpleNamespace:
    fields = [SimpleNamespace(name=name, offset=4 * i, datatype=7, count=1)
              for i, name in enumerate('xyz')]
    data = np.arange(n * point_step, dtype=np.uint8).tobytes()
    if data_len is not None:
        data = data[:data_len]
    return SimpleNamespace(height=1, width=n, fields=fields, is_bigendian=False,
                           point_step=point_step, row_step=n * point_step, data=data)


def test_check_pointcloud2_counts_points_and_raises_like_the_decoder() -> None:
    assert check_pointcloud2(_cloud(5)) == 5
    assert check_pointcloud2(_cloud(0)) == 0
    bad = _cloud(5, data_len=79)
    for call in (check_pointcloud2, pointcloud2_to_xyz):
        with pytest.raises(MessageError, match='data has 79 bytes, expected row_step x height'):
            call(bad)
    with pytest.raises(MessageError, match='lacks field'):
        check_pointcloud2(_cloud(2), extra_fields=('intensity',))


@pytest.mark.parametrize('encoding', ['32FC1', '16UC1'])
def test_clean_depth_encoding_equals_the_checked_one(encoding: str) -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.0, 90.0, (6, 7)).astype(np.float32)
    depth[::2, ::3] = 0.0
    depth[0, 0] = 70.0  # 70000 mm: does not fit in 16UC1, so 0 (REP 118), not clipped
    fast = depth_to_image(depth, None, encoding, clean=True)
    checked = depth_to_image(depth, None, encoding)
    assert fast.encoding == checked.encoding == encoding
    assert bytes(fast.data) == bytes(checked.data)
