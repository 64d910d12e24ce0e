"""Message codecs: sensor_msgs Image / PointCloud2 / CameraInfo <-> numpy arrays.

The only core module that touches message types. Decoding is duck-typed (rclpy messages and
``rosbags`` deserialised messages share field names), table-driven and zero-copy where the
layout allows; message classes are imported lazily, inside the encode functions only.
"""

from __future__ import annotations

import array as pyarray
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.fusion.camera import CameraModel, camera_model_from_calibration
from g2mono_ros.errors import MessageError, ShapeError
from g2mono_ros.imaging import area_resize

__all__ = [
    'IMAGE_ENCODINGS',
    'POINTFIELD_DTYPES',
    'RGB_ENCODINGS',
    'DepthImageEncoder',
    'ImageEncoding',
    'camera_info_to_model',
    'check_image',
    'check_pointcloud2',
    'depth_from_image',
    'depth_to_image',
    'image_to_numpy',
    'numpy_to_image',
    'pointcloud2_fields',
    'pointcloud2_to_xyz',
    'rgb_for_network',
    'rgb_from_image',
    'rgb_view_of_image',
    'rgb_from_image_reference',
    'xyz_to_pointcloud2',
]

_NATIVE_BIG = sys.byteorder == 'big'


class ImageEncoding(NamedTuple):
    """One row of the encoding table.

    Attributes:
        dtype: numpy base type code, byte order free (``'u1'``, ``'u2'``, ``'f4'``, ...).
        channels: samples per pixel.
        layout: channel order for colour encodings (``'rgb'``, ``'bgr'``, ``'rgba'``,
            ``'bgra'``, ``'mono'``), or ``''`` for generic/depth encodings.
    """

    dtype: str
    channels: int
    layout: str


#: The one encoding table (names as in sensor_msgs/image_encodings.hpp).
IMAGE_ENCODINGS: dict[str, ImageEncoding] = {
    'rgb8': ImageEncoding('u1', 3, 'rgb'),
    'bgr8': ImageEncoding('u1', 3, 'bgr'),
    'rgba8': ImageEncoding('u1', 4, 'rgba'),
    'bgra8': ImageEncoding('u1', 4, 'bgra'),
    'rgb16': ImageEncoding('u2', 3, 'rgb'),
    'bgr16': ImageEncoding('u2', 3, 'bgr'),
    'rgba16': ImageEncoding('u2', 4, 'rgba'),
    'bgra16': ImageEncoding('u2', 4, 'bgra'),
    'mono8': ImageEncoding('u1', 1, 'mono'),
    'mono16': ImageEncoding('u2', 1, 'mono'),
    'yuv422': ImageEncoding('u1', 2, 'uyvy'),  # U Y0 V Y1 per pixel pair
    'uyvy': ImageEncoding('u1', 2, 'uyvy'),
    'yuv422_yuy2': ImageEncoding('u1', 2, 'yuyv'),  # Y0 U Y1 V per pixel pair
    'yuyv': ImageEncoding('u1', 2, 'yuyv'),
    'bayer_rggb8': ImageEncoding('u1', 1, 'bayer_rggb'),
    'bayer_bggr8': ImageEncoding('u1', 1, 'bayer_bggr'),
    'bayer_gbrg8': ImageEncoding('u1', 1, 'bayer_gbrg'),
    'bayer_grbg8': ImageEncoding('u1', 1, 'bayer_grbg'),
    'bayer_rggb16': ImageEncoding('u2', 1, 'bayer_rggb'),
    'bayer_bggr16': ImageEncoding('u2', 1, 'bayer_bggr'),
    'bayer_gbrg16': ImageEncoding('u2', 1, 'bayer_gbrg'),
    'bayer_grbg16': ImageEncoding('u2', 1, 'bayer_grbg'),
    '8UC1': ImageEncoding('u1', 1, ''),
    '8UC3': ImageEncoding('u1', 3, ''),
    '8UC4': ImageEncoding('u1', 4, ''),
    '8SC1': ImageEncoding('i1', 1, ''),
    '16UC1': ImageEncoding('u2', 1, ''),
    '16UC3': ImageEncoding('u2', 3, ''),
    '16SC1': ImageEncoding('i2', 1, ''),
    '32SC1': ImageEncoding('i4', 1, ''),
    '32FC1': ImageEncoding('f4', 1, ''),
    '32FC3': ImageEncoding('f4', 3, ''),
    '64FC1': ImageEncoding('f8', 1, ''),
}

_GENERIC_LAYOUT = {'8UC1': 'mono', '8UC3': 'rgb', '8UC4': 'rgba'}

#: Encodings ``rgb_from_image`` accepts: 8/16-bit colour or mono, YUV 4:2:2, 8UC1/3/4.
RGB_ENCODINGS = frozenset(name for name, spec in IMAGE_ENCODINGS.items()
                          if (spec.layout or name in _GENERIC_LAYOUT)
                          and spec.dtype in ('u1', 'u2'))

#: sensor_msgs/PointField datatype constants -> numpy base type code.
POINTFIELD_DTYPES: dict[int, str] = {
    1: 'i1',  # INT8
    2: 'u1',  # UINT8
    3: 'i2',  # INT16
    4: 'u2',  # UINT16
    5: 'i4',  # INT32
    6: 'u4',  # UINT32
    7: 'f4',  # FLOAT32
    8: 'f8',  # FLOAT64
}
_DTYPE_TO_POINTFIELD = {np.dtype(code).str[1:]: num for num, code in POINTFIELD_DTYPES.items()}


