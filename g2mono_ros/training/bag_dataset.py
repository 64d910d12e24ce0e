"""Training frames from a robot's own rosbag: camera images paired with LiDAR scans.

Targets are the full projected scan (optionally merged with neighbouring scans through the
odometry), inputs are simulated from the paired scan alone, so recordings become training data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from g2mono_ros.errors import BagError, DatasetError, G2MonoError
from g2mono_ros.training.config import DataConfig
from g2mono_ros.training.datasets import FrameSample, ScanInView, _points_in_view, _resize_rgb

__all__ = ['RosbagSource', 'odometry_pose']

# Points this far (pixels at the network input size) outside the image are kept: the
# neighbouring scans merged into a target see the scene from slightly elsewhere.
_VIEW_MARGIN_PX = 32.0


def odometry_pose(msg: Any) -> np.ndarray:
    """``T_frame_child`` (4, 4) float64 of a nav_msgs/Odometry (``header.frame_id`` <- child)."""
    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return transform_from_translation_quaternion([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])


class RosbagSource:
    """Image/scan pairs of one bag, decoded once at the network input size.

    Each image (every ``frame_stride``-th) pairs with the scan nearest in header stamp, within
    ``sync_max_offset`` seconds. The extrinsic comes from the config or the bag's
    ``/tf_static``; with ``merge_neighbours`` = k, the k scans on each side are moved into the
    paired scan's frame with the odometry on ``odom_topic`` (of the LiDAR frame, or of a frame
    connected to it in ``/tf_static``) and projected together as the target.

    Raises:
        DatasetError: the bag is missing or unreadable, a topic is missing, no extrinsic, or
            no image pairs with a scan.
    """

    def __init__(self, config: DataConfig, out_hw: tuple[int, int], max_depth: float) -> None:
        self.config = config
        self.out_hw = out_hw
        self.max_depth = max_depth
        try:
            self._read(Path(config.path))
        except (BagError, G2MonoError) as exc:
            if isinstance(exc, DatasetError):
                raise
            msg = f'rosbag dataset {config.path!r}: {exc}'
            raise DatasetError(msg) from exc
        if not self.pairs:
            msg = (f'rosbag dataset {config.path!r}: no image on {config.image_topic} has a scan '
                   f'on {config.points_topic} within sync_max_offset={config.sync_max_offset} s')
            raise DatasetError(msg)
        if config.limit:
            self.pairs = self.pairs[:config.limit]
        self.targets: dict[int, np.ndarray] = {}

    # ---- reading ------------------------------------------------------------------------

    def _extrinsic(self, bag: Any) -> np.ndarray:
        from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

        c = self.config
        if c.extrinsic_translation and c.extrinsic_rotation:
            return transform_from_translation_quaternion(c.extrinsic_translation,
                                                         c.extrinsic_rotation)
        return bag.read_extrinsic(bag.frame_id(c.camera_info_topic), bag.frame_id(c.points_topic))

    def _read(self, path: Path) -> None:
        from g2mono_ros.bagio import BagReader
        from g2mono_ros.ros.codecs import pointcloud2_fields
        from g2mono_ros.ros.compressed import rgb_from_any_image

        c = self.config
        topics = [c.image_topic, c.camera_info_topic, c.points_topic]
        if c.merge_neighbours:
            topics.append(c.odom_topic)
        with BagReader(path) as bag:
            bag.require_topics(topics)
            camera = bag.camera_model(c.camera_info_topic, c.camera_model).scaled(
                self.out_hw[1], self.out_hw[0])
            self.T_cam_lidar = self._extrinsic(bag)
            self.camera = camera
            first_cloud = bag.first_message(c.points_topic).msg
            extra = ('ring',) if 'ring' in pointcloud2_fields(first_cloud) else ()
            self.scan_stamps: list[int] = []
            self.scans: list[tuple[np.ndarray, np.ndarray | None]] = []
            for stamp, xyz, extras in bag.point_clouds(c.points_topic, extra):
                finite = np.isfinite(xyz).all(axis=1)
                keep = finite & _points_in_view(np.where(finite[:, None], xyz, 0), self.T_cam_lidar,
                                                 camera, _VIEW_MARGIN_PX)
                ring = extras['ring'][keep].astype(np.int16) if 'ring' in extras else None
                self.scan_stamps.append(stamp)
                self.scans.append((xyz[keep].astype(np.float32), ring))
            self.poses = self._lidar_poses(bag) if c.merge_neighbours else None
            self.images: list[np.ndarray] = []
            self.pairs: list[tuple[int, int]] = []  # (image number, scan number)
            scan_ns = np.asarray(self.scan_stamps, dtype=np.int64)
            order = np.argsort(scan_ns)
            max_offset_ns = round(c.sync_max_offset * 1e9)
            for count, message in enumerate(bag.messages(c.image_topic)):
                if count % c.frame_stride:
                    continue
                if not scan_ns.size:
                    break
                nearest = int(order[np.argmin(np.abs(scan_ns[order] - message.stamp_ns))])
                if abs(int(scan_ns[nearest]) - message.stamp_ns) > max_offset_ns:
                    continue
                try:
                    rgb = rgb_from_any_image(message.msg)  # Image or CompressedImage
                except G2MonoError as exc:
                    msg = f'cannot decode {c.image_topic} at {message.stamp_ns} ns: {exc}'
                    raise DatasetError(msg) from exc
                self.images.append(_resize_rgb(rgb, self.out_hw))
                self.pairs.append((len(self.images) - 1, nearest))
                if c.limit and len(self.pairs) >= c.limit:
                    break

    def _lidar_poses(self, bag: Any) -> list[np.ndarray]:
        """``T_odom_lidar`` at every scan stamp (nearest odometry message)."""
        c = self.config
        stamps, poses, child = [], [], ''
        for message in bag.messages(c.odom_topic):
            stamps.append(message.stamp_ns)
            poses.append(odometry_pose(message.msg))
            child = str(message.msg.child_frame_id).lstrip('/')
        lidar_frame = bag.frame_id(c.points_topic)
        T_child_lidar = np.eye(4) if child in ('', lidar_frame) else bag.read_extrinsic(child, lidar_frame)
        odom_ns = np.asarray(stamps, dtype=np.int64)
        return [poses[int(np.argmin(np.abs(odom_ns - s)))] @ T_child_lidar for s in self.scan_stamps]

    # ---- frames -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.pairs)

    def _target(self, number: int) -> np.ndarray:
        from g2mono_ros.fusion.projection import project_points_to_depth
        from g2mono_ros.fusion.transforms import invert_transform

        if number in self.targets:
            return self.targets[number]
        _, scan_number = self.pairs[number]
        clouds = [self.scans[scan_number][0]]
        k = self.config.merge_neighbours
        if k and self.poses is not None:
            T_cur_odom = invert_transform(self.poses[scan_number])
            for other in range(max(0, scan_number - k), min(len(self.scans), scan_number + k + 1)):
                if other == scan_number:
                    continue
                T = T_cur_odom @ self.poses[other]
                pts = self.scans[other][0].astype(np.float64)
                clouds.append((pts @ T[:3, :3].T + T[:3, 3]).astype(np.float32))
        target, _ = project_points_to_depth(np.concatenate(clouds), self.T_cam_lidar, self.camera,
                                            min_range=0.1, max_range=self.max_depth)
        self.targets[number] = target
        return target

    def load(self, index: int, rng: np.random.Generator | None) -> FrameSample:
        del rng  # decoded at the input size: no crop
        image_number, scan_number = self.pairs[index]
        points, ring = self.scans[scan_number]
        scan = ScanInView(points, ring, self.T_cam_lidar, self.camera)
        return FrameSample(self.images[image_number], self._target(index), scan)
