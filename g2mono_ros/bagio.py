"""Reading and writing rosbag2 files (MCAP or SQLite) with ``rosbags``, without a ROS install.

Reading: ``BagReader`` opens a bag directory or a bare ``.mcap``/``.db3`` file, lists topics,
iterates typed (or raw CDR) messages with their stamps, decodes images, clouds and CameraInfo
through ``g2mono_ros.ros.codecs``, and finds the LiDAR -> camera extrinsic in ``/tf_static``.
Writing: ``BagWriter`` plus message builders for the types our bags hold. Every rosbags, OS or
deserialisation failure is wrapped into ``BagError`` naming the file and what is missing.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.errors import BagError, MessageError

__all__ = [
    'CAMERA_INFO_TYPE',
    'IMAGE_TYPE',
    'POINTCLOUD2_TYPE',
    'ODOMETRY_TYPE',
    'TF_TYPE',
    'BagMessage',
    'BagReader',
    'BagTopic',
    'BagWriter',
    'StaticTransform',
    'camera_info_message',
    'compressed_depth_message',
    'compressed_image_message',
    'image_message',
    'list_topics',
    'open_bag',
    'odometry_message',
    'pointcloud2_message',
    'read_extrinsic',
    'stamp_to_ns',
    'tf_static_message',
]

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINTCLOUD2_TYPE = 'sensor_msgs/msg/PointCloud2'
ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'
TF_TYPE = 'tf2_msgs/msg/TFMessage'
TF_STATIC_TOPIC = '/tf_static'

# Exceptions rosbags and its deserialiser raise on damaged files (wrapped at this boundary).
_CORRUPT = (OSError, ValueError, KeyError, IndexError, EOFError, struct.error, AssertionError)


def _typestore() -> Any:
    """The Humble typestore: the message definitions we write are identical in later distros."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (``sec``, ``nanosec``) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class BagTopic(NamedTuple):
    """A topic in a bag: ``name``, ``msgtype`` (``pkg/msg/Type``), message ``count``."""

    name: str
    msgtype: str
    count: int


class BagMessage(NamedTuple):
    """One message read from a bag.

    Attributes:
        topic: topic name.
        log_time_ns: the bag's receive timestamp, nanoseconds.
        stamp_ns: ``header.stamp`` in nanoseconds, or ``log_time_ns`` for header-less types.
        msg: the deserialised rosbags message (same field names as rclpy's).
    """

    topic: str
    log_time_ns: int
    stamp_ns: int
    msg: Any


class StaticTransform(NamedTuple):
    """``T_parent_child`` (4, 4): maps points in ``child`` to ``parent`` (tf convention)."""

    parent: str
    child: str
    transform: np.ndarray


def _resolve_bag_path(path: Path) -> Path:
    if not path.exists():
        msg = f'bag {str(path)!r} does not exist'
        raise BagError(msg)
    if path.is_dir() and not (path / 'metadata.yaml').exists():
        # An interrupted recording has no metadata.yaml; a single storage file is still readable.
        files = sorted(path.glob('*.mcap')) + sorted(path.glob('*.db3'))
        if len(files) != 1:
            msg = (f'bag directory {str(path)!r} has no metadata.yaml and '
                   f'{len(files)} .mcap/.db3 files (expected a rosbag2 directory or one file)')
            raise BagError(msg)
        return files[0]
    return path