def _byte_buffer(data: Any, what: str) -> np.ndarray:
    """View a message's ``data`` as a flat uint8 array without copying where possible."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            data = np.ascontiguousarray(data).view(np.uint8)  # its bytes, not its values
        return data.reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview, pyarray.array)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, Sequence):
        try:
            return np.asarray(data, dtype=np.uint8)
        except (TypeError, ValueError, OverflowError) as exc:
            msg = f'{what}.data is not a byte sequence: {exc}'
            raise MessageError(msg) from exc
    msg = (f'{what}.data must be bytes, bytearray, array.array or a uint8 array; '
           f'got {type(data).__name__}')
    raise MessageError(msg)


def _field(msg: Any, name: str, what: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        err = f'{what} message has no field {name!r} (got {type(msg).__name__})'
        raise MessageError(err) from None


def _int_field(msg: Any, name: str, what: str) -> int:
    value = _field(msg, name, what)
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        err = f'{what}.{name} must be an integer; got {value!r}'
        raise MessageError(err) from None


def _encoding(name: str) -> ImageEncoding:
    try:
        return IMAGE_ENCODINGS[name]
    except KeyError:
        msg = (f'unsupported image encoding {name!r}; supported: '
               f'{", ".join(sorted(IMAGE_ENCODINGS))}')
        raise MessageError(msg) from None


class _ImageLayout(NamedTuple):
    spec: ImageEncoding
    height: int
    width: int
    step: int
    big: bool
    buf: np.ndarray
    dtype: np.dtype


def _image_layout(msg: Any) -> _ImageLayout:
    """Every check of ``image_to_numpy``, O(1): no pixel is read."""
    encoding = str(_field(msg, 'encoding', 'Image'))
    spec = _encoding(encoding)
    height = _int_field(msg, 'height', 'Image')
    width = _int_field(msg, 'width', 'Image')
    step = _int_field(msg, 'step', 'Image')
    big = bool(_field(msg, 'is_bigendian', 'Image'))
    buf = _byte_buffer(_field(msg, 'data', 'Image'), 'Image')
    dtype = np.dtype(spec.dtype).newbyteorder('>' if big else '<')
    pixel_bytes = dtype.itemsize * spec.channels
    if height < 0 or width < 0 or step < width * pixel_bytes:
        msg_ = (f'Image {encoding} {width}x{height}: step {step} is smaller than a row '
                f'({width} px x {pixel_bytes} B = {width * pixel_bytes} B)')
        raise MessageError(msg_)
    if buf.size != step * height:
        msg_ = (f'Image {encoding} {width}x{height}: data has {buf.size} bytes, expected '
                f'step x height = {step} x {height} = {step * height}')
        raise MessageError(msg_)
    return _ImageLayout(spec, height, width, step, big, buf, dtype)


def check_image(msg: Any) -> tuple[int, int]:
    """Validate an Image's encoding, sizes and data length without reading a pixel (O(1)).

    What a subscription callback can afford at camera rate; decoding happens later, for the
    images that are used.

    Returns:
        (height, width) in pixels.

    Raises:
        MessageError: as ``image_to_numpy``.
    """
    layout = _image_layout(msg)
    return layout.height, layout.width


def image_to_numpy(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image (rclpy or rosbags) into a numpy array.

    Zero-copy when the data is already in native byte order: the result is then a view of the
    message buffer (read-only when ``data`` is ``bytes``; copy before writing into it). Padded
    rows (``step`` > width x pixel size) are skipped through strides.

    Args:
        msg: object with ``height, width, encoding, is_bigendian, step, data``.

    Returns:
        (H, W) for one-channel encodings, else (H, W, C); dtype from ``IMAGE_ENCODINGS``,
        native byte order. Channel order is the encoding's (``bgr8`` stays BGR).

    Raises:
        MessageError: unknown encoding, ``step`` smaller than a row, or data length not
            ``step * height``.
    """
    layout = _image_layout(msg)
    spec, height, width, step, big, buf, dtype = layout
    pixel_bytes = dtype.itemsize * spec.channels
    if width == 0 or height == 0:
        out = np.zeros((height, width, spec.channels), dtype=dtype.newbyteorder('='))
    else:
        out = np.ndarray(shape=(height, width, spec.channels), dtype=dtype, buffer=buf,
                         strides=(step, pixel_bytes, dtype.itemsize))
        if dtype.itemsize > 1 and big != _NATIVE_BIG:
            out = out.astype(dtype.newbyteorder('='))
    return out[:, :, 0] if spec.channels == 1 else out


