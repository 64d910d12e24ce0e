"""Write a SyntheticSequence as a rosbag2 (MCAP): camera, CameraInfo, LiDAR, depth truth, tf.

Images and sweeps keep their own unaligned stamps (30 Hz / 10 Hz); each message is logged at
its header stamp (or, with sensor delays, that much later). The extrinsic goes into
``/tf_static`` as a small tf tree rooted at ``base_link`` (``base_link -> camera_optical_frame``,
``base_link -> lidar``); a moving rig adds odometry (``/odom``, ``/tf`` odom -> base_link) and
per-point LiDAR times in a chosen driver's layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from g2mono_ros.bagio import (
    BagWriter,
    StaticTransform,
    camera_info_message,
    compressed_depth_message,
    compressed_image_message,
    image_message,
    odometry_message,
    pointcloud2_message,
    tf_static_message,
)
from g2mono_ros.errors import ConfigError
from g2mono_ros.fusion.deskew import TIME_LAYOUTS
from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.synth.sequence import SyntheticSequence
from g2mono_ros.fusion.transforms import R_OPTICAL_FROM_REP103

__all__ = ['IMAGE_FORMATS', 'SYNTH_TOPICS', 'SyntheticBagInfo', 'write_synthetic_bag']

#: role -> topic name (the node's default topic names).
SYNTH_TOPICS = {
    'image': '/camera/image_raw',
    'camera_info': '/camera/camera_info',
    'points': '/lidar/points',
    'depth': '/ground_truth/depth',
    'tf_static': '/tf_static',
    'odom': '/odom',
    'tf': '/tf',
}
#: ``image_format`` choices: raw sensor_msgs/Image, or image_transport's ``compressed``.
IMAGE_FORMATS = ('raw', 'jpeg', 'png')
DEPTH_FORMATS = ('raw', 'compressedDepth')
BASE_FRAME = 'base_link'
ODOM_FRAME = 'odom'
CAMERA_FRAME = 'camera_optical_frame'
LIDAR_FRAME = 'lidar'
METADATA_KEY = 'g2mono_ros.synth'


@dataclass(frozen=True)
class SyntheticBagInfo:
    """What ``write_synthetic_bag`` wrote.

    Attributes:
        path: the bag directory.
        num_images: camera frames (also CameraInfo and depth messages).
        num_scans: LiDAR sweeps.
        camera: the intrinsics in CameraInfo.
        T_cam_lidar: (4, 4) the extrinsic stored in ``/tf_static``.
        camera_frame, lidar_frame: frame ids of the image/CameraInfo/depth and of the clouds.
        image_stamps_ns, scan_stamps_ns: header stamps written.
        topics: role -> topic written (``image`` is ``/camera/image_raw/compressed`` for a
            compressed bag, ``depth`` ``/ground_truth/depth/compressedDepth``).
        odom_stamps_ns: odometry stamps written (empty without ``odom_rate_hz``).
        T_base_lidar: (4, 4) LiDAR -> ``base_link`` (the odometry's child frame).
    """

    path: Path
    num_images: int
    num_scans: int
    camera: CameraModel
    T_cam_lidar: np.ndarray
    camera_frame: str
    lidar_frame: str
    image_stamps_ns: tuple[int, ...]
    scan_stamps_ns: tuple[int, ...]
    odom_stamps_ns: tuple[int, ...] = ()
    T_base_lidar: np.ndarray | None = None
    topics: dict[str, str] | None = None


def write_synthetic_bag(path: str | Path, seed: int, frames: int, *,
                        progress: Callable[[int, int], None] | None = None,
                        image_format: str = 'raw', depth_format: str = 'raw',
                        odom_rate_hz: float = 0.0, point_time_layout: str | None = None,
                        image_delay_s: float = 0.0, scan_delay_s: float = 0.0,
                        odom_delay_s: float = 0.0,
                        **sequence_options: Any) -> SyntheticBagInfo:
    """Render ``frames`` camera frames and the sweeps between them into a new bag.

    Args:
        path: bag directory to create (must not exist; removed again on failure).
        seed: scene/stamp seed.
        frames: number of camera frames (>= 1).
        progress: called as ``progress(done, total)`` after each message group.
        image_format: ``raw`` (rgb8 Image on ``/camera/image_raw``) | ``jpeg`` | ``png``
            (CompressedImage on ``/camera/image_raw/compressed``, as image_transport names it).
        depth_format: ``raw`` (32FC1 on ``/ground_truth/depth``) | ``compressedDepth`` (16UC1
            millimetres PNG on ``/ground_truth/depth/compressedDepth``; depth beyond 65.5 m
            becomes 0).
        odom_rate_hz: > 0 writes the rig's exact pose as ``nav_msgs/Odometry`` on ``/odom``
            (``odom`` -> ``base_link``, twist in ``base_link``) and the same on ``/tf`` at this
            rate, from 0.2 s before the first image to 0.2 s after the last sweep ends.
        point_time_layout: a ``fusion.deskew.TIME_LAYOUTS`` name (``velodyne``, ``ouster``,
            ``hesai``, ``livox``, ``livox_offset``, ``autoware``): each point's firing time in
            that driver's field, type, unit and reference. Default: ``velodyne`` when the
            sequence has ``rolling_sweep``, else no time field.
        image_delay_s, scan_delay_s, odom_delay_s: log time = header stamp + this (a driver's
            latency; a LiDAR stamped at sweep start publishes after the sweep ends).
        **sequence_options: passed to ``SyntheticSequence`` (width, height, beams, distortion,
            range_noise_m, speed_mps, yaw_rate_dps, rolling_sweep, ...).

    Returns:
        SyntheticBagInfo.

    Raises:
        BagError: the path exists or writing fails.
        ConfigError: a bad sequence option, image_format or depth_format.
    """
    for name, value, choices in (('image_format', image_format, IMAGE_FORMATS),
                                 ('depth_format', depth_format, DEPTH_FORMATS)):
        if value not in choices:
            msg = f'{name} must be one of {", ".join(choices)}; got {value!r}'
            raise ConfigError(msg)
    topics = dict(SYNTH_TOPICS)
    if image_format != 'raw':
        topics['image'] = f"{SYNTH_TOPICS['image']}/compressed"
    if depth_format != 'raw':
        topics['depth'] = f"{SYNTH_TOPICS['depth']}/compressedDepth"
    seq = SyntheticSequence(seed, num_frames=frames, **sequence_options)
    layouts = {layout.name: layout for layout in TIME_LAYOUTS}
    if point_time_layout is None and seq.rolling_sweep:
        point_time_layout = 'velodyne'
    if point_time_layout is not None and point_time_layout not in layouts:
        msg = (f"point_time_layout must be one of {', '.join(layouts)} or None; "
               f'got {point_time_layout!r}')
        raise ConfigError(msg)
    for name, value in (('odom_rate_hz', odom_rate_hz), ('image_delay_s', image_delay_s),
                        ('scan_delay_s', scan_delay_s), ('odom_delay_s', odom_delay_s)):
        if not value >= 0:
            msg = f'{name} must be >= 0; got {value!r}'
            raise ConfigError(msg)
    delays = [round(d * 1e9) for d in (image_delay_s, scan_delay_s, odom_delay_s)]
    # (log time, kind, index, header stamp); kind 0 image, 1 scan, 2 odometry.
    events = [(seq.image_stamp_ns(i) + delays[0], 0, i, seq.image_stamp_ns(i))
              for i in range(frames)]
    events += [(seq.scan_stamp_ns(j) + delays[1], 1, j, seq.scan_stamp_ns(j))
               for j in range(seq.num_scans)]
    odom_stamps: list[int] = []
    if odom_rate_hz > 0:
        first = seq.image_stamp_ns(0) - 200_000_000
        last = max(seq.image_stamp_ns(frames - 1),
                   seq.scan_stamp_ns(seq.num_scans - 1) + round(1e9 / seq.lidar_rate_hz))
        step = 1e9 / odom_rate_hz
        count = int((last + 200_000_000 - first) / step) + 1
        odom_stamps = [first + round(k * step) for k in range(count)]
        events += [(stamp + delays[2], 2, k, stamp) for k, stamp in enumerate(odom_stamps)]
    events.sort()
    T_body_cam = np.eye(4)
    T_body_cam[:3, :3] = R_OPTICAL_FROM_REP103.T
    tree = [StaticTransform(BASE_FRAME, CAMERA_FRAME, T_body_cam),
            StaticTransform(BASE_FRAME, LIDAR_FRAME, T_body_cam @ seq.T_cam_lidar)]
    metadata = {'seed': seed, 'frames': frames, 'lidar': seq.lidar.name,
                'width': seq.camera.width, 'height': seq.camera.height,
                'T_cam_lidar': seq.T_cam_lidar.tolist()}
    moving = {'speed_mps': sequence_options.get('speed_mps'),
              'yaw_rate_dps': sequence_options.get('yaw_rate_dps'),
              'rolling_sweep': seq.rolling_sweep or None, 'point_time_layout': point_time_layout,
              'odom_rate_hz': odom_rate_hz or None,
              'delays_s': [image_delay_s, scan_delay_s, odom_delay_s] if any(delays) else None}
    # Only for a moving rig: a static bag's metadata (and bytes) stay as they were.
    if any(v is not None for k, v in moving.items() if k != 'speed_mps'):
        metadata.update({k: v for k, v in moving.items() if v is not None})
    image_stamps: list[int] = []
    scan_stamps: list[int] = []
    with BagWriter(path) as bag:
        store = bag.store
        bag.set_metadata(METADATA_KEY, json.dumps(metadata))
        first = min(events[0][0], events[0][3])
        bag.write(SYNTH_TOPICS['tf_static'], tf_static_message(store, tree, first), first)
        for done, (log_ns, kind, index, stamp) in enumerate(events, start=1):
            if kind == 0:
                frame = seq.image_frame(index)
                image = (image_message(store, frame.rgb, 'rgb8', stamp, CAMERA_FRAME)
                         if image_format == 'raw' else
                         compressed_image_message(store, frame.rgb, image_format, stamp,
                                                  CAMERA_FRAME))
                bag.write(topics['image'], image, log_ns)
                bag.write(SYNTH_TOPICS['camera_info'],
                          camera_info_message(store, seq.camera, stamp, CAMERA_FRAME), log_ns)
                depth = (image_message(store, frame.depth_gt, '32FC1', stamp, CAMERA_FRAME)
                         if depth_format == 'raw' else
                         compressed_depth_message(store, frame.depth_gt, stamp, CAMERA_FRAME))
                bag.write(topics['depth'], depth, log_ns)
                image_stamps.append(stamp)
            elif kind == 1:
                scan = seq.scan(index)
                extra = {'intensity': scan.intensity, 'ring': scan.ring}
                if point_time_layout is not None:
                    layout = layouts[point_time_layout]
                    extra[layout.field] = _time_field(layout, scan, len(scan.points))
                cloud = pointcloud2_message(store, scan.points, stamp, LIDAR_FRAME, extra)
                bag.write(SYNTH_TOPICS['points'], cloud, log_ns)
                scan_stamps.append(stamp)
            else:
                T, linear, angular = _odometry(seq, stamp)
                bag.write(SYNTH_TOPICS['odom'], odometry_message(
                    store, stamp, ODOM_FRAME, BASE_FRAME, T, linear, angular), log_ns)
                bag.write(SYNTH_TOPICS['tf'], tf_static_message(
                    store, [StaticTransform(ODOM_FRAME, BASE_FRAME, T)], stamp), log_ns)
            if progress is not None:
                progress(done, len(events))
    return SyntheticBagInfo(Path(path), frames, len(scan_stamps), seq.camera,
                            seq.T_cam_lidar.copy(), CAMERA_FRAME, LIDAR_FRAME,
                            tuple(image_stamps), tuple(scan_stamps), tuple(odom_stamps),
                            T_body_cam @ seq.T_cam_lidar, topics)


def _time_field(layout: Any, scan: Any, count: int) -> np.ndarray:
    """Each point's firing time written as ``layout`` does (relative to the header stamp, or
    absolute)."""
    offsets = (np.zeros(count, dtype=np.int64) if scan.time_offset_ns is None
               else scan.time_offset_ns)
    scale = {'s': 1e-9, 'ms': 1e-6, 'us': 1e-3, 'ns': 1.0}[layout.unit]
    values = offsets if layout.reference == 'relative' else offsets + scan.stamp_ns
    if layout.dtype.startswith('u') or layout.dtype.startswith('i'):
        return np.round(values * scale).astype(layout.dtype)
    return (values.astype(np.float64) * scale).astype(layout.dtype)


def _odometry(seq: SyntheticSequence, stamp_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body pose (odom = world) and its twist in the body frame (central difference)."""
    T = seq.T_world_body(stamp_ns)
    dt_ns = 1_000_000
    before, after = seq.T_world_body(stamp_ns - dt_ns), seq.T_world_body(stamp_ns + dt_ns)
    R = T[:3, :3]
    linear = R.T @ (after[:3, 3] - before[:3, 3]) / (2e-9 * dt_ns)
    dR = before[:3, :3].T @ after[:3, :3]  # small rotation over 2 ms, body frame
    angular = np.array([dR[2, 1] - dR[1, 2], dR[0, 2] - dR[2, 0], dR[1, 0] - dR[0, 1]]) \
        / (2.0 * 2e-9 * dt_ns)
    return T, linear, angular