class BagReader:
    """A rosbag2 opened for reading; use as a context manager (or call ``close``).

    Args:
        path: bag directory (with ``metadata.yaml``), or a ``.mcap`` / ``.db3`` file.

    Raises:
        BagError: missing path, not a rosbag2, or a corrupt file.
    """

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader, ReaderError

        self.path = Path(path)
        resolved = _resolve_bag_path(self.path)
        self._store = _typestore()
        try:
            self._reader = Reader(resolved)
            self._reader.open()
        except (ReaderError, *_CORRUPT) as exc:
            msg = f'cannot open bag {str(self.path)!r}: {exc}'
            raise BagError(msg) from exc

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag (idempotent)."""
        if self._reader.is_open:
            self._reader.close()

    @property
    def topics(self) -> dict[str, BagTopic]:
        """Topic name -> BagTopic, for every topic in the bag."""
        return {name: BagTopic(name, info.msgtype or '', int(info.msgcount))
                for name, info in self._reader.topics.items()}

    @property
    def start_ns(self) -> int:
        """Earliest log time in the bag, nanoseconds."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Just after the latest log time in the bag, nanoseconds."""
        return int(self._reader.end_time)

    def require_topics(self, names: Iterable[str]) -> None:
        """Check that every topic exists and holds at least one message.

        Raises:
            BagError: names the missing or empty topics and lists those present.
        """
        topics = self.topics
        missing = [name for name in names if name not in topics or topics[name].count == 0]
        if missing:
            present = ', '.join(f'{t.name} ({t.msgtype}, {t.count})' for t in topics.values())
            msg = (f'bag {str(self.path)!r} lacks topic(s) {", ".join(missing)}; '
                   f'it has: {present or "no topics"}')
            raise BagError(msg)

    def _connections(self, topics: Sequence[str]) -> list[Any]:
        self.require_topics(topics)
        return [c for c in self._reader.connections if c.topic in topics]

    def raw_messages(self, topics: str | Sequence[str]
                     ) -> Iterator[tuple[str, str, int, bytes]]:
        """Serialised messages in log-time order: ``(topic, msgtype, log_time_ns, cdr_bytes)``.

        The CDR bytes are what rclpy publishes as a serialised message (for live replay).

        Raises:
            BagError: a topic is missing, or the file is corrupt.
        """
        names = [topics] if isinstance(topics, str) else list(topics)
        # Checked here, not on first iteration, so a missing topic fails at the call.
        return self._iter_raw(names, self._connections(names))

    def _iter_raw(self, names: list[str], connections: list[Any]
                  ) -> Iterator[tuple[str, str, int, bytes]]:
        try:
            for conn, log_time, raw in self._reader.messages(connections=connections):
                yield conn.topic, conn.msgtype, int(log_time), bytes(raw)
        except Exception as exc:  # rosbags raises assorted types on damaged chunks
            msg = f'bag {str(self.path)!r} is corrupt while reading {", ".join(names)}: {exc}'
            raise BagError(msg) from exc

    def messages(self, topics: str | Sequence[str]) -> Iterator[BagMessage]:
        """Deserialised messages of one or more topics in log-time order.

        Raises:
            BagError: a topic is missing, its type is unknown, or the data is corrupt.
        """
        return self._iter_typed(self.raw_messages(topics))

    def _iter_typed(self, raw_messages: Iterator[tuple[str, str, int, bytes]]
                    ) -> Iterator[BagMessage]:
        for topic, msgtype, log_time, raw in raw_messages:
            try:
                msg = self._store.deserialize_cdr(raw, msgtype)
            except Exception as exc:  # unknown type (KeyError/TypesysError) or bad CDR
                err = f'cannot deserialise a {msgtype} on {topic} in {str(self.path)!r}: {exc}'
                raise BagError(err) from exc
            header = getattr(msg, 'header', None)
            stamp = stamp_to_ns(header.stamp) if header is not None else log_time
            yield BagMessage(topic, log_time, stamp, msg)

    def first_message(self, topic: str) -> BagMessage:
        """The first message of ``topic``.

        Raises:
            BagError: the topic is missing or empty.
        """
        for message in self.messages(topic):
            return message
        msg = f'bag {str(self.path)!r} has no message on {topic}'
        raise BagError(msg)

    def frame_id(self, topic: str) -> str:
        """``header.frame_id`` of the topic's first message (leading '/' stripped)."""
        return str(self.first_message(topic).msg.header.frame_id).lstrip('/')

    def camera_model(self, topic: str = '/camera/camera_info',
                     camera_model: str = 'raw') -> CameraModel:
        """CameraModel from the first CameraInfo on ``topic``; ``camera_model`` ``raw`` (K + D)
        or ``rectified`` (P, no distortion), as ``codecs.camera_info_to_model``.

        Raises:
            BagError: no CameraInfo (missing/empty topic) or an invalid one.
        """
        from g2mono_ros.ros.codecs import camera_info_to_model

        topics = self.topics
        if topic not in topics or topics[topic].count == 0:
            infos = [t.name for t in topics.values() if t.msgtype == CAMERA_INFO_TYPE]
            msg = (f'bag {str(self.path)!r} has no CameraInfo on {topic}'
                   + (f' (CameraInfo topics: {", ".join(infos)})' if infos else
                      ' and no CameraInfo topic at all'))
            raise BagError(msg)
        try:
            return camera_info_to_model(self.first_message(topic).msg, camera_model)
        except MessageError as exc:
            msg = f'bag {str(self.path)!r}: invalid CameraInfo on {topic}: {exc}'
            raise BagError(msg) from exc

    def images(self, topic: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(stamp_ns, rgb (H, W, 3) uint8)`` for each Image or CompressedImage (jpeg, png;
        e.g. ``/camera/image_raw/compressed``) on ``topic``.

        Raises:
            BagError: missing topic, corrupt data or an undecodable image.
        """
        from g2mono_ros.ros.compressed import rgb_from_any_image

        return ((m.stamp_ns, _decode(rgb_from_any_image, m, self.path))
                for m in self.messages(topic))

    def depth_images(self, topic: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(stamp_ns, depth (H, W) float32 metres, 0 = none)`` for each depth Image
        (32FC1 metres or 16UC1 millimetres) or ``compressedDepth`` CompressedImage.

        Raises:
            BagError: missing topic, corrupt data or an undecodable image.
        """
        from g2mono_ros.ros.compressed import depth_from_any_image

        return ((m.stamp_ns, _decode(depth_from_any_image, m, self.path))
                for m in self.messages(topic))

    def point_clouds(self, topic: str, extra_fields: Sequence[str] = ()
                     ) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
        """``(stamp_ns, xyz (N, 3) float32, extras)`` for each PointCloud2 on ``topic``.

        Raises:
            BagError: missing topic, corrupt data, or a cloud lacking a requested field.
        """
        from g2mono_ros.ros.codecs import pointcloud2_to_xyz

        def decode(msg: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            return pointcloud2_to_xyz(msg, extra_fields)

        return ((m.stamp_ns, *_decode(decode, m, self.path)) for m in self.messages(topic))

    def static_transforms(self, topic: str = TF_STATIC_TOPIC) -> list[StaticTransform]:
        """Every transform in the bag's ``/tf_static`` messages (later ones override earlier).

        Raises:
            BagError: the bag has no ``/tf_static`` topic.
        """
        if topic not in self.topics:
            msg = (f'bag {str(self.path)!r} has no {topic} topic, so no camera/LiDAR extrinsic; '
                   'record the static transform (tf2_ros static_transform_publisher)')
            raise BagError(msg)
        latest: dict[tuple[str, str], StaticTransform] = {}
        for message in self.messages(topic):
            for tf in message.msg.transforms:
                parent = str(tf.header.frame_id).lstrip('/')
                child = str(tf.child_frame_id).lstrip('/')
                tr, rot = tf.transform.translation, tf.transform.rotation
                latest[(parent, child)] = StaticTransform(
                    parent, child, _transform(tr.x, tr.y, tr.z, rot.x, rot.y, rot.z, rot.w))
        return list(latest.values())

    def read_extrinsic(self, camera_frame: str, lidar_frame: str) -> np.ndarray:
        """``T_cam_lidar`` (4, 4) float64 (``p_cam = R @ p_lidar + t``) from ``/tf_static``,
        composing a chain of static transforms when needed (e.g. via ``base_link``).

        Raises:
            BagError: no ``/tf_static``, or the two frames are not connected in it.
        """
        return _chain(self.static_transforms(), camera_frame.lstrip('/'),
                      lidar_frame.lstrip('/'), self.path)


def _decode(fn: Any, message: BagMessage, path: Path) -> Any:
    try:
        return fn(message.msg)
    except MessageError as exc:
        msg = f'bag {str(path)!r}: cannot decode {message.topic} at {message.stamp_ns} ns: {exc}'
        raise BagError(msg) from exc


def _transform(tx: float, ty: float, tz: float, qx: float, qy: float, qz: float,
               qw: float) -> np.ndarray:
    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

    return transform_from_translation_quaternion([tx, ty, tz], [qx, qy, qz, qw])


def _chain(transforms: Sequence[StaticTransform], target: str, source: str,
           path: Path) -> np.ndarray:
    """T_target_source by breadth-first search over the static tf tree (edges both ways)."""
    edges: dict[str, list[tuple[str, np.ndarray]]] = {}
    for tf in transforms:
        inverse = np.eye(4)
        inverse[:3, :3] = tf.transform[:3, :3].T
        inverse[:3, 3] = -tf.transform[:3, :3].T @ tf.transform[:3, 3]
        # T_parent_child takes child points to parent: an edge child -> parent.
        edges.setdefault(tf.child, []).append((tf.parent, tf.transform))
        edges.setdefault(tf.parent, []).append((tf.child, inverse))
    if source == target and source in edges:
        return np.eye(4)
    # found[frame] = T_frame_source
    found: dict[str, np.ndarray] = {source: np.eye(4)}
    queue = deque([source])
    while queue:
        frame = queue.popleft()
        for nxt, T_next_frame in edges.get(frame, []):
            if nxt not in found:
                found[nxt] = T_next_frame @ found[frame]
                if nxt == target:
                    return found[nxt]
                queue.append(nxt)
    frames = ', '.join(sorted(edges)) or 'none'
    msg = (f'bag {str(path)!r}: no static transform chain from LiDAR frame {source!r} to camera '
           f'frame {target!r} in /tf_static (frames there: {frames})')
    raise BagError(msg)


def open_bag(path: str | Path) -> BagReader:
    """Open a bag for reading (see ``BagReader``)."""
    return BagReader(path)


def list_topics(path: str | Path) -> dict[str, BagTopic]:
    """Topic name -> BagTopic of the bag at ``path``.

    Raises:
        BagError: missing or corrupt bag.
    """
    with BagReader(path) as bag:
        return bag.topics


def read_extrinsic(bag: str | Path | BagReader, camera_frame: str | None = None,
                   lidar_frame: str | None = None, *,
                   camera_info_topic: str = '/camera/camera_info',
                   points_topic: str = '/lidar/points') -> np.ndarray:
    """The LiDAR -> camera optical extrinsic ``T_cam_lidar`` (4, 4) float64 stored in a bag.

    Args:
        bag: a path or an open BagReader.
        camera_frame: defaults to the ``frame_id`` of the first CameraInfo on
            ``camera_info_topic``.
        lidar_frame: defaults to the ``frame_id`` of the first cloud on ``points_topic``.

    Raises:
        BagError: missing topics, no ``/tf_static``, or no chain between the frames.
    """
    if not isinstance(bag, BagReader):
        with BagReader(bag) as reader:
            return read_extrinsic(reader, camera_frame, lidar_frame,
                                  camera_info_topic=camera_info_topic, points_topic=points_topic)
    camera_frame = camera_frame or bag.frame_id(camera_info_topic)
    lidar_frame = lidar_frame or bag.frame_id(points_topic)
    return bag.read_extrinsic(camera_frame, lidar_frame)


# ---- writing ------------------------------------------------------------------------------

class BagWriter:
    """A new rosbag2 directory (format version 8; MCAP storage, or SQLite as Humble records).

    Topics are registered on first write. Use as a context manager: on an exception the
    partial bag is removed, so nothing half-written is left behind.

    Args:
        path: the bag directory to create; must not exist.
        latched_topics: topics offered with transient-local durability (``/tf_static``).
        storage: ``mcap`` or ``sqlite3``.

    Raises:
        BagError: the path exists or cannot be created, or an unknown storage.
    """

    def __init__(self, path: str | Path, *, latched_topics: Iterable[str] = (TF_STATIC_TOPIC,),
                 storage: str = 'mcap') -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        self.path = Path(path)
        self.store = _typestore()
        self._latched = set(latched_topics)
        self._connections: dict[str, Any] = {}
        plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
        if storage not in plugins:
            msg = f'bag storage must be mcap or sqlite3; got {storage!r}'
            raise BagError(msg)
        if self.path.exists():
            msg = f'bag {str(self.path)!r} exists already; not overwriting'
            raise BagError(msg)
        try:
            self._writer = Writer(self.path, version=8, storage_plugin=plugins[storage])
            self._writer.open()
        except (WriterError, OSError) as exc:
            msg = f'cannot create bag {str(self.path)!r}: {exc}'
            raise BagError(msg) from exc
        self._open = True

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def set_metadata(self, key: str, value: str) -> None:
        """Store a string in the bag's ``custom_data`` (metadata.yaml)."""
        self._writer.set_custom_data(key, value)

    def _qos(self, topic: str) -> list[Any]:
        from rosbags.interfaces import (
            Qos,
            QosDurability,
            QosHistory,
            QosLiveliness,
            QosReliability,
            QosTime,
        )

        if topic not in self._latched:
            return []
        zero = QosTime(0, 0)
        return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE,
                    QosDurability.TRANSIENT_LOCAL, zero, zero, QosLiveliness.AUTOMATIC, zero,
                    False)]

    def write(self, topic: str, msg: Any, log_time_ns: int) -> None:
        """Serialise a rosbags message (from the builders below) and append it.

        Raises:
            BagError: the writer fails (disk full, closed bag).
        """
        from rosbags.rosbag2 import WriterError

        msgtype = msg.__msgtype__
        try:
            conn = self._connections.get(topic)
            if conn is None:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.store,
                                                   offered_qos_profiles=self._qos(topic))
                self._connections[topic] = conn
            self._writer.write(conn, int(log_time_ns), self.store.serialize_cdr(msg, msgtype))
        except (WriterError, OSError) as exc:
            err = f'cannot write {topic} to bag {str(self.path)!r}: {exc}'
            raise BagError(err) from exc

    def close(self) -> None:
        """Finish the bag (writes the MCAP summary and metadata.yaml)."""
        if self._open:
            self._open = False
            self._writer.close()

    def abort(self) -> None:
        """Drop the partial bag directory."""
        import shutil

        if self._open:
            self._open = False
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the bag is being discarded anyway
                pass
        shutil.rmtree(self.path, ignore_errors=True)


