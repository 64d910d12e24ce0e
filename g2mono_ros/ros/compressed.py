"""Compressed image codecs: sensor_msgs/CompressedImage (jpeg, png) and compressedDepth <-> numpy.

Follows image_transport's ``compressed`` and ``compressedDepth`` plugins (format strings,
``<image>/compressed`` topic naming, the 12-byte compressedDepth header). Duck-typed like
``codecs``: works on rclpy and rosbags messages; OpenCV is imported only inside the functions.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import numpy as np

from g2mono_ros.errors import MessageError

__all__ = [
    'COMPRESSED_FORMATS',
    'compressed_depth_payload',
    'compressed_image_payload',
    'compressed_topic',
    'depth_from_any_image',
    'depth_from_compressed_depth',
    'is_compressed',
    'rgb_from_any_image',
    'rgb_from_compressed',
    'to_compressed_image',
]

#: Formats the ``compressed`` transport writes (and we read).
COMPRESSED_FORMATS = ('jpeg', 'png')
# compressedDepth: ConfigHeader {int32 format; float32 depthParam[2]} before the PNG bytes.
_DEPTH_HEADER = struct.Struct('<iff')
_INV_DEPTH = 0  # compressionFormat enum value for 32FC1 inverse-depth quantisation


def compressed_topic(image_topic: str, transport: str = 'compressed') -> str:
    """image_transport's name for a transport of ``image_topic``: ``<image_topic>/<transport>``."""
    return f'{image_topic.rstrip("/")}/{transport}'


def is_compressed(msg: Any) -> bool:
    """True for a CompressedImage (it has ``format``; an Image has ``encoding``)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def _payload(msg: Any) -> np.ndarray:
    data = getattr(msg, 'data', None)
    if data is None:
        msg_ = 'CompressedImage has no data field'
        raise MessageError(msg_)
    buf = np.frombuffer(data if isinstance(data, (bytes, bytearray, memoryview)) else
                        np.asarray(data, dtype=np.uint8).tobytes(), dtype=np.uint8)
    if buf.size == 0:
        msg_ = 'CompressedImage has empty data'
        raise MessageError(msg_)
    return buf


def rgb_from_compressed(msg: Any) -> np.ndarray:
    """Decode a jpeg/png CompressedImage into (H, W, 3) uint8 RGB.

    The ``compressed`` transport stores colour as BGR (``"rgb8; jpeg compressed bgr8"``), mono
    as one channel; 16-bit PNGs keep their top 8 bits; alpha is dropped.

    Raises:
        MessageError: ``compressedDepth`` data, or bytes OpenCV cannot decode.
    """
    import cv2

    fmt = str(getattr(msg, 'format', ''))
    if 'compresseddepth' in fmt.lower():
        msg_ = f'CompressedImage format {fmt!r} is depth, not a colour image'
        raise MessageError(msg_)
    img = cv2.imdecode(_payload(msg), cv2.IMREAD_UNCHANGED)
    if img is None:
        msg_ = f'cannot decode CompressedImage (format {fmt!r}): not a valid jpeg/png stream'
        raise MessageError(msg_)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def depth_from_compressed_depth(msg: Any) -> np.ndarray:
    """Decode a ``compressedDepth`` CompressedImage into (H, W) float32 metres, 0 = no data.

    ``"16UC1; compressedDepth png"``: millimetres, lossless. ``"32FC1; compressedDepth png"``:
    inverse depth quantised as ``q = A / d + B`` (A, B in the header), decoded as
    ``d = A / (q - B)``; q = 0 is no data.

    Raises:
        MessageError: another format (e.g. ``rvl``), a short header or undecodable PNG.
    """
    import cv2

    fmt = str(getattr(msg, 'format', ''))
    encoding = fmt.split(';', 1)[0].strip()
    lowered = fmt.lower()
    if 'compresseddepth' not in lowered or 'rvl' in lowered:
        msg_ = (f'CompressedImage format {fmt!r}: expected "16UC1; compressedDepth png" or '
                '"32FC1; compressedDepth png"')
        raise MessageError(msg_)
    buf = _payload(msg)
    if buf.size <= _DEPTH_HEADER.size:
        msg_ = f'compressedDepth data of {buf.size} bytes is shorter than its 12-byte header'
        raise MessageError(msg_)
    _, quant_a, quant_b = _DEPTH_HEADER.unpack(buf[:_DEPTH_HEADER.size].tobytes())
    img = cv2.imdecode(buf[_DEPTH_HEADER.size:], cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        msg_ = f'cannot decode compressedDepth ({fmt!r}): not a 16-bit one-channel PNG'
        raise MessageError(msg_)
    if encoding in ('16UC1', 'mono16'):
        return img.astype(np.float32) * np.float32(1e-3)
    if encoding == '32FC1':
        q = img.astype(np.float32)
        depth = np.zeros(q.shape, np.float32)
        valid = q > 0
        depth[valid] = np.float32(quant_a) / (q[valid] - np.float32(quant_b))
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        return depth
    msg_ = f'compressedDepth encoding {encoding!r}: expected 16UC1 or 32FC1'
    raise MessageError(msg_)


def rgb_from_any_image(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image or a CompressedImage.

    Raises:
        MessageError: the image cannot be decoded.
    """
    if is_compressed(msg):
        return rgb_from_compressed(msg)
    from g2mono_ros.ros.codecs import rgb_from_image

    return rgb_from_image(msg)


