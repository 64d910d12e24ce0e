"""Write a SyntheticSequence as a rosbag2 (MCAP): camera, CameraInfo, LiDAR, depth truth, tf.

Images and sweeps keep their own unaligned stamps (30 Hz / 10 Hz); each message is logged at
its header stamp. The extrinsic goes into ``/tf_static`` as a small tf tree rooted at
``base_link`` (``base_link -> camera_optical_frame``, ``base_link -> lidar``).
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
    pointcloud2_message,
    tf_static_message,
)
from g2mono_ros.errors import ConfigError
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
}
#: ``image_format`` choices: raw sensor_msgs/Image, or image_transport's ``compressed``.
IMAGE_FORMATS = ('raw', 'jpeg', 'png')
DEPTH_FORMATS = ('raw', 'compressedDepth')
BASE_FRAME = 'base_link'
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
    topics: dict[str, str] | None = None


def write_synthetic_bag(path: str | Path, seed: int, frames: int, *,
                        progress: Callable[[int, int], None] | None = None,
                        image_format: str = 'raw', depth_format: str = 'raw',
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
        **sequence_options: passed to ``SyntheticSequence`` (width, height, beams, distortion,
            range_noise_m, ...).

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
    events = [(seq.image_stamp_ns(i), 0, i) for i in range(frames)]
    events += [(seq.scan_stamp_ns(j), 1, j) for j in range(seq.num_scans)]
    events.sort()
    T_body_cam = np.eye(4)
    T_body_cam[:3, :3] = R_OPTICAL_FROM_REP103.T
    tree = [StaticTransform(BASE_FRAME, CAMERA_FRAME, T_body_cam),
            StaticTransform(BASE_FRAME, LIDAR_FRAME, T_body_cam @ seq.T_cam_lidar)]
    metadata = {'seed': seed, 'frames': frames, 'lidar': seq.lidar.name,
                'width': seq.camera.width, 'height': seq.camera.height,
                'T_cam_lidar': seq.T_cam_lidar.tolist()}
    image_stamps: list[int] = []
    scan_stamps: list[int] = []
    with BagWriter(path) as bag:
        store = bag.store
        bag.set_metadata(METADATA_KEY, json.dumps(metadata))
        first = events[0][0]
        bag.write(SYNTH_TOPICS['tf_static'], tf_static_message(store, tree, first), first)
        for done, (stamp, kind, index) in enumerate(events, start=1):
            if kind == 0:
                frame = seq.image_frame(index)
                image = (image_message(store, frame.rgb, 'rgb8', stamp, CAMERA_FRAME)
                         if image_format == 'raw' else
                         compressed_image_message(store, frame.rgb, image_format, stamp,
                                                  CAMERA_FRAME))
                bag.write(topics['image'], image, stamp)
                bag.write(SYNTH_TOPICS['camera_info'],
                          camera_info_message(store, seq.camera, stamp, CAMERA_FRAME), stamp)
                depth = (image_message(store, frame.depth_gt, '32FC1', stamp, CAMERA_FRAME)
                         if depth_format == 'raw' else
                         compressed_depth_message(store, frame.depth_gt, stamp, CAMERA_FRAME))
                bag.write(topics['depth'], depth, stamp)
                image_stamps.append(stamp)
            else:
                scan = seq.scan(index)
                cloud = pointcloud2_message(store, scan.points, stamp, LIDAR_FRAME,
                                            {'intensity': scan.intensity, 'ring': scan.ring})
                bag.write(SYNTH_TOPICS['points'], cloud, stamp)
                scan_stamps.append(stamp)
            if progress is not None:
                progress(done, len(events))
    return SyntheticBagInfo(Path(path), frames, len(scan_stamps), seq.camera,
                            seq.T_cam_lidar.copy(), CAMERA_FRAME, LIDAR_FRAME,
                            tuple(image_stamps), tuple(scan_stamps), topics)