def _header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    types = store.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                 nanosec=int(stamp_ns % 1_000_000_000))
    return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def image_message(store: Any, array: np.ndarray, encoding: str, stamp_ns: int,
                  frame_id: str) -> Any:
    """A rosbags sensor_msgs/Image. ``array``: (H, W) or (H, W, C) in the encoding's dtype
    (``rgb8`` uint8, ``32FC1`` float32, ``16UC1`` uint16), little-endian."""
    arr = np.ascontiguousarray(array)
    arr = arr.astype(arr.dtype.newbyteorder('<'), copy=False)
    height, width = arr.shape[:2]
    return store.types[IMAGE_TYPE](
        header=_header(store, stamp_ns, frame_id), height=int(height), width=int(width),
        encoding=encoding, is_bigendian=0, step=int(arr.strides[0]),
        data=np.frombuffer(arr.tobytes(), dtype=np.uint8))


def compressed_image_message(store: Any, rgb: np.ndarray, fmt: str, stamp_ns: int,
                             frame_id: str, *, jpeg_quality: int = 95) -> Any:
    """A rosbags sensor_msgs/CompressedImage of (H, W, 3) uint8 RGB, ``fmt`` jpeg or png, as
    image_transport's ``compressed`` plugin writes it."""
    from g2mono_ros.ros.compressed import compressed_image_payload

    format_, data = compressed_image_payload(rgb, fmt,  # type: ignore[arg-type]
                                             jpeg_quality=jpeg_quality)
    return store.types[COMPRESSED_IMAGE_TYPE](header=_header(store, stamp_ns, frame_id),
                                              format=format_,
                                              data=np.frombuffer(data, dtype=np.uint8))