def rgb_from_image(msg: Any, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Decode any colour or mono Image into (H, W, 3) uint8 RGB with OpenCV.

    ``bgr*`` are reordered, alpha is dropped, mono is repeated over three channels. 16-bit
    colour/mono encodings keep their top 8 bits. ``8UC3``/``8UC4`` are taken as RGB(A) and
    ``8UC1`` as mono, as cv_bridge does for generic encodings with a matching channel count.
    ``yuv422``/``uyvy`` and ``yuv422_yuy2``/``yuyv`` use OpenCV's BT.601 video-range
    conversion and ``bayer_*`` its demosaicing, as cv_bridge does (``cv2.cvtColor``).

    With ``out_hw`` the image is also shrunk on uint8 (``imaging.area_resize``: area averaging,
    fast at camera sizes); 8-bit RGB, BGR(A) and mono images are resized before their channels
    are reordered (the same result, on fewer pixels), so a 1080p frame bound for a small
    network is never converted in full.

    The result may be a read-only view of the message buffer (``rgb8`` with ``bytes`` data and
    no ``out_hw``); copy it before writing into it.

    Args:
        msg: a sensor_msgs/Image (rclpy or rosbags).
        out_hw: (h, w) of the result; None keeps the image size.

    Raises:
        MessageError: an encoding that is not 8/16-bit colour, mono or YUV 4:2:2 (e.g.
            ``32FC1``), an odd width for YUV 4:2:2, or any error of ``image_to_numpy``.
        ShapeError: ``out_hw`` not two positive sizes.
    """
    encoding = str(_field(msg, 'encoding', 'Image'))
    spec = _encoding(encoding)
    layout = spec.layout or _GENERIC_LAYOUT.get(encoding, '')
    if encoding not in RGB_ENCODINGS:
        msg_ = (f'cannot convert image encoding {encoding!r} to RGB '
                '(needs a colour or mono encoding)')
        raise MessageError(msg_)
    if out_hw is not None:
        area_resize(np.zeros((1, 1), np.uint8), out_hw)  # checks out_hw before any decoding
    size = out_hw
    img = image_to_numpy(msg)
    cv2 = _cv2(encoding)
    if layout in ('uyvy', 'yuyv'):
        if img.shape[1] % 2:
            msg_ = f'image encoding {encoding!r} needs an even width; got {img.shape[1]}'
            raise MessageError(msg_)
        return _area_resize(cv2, cv2.cvtColor(img, _YUV_CODES[layout]), size)
    if layout.startswith('bayer_'):
        img = cv2.cvtColor(np.ascontiguousarray(img), getattr(cv2, _BAYER_CODES[layout]))
        img = (img >> 8).astype(np.uint8) if spec.dtype == 'u2' else img
        return _area_resize(cv2, img, size)
    if spec.dtype == 'u2':
        img = (img >> 8).astype(np.uint8)
    img = _area_resize(cv2, img, size)  # before the reorder: same result, fewer pixels
    code = _RGB_CODES.get(layout)
    if code is None:  # already RGB
        return img
    return cv2.cvtColor(img, getattr(cv2, code))


def rgb_view_of_image(msg: Any) -> np.ndarray | None:
    """The camera-size RGB pixels of an 8-bit RGB, BGR(A) or mono image without converting:
    a view of the message buffer (channels reordered, or mono repeated, by strides); read it,
    never write into it.

    For readers that pick a few pixels (the edge-aware upsampler's guide): a full
    ``rgb_from_image`` would convert every pixel first. OpenCV copies such views whole
    before it reads them: resize with ``rgb_from_image(msg, out_hw=...)`` instead.

    Returns:
        (H, W, 3) uint8 view with the values ``rgb_from_image(msg)`` would have (read-only
        where the data is ``bytes``, and for mono), or None for an encoding that needs
        converting (16-bit, YUV, Bayer).

    Raises:
        MessageError: as ``image_to_numpy``.
    """
    encoding = str(_field(msg, 'encoding', 'Image'))
    spec = _encoding(encoding)
    layout = spec.layout or _GENERIC_LAYOUT.get(encoding, '')
    if spec.dtype != 'u1' or layout not in ('rgb', 'bgr', 'rgba', 'bgra', 'mono'):
        return None
    img = image_to_numpy(msg)
    if layout == 'mono':
        view = np.broadcast_to(img[:, :, None], (*img.shape, 3))
    elif layout in ('bgr', 'bgra'):
        view = img[:, :, 2::-1]
    else:
        view = img[:, :, :3]
    return view


def rgb_for_network(msg: Any, net_hw: tuple[int, int], *, camera_size: bool
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """The image as the depth worker needs it: at the network input size, and at the camera
    size too when ``camera_size`` (the edge-aware guide, coloured points).

    Each pixel is converted at most once: an 8-bit RGB/BGR(A) or mono camera-size image is a
    view (``rgb_view_of_image``) and the network's is decoded at its size
    (``rgb_from_image(msg, out_hw=net_hw)``); other encodings are converted whole once and
    area-resized.

    Returns:
        ((h, w, 3) uint8, (H, W, 3) uint8 or None); the same values as
        ``area_resize(rgb_from_image(msg), net_hw)`` and ``rgb_from_image(msg)``.

    Raises:
        MessageError, ShapeError: as ``rgb_from_image``.
    """
    if not camera_size:
        return rgb_from_image(msg, out_hw=net_hw), None
    full = rgb_view_of_image(msg)
    if full is not None:
        return rgb_from_image(msg, out_hw=net_hw), full
    full = rgb_from_image(msg)
    return area_resize(full, net_hw), full


def rgb_from_image_reference(msg: Any) -> np.ndarray:
    """The pure-numpy RGB decoder that ``rgb_from_image`` replaced (OpenCV only for Bayer).

    Kept as the parity reference for the tests and as the "old path" of
    ``benchmarks/bench_node.py``; not used by the package. Same contract as
    ``rgb_from_image`` without ``out_hw``; YUV 4:2:2 uses float BT.601 video-range
    coefficients, within one level of OpenCV's fixed-point ones.

    Raises:
        MessageError: as ``rgb_from_image``.
    """
    encoding = str(_field(msg, 'encoding', 'Image'))
    spec = _encoding(encoding)
    layout = spec.layout or _GENERIC_LAYOUT.get(encoding, '')
    if encoding not in RGB_ENCODINGS:
        msg_ = (f'cannot convert image encoding {encoding!r} to RGB '
                '(needs a colour or mono encoding)')
        raise MessageError(msg_)
    img = image_to_numpy(msg)
    if layout in ('uyvy', 'yuyv'):
        return _yuv422_to_rgb_numpy(img, layout, encoding)
    if layout.startswith('bayer_'):
        cv2 = _cv2(encoding)
        img = cv2.cvtColor(np.ascontiguousarray(img), getattr(cv2, _BAYER_CODES[layout]))
        return (img >> 8).astype(np.uint8) if spec.dtype == 'u2' else img
    if spec.dtype == 'u2':
        img = (img >> 8).astype(np.uint8)
    if layout == 'mono':
        return np.repeat(img[:, :, None], 3, axis=2)
    if layout in ('bgr', 'bgra'):
        return np.ascontiguousarray(img[:, :, 2::-1])
    if layout == 'rgba':
        return np.ascontiguousarray(img[:, :, :3])
    return img


# OpenCV names a Bayer pattern by its second row and second column: RGGB is "BayerBG".
_BAYER_CODES = {'bayer_rggb': 'COLOR_BayerBG2RGB', 'bayer_bggr': 'COLOR_BayerRG2RGB',
                'bayer_gbrg': 'COLOR_BayerGR2RGB', 'bayer_grbg': 'COLOR_BayerGB2RGB'}
_RGB_CODES = {'bgr': 'COLOR_BGR2RGB', 'bgra': 'COLOR_BGRA2RGB', 'rgba': 'COLOR_RGBA2RGB',
              'mono': 'COLOR_GRAY2RGB'}
_YUV_CODES: dict[str, int] = {}


def _cv2(encoding: str) -> Any:
    """OpenCV, imported on first use (python3-opencv / opencv-python-headless)."""
    try:
        import cv2
    except ImportError:
        msg = (f'image encoding {encoding!r} needs OpenCV (cv2) for colour conversion; it is not '
               'installed (rosdep key python3-opencv)')
        raise MessageError(msg) from None
    if not _YUV_CODES:
        _YUV_CODES.update(uyvy=cv2.COLOR_YUV2RGB_UYVY, yuyv=cv2.COLOR_YUV2RGB_YUYV)
    return cv2


def _area_resize(cv2: Any, img: np.ndarray, out_hw: tuple[int, int] | None) -> np.ndarray:
    del cv2  # area_resize imports it itself
    return img if out_hw is None else area_resize(img, out_hw)


def _yuv422_to_rgb_numpy(img: np.ndarray, layout: str, encoding: str) -> np.ndarray:
    height, width = img.shape[:2]
    if width % 2:
        msg = f'image encoding {encoding!r} needs an even width; got {width}'
        raise MessageError(msg)
    pairs = img.reshape(height, width // 2, 4).astype(np.float32)
    if layout == 'uyvy':
        u, y0, v, y1 = (pairs[..., i] for i in range(4))
    else:
        y0, u, y1, v = (pairs[..., i] for i in range(4))
    luma = np.stack([y0, y1], axis=2).reshape(height, width)
    luma = 1.164 * np.maximum(luma - 16.0, 0.0)
    u = np.repeat(u - 128.0, 2, axis=1)
    v = np.repeat(v - 128.0, 2, axis=1)
    rgb = np.stack([luma + 1.596 * v, luma - 0.813 * v - 0.391 * u, luma + 2.018 * u], axis=2)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def depth_from_image(msg: Any) -> np.ndarray:
    """Decode a depth Image into (H, W) float32 metres, 0 = no data.

    Reads both conventions: REP 118 (NaN = no data in ``32FC1``, what the node publishes) and
    the older 0.0 of earlier bags. ``16UC1``/``mono16`` are millimetres (0 = no data);
    ``32FC1``/``64FC1`` metres, where NaN, +-Inf and values <= 0 all become 0.

    Raises:
        MessageError: any other encoding.
    """
    encoding = str(_field(msg, 'encoding', 'Image'))
    if encoding in ('16UC1', 'mono16'):
        return image_to_numpy(msg).astype(np.float32) * np.float32(1e-3)
    if encoding in ('32FC1', '64FC1'):
        depth = image_to_numpy(msg).astype(np.float32)
        depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
        return depth
    msg_ = f'image encoding {encoding!r} is not a depth encoding (expected 32FC1 or 16UC1)'
    raise MessageError(msg_)


_UINT16_MAX = 65535.0


def _new_header(header: Any) -> Any:
    if header is not None:
        return header
    from std_msgs.msg import Header

    return Header()


def _as_byte_array(arr: np.ndarray) -> pyarray.array:
    # rclpy's uint8[] setter iterates Python ints unless handed an array.array('B'): one memcpy.
    data = pyarray.array('B')
    data.frombytes(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    return data


def _message_pixels(out: Any, shape: tuple[int, ...], dtype: np.dtype, *,
                    source: np.ndarray | None = None, fill: Any = 0) -> np.ndarray:
    """Give the message ``out`` a ``data`` buffer for ``shape`` x ``dtype`` and return a
    writable view of it, so that the pixels are written once, straight into the message.

    Every distro's generated setter takes an ``array('B')`` without a per-element check
    (Humble adopts it, Jazzy/Kilted copy it); an empty one goes through the setter and the
    message's own array is filled in place, so no full-size copy is made.

    Args:
        source: an array of ``shape`` copied in (the one copy; byte order converted);
            None: every pixel starts as ``fill``.
    """
    out.data = pyarray.array('B')
    data = out.data  # the message's own array (the getter returns it, on every distro)
    count = int(np.prod(shape))
    if count == 0:
        return np.zeros(shape, dtype)
    if source is not None:
        data.frombytes(np.ascontiguousarray(source, dtype).reshape(-1).view(np.uint8))
    else:
        data.frombytes(np.full(1, fill, dtype).view(np.uint8))
        data *= count
    return np.frombuffer(data, dtype).reshape(shape)


def _new_image(shape: tuple[int, ...], dtype: np.dtype, encoding: str, header: Any, *,
               source: np.ndarray | None = None, fill: Any = 0) -> tuple[Any, np.ndarray]:
    """An Image of (H, W, C) ``shape`` in native byte order and a writable view of its pixels
    (valid while the caller builds the message; ``source``, ``fill``: see
    ``_message_pixels``)."""
    from sensor_msgs.msg import Image

    native = dtype.newbyteorder('=')
    out = Image()
    out.header = _new_header(header)
    out.height, out.width = int(shape[0]), int(shape[1])
    out.encoding = encoding
    out.is_bigendian = 1 if _NATIVE_BIG and native.itemsize > 1 else 0
    out.step = int(shape[1] * shape[2] * native.itemsize)
    return out, _message_pixels(out, tuple(shape), native, source=source, fill=fill)


def numpy_to_image(array: np.ndarray, encoding: str, header: Any = None) -> Any:
    """Encode an array as a sensor_msgs/msg/Image (native byte order, unpadded rows).

    Args:
        array: (H, W) or (H, W, C) with the dtype and channel count of ``encoding``.
        encoding: a key of ``IMAGE_ENCODINGS``.
        header: std_msgs/Header to stamp the message with (a fresh one when None).

    Raises:
        MessageError: unknown encoding.
        ShapeError: shape or dtype that does not match the encoding.
    """
    spec = _encoding(encoding)
    arr = np.asarray(array)
    expected_dtype = np.dtype(spec.dtype)
    if arr.ndim == 2 and spec.channels == 1:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != spec.channels:
        want = '(H, W)' if spec.channels == 1 else f'(H, W, {spec.channels})'
        msg = f'encoding {encoding!r} expects an array of shape {want}; got {arr.shape}'
        raise ShapeError(msg)
    if arr.dtype.newbyteorder('=') != expected_dtype.newbyteorder('='):
        msg = f'encoding {encoding!r} expects dtype {expected_dtype}; got {arr.dtype}'
        raise ShapeError(msg)
    out, _ = _new_image(arr.shape, expected_dtype, encoding, header, source=arr)
    return out


def depth_to_image(depth_m: np.ndarray, header: Any = None, encoding: str = '32FC1', *,
                   clean: bool = False, pixels: np.ndarray | None = None) -> Any:
    """Encode metric depth as a sensor_msgs/msg/Image following REP 118.

    REP 118 (and depth_image_proc) read 0.0 in a float image as a point at the camera centre,
    so "no data" must be NaN there; in millimetres 0 is the only invalid value, and a depth that
    does not fit in 16 bits is invalid rather than clipped to 65.535 m.

    Args:
        depth_m: (H, W) depth in metres along the optical axis; NaN, +-Inf and values <= 0
            mean no estimate (the arrays of this package use 0).
        header: std_msgs/Header (stamp and frame of the camera image it belongs to).
        encoding: ``'32FC1'`` metres, no estimate = NaN; or ``'16UC1'`` millimetres rounded to
            the nearest, no estimate and depths above 65.535 m = 0.
        clean: the caller guarantees float32 values that are finite and >= 0 (the engine's
            output, a projection): the finiteness pass is skipped; only 0 (no data) is mapped.
        pixels: with ``clean`` and ``32FC1``: flat indices (repeats allowed) outside which
            ``depth_m`` is 0, e.g. ``SparseMaps.full_pixels``; only they are read.

    Raises:
        ShapeError: ``depth_m`` is not 2-D.
        MessageError: any other encoding.
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        msg = f'depth_m must have shape (H, W); got {depth.shape}'
        raise ShapeError(msg)
    if encoding not in ('32FC1', '16UC1'):
        msg = f'depth encoding must be 32FC1 or 16UC1; got {encoding!r}'
        raise MessageError(msg)
    depth = depth.astype(np.float32, copy=False)
    if clean:
        if encoding == '32FC1':
            # NaN for no data, written once into the message (no temporary, no second copy).
            shape, f32, nan = (*depth.shape, 1), np.dtype(np.float32), np.float32(np.nan)
            if pixels is not None:  # a projection that says where its points are
                out, image = _new_image(shape, f32, '32FC1', header, fill=nan)
                values = depth.reshape(-1)[pixels]
                image.reshape(-1)[pixels] = np.where(values > 0, values, nan)
                return out
            sample = depth[::32, ::32]
            if 2 * np.count_nonzero(sample) > sample.size:  # dense (the engine's output)
                # Copied in, then the few holes: a masked copy is twice as slow, and a minimum
                # (one read) costs less than the mask when there is no hole, the usual case.
                out, image = _new_image(shape, f32, '32FC1', header, source=depth[:, :, None])
                if depth.size and not depth.min() > 0:
                    image[:, :, 0][depth <= 0] = nan
            else:  # sparse (a projection): NaN everywhere, then the points
                out, image = _new_image(shape, f32, '32FC1', header, fill=nan)
                np.copyto(image[:, :, 0], depth, where=depth > 0)
            return out
        millimetres = np.multiply(depth, np.float32(1000.0))
        np.rint(millimetres, out=millimetres)
        millimetres[millimetres > _UINT16_MAX] = 0.0
        out, pixels = _new_image((*depth.shape, 1), np.dtype(np.uint16), '16UC1', header)
        np.copyto(pixels[:, :, 0], millimetres, casting='unsafe')
        return out
    with np.errstate(invalid='ignore'):
        invalid = ~(np.isfinite(depth) & (depth > 0))
    if encoding == '32FC1':
        if invalid.any():
            depth = np.where(invalid, np.float32(np.nan), depth)
        return numpy_to_image(depth, '32FC1', header)
    with np.errstate(invalid='ignore'):
        millimetres = np.rint(np.where(invalid, 0.0, depth) * 1000.0)
    millimetres[millimetres > _UINT16_MAX] = 0.0
    return numpy_to_image(millimetres.astype(np.uint16), '16UC1', header)


_DENSE = np.zeros(0, np.intp)  # DepthImageEncoder: every pixel was written


class DepthImageEncoder:
    """``depth_to_image(..., clean=True)`` into one message kept from frame to frame.

    A fresh 1080p message costs an 8 MB allocation (page faults included) and, for the sparse
    map, a full NaN fill; here the pixel buffer is allocated once per size, a dense map is
    copied in, and a sparse one (``pixels`` given) only resets the previous frame's points.
    ``Publisher.publish`` serialises a message before it returns, so the next frame may
    refill it: the returned message is valid until the next :meth:`encode` (publish it, do
    not keep it). One encoder per topic; not thread-safe.

    Args:
        encoding: ``'32FC1'`` (reused) or ``'16UC1'`` (encoded by ``depth_to_image`` afresh).

    Raises:
        MessageError: another encoding.
    """

    def __init__(self, encoding: str = '32FC1') -> None:
        if encoding not in ('32FC1', '16UC1'):
            msg = f'depth encoding must be 32FC1 or 16UC1; got {encoding!r}'
            raise MessageError(msg)
        self.encoding = encoding
        self._msg: Any = None
        self._image: np.ndarray | None = None  # (H, W) float32 view of the message's data
        self._points: np.ndarray | None = None  # flat pixels written last, None: all NaN

    def target(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The (H, W) float32 view of the next message's pixels, for a producer to write the
        depth into (``DepthEngine.infer(out=...)``) before :meth:`encode` of that same array
        (which then copies nothing; it writes NaN over its zeros in place). None for
        ``16UC1``.
        """
        if self.encoding != '32FC1':
            return None
        shape = (int(shape[0]), int(shape[1]))
        if self._image is None or self._image.shape != shape:
            self._msg, view = _new_image((*shape, 1), np.dtype(np.float32), '32FC1', None,
                                         fill=np.float32(np.nan))
            self._image = view[:, :, 0]
        self._points = _DENSE  # whatever the producer leaves there: a sparse frame refills
        return self._image

    def encode(self, depth_m: np.ndarray, header: Any, *,
               pixels: np.ndarray | None = None, positive: bool = False) -> Any:
        """The Image of ``depth_m`` (H, W) float32 metres, finite and >= 0 (0 = no data, NaN
        in the message), stamped with ``header``; ``pixels``: as ``depth_to_image``'s.
        ``positive``: the caller knows every pixel is > 0 (``PairWork.depth_positive``), so
        there is no zero to turn into NaN and the full-size search for one is skipped.

        Raises:
            ShapeError: ``depth_m`` is not 2-D.
        """
        if self.encoding != '32FC1':
            return depth_to_image(depth_m, header, self.encoding, clean=True, pixels=pixels)
        depth = np.asarray(depth_m)
        if depth.ndim != 2:
            msg = f'depth_m must have shape (H, W); got {depth.shape}'
            raise ShapeError(msg)
        depth = depth.astype(np.float32, copy=False)
        nan = np.float32(np.nan)
        image = self._image
        if image is None or image.shape != depth.shape or depth.size == 0:
            self._msg, view = _new_image((*depth.shape, 1), np.dtype(np.float32), '32FC1',
                                         header, fill=nan)
            image = self._image = view[:, :, 0]
            self._points = None
        else:
            self._msg.header = _new_header(header)
        if pixels is not None:
            if self._points is _DENSE:
                image.fill(nan)
            elif self._points is not None:
                image.reshape(-1)[self._points] = nan
            values = depth.reshape(-1)[pixels]
            image.reshape(-1)[pixels] = np.where(values > 0, values, nan)
            self._points = np.array(pixels, np.intp)  # the caller may reuse its array
        else:
            same = (depth.ctypes.data == image.ctypes.data and depth.strides == image.strides)
            if not same:  # else the producer wrote into target() already
                np.copyto(image, depth)  # overwrites every pixel
            if not positive and depth.size and not depth.min() > 0:
                image[depth <= 0] = nan
            self._points = _DENSE
        return self._msg


def _cloud_fields(msg: Any) -> dict[str, tuple[int, np.dtype, int]]:
    """name -> (offset, dtype in the cloud's byte order, count)."""
    big = bool(_field(msg, 'is_bigendian', 'PointCloud2'))
    out: dict[str, tuple[int, np.dtype, int]] = {}
    try:
        described = [(str(f.name), int(f.datatype), int(f.offset), int(f.count))
                     for f in _field(msg, 'fields', 'PointCloud2')]
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        msg_ = f'PointCloud2 fields are not PointField records (name, offset, datatype, count): {exc}'
        raise MessageError(msg_) from None
    for name, datatype, offset, count in described:
        code = POINTFIELD_DTYPES.get(datatype)
        if code is None:
            msg_ = f'PointCloud2 field {name!r} has unknown datatype {datatype} (expected 1..8)'
            raise MessageError(msg_)
        if name in out:
            msg_ = f'PointCloud2 field {name!r} appears twice'
            raise MessageError(msg_)
        out[name] = (offset, np.dtype(code).newbyteorder('>' if big else '<'), max(count, 1))
    return out


def pointcloud2_fields(msg: Any) -> dict[str, np.dtype]:
    """Field names of a PointCloud2 and their (native byte order) dtypes.

    Raises:
        MessageError: a field with an unknown datatype, or duplicate names.
    """
    return {name: dt.newbyteorder('=') for name, (_, dt, _) in _cloud_fields(msg).items()}


def _cloud_layout(msg: Any, extra_fields: Sequence[str]
                  ) -> tuple[dict[str, tuple[int, np.dtype, int]], int, int, int, int, np.ndarray]:
    """Every check of ``pointcloud2_to_xyz``, O(fields): no point is read."""
    fields = _cloud_fields(msg)
    height = _int_field(msg, 'height', 'PointCloud2')
    width = _int_field(msg, 'width', 'PointCloud2')
    point_step = _int_field(msg, 'point_step', 'PointCloud2')
    row_step = _int_field(msg, 'row_step', 'PointCloud2')
    buf = _byte_buffer(_field(msg, 'data', 'PointCloud2'), 'PointCloud2')
    wanted = ['x', 'y', 'z', *extra_fields]
    missing = [name for name in wanted if name not in fields]
    if missing:
        msg_ = (f'PointCloud2 lacks field(s) {", ".join(missing)}; it has '
                f'{", ".join(fields) or "no fields"}')
        raise MessageError(msg_)
    for name in wanted:
        offset, dtype, count = fields[name]
        if name in 'xyz' and count != 1:
            msg_ = f'PointCloud2 field {name!r} has count {count}; expected 1'
            raise MessageError(msg_)
        if offset < 0 or offset + dtype.itemsize * count > point_step:
            msg_ = (f'PointCloud2 field {name!r} at offset {offset} ({count} x {dtype.itemsize} B)'
                    f' does not fit in point_step {point_step}')
            raise MessageError(msg_)
    if height < 0 or width < 0 or row_step < width * point_step:
        msg_ = (f'PointCloud2 {width}x{height}: row_step {row_step} is smaller than '
                f'width x point_step = {width} x {point_step}')
        raise MessageError(msg_)
    if buf.size != row_step * height:
        msg_ = (f'PointCloud2 {width}x{height}: data has {buf.size} bytes, expected '
                f'row_step x height = {row_step} x {height} = {row_step * height}')
        raise MessageError(msg_)
    return fields, height, width, point_step, row_step, buf


def check_pointcloud2(msg: Any, extra_fields: Sequence[str] = ()) -> int:
    """Validate a PointCloud2's fields, sizes and data length without reading a point.

    What a subscription callback can afford at LiDAR rate; decoding happens later, for the
    clouds that are used.

    Returns:
        width x height, the number of points before non-finite ones are dropped.

    Raises:
        MessageError: as ``pointcloud2_to_xyz``.
    """
    _, height, width, _, _, _ = _cloud_layout(msg, extra_fields)
    return width * height


def pointcloud2_to_xyz(msg: Any, extra_fields: Sequence[str] = ()
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Decode a sensor_msgs/PointCloud2 into xyz and named extra fields.

    Any field layout: float32 or float64 (or integer) x/y/z at any offsets, padded
    ``point_step``, padded rows (``row_step``), big-endian, organised clouds (height > 1, read
    row-major). Points with a non-finite x, y or z are dropped, from the extras too.

    Args:
        msg: object with ``height, width, fields, is_bigendian, point_step, row_step, data``.
        extra_fields: names of other fields to return (e.g. ``intensity``, ``ring``, ``time``).

    Returns:
        xyz (N, 3) float32 in the cloud's frame (metres), and a dict name -> (N,) array (or
        (N, count) when the field's count > 1) in the field's own dtype, native byte order.

    Raises:
        MessageError: missing x/y/z or a requested extra field, a field that does not fit in
            ``point_step``, ``row_step`` shorter than a row, or data length not
            ``row_step * height``.
    """
    fields, height, width, point_step, row_step, buf = _cloud_layout(msg, extra_fields)
    n = width * height
    if n == 0:
        empty = {name: np.zeros((0,) if fields[name][2] == 1 else (0, fields[name][2]),
                                dtype=fields[name][1].newbyteorder('='))
                 for name in extra_fields}
        return np.zeros((0, 3), dtype=np.float32), empty

    def column(name: str) -> np.ndarray:
        # A strided view into the message buffer; no per-point Python.
        offset, dtype, count = fields[name]
        shape: tuple[int, ...] = (height, width) + ((count,) if count > 1 else ())
        strides: tuple[int, ...] = (row_step, point_step) + ((dtype.itemsize,) if count > 1 else ())
        view = np.ndarray(shape=shape, dtype=dtype, buffer=buf, offset=offset, strides=strides)
        return view.reshape((n,) + shape[2:])

    ox, dx, _ = fields['x']
    oy, dy, _ = fields['y']
    oz, dz, _ = fields['z']
    f32 = np.dtype('<f4' if not _NATIVE_BIG else '>f4')
    packed = (dx == dy == dz == f32 and oy == ox + 4 and oz == ox + 8
              and (height == 1 or row_step == width * point_step))
    if packed:
        # Fast path: native float32 xyz side by side; copying 12-byte records is one memcpy
        # each, several times faster than a strided (N, 3) float copy.
        records = np.ndarray(shape=(n,), dtype=np.dtype('V12'), buffer=buf, offset=ox,
                             strides=(point_step,))
        xyz = np.array(records).view(np.float32).reshape(n, 3)
    else:
        xyz = np.empty((n, 3), dtype=np.float32)
        with np.errstate(over='ignore', invalid='ignore'):  # float64 beyond float32 -> inf
            for i, name in enumerate('xyz'):
                xyz[:, i] = column(name)
    keep_all = bool(np.isfinite(xyz).all())
    if not keep_all:
        finite = np.isfinite(xyz[:, 0]) & np.isfinite(xyz[:, 1]) & np.isfinite(xyz[:, 2])
        xyz = xyz.view(np.dtype('V12')).reshape(n)[finite].view(np.float32).reshape(-1, 3)
    extras: dict[str, np.ndarray] = {}
    for name in extra_fields:
        col = column(name)
        col = col if keep_all else col[finite]
        extras[name] = col.astype(col.dtype.newbyteorder('='), copy=True)
    return xyz, extras


def xyz_to_pointcloud2(xyz: np.ndarray, header: Any = None,
                       extra: Mapping[str, np.ndarray] | None = None) -> Any:
    """Encode points as an unorganised sensor_msgs/msg/PointCloud2 (height 1, packed).

    Args:
        xyz: (N, 3) points in metres; stored as float32 fields x, y, z at offsets 0, 4, 8.
        header: std_msgs/Header (frame_id = the LiDAR frame); a fresh one when None.
        extra: name -> (N,) array of any PointField type (int8..float64), appended in order.

    Raises:
        ShapeError: ``xyz`` not (N, 3), or an extra not (N,) or of an unsupported dtype.
    """
    from sensor_msgs.msg import PointCloud2, PointField

    pts = np.asarray(xyz)
    if pts.ndim != 2 or pts.shape[1] != 3:
        msg = f'xyz must have shape (N, 3); got {pts.shape}'
        raise ShapeError(msg)
    n = pts.shape[0]
    names = ['x', 'y', 'z']
    formats: list[np.dtype] = [np.dtype(np.float32)] * 3
    columns: list[np.ndarray] = [pts[:, 0], pts[:, 1], pts[:, 2]]
    for name, values in (extra or {}).items():
        col = np.asarray(values)
        if col.shape != (n,):
            msg = f'extra field {name!r} must have shape ({n},); got {col.shape}'
            raise ShapeError(msg)
        if col.dtype.newbyteorder('<').str[1:] not in _DTYPE_TO_POINTFIELD:
            msg = f'extra field {name!r} has dtype {col.dtype}; PointField supports int8..float64'
            raise ShapeError(msg)
        if name in names:
            msg = f'extra field {name!r} duplicates a field name'
            raise ShapeError(msg)
        names.append(str(name))
        formats.append(col.dtype.newbyteorder('='))
        columns.append(col)
    record = np.dtype({'names': names, 'formats': formats})
    packed = np.empty(n, dtype=record)
    for name, col in zip(names, columns):
        packed[name] = col
    out = PointCloud2()
    out.header = _new_header(header)
    out.height, out.width = 1, int(n)
    out.fields = [PointField(name=name, offset=int(record.fields[name][1]),
                             datatype=_DTYPE_TO_POINTFIELD[np.dtype(fmt).newbyteorder('<').str[1:]],
                             count=1)
                  for name, fmt in zip(names, formats)]
    out.is_bigendian = _NATIVE_BIG
    out.point_step = int(record.itemsize)
    out.row_step = int(record.itemsize * n)
    out.is_dense = bool(np.isfinite(pts).all())
    out.data = _as_byte_array(packed)
    return out


def camera_info_to_model(msg: Any, camera_model: str = 'raw') -> CameraModel:
    """Build the CameraModel of the published image from a sensor_msgs/CameraInfo.

    Works on rclpy and rosbags messages and on ROS 1 names (``K``/``D``/``P``). An empty
    distortion model with no coefficients means ``none``; ``fisheye`` is read as
    ``equidistant``. ``camera_model`` ``raw`` uses K and D; ``rectified`` uses P's 3x3 part, no
    distortion, and P's Tx/Ty. Binning and ROI are applied as image_geometry's
    PinholeCameraModel does (``fusion.camera.camera_model_from_calibration``).

    Raises:
        MessageError: K (raw) or P (rectified) with a zero/non-finite focal length, zero image
            size, an unknown distortion model, a coefficient count that model cannot take, or a
            ROI outside the image.
    """
    def field(lower: str, upper: str, default: Any = None) -> Any:
        value = getattr(msg, lower, None)
        return getattr(msg, upper, default) if value is None else value

    k = field('k', 'K')
    d = field('d', 'D', ())
    if k is None:
        err = f'CameraInfo message has no field k/K (got {type(msg).__name__})'
        raise MessageError(err)
    model = str(_field(msg, 'distortion_model', 'CameraInfo')).strip()
    d_arr = np.asarray(d, dtype=np.float64).reshape(-1)
    if model == '':
        if d_arr.size and np.any(d_arr != 0):
            err = f'CameraInfo has distortion coefficients {d_arr.tolist()} but no distortion_model'
            raise MessageError(err)
        model = 'none'
    elif model == 'fisheye':
        model = 'equidistant'
    roi = getattr(msg, 'roi', None)
    roi_values = ((int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
                  if roi is not None else (0, 0, 0, 0))
    try:
        return camera_model_from_calibration(
            width=_int_field(msg, 'width', 'CameraInfo'),
            height=_int_field(msg, 'height', 'CameraInfo'),
            K=np.asarray(k, dtype=np.float64), D=d_arr, distortion_model=model,
            P=field('p', 'P'), binning_x=int(getattr(msg, 'binning_x', 0) or 0),
            binning_y=int(getattr(msg, 'binning_y', 0) or 0), roi=roi_values,
            camera_model=camera_model)
    except ShapeError as exc:
        err = f'invalid CameraInfo: {exc}'
        raise MessageError(err) from exc
