"""The LiDAR hold-out protocol: ground truth from withheld LiDAR points when a bag has none.

Per scan, a fixed fraction of the points that project into the image is chosen from a seed and
the scan's stamp, removed from the cloud the network (or the live node) receives, and projected
on their own as the targets. The split works on the message's point rows, so the offline
evaluator and the live replay remove exactly the same points.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.ros.codecs import POINTFIELD_DTYPES
from g2mono_ros.errors import ConfigError, MessageError

__all__ = [
    'HoldoutTargets',
    'choose_holdout_rows',
    'cloud_rows',
    'holdout_targets',
    'select_cloud_rows',
]


def cloud_rows(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every point of a PointCloud2 as raw bytes, plus its xyz (non-finite points kept).

    Args:
        msg: a sensor_msgs/PointCloud2 (rclpy or rosbags), organised or not.

    Returns:
        rows (N, point_step) uint8, row-major over (height, width), and xyz (N, 3) float64.

    Raises:
        MessageError: no x/y/z field, or the data size does not match the header.
    """
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data,
                        dtype=np.uint8)
    if row_step < width * point_step or buf.size != row_step * height:
        msg_ = (f'PointCloud2 {width}x{height} (point_step {point_step}, row_step {row_step})'
                f' does not match its {buf.size} data bytes')
        raise MessageError(msg_)
    rows = buf.reshape(height, row_step)[:, :width * point_step].reshape(height * width,
                                                                         point_step)
    offsets = {str(f.name): (int(f.offset), int(f.datatype)) for f in msg.fields}
    missing = [name for name in 'xyz' if name not in offsets]
    if missing:
        msg_ = f'PointCloud2 lacks field(s) {", ".join(missing)}; it has {", ".join(offsets)}'
        raise MessageError(msg_)
    xyz = np.empty((rows.shape[0], 3), dtype=np.float64)
    order = '>' if msg.is_bigendian else '<'
    for i, name in enumerate('xyz'):
        offset, datatype = offsets[name]
        dtype = np.dtype(POINTFIELD_DTYPES[datatype]).newbyteorder(order)
        column = np.ascontiguousarray(rows[:, offset:offset + dtype.itemsize])
        xyz[:, i] = column.view(dtype).reshape(-1)
    return rows, xyz


def choose_holdout_rows(xyz: np.ndarray, T_cam_lidar: np.ndarray, camera: Any, *,
                        fraction: float, seed: int, stamp_ns: int, min_range: float,
                        max_range: float) -> np.ndarray:
    """Choose the points to withhold from one scan.

    Candidates are the points the core projection draws (``projection.project_points``):
    finite, depth within ``[min_range, max_range]``, landing in the image. Exactly
    ``round(fraction * candidates)`` of them are drawn, from a generator seeded by
    ``(seed, stamp_ns)``: the same scan gets the same split in every run and mode.

    Args:
        xyz: (N, 3) points, LiDAR frame, metres (non-finite rows allowed, never chosen).
        T_cam_lidar: (4, 4) LiDAR -> camera optical.
        camera: ``CameraModel`` of the image.
        fraction: share of candidates withheld, in (0, 1).
        seed: protocol seed; stamp_ns: the scan's header stamp (ns).

    Returns:
        (N,) bool, True = withheld.

    Raises:
        ConfigError: ``fraction`` outside (0, 1).
    """
    if not (0.0 < fraction < 1.0):
        msg = f'hold-out fraction must be in (0, 1); got {fraction!r}'
        raise ConfigError(msg)
    from g2mono_ros.fusion.projection import project_points

    xyz = np.asarray(xyz)
    # The same culling, in the same float32 arithmetic, as the projection the node runs.
    candidates = np.unique(project_points(xyz.astype(np.float32), T_cam_lidar, camera,
                                          min_range=min_range, max_range=max_range).index)
    count = int(round(fraction * candidates.size))
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(stamp_ns) & ((1 << 63) - 1)])
    held = np.zeros(xyz.shape[0], dtype=bool)
    if count:
        held[rng.choice(candidates, size=count, replace=False)] = True
    return held


def select_cloud_rows(msg: Any, keep: np.ndarray, rows: np.ndarray | None = None) -> Any:
    """A copy of ``msg`` holding only the points where ``keep`` is True (unorganised, packed).

    Works on rosbags dataclass messages and rclpy messages alike; fields, header, byte order
    and point layout are preserved.

    Raises:
        MessageError: ``keep`` does not have one entry per point.
    """
    if rows is None:
        rows, _ = cloud_rows(msg)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (rows.shape[0],):
        msg_ = f'keep mask must have shape ({rows.shape[0]},); got {keep.shape}'
        raise MessageError(msg_)
    data = np.ascontiguousarray(rows[keep]).reshape(-1)
    count = int(keep.sum())
    changes = {'height': 1, 'width': count, 'row_step': count * int(msg.point_step)}
    if dataclasses.is_dataclass(msg):  # rosbags: data is a numpy uint8 array
        return dataclasses.replace(msg, data=data, **changes)
    out = copy.copy(msg)  # rclpy message: data is a uint8 sequence
    for key, value in changes.items():
        setattr(out, key, value)
    out.data = data.tobytes()
    return out


class HoldoutTargets(NamedTuple):
    """The two sides of one scan's split, projected at the image size.

    Attributes:
        target_m: (H, W) float32 metres of withheld points, 0 elsewhere and wherever a kept
            point lands on the same pixel (such a pixel is not a fair test).
        kept_sparse_m: (H, W) float32 metres of the kept points (the baselines' input).
    """

    target_m: np.ndarray
    kept_sparse_m: np.ndarray


def holdout_targets(held_xyz: np.ndarray, kept_xyz: np.ndarray, T_cam_lidar: np.ndarray,
                    camera: Any, *, min_range: float, max_range: float) -> HoldoutTargets:
    """Project both sides of a split with the core projection (nearest point wins)."""
    from g2mono_ros.fusion.projection import project_points_to_depth

    held, _ = project_points_to_depth(held_xyz.astype(np.float32), T_cam_lidar, camera,
                                      min_range=min_range, max_range=max_range)
    kept, _ = project_points_to_depth(kept_xyz.astype(np.float32), T_cam_lidar, camera,
                                      min_range=min_range, max_range=max_range)
    target = np.where(kept > 0, np.float32(0.0), held).astype(np.float32)
    return HoldoutTargets(target, kept.astype(np.float32))
