"""Message codecs: encoding x byte order x padding sweeps, depth, clouds, CameraInfo, errors."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.ros.codecs import (
    IMAGE_ENCODINGS,
    POINTFIELD_DTYPES,
    RGB_ENCODINGS,
    camera_info_to_model,
    depth_from_image,
    depth_to_image,
    image_to_numpy,
    numpy_to_image,
    pointcloud2_fields,
    pointcloud2_to_xyz,
    rgb_from_image,
    xyz_to_pointcloud2,
)
from g2mono_ros.errors import MessageError, ShapeError

DATA_KINDS = ('bytes', 'array', 'numpy', 'bytearray')


def _random_pixels(encoding: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    spec = IMAGE_ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec.dtype)
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    if dtype.kind == 'f':
        return rng.normal(scale=10.0, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _wrap(raw: bytes, kind: str):
    if kind == 'bytes':
        return raw
    if kind == 'bytearray':
        return bytearray(raw)
    if kind == 'array':
        return array.array('B', raw)  # what rclpy gives
    return np.frombuffer(raw, dtype=np.uint8).copy()  # what rosbags gives


def _image_msg(pixels: np.ndarray, encoding: str, *, big: bool, pad: int, kind: str = 'bytes'):
    """A duck-typed Image serialised by hand: explicit byte order and row padding."""
    height, width = pixels.shape[:2]
    swapped = pixels.astype(pixels.dtype.newbyteorder('>' if big else '<'))
    rows = swapped.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, dtype=np.uint8)], axis=1)
    return SimpleNamespace(height=height, width=width, encoding=encoding,
                           is_bigendian=int(big), step=padded.shape[1],
                           data=_wrap(padded.tobytes(), kind))


@pytest.mark.parametrize('encoding', sorted(IMAGE_ENCODINGS))
@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('pad', [0, 3, 64])
def test_image_decode_sweep(encoding: str, big: bool, pad: int) -> None:
    pixels = _random_pixels(encoding, 5, 7, seed=len(encoding) + pad)
    for kind in DATA_KINDS:
        out = image_to_numpy(_image_msg(pixels, encoding, big=big, pad=pad, kind=kind))
        assert out.shape == pixels.shape
        assert out.dtype == pixels.dtype  # native byte order
        assert out.dtype.isnative
        np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize('encoding', sorted(IMAGE_ENCODINGS))
def test_image_round_trip_through_sensor_msgs(encoding: str) -> None:
    pixels = _random_pixels(encoding, 4, 6, seed=3)
    msg = numpy_to_image(pixels, encoding)
    assert type(msg).__name__ == 'Image'
    assert (msg.height, msg.width, msg.encoding) == (4, 6, encoding)
    assert msg.step * msg.height == len(msg.data)
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)


def test_image_decode_is_zero_copy_in_native_order() -> None:
    pixels = _random_pixels('32FC1', 8, 9)
    msg = _image_msg(pixels, '32FC1', big=False, pad=4, kind='numpy')
    out = image_to_numpy(msg)
    assert np.shares_memory(out, msg.data)
    msg_rgb = _image_msg(_random_pixels('rgb8', 8, 9), 'rgb8', big=False, pad=0, kind='array')
    view = image_to_numpy(msg_rgb)
    view[0, 0, 0] = 7  # array.array is writable: the view writes through
    assert msg_rgb.data[0] == 7


def test_image_rosbags_message() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    image_t = store.types['sensor_msgs/msg/Image']
    header_t = store.types['std_msgs/msg/Header']
    time_t = store.types['builtin_interfaces/msg/Time']
    pixels = _random_pixels('16UC1', 3, 4)
    msg = image_t(header=header_t(stamp=time_t(sec=1, nanosec=2), frame_id='cam'), height=3,
                  width=4, encoding='16UC1', is_bigendian=1, step=8,
                  data=np.frombuffer(pixels.astype('>u2').tobytes(), dtype=np.uint8))
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)
    # And through the CDR serialiser, as a bag reader hands it back.
    raw = store.serialize_cdr(msg, 'sensor_msgs/msg/Image')
    back = store.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
    np.testing.assert_array_equal(image_to_numpy(back), pixels)


def test_image_unknown_encoding_names_it() -> None:
    msg = SimpleNamespace(height=1, width=2, encoding='nv21', is_bigendian=0, step=4,
                          data=b'\0' * 4)
    with pytest.raises(MessageError, match="unsupported image encoding 'nv21'"):
        image_to_numpy(msg)
    with pytest.raises(MessageError, match="'nv21'"):
        rgb_from_image(msg)


def test_image_short_data_raises() -> None:
    msg = SimpleNamespace(height=2, width=2, encoding='rgb8', is_bigendian=0, step=6,
                          data=b'\0' * 11)
    with pytest.raises(MessageError, match=r'data has 11 bytes, expected step x height = 6 x 2 = 12'):
        image_to_numpy(msg)


def test_image_step_smaller_than_row_raises() -> None:
    msg = SimpleNamespace(height=2, width=2, encoding='rgb8', is_bigendian=0, step=5,
                          data=b'\0' * 10)
    with pytest.raises(MessageError, match=r'step 5 is smaller than a row'):
        image_to_numpy(msg)


def test_image_missing_field_raises() -> None:
    msg = SimpleNamespace(height=2, width=2, is_bigendian=0, step=6, data=b'\0' * 12)
    with pytest.raises(MessageError, match="no field 'encoding'"):
        image_to_numpy(msg)


def test_image_bad_data_type_raises() -> None:
    msg = SimpleNamespace(height=1, width=1, encoding='mono8', is_bigendian=0, step=1, data=3.5)
    with pytest.raises(MessageError, match='must be bytes'):
        image_to_numpy(msg)


def test_image_empty() -> None:
    msg = SimpleNamespace(height=0, width=0, encoding='rgb8', is_bigendian=0, step=0, data=b'')
    assert image_to_numpy(msg).shape == (0, 0, 3)


@pytest.mark.parametrize('pad', [0, 5])
def test_rgb_from_image_layouts(pad: int) -> None:
    rgb = _random_pixels('rgb8', 4, 5)
    alpha = np.full((4, 5, 1), 200, np.uint8)
    cases = {
        'rgb8': rgb,
        'bgr8': rgb[:, :, ::-1],
        'rgba8': np.concatenate([rgb, alpha], axis=2),
        'bgra8': np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
        '8UC3': rgb,
        '8UC4': np.concatenate([rgb, alpha], axis=2),
    }
    for encoding, pixels in cases.items():
        for big in (False, True):
            out = rgb_from_image(_image_msg(np.ascontiguousarray(pixels), encoding, big=big, pad=pad))
            assert out.shape == (4, 5, 3) and out.dtype == np.uint8, encoding
            np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    mono = rgb[:, :, 0]
    for encoding in ('mono8', '8UC1'):
        out = rgb_from_image(_image_msg(mono, encoding, big=False, pad=pad))
        np.testing.assert_array_equal(out, np.stack([mono] * 3, axis=2))


def test_rgb_from_16bit_keeps_top_byte() -> None:
    mono16 = np.array([[0, 255, 256, 65535]], dtype=np.uint16)
    out = rgb_from_image(_image_msg(mono16, 'mono16', big=True, pad=0))
    np.testing.assert_array_equal(out[0, :, 1], [0, 0, 1, 255])
    bgr16 = np.zeros((1, 1, 3), np.uint16)
    bgr16[0, 0] = (0x0100, 0x0200, 0x0300)
    out = rgb_from_image(_image_msg(bgr16, 'bgr16', big=False, pad=0))
    np.testing.assert_array_equal(out[0, 0], [3, 2, 1])


@pytest.mark.parametrize(('encoding', 'code'), [('yuv422', cv2.COLOR_YUV2RGB_UYVY),
                                               ('yuv422_yuy2', cv2.COLOR_YUV2RGB_YUY2)])
def test_rgb_from_yuv422_matches_opencv(encoding: str, code: int) -> None:
    packed = _random_pixels(encoding, 6, 10, seed=8)  # (H, W, 2) uint8
    packed[0, :, :] = 0  # include the extremes
    packed[1, :, :] = 255
    got = rgb_from_image(_image_msg(packed, encoding, big=False, pad=6))
    expected = cv2.cvtColor(packed, code)
    assert got.shape == (6, 10, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize(('encoding', 'code'), [
    ('bayer_rggb8', cv2.COLOR_BayerBG2RGB), ('bayer_bggr8', cv2.COLOR_BayerRG2RGB),
    ('bayer_gbrg8', cv2.COLOR_BayerGR2RGB), ('bayer_grbg8', cv2.COLOR_BayerGB2RGB)])
def test_rgb_from_bayer(encoding: str, code: int) -> None:
    raw = _random_pixels(encoding, 6, 8, seed=2)
    got = rgb_from_image(_image_msg(raw, encoding, big=False, pad=2))
    np.testing.assert_array_equal(got, cv2.cvtColor(raw, code))
    raw16 = raw.astype(np.uint16) << 8
    got16 = rgb_from_image(_image_msg(raw16, encoding.replace('8', '16'), big=True, pad=0))
    # interpolation rounds at 16 bits, then the top byte is kept: within one step of 8-bit
    assert np.abs(got16.astype(int) - got.astype(int)).max() <= 1


def test_bayer_pattern_names() -> None:
    """A flat red scene seen through each pattern must come out red."""
    where_red = {'bayer_rggb8': (0, 0), 'bayer_bggr8': (1, 1), 'bayer_gbrg8': (1, 0),
                 'bayer_grbg8': (0, 1)}
    for encoding, (r0, c0) in where_red.items():
        raw = np.zeros((8, 8), np.uint8)
        raw[r0::2, c0::2] = 200
        rgb = rgb_from_image(_image_msg(raw, encoding, big=False, pad=0))
        centre = rgb[2:6, 2:6].reshape(-1, 3)
        assert (centre[:, 0] == 200).all() and (centre[:, 1:] == 0).all(), encoding


def test_rgb_from_yuv422_odd_width_raises() -> None:
    msg = _image_msg(np.zeros((2, 3, 2), np.uint8), 'yuv422', big=False, pad=0)
    with pytest.raises(MessageError, match="'yuv422' needs an even width; got 3"):
        rgb_from_image(msg)


def test_rgb_encodings_set() -> None:
    assert {'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '8UC1', '8UC3', 'yuv422',
            'yuv422_yuy2'} <= RGB_ENCODINGS
    assert not {'32FC1', '16UC1', '64FC1', '8SC1'} & RGB_ENCODINGS
    for encoding in RGB_ENCODINGS:  # every member really converts
        pixels = _random_pixels(encoding, 2, 4)
        assert rgb_from_image(_image_msg(pixels, encoding, big=False, pad=0)).shape == (2, 4, 3)
    for encoding in set(IMAGE_ENCODINGS) - RGB_ENCODINGS:
        pixels = _random_pixels(encoding, 2, 4)
        with pytest.raises(MessageError, match=f'cannot convert image encoding {encoding!r}'):
            rgb_from_image(_image_msg(pixels, encoding, big=False, pad=0))


def test_rgb_from_depth_encoding_raises() -> None:
    msg = _image_msg(np.zeros((2, 2), np.float32), '32FC1', big=False, pad=0)
    with pytest.raises(MessageError, match="cannot convert image encoding '32FC1' to RGB"):
        rgb_from_image(msg)


def test_numpy_to_image_checks_shape_and_dtype() -> None:
    with pytest.raises(ShapeError, match=r"'rgb8' expects an array of shape \(H, W, 3\); got \(2, 2\)"):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'rgb8')
    with pytest.raises(ShapeError, match="'32FC1' expects dtype float32; got float64"):
        numpy_to_image(np.zeros((2, 2)), '32FC1')
    with pytest.raises(MessageError, match="unsupported image encoding 'nv12'"):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'nv12')


def test_numpy_to_image_keeps_header() -> None:
    from std_msgs.msg import Header

    header = Header(frame_id='camera_optical')
    header.stamp.sec = 12
    msg = numpy_to_image(np.zeros((2, 3, 3), np.uint8), 'bgr8', header)
    assert msg.header.frame_id == 'camera_optical' and msg.header.stamp.sec == 12
    assert isinstance(msg.data, array.array)


def test_depth_to_image_32fc1_rep118() -> None:
    depth = np.array([[1.5, np.nan, np.inf], [-1.0, 0.0, 80.25]], dtype=np.float32)
    msg = depth_to_image(depth, None, '32FC1')
    assert msg.encoding == '32FC1'
    out = image_to_numpy(msg)
    # REP 118: no estimate is NaN in a float image (0.0 would be a point at the camera centre).
    np.testing.assert_array_equal(out, [[1.5, np.nan, np.nan], [np.nan, np.nan, 80.25]])
    np.testing.assert_array_equal(depth_from_image(msg), [[1.5, 0, 0], [0, 0, 80.25]])


def test_depth_from_image_reads_old_zero_and_rep118_nan() -> None:
    """Bags written before REP 118 output have 0.0 for no data; both decode to the same array."""
    old = numpy_to_image(np.array([[0.0, 2.5]], np.float32), '32FC1')
    new = numpy_to_image(np.array([[np.nan, 2.5]], np.float32), '32FC1')
    np.testing.assert_array_equal(depth_from_image(old), [[0.0, 2.5]])
    np.testing.assert_array_equal(depth_from_image(new), [[0.0, 2.5]])


def test_depth_to_image_16uc1_millimetres() -> None:
    depth = np.array([[1.2344, 1.2346, np.nan, 65.535], [-2.0, 70.0, 0.0004, 65.5354]],
                     dtype=np.float64)
    msg = depth_to_image(depth, None, encoding='16UC1')
    assert msg.encoding == '16UC1'
    out = image_to_numpy(msg)
    assert out.dtype == np.uint16
    # 70 m does not fit in 16 bits of millimetres: invalid (0), not clipped to 65.535 m.
    np.testing.assert_array_equal(out, [[1234, 1235, 0, 65535], [0, 0, 0, 65535]])
    np.testing.assert_allclose(depth_from_image(msg), out.astype(np.float32) / 1000, rtol=1e-6)


def test_depth_to_image_errors() -> None:
    with pytest.raises(ShapeError, match=r'depth_m must have shape \(H, W\); got \(2, 2, 1\)'):
        depth_to_image(np.zeros((2, 2, 1), np.float32))
    with pytest.raises(MessageError, match="32FC1 or 16UC1; got '8UC1'"):
        depth_to_image(np.zeros((2, 2), np.float32), None, '8UC1')
    with pytest.raises(MessageError, match="'rgb8' is not a depth encoding"):
        depth_from_image(numpy_to_image(np.zeros((1, 1, 3), np.uint8), 'rgb8'))


# -- PointCloud2 ----------------------------------------------------------------------------

_PF = {np.dtype(code).str[1:]: num for num, code in POINTFIELD_DTYPES.items()}


def _cloud_msg(columns: dict[str, np.ndarray], offsets: dict[str, int], point_step: int, *,
               big: bool = False, height: int = 1, row_pad: int = 0, kind: str = 'bytes'):
    """A duck-typed PointCloud2 with the given per-field offsets, byte order and padding."""
    n = len(next(iter(columns.values())))
    order = '>' if big else '<'
    record = np.dtype({'names': list(columns),
                       'formats': [c.dtype.newbyteorder(order) for c in columns.values()],
                       'offsets': [offsets[name] for name in columns], 'itemsize': point_step})
    packed = np.zeros(n, dtype=record)
    for name, col in columns.items():
        packed[name] = col
    width = n // height
    rows = packed.view(np.uint8).reshape(height, width * point_step)
    rows = np.concatenate([rows, np.full((height, row_pad), 0xEE, np.uint8)], axis=1)
    fields = [SimpleNamespace(name=name, offset=offsets[name],
                              datatype=_PF[col.dtype.newbyteorder('<').str[1:]], count=1)
              for name, col in columns.items()]
    return SimpleNamespace(height=height, width=width, fields=fields, is_bigendian=big,
                           point_step=point_step, row_step=width * point_step + row_pad,
                           data=_wrap(rows.tobytes(), kind), is_dense=False)


def _xyz(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-50, 50, size=(n, 3))


@pytest.mark.parametrize('xyz_type', ['f4', 'f8'])
@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('layout', ['packed', 'shuffled_padded', 'organised_row_pad'])
def test_cloud_layout_sweep(xyz_type: str, big: bool, layout: str) -> None:
    n = 24
    xyz = _xyz(n).astype(xyz_type)
    intensity = np.linspace(0, 1, n).astype(np.float32)
    ring = (np.arange(n) % 16).astype(np.uint16)
    t = np.linspace(0, 0.1, n).astype(np.float64)
    size = np.dtype(xyz_type).itemsize
    columns = {'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'intensity': intensity,
               'ring': ring, 'time': t}
    height, row_pad = 1, 0
    if layout == 'packed':
        offsets = {'x': 0, 'y': size, 'z': 2 * size, 'intensity': 3 * size,
                   'ring': 3 * size + 4, 'time': 3 * size + 6}
        step = 3 * size + 14
    else:
        # z first, padding between fields, point_step rounded up with slack (Ouster-like).
        offsets = {'z': 4, 'time': 4 + size, 'x': 16 + size, 'ring': 16 + 2 * size,
                   'y': 20 + 2 * size, 'intensity': 20 + 3 * size}
        step = 48 + 3 * size
        if layout == 'organised_row_pad':
            height, row_pad = 4, 13
    for kind in DATA_KINDS:
        msg = _cloud_msg(columns, offsets, step, big=big, height=height, row_pad=row_pad,
                         kind=kind)
        got, extras = pointcloud2_to_xyz(msg, ('intensity', 'ring', 'time'))
        assert got.dtype == np.float32 and got.shape == (n, 3) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, xyz.astype(np.float32))
        np.testing.assert_array_equal(extras['intensity'], intensity)
        np.testing.assert_array_equal(extras['ring'], ring)
        np.testing.assert_array_equal(extras['time'], t)
        assert extras['ring'].dtype == np.uint16 and extras['time'].dtype == np.float64
        assert all(a.dtype.isnative for a in extras.values())


@pytest.mark.parametrize('big', [False, True])
def test_cloud_non_finite_points_dropped_with_their_extras(big: bool) -> None:
    n = 40
    xyz = _xyz(n, seed=2).astype(np.float32)
    bad = [0, 5, 17, 39]
    xyz[0, 0] = np.nan
    xyz[5, 1] = np.inf
    xyz[17, 2] = -np.inf
    xyz[39] = np.nan
    ring = np.arange(n, dtype=np.uint8)
    msg = _cloud_msg({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'ring': ring},
                     {'x': 0, 'y': 4, 'z': 8, 'ring': 12}, 16, big=big)
    got, extras = pointcloud2_to_xyz(msg, ['ring'])
    keep = np.setdiff1d(np.arange(n), bad)
    np.testing.assert_array_equal(got, xyz[keep])
    np.testing.assert_array_equal(extras['ring'], keep)


def test_cloud_huge_float64_becomes_inf_and_is_dropped() -> None:
    xyz = np.array([[1.0, 2.0, 3.0], [1e300, 0.0, 0.0]])
    msg = _cloud_msg({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]}, {'x': 0, 'y': 8, 'z': 16}, 24)
    got, _ = pointcloud2_to_xyz(msg)
    np.testing.assert_array_equal(got, [[1, 2, 3]])


def test_cloud_round_trip_sensor_msgs_and_fields() -> None:
    xyz = _xyz(100, seed=4).astype(np.float32)
    extra = {'intensity': np.arange(100, dtype=np.float32),
             'ring': (np.arange(100) % 32).astype(np.uint16),
             't': np.arange(100, dtype=np.uint32)}
    msg = xyz_to_pointcloud2(xyz, None, extra)
    assert type(msg).__name__ == 'PointCloud2'
    assert msg.point_step == 22 and msg.row_step == 2200 and msg.is_dense
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('intensity', 12, 7), ('ring', 16, 4), ('t', 18, 6)]
    fields = pointcloud2_fields(msg)
    assert fields['ring'] == np.uint16 and fields['t'] == np.uint32
    got, extras = pointcloud2_to_xyz(msg, tuple(extra))
    np.testing.assert_array_equal(got, xyz)
    for name, values in extra.items():
        np.testing.assert_array_equal(extras[name], values)
        assert extras[name].dtype == values.dtype


def test_cloud_rosbags_message_through_cdr() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    cloud_t = store.types['sensor_msgs/msg/PointCloud2']
    field_t = store.types['sensor_msgs/msg/PointField']
    header_t = store.types['std_msgs/msg/Header']
    time_t = store.types['builtin_interfaces/msg/Time']
    xyz = _xyz(10, seed=5)
    data = np.zeros(10, dtype=np.dtype({'names': ['x', 'y', 'z'], 'formats': ['>f8'] * 3,
                                        'offsets': [0, 8, 16], 'itemsize': 32}))
    for i, name in enumerate('xyz'):
        data[name] = xyz[:, i]
    msg = cloud_t(header=header_t(stamp=time_t(sec=0, nanosec=0), frame_id='lidar'), height=2,
                  width=5, fields=[field_t(name=c, offset=8 * i, datatype=8, count=1)
                                   for i, c in enumerate('xyz')],
                  is_bigendian=True, point_step=32, row_step=160,
                  data=data.view(np.uint8).reshape(-1), is_dense=True)
    raw = store.serialize_cdr(msg, 'sensor_msgs/msg/PointCloud2')
    back = store.deserialize_cdr(raw, 'sensor_msgs/msg/PointCloud2')
    got, _ = pointcloud2_to_xyz(back)
    np.testing.assert_allclose(got, xyz.astype(np.float32))


def test_cloud_empty() -> None:
    msg = xyz_to_pointcloud2(np.zeros((0, 3), np.float32), None,
                             {'ring': np.zeros(0, np.uint16)})
    got, extras = pointcloud2_to_xyz(msg, ['ring'])
    assert got.shape == (0, 3) and extras['ring'].shape == (0,) and extras['ring'].dtype == np.uint16


def _simple_cloud(n: int = 4, **overrides):
    msg = _cloud_msg({c: np.zeros(n, np.float32) for c in 'xyz'}, {'x': 0, 'y': 4, 'z': 8}, 12)
    for key, value in overrides.items():
        setattr(msg, key, value)
    return msg


def test_cloud_missing_xyz_raises() -> None:
    msg = _cloud_msg({'x': np.zeros(3, np.float32), 'y': np.zeros(3, np.float32)},
                     {'x': 0, 'y': 4}, 8)
    with pytest.raises(MessageError, match=r'lacks field\(s\) z; it has x, y'):
        pointcloud2_to_xyz(msg)


def test_cloud_missing_extra_raises() -> None:
    with pytest.raises(MessageError, match=r'lacks field\(s\) intensity'):
        pointcloud2_to_xyz(_simple_cloud(), ['intensity'])


def test_cloud_data_length_mismatch_raises() -> None:
    msg = _simple_cloud(4)
    msg.data = msg.data[:-1]
    with pytest.raises(MessageError, match=r'data has 47 bytes, expected row_step x height = 48 x 1 = 48'):
        pointcloud2_to_xyz(msg)
    msg = _simple_cloud(4, width=5)
    with pytest.raises(MessageError, match=r'row_step 48 is smaller than width x point_step = 5 x 12'):
        pointcloud2_to_xyz(msg)


def test_cloud_field_outside_point_step_raises() -> None:
    msg = _simple_cloud(4)
    msg.fields[2] = SimpleNamespace(name='z', offset=10, datatype=7, count=1)
    with pytest.raises(MessageError, match="field 'z' at offset 10 .* does not fit in point_step 12"):
        pointcloud2_to_xyz(msg)


def test_cloud_unknown_datatype_raises() -> None:
    msg = _simple_cloud(4)
    msg.fields[0] = SimpleNamespace(name='x', offset=0, datatype=9, count=1)
    with pytest.raises(MessageError, match="field 'x' has unknown datatype 9"):
        pointcloud2_to_xyz(msg)


def test_cloud_duplicate_field_raises() -> None:
    msg = _simple_cloud(4)
    msg.fields.append(SimpleNamespace(name='y', offset=0, datatype=7, count=1))
    with pytest.raises(MessageError, match="field 'y' appears twice"):
        pointcloud2_to_xyz(msg)


def test_cloud_xyz_count_not_one_raises() -> None:
    msg = _simple_cloud(4)
    msg.fields[0] = SimpleNamespace(name='x', offset=0, datatype=7, count=2)
    with pytest.raises(MessageError, match="field 'x' has count 2; expected 1"):
        pointcloud2_to_xyz(msg)


def test_cloud_extra_with_count() -> None:
    n = 6
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rec = np.zeros(n, dtype=np.dtype({'names': ['x', 'y', 'z', 'rgb'],
                                      'formats': ['<f4', '<f4', '<f4', ('u1', (3,))],
                                      'offsets': [0, 4, 8, 12], 'itemsize': 16}))
    for i, c in enumerate('xyz'):
        rec[c] = xyz[:, i]
    rec['rgb'] = rng.integers(0, 255, (n, 3))
    fields = [SimpleNamespace(name=c, offset=4 * i, datatype=7, count=1) for i, c in enumerate('xyz')]
    fields.append(SimpleNamespace(name='rgb', offset=12, datatype=2, count=3))
    msg = SimpleNamespace(height=1, width=n, fields=fields, is_bigendian=False, point_step=16,
                          row_step=16 * n, data=rec.tobytes())
    _, extras = pointcloud2_to_xyz(msg, ['rgb'])
    np.testing.assert_array_equal(extras['rgb'], rec['rgb'])


def test_xyz_to_pointcloud2_shape_errors() -> None:
    with pytest.raises(ShapeError, match=r'xyz must have shape \(N, 3\); got \(4, 2\)'):
        xyz_to_pointcloud2(np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"extra field 'i' must have shape \(4,\); got \(3,\)"):
        xyz_to_pointcloud2(np.zeros((4, 3)), None, {'i': np.zeros(3)})
    with pytest.raises(ShapeError, match="extra field 'c' has dtype complex128"):
        xyz_to_pointcloud2(np.zeros((4, 3)), None, {'c': np.zeros(4, complex)})
    with pytest.raises(ShapeError, match="extra field 'x' duplicates"):
        xyz_to_pointcloud2(np.zeros((4, 3)), None, {'x': np.zeros(4)})


# -- CameraInfo -----------------------------------------------------------------------------

def _camera_info(**overrides):
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.width, msg.height = 640, 480
    msg.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    msg.d = [-0.1, 0.01, 0.001, 0.002, 0.0]
    msg.distortion_model = 'plumb_bob'
    for key, value in overrides.items():
        setattr(msg, key, value)
    return msg


def test_camera_info_to_model() -> None:
    model = camera_info_to_model(_camera_info())
    assert isinstance(model, CameraModel)
    assert (model.width, model.height, model.distortion_model) == (640, 480, 'plumb_bob')
    np.testing.assert_array_equal(model.K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    np.testing.assert_array_equal(model.D, [-0.1, 0.01, 0.001, 0.002, 0.0])


def test_camera_info_binning_and_roi() -> None:
    """image_geometry's convention: shift by the ROI offset, then divide by the binning."""
    binned = camera_info_to_model(_camera_info(binning_x=2, binning_y=4))
    assert (binned.width, binned.height) == (320, 120)
    np.testing.assert_allclose(binned.K, [[250, 0, 160], [0, 127.5, 60], [0, 0, 1]])
    info = _camera_info()
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 40, 400, 300
    cropped = camera_info_to_model(info)
    assert (cropped.width, cropped.height) == (400, 300)
    np.testing.assert_allclose(cropped.K, [[500, 0, 220], [0, 510, 200], [0, 0, 1]])
    info.binning_x = info.binning_y = 2
    both = camera_info_to_model(info)
    assert (both.width, both.height) == (200, 150)
    np.testing.assert_allclose(both.K, [[250, 0, 110], [0, 255, 100], [0, 0, 1]])
    assert camera_info_to_model(_camera_info(binning_x=1, binning_y=0)) == camera_info_to_model(
        _camera_info())