def compressed_depth_message(store: Any, depth_m: np.ndarray, stamp_ns: int, frame_id: str,
                             encoding: str = '16UC1', *, depth_max_m: float = 10.0) -> Any:
    """A rosbags ``compressedDepth`` CompressedImage of (H, W) float32 metres (16UC1: lossless
    millimetres up to 65.5 m; 32FC1: quantised inverse depth below ``depth_max_m``)."""
    from g2mono_ros.ros.compressed import compressed_depth_payload

    format_, data = compressed_depth_payload(depth_m, encoding,  # type: ignore[arg-type]
                                             depth_max_m=depth_max_m)
    return store.types[COMPRESSED_IMAGE_TYPE](header=_header(store, stamp_ns, frame_id),
                                              format=format_,
                                              data=np.frombuffer(data, dtype=np.uint8))


def camera_info_message(store: Any, camera: CameraModel, stamp_ns: int, frame_id: str) -> Any:
    """A rosbags sensor_msgs/CameraInfo for ``camera`` (P = [K | 0], R = I)."""
    K = np.asarray(camera.K, dtype=np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    types = store.types
    roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
    model = 'plumb_bob' if camera.distortion_model == 'none' else camera.distortion_model
    D = np.asarray(camera.D, dtype=np.float64)
    if camera.distortion_model == 'none':
        D = np.zeros(5)
    return types[CAMERA_INFO_TYPE](
        header=_header(store, stamp_ns, frame_id), height=camera.height, width=camera.width,
        distortion_model=model, d=D.copy(), k=K.reshape(-1).copy(),
        r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def pointcloud2_message(store: Any, xyz: np.ndarray, stamp_ns: int, frame_id: str,
                        extra: Mapping[str, np.ndarray] | None = None) -> Any:
    """A rosbags unorganised sensor_msgs/PointCloud2: float32 x, y, z then ``extra`` fields in
    their own dtypes (e.g. intensity float32, ring uint16), packed, little-endian."""
    datatypes = {'i1': 1, 'u1': 2, 'i2': 3, 'u2': 4, 'i4': 5, 'u4': 6, 'f4': 7, 'f8': 8}
    pts = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    columns = {'x': pts[:, 0], 'y': pts[:, 1], 'z': pts[:, 2]}
    columns.update({name: np.asarray(values) for name, values in (extra or {}).items()})
    record = np.dtype({'names': list(columns),
                       'formats': [c.dtype.newbyteorder('<') for c in columns.values()]})
    packed = np.empty(len(pts), dtype=record)
    for name, values in columns.items():
        packed[name] = values
    field_type = store.types['sensor_msgs/msg/PointField']
    fields = [field_type(name=name, offset=int(record.fields[name][1]),
                         datatype=datatypes[record.fields[name][0].str[1:]], count=1)
              for name in columns]
    return store.types[POINTCLOUD2_TYPE](
        header=_header(store, stamp_ns, frame_id), height=1, width=len(pts), fields=fields,
        is_bigendian=False, point_step=record.itemsize, row_step=record.itemsize * len(pts),
        data=packed.view(np.uint8).reshape(-1), is_dense=bool(np.isfinite(pts).all()))


def tf_static_message(store: Any, transforms: Sequence[StaticTransform], stamp_ns: int) -> Any:
    """A rosbags tf2_msgs/TFMessage holding ``T_parent_child`` transforms."""
    from g2mono_ros.fusion.transforms import quaternion_from_rotation

    types = store.types
    stamped = []
    for tf in transforms:
        q = quaternion_from_rotation(tf.transform[:3, :3])
        t = tf.transform[:3, 3]
        stamped.append(types['geometry_msgs/msg/TransformStamped'](
            header=_header(store, stamp_ns, tf.parent), child_frame_id=tf.child,
            transform=types['geometry_msgs/msg/Transform'](
                translation=types['geometry_msgs/msg/Vector3'](x=float(t[0]), y=float(t[1]),
                                                               z=float(t[2])),
                rotation=types['geometry_msgs/msg/Quaternion'](x=float(q[0]), y=float(q[1]),
                                                               z=float(q[2]), w=float(q[3])))))
    return types[TF_TYPE](transforms=stamped)


def odometry_message(store: Any, stamp_ns: int, frame_id: str, child_frame_id: str,
                     T_frame_child: np.ndarray, linear_mps: np.ndarray,
                     angular_rad_s: np.ndarray) -> Any:
    """A rosbags nav_msgs/Odometry: pose ``T_frame_child`` (4, 4) and the twist (3,) + (3,) in
    ``child_frame_id`` (REP 105 / the message's definition); covariances zero (unknown)."""
    from g2mono_ros.fusion.transforms import quaternion_from_rotation

    types = store.types
    vec = types['geometry_msgs/msg/Vector3']
    t = T_frame_child[:3, 3]
    q = quaternion_from_rotation(T_frame_child[:3, :3])
    pose = types['geometry_msgs/msg/Pose'](
        position=types['geometry_msgs/msg/Point'](x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=types['geometry_msgs/msg/Quaternion'](x=float(q[0]), y=float(q[1]),
                                                          z=float(q[2]), w=float(q[3])))
    twist = types['geometry_msgs/msg/Twist'](
        linear=vec(x=float(linear_mps[0]), y=float(linear_mps[1]), z=float(linear_mps[2])),
        angular=vec(x=float(angular_rad_s[0]), y=float(angular_rad_s[1]),
                    z=float(angular_rad_s[2])))
    zeros = np.zeros(36, dtype=np.float64)
    return types[ODOMETRY_TYPE](
        header=_header(store, stamp_ns, frame_id), child_frame_id=child_frame_id,
        pose=types['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=zeros),
        twist=types['geometry_msgs/msg/TwistWithCovariance'](twist=twist, covariance=zeros.copy()))
