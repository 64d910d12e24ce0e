"""The ROS side of motion compensation: nav_msgs/Odometry into a ``fusion.motion.PoseBuffer``,
and a tf2_ros source that asks ``lookup_transform_full`` through a fixed frame.

``odometry_to_pose`` is duck-typed (rclpy and rosbags messages alike, no message import), so the
evaluator reads bag odometry with it; tf2_ros and nav_msgs are imported only where used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from g2mono_ros.errors import MessageError
from g2mono_ros.fusion.motion import PoseBuffer, PoseLookup
from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

__all__ = ['TfMotion', 'cloud_point_stamps', 'odometry_to_pose', 'subscribe_odometry',
           'transform_msg_to_matrix']

#: Spacing of the TF samples across a sweep; poses between them are interpolated (slerp).
TF_SAMPLE_NS = 5_000_000


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def cloud_point_stamps(msg: Any, *, field: str = 'auto', unit: str = 'auto'
                       ) -> np.ndarray | int:
    """Each point's stamp for deskew, or the header stamp (scan-level) when the cloud has no
    time field (or ``field`` is ``none``). The node and the evaluator both read times here.

    Args:
        msg: a sensor_msgs/PointCloud2 (rclpy or rosbags).
        field, unit: the ``point_time_field`` / ``point_time_unit`` parameters.

    Returns:
        (N,) int64 nanoseconds aligned with ``codecs.pointcloud2_to_xyz(msg)``'s points, or the
        header stamp as an int.

    Raises:
        MessageError: a named field is missing, or no unit puts the times near the stamp.
    """
    from g2mono_ros.fusion.deskew import detect_time_field, point_stamps_ns
    from g2mono_ros.ros.codecs import pointcloud2_fields, pointcloud2_to_xyz

    stamp = _stamp_ns(msg.header)
    name = detect_time_field(pointcloud2_fields(msg), field)
    if name is None:
        return stamp
    _, extras = pointcloud2_to_xyz(msg, (name,))
    return point_stamps_ns(extras[name], stamp, field=name, unit=unit)


def odometry_to_pose(msg: Any) -> tuple[int, np.ndarray]:
    """A nav_msgs/Odometry as (stamp ns, ``T_frame_child`` (4, 4) float64).

    ``header.frame_id`` is the fixed frame (e.g. ``odom``), ``child_frame_id`` the rig's body.

    Raises:
        MessageError: a non-finite or zero quaternion, or a non-finite position.
    """
    pose = msg.pose.pose
    t = (pose.position.x, pose.position.y, pose.position.z)
    q = (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w)
    if not all(math.isfinite(v) for v in (*t, *q)) or sum(v * v for v in q) < 1e-12:
        msg_ = f'Odometry pose must be finite with a non-zero quaternion; got t={t}, q={q}'
        raise MessageError(msg_)
    return _stamp_ns(msg.header), transform_from_translation_quaternion(t, q)


def transform_msg_to_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform -> (4, 4) float64."""
    t, r = transform.translation, transform.rotation
    return transform_from_translation_quaternion((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))


def subscribe_odometry(node: Any, topic: str, poses: PoseBuffer, qos: Any,
                       on_error: Callable[[str, str], None],
                       jump_back_ns: int = 1_000_000_000, **subscription_options: Any) -> Any:
    """Subscribe ``node`` to ``topic`` (nav_msgs/Odometry) and feed ``poses``.

    A bad message is reported as ``on_error(kind, detail)`` and skipped; a stamp more than
    ``jump_back_ns`` older than the newest (a bag restarting) clears the buffer.
    ``subscription_options`` go to ``create_subscription`` (e.g. ``qos_overriding_options``).
    """
    from nav_msgs.msg import Odometry

    def on_odometry(msg: Any) -> None:
        try:
            stamp, T = odometry_to_pose(msg)
        except MessageError as exc:
            on_error('malformed_odometry', str(exc))
            return
        newest = poses.newest_ns
        if newest is not None and stamp < newest - jump_back_ns:
            on_error('odometry_time_jump_back', 'odometry stamps went back; pose buffer cleared')
            poses.clear()
        poses.add(stamp, T)

    return node.create_subscription(Odometry, topic, on_odometry, qos, **subscription_options)