def test_camera_info_models_and_aliases() -> None:
    eq = camera_info_to_model(_camera_info(distortion_model='fisheye', d=[0.1, 0.01, 0.0, 0.0]))
    assert eq.distortion_model == 'equidistant'
    rat = camera_info_to_model(_camera_info(distortion_model='rational_polynomial',
                                            d=[0.1, 0.01, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0]))
    assert rat.D.shape == (8,)
    none = camera_info_to_model(_camera_info(distortion_model='', d=[]))
    assert none.distortion_model == 'none' and none.D.shape == (0,)


def test_camera_info_rosbags_and_ros1_names() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    info_t = store.types['sensor_msgs/msg/CameraInfo']
    header_t = store.types['std_msgs/msg/Header']
    time_t = store.types['builtin_interfaces/msg/Time']
    roi_t = store.types['sensor_msgs/msg/RegionOfInterest']
    msg = info_t(header=header_t(stamp=time_t(sec=0, nanosec=0), frame_id='c'), height=480,
                 width=640, distortion_model='plumb_bob', d=np.array([0.1, 0, 0, 0, 0.0]),
                 k=np.array([500.0, 0, 320, 0, 500, 240, 0, 0, 1]), r=np.eye(3).reshape(-1),
                 p=np.zeros(12), binning_x=0, binning_y=0,
                 roi=roi_t(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    assert camera_info_to_model(msg).fx == 500.0
    ros1 = SimpleNamespace(width=64, height=32, K=[50.0, 0, 32, 0, 50, 16, 0, 0, 1], D=[],
                           distortion_model='')
    assert camera_info_to_model(ros1).cx == 32.0


def test_camera_info_zero_focal_refused() -> None:
    with pytest.raises(MessageError, match='positive focal lengths fx, fy; got fx=0.0'):
        camera_info_to_model(_camera_info(k=[0.0] * 9))


def test_camera_info_unknown_model_refused() -> None:
    with pytest.raises(MessageError, match="unknown distortion model 'kannala_brandt8'"):
        camera_info_to_model(_camera_info(distortion_model='kannala_brandt8'))


def test_camera_info_coefficients_without_model_refused() -> None:
    with pytest.raises(MessageError, match='distortion coefficients .* but no distortion_model'):
        camera_info_to_model(_camera_info(distortion_model=''))


def test_camera_info_zero_size_refused() -> None:
    with pytest.raises(MessageError, match='camera size must be positive; got width 0'):
        camera_info_to_model(_camera_info(width=0))


def test_camera_info_too_many_coefficients_refused() -> None:
    with pytest.raises(MessageError, match="'equidistant' takes 4 coefficients; got 5"):
        camera_info_to_model(_camera_info(distortion_model='equidistant', d=[0.1, 0, 0, 0, 0.3]))


# -- reference implementations, where a full ROS install has them --------------------------

def test_agrees_with_cv_bridge() -> None:
    cv_bridge = pytest.importorskip('cv_bridge')
    bridge = cv_bridge.CvBridge()
    for encoding in ('rgb8', 'bgr8', 'mono8', 'mono16', '16UC1', '32FC1', 'bgra8'):
        pixels = _random_pixels(encoding, 6, 5)
        msg = numpy_to_image(pixels, encoding)
        np.testing.assert_array_equal(image_to_numpy(msg), bridge.imgmsg_to_cv2(msg))
        back = bridge.cv2_to_imgmsg(pixels, encoding=encoding)
        np.testing.assert_array_equal(image_to_numpy(back), pixels)
    rgb = _random_pixels('rgb8', 6, 5)
    msg = numpy_to_image(rgb[:, :, ::-1].copy(), 'bgr8')
    np.testing.assert_array_equal(rgb_from_image(msg), bridge.imgmsg_to_cv2(msg, 'rgb8'))


def test_agrees_with_rosbags_image() -> None:
    """ternaris/rosbags-image (cv_bridge's pure-Python twin); it ignores row padding."""
    rosbags_image = pytest.importorskip('rosbags.image')
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    image_t = store.types['sensor_msgs/msg/Image']
    header_t = store.types['std_msgs/msg/Header']
    time_t = store.types['builtin_interfaces/msg/Time']
    for encoding in sorted(set(rosbags_image.image.ENCODINGMAP) & set(IMAGE_ENCODINGS)):
        for big in (False, True):
            pixels = _random_pixels(encoding, 6, 8, seed=4)
            dup = _image_msg(pixels, encoding, big=big, pad=0)
            msg = image_t(header=header_t(stamp=time_t(sec=0, nanosec=0), frame_id='c'),
                          height=6, width=8, encoding=encoding, is_bigendian=int(big),
                          step=dup.step, data=np.frombuffer(dup.data, np.uint8))
            np.testing.assert_array_equal(image_to_numpy(msg),
                                          rosbags_image.image_to_cvimage(msg), err_msg=encoding)
            if encoding.endswith('16'):
                continue  # they scale 16 -> 8 bit differently (cv2 convertScaleAbs)
            theirs = rosbags_image.image_to_cvimage(msg, 'rgb8')
            diff = np.abs(rgb_from_image(msg).astype(int) - theirs.astype(int)).max()
            assert diff <= 1, encoding


def test_agrees_with_sensor_msgs_py() -> None:
    point_cloud2 = pytest.importorskip('sensor_msgs_py.point_cloud2')
    xyz = _xyz(50, seed=9).astype(np.float32)
    xyz[3] = np.nan
    msg = xyz_to_pointcloud2(xyz, None, {'intensity': np.arange(50, dtype=np.float32)})
    ref = point_cloud2.read_points_numpy(msg, field_names=('x', 'y', 'z'), skip_nans=True)
    got, _ = pointcloud2_to_xyz(msg)
    np.testing.assert_array_equal(got, ref)
    ours = xyz_to_pointcloud2(xyz[:3])
    theirs = point_cloud2.create_cloud_xyz32(ours.header, xyz[:3])
    assert bytes(ours.data) == bytes(theirs.data)


@pytest.mark.parametrize('seed', range(10))
def test_corrupted_messages_raise_message_error_only(seed: int) -> None:
    """Random corruption of sizes, steps, fields and data: decoding either works or raises
    MessageError, never anything else."""
    rng = np.random.default_rng(seed)
    bad_values = [0, 1, -1, 3, 7, 1000, 2**31, None, 'x', 2.5]
    outcomes = set()
    for trial in range(200):
        cloud = _cloud_msg({'x': np.ones(6, np.float32), 'y': np.ones(6, np.float32),
                            'z': np.ones(6, np.float32), 'i': np.ones(6, np.uint16)},
                           {'x': 0, 'y': 4, 'z': 8, 'i': 12}, 16, height=2)
        image = _image_msg(_random_pixels('rgb8', 3, 4), 'rgb8', big=False, pad=2)
        for _ in range(int(rng.integers(1, 3))):
            target = cloud if rng.random() < 0.5 else image
            if target is cloud and rng.random() < 0.4:
                field = cloud.fields[int(rng.integers(0, 4))]
                attr = ['name', 'offset', 'datatype', 'count'][int(rng.integers(0, 4))]
                setattr(field, attr, bad_values[int(rng.integers(0, len(bad_values)))])
                continue
            attrs = (['height', 'width', 'point_step', 'row_step', 'is_bigendian', 'data']
                     if target is cloud else ['height', 'width', 'step', 'encoding', 'data'])
            attr = attrs[int(rng.integers(0, len(attrs)))]
            if attr == 'data':
                value = rng.choice([b'', b'\0' * int(rng.integers(0, 300)), None, 17])
            elif attr == 'encoding':
                value = rng.choice(['rgb8', 'mono16', '32FC1', 'nope', '', 'yuv422'])
            else:
                value = bad_values[int(rng.integers(0, len(bad_values)))]
            setattr(target, attr, value)
        for decode in (lambda: pointcloud2_to_xyz(cloud, ['i']), lambda: image_to_numpy(image),
                       lambda: rgb_from_image(image)):
            try:
                decode()
                outcomes.add('ok')
            except MessageError:
                outcomes.add('error')
    assert outcomes == {'ok', 'error'}