def depth_from_any_image(msg: Any) -> np.ndarray:
    """(H, W) float32 metres from a depth Image (32FC1/16UC1) or a compressedDepth image.

    Raises:
        MessageError: the image cannot be decoded as depth.
    """
    if is_compressed(msg):
        return depth_from_compressed_depth(msg)
    from g2mono_ros.ros.codecs import depth_from_image

    return depth_from_image(msg)


def compressed_image_payload(rgb: np.ndarray, fmt: Literal['jpeg', 'png'] = 'jpeg', *,
                             jpeg_quality: int = 95) -> tuple[str, bytes]:
    """Encode (H, W, 3) uint8 RGB as the ``compressed`` transport does.

    Returns:
        ``(format string, bytes)``, e.g. ``('rgb8; jpeg compressed bgr8', b'...')``.

    Raises:
        MessageError: an unknown format or a non-RGB array.
    """
    import cv2

    if fmt not in COMPRESSED_FORMATS:
        msg_ = f'compressed format must be one of {", ".join(COMPRESSED_FORMATS)}; got {fmt!r}'
        raise MessageError(msg_)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        msg_ = f'expected (H, W, 3) uint8 RGB; got {rgb.shape} {rgb.dtype}'
        raise MessageError(msg_)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == 'jpeg' else []
    ok, data = cv2.imencode(f'.{"jpg" if fmt == "jpeg" else "png"}',
                            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        msg_ = f'OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {fmt}'
        raise MessageError(msg_)
    return f'rgb8; {fmt} compressed bgr8', data.tobytes()


def compressed_depth_payload(depth_m: np.ndarray, encoding: Literal['16UC1', '32FC1'] = '16UC1',
                             *, depth_max_m: float = 10.0,
                             quantization: float = 100.0) -> tuple[str, bytes]:
    """Encode (H, W) metres as the ``compressedDepth`` transport does (PNG after a header).

    ``16UC1`` stores millimetres (depths >= 65.535 m become 0, no data). ``32FC1`` stores
    quantised inverse depth with image_transport's parameters (``depth_max_m``,
    ``quantization``); depths >= ``depth_max_m`` become 0.

    Returns:
        ``(format string, bytes)``, e.g. ``('16UC1; compressedDepth png', b'...')``.
    """
    import cv2

    depth = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    quant_a = quant_b = 0.0
    if encoding == '16UC1':
        mm = np.where(valid, np.round(depth * 1000.0), 0.0)
        img = np.where(mm <= 65535, mm, 0).astype(np.uint16)
    elif encoding == '32FC1':
        quant_a = quantization * (quantization + 1.0)
        quant_b = 1.0 - quant_a / depth_max_m
        keep = valid & (depth < depth_max_m)
        q = np.zeros(depth.shape, np.float64)
        q[keep] = quant_a / depth[keep] + quant_b
        img = np.clip(q, 0, 65535).astype(np.uint16)
    else:
        msg_ = f'compressedDepth encoding must be 16UC1 or 32FC1; got {encoding!r}'
        raise MessageError(msg_)
    ok, data = cv2.imencode('.png', img)
    if not ok:
        msg_ = 'OpenCV could not encode the depth image as PNG'
        raise MessageError(msg_)
    header = _DEPTH_HEADER.pack(_INV_DEPTH, quant_a, quant_b)
    return f'{encoding}; compressedDepth png', header + data.tobytes()


def to_compressed_image(rgb: np.ndarray, fmt: Literal['jpeg', 'png'], header: Any = None,
                        *, jpeg_quality: int = 95) -> Any:
    """An rclpy ``sensor_msgs.msg.CompressedImage`` of (H, W, 3) uint8 RGB (for tests/tools)."""
    from sensor_msgs.msg import CompressedImage

    out = CompressedImage()
    if header is not None:
        out.header = header
    out.format, data = compressed_image_payload(rgb, fmt, jpeg_quality=jpeg_quality)
    out.data = data
    return out