class TfMotion:
    """LiDAR motion from TF: ``lookup_transform_full(lidar@image_time <- lidar@t, fixed_frame)``.

    Like rtabmap's ``pointcloud_to_depthimage``: the LiDAR frame at two times, related through
    a frame that does not move with the rig. Looked up every ``TF_SAMPLE_NS`` across the sweep and
    interpolated between (one lookup per point would cost seconds).

    Args:
        node: the rclpy node (its clock drives the tf2 listener).
        fixed_frame: e.g. ``odom`` (a leading ``/`` is dropped: tf2 rejects such frame ids).
        timeout_s: how long one lookup may wait for TF to arrive.
        max_gap_s, max_extrapolation_s: as ``PoseBuffer`` for the samples.
        buffer: a tf2_ros Buffer that a listener on ``node`` already fills (the extrinsic's);
            None creates one with its own listener.
    """

    def __init__(self, node: Any, fixed_frame: str, *, timeout_s: float = 0.05,
                 max_gap_s: float = 0.5, max_extrapolation_s: float = 0.05,
                 buffer: Any = None) -> None:
        import tf2_ros

        self._tf2 = tf2_ros
        self.listener = None
        self._node = node
        self._own_buffer = buffer is None
        if buffer is None:
            buffer = tf2_ros.Buffer(node=node)
            self.listener = tf2_ros.TransformListener(buffer, node, spin_thread=False)
        self.buffer = buffer
        # ROS 1 style '/odom': tf2 raises InvalidArgumentException for it on every lookup.
        self.fixed_frame = fixed_frame.lstrip('/')
        self._timeout_s = timeout_s
        self.max_gap_s = max_gap_s
        self.max_extrapolation_s = max_extrapolation_s
        self.last_error = ''

    def close(self) -> None:
        """Unregister the own listener's subscriptions and the own Buffer's service (lifecycle
        cleanup); a shared buffer is its owner's to release."""
        if self.listener is not None:
            self.listener.unregister()
            self.listener = None
        if self._own_buffer:
            from g2mono_ros.ros.tf_lookup import release_buffer

            release_buffer(self._node, self.buffer)
            self._own_buffer = False

    def for_frame(self, lidar_frame: str) -> _FrameMotion:
        """A ``MotionSource`` for clouds in ``lidar_frame`` (``/velodyne`` is read as
        ``velodyne``, as the extrinsic resolver reads it)."""
        return _FrameMotion(self, lidar_frame.lstrip('/'))

    def lookup(self, lidar_frame: str, from_ns: int, to_ns: int, *, wait: bool = True
               ) -> np.ndarray | None:
        """``T_lidar(to)_lidar(from)`` (4, 4), or None (recorded in ``last_error``).

        ``wait``: allow up to the timeout for TF to arrive (else only what is buffered).
        Every tf2 failure counts as no pose: ``TransformException`` is the base of tf2's
        Lookup, Connectivity, Extrapolation, InvalidArgument (an empty frame id) and Timeout
        exceptions.
        """
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            stamped = self.buffer.lookup_transform_full(
                lidar_frame, Time(nanoseconds=int(to_ns)), lidar_frame,
                Time(nanoseconds=int(from_ns)), self.fixed_frame,
                timeout=Duration(nanoseconds=round(self._timeout_s * 1e9) if wait else 0))
        except self._tf2.TransformException as exc:
            self.last_error = f'{type(exc).__name__}: {exc}'
            return None
        return transform_msg_to_matrix(stamped.transform)


class _FrameMotion:
    """``TfMotion`` bound to one LiDAR frame (the cloud's ``frame_id``)."""

    def __init__(self, tf: TfMotion, lidar_frame: str) -> None:
        self._tf = tf
        self._frame = lidar_frame

    def sensor_motion(self, from_stamps_ns: np.ndarray, to_stamp_ns: int) -> PoseLookup:
        stamps = np.asarray(from_stamps_ns, dtype=np.int64).reshape(-1)
        samples = PoseBuffer(max_gap_s=self._tf.max_gap_s,
                             max_extrapolation_s=self._tf.max_extrapolation_s)
        if len(stamps):
            lo, hi = int(stamps.min()), int(stamps.max())
            count = max(1, math.ceil((hi - lo) / TF_SAMPLE_NS))
            grid = np.unique(np.linspace(lo, hi, count + 1).round().astype(np.int64))
            # Only the newest sample waits for TF: once it is there, the older ones are too,
            # and a missing tree costs one timeout per scan, not one per sample.
            newest = self._tf.lookup(self._frame, int(grid[-1]), to_stamp_ns)
            if newest is not None:
                samples.add(int(grid[-1]), newest)
                for sample in grid[:-1]:
                    T = self._tf.lookup(self._frame, int(sample), to_stamp_ns, wait=False)
                    if T is not None:
                        samples.add(int(sample), T)
        # Relative poses share the target frame, so interpolating them is interpolating poses.
        return samples.lookup(stamps)
