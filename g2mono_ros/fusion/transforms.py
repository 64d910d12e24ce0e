"""Rigid transforms: quaternions [x, y, z, w] <-> rotation matrices, 4x4 homogeneous transforms.

Convention: ``T_a_b`` maps points in frame b into frame a, ``p_a = R @ p_b + t``. The package's
extrinsic is ``T_cam_lidar`` (LiDAR REP 103 frame -> camera optical frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from g2mono_ros.errors import ShapeError

__all__ = [
    'R_OPTICAL_FROM_REP103',
    'invert_transform',
    'quaternion_from_rotation',
    'quaternion_to_rotation',
    'transform_from_extrinsic',
    'transform_from_translation_quaternion',
    'transform_points',
]

#: Rotation taking a REP 103 body frame (x forward, y left, z up) to a camera optical frame
#: (x right, y down, z forward) looking along the body's x axis: optical x = -y, y = -z, z = x.
R_OPTICAL_FROM_REP103 = np.array([[0.0, -1.0, 0.0],
                                  [0.0, 0.0, -1.0],
                                  [1.0, 0.0, 0.0]])
R_OPTICAL_FROM_REP103.setflags(write=False)


def _vector(value: Sequence[float] | np.ndarray, size: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (size,):
        msg = f'{name} must have shape ({size},); got {arr.shape}'
        raise ShapeError(msg)
    if not np.isfinite(arr).all():
        msg = f'{name} must be finite; got {arr.tolist()}'
        raise ShapeError(msg)
    return arr


def quaternion_to_rotation(q_xyzw: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion.

    Args:
        q_xyzw: (4,) quaternion [x, y, z, w] (ROS order); normalised here.

    Returns:
        (3, 3) float64 rotation matrix.

    Raises:
        ShapeError: not 4 finite values, or zero norm.
    """
    q = _vector(q_xyzw, 4, 'quaternion [x, y, z, w]')
    norm = float(np.linalg.norm(q))
    if norm < 1e-12:
        msg = f'quaternion [x, y, z, w] must be non-zero; got {q.tolist()}'
        raise ShapeError(msg)
    x, y, z, w = q / norm
    return np.array([
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)],
        [2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)],
        [2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)],
    ])


def quaternion_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion [x, y, z, w] (w >= 0) of a (3, 3) rotation matrix.

    Raises:
        ShapeError: not (3, 3), or not a rotation (orthonormal, det +1, within 1e-6).
    """
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape != (3, 3):
        msg = f'rotation must have shape (3, 3); got {r.shape}'
        raise ShapeError(msg)
    if not (np.allclose(r @ r.T, np.eye(3), atol=1e-6) and abs(np.linalg.det(r) - 1.0) < 1e-6):
        msg = f'rotation must be orthonormal with determinant +1; got {r.tolist()}'
        raise ShapeError(msg)
    # Shepperd's method: pick the largest diagonal term for numerical stability.
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    out = np.asarray(q) / np.linalg.norm(q)
    return -out if out[3] < 0 else out


def transform_from_translation_quaternion(t: Sequence[float] | np.ndarray,
                                          q_xyzw: Sequence[float] | np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform ``[[R, t], [0, 1]]``.

    Args:
        t: (3,) translation in metres.
        q_xyzw: (4,) rotation quaternion [x, y, z, w]; normalised here.

    Returns:
        (4, 4) float64.

    Raises:
        ShapeError: wrong shapes, non-finite values or a zero quaternion.
    """
    out = np.eye(4)
    out[:3, :3] = quaternion_to_rotation(q_xyzw)
    out[:3, 3] = _vector(t, 3, 'translation')
    return out


def transform_from_extrinsic(extrinsic: object) -> np.ndarray:
    """``T_cam_lidar`` (4, 4) from an ``ExtrinsicConfig`` (``translation``, ``rotation``)."""
    return transform_from_translation_quaternion(getattr(extrinsic, 'translation'),
                                                 getattr(extrinsic, 'rotation'))


def _check_transform(transform: np.ndarray, name: str = 'transform') -> np.ndarray:
    arr = np.asarray(transform, dtype=np.float64)
    if arr.shape != (4, 4):
        msg = f'{name} must have shape (4, 4); got {arr.shape}'
        raise ShapeError(msg)
    return arr


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform: ``[[R^T, -R^T t], [0, 1]]``.

    Raises:
        ShapeError: not (4, 4).
    """
    arr = _check_transform(transform)
    out = np.eye(4)
    rot_t = arr[:3, :3].T
    out[:3, :3] = rot_t
    out[:3, 3] = -rot_t @ arr[:3, 3]
    return out


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (..., 3) points; returns (..., 3) in the points' float dtype.

    Raises:
        ShapeError: transform not (4, 4) or points not (..., 3).
    """
    arr = _check_transform(transform)
    pts = np.asarray(points)
    if pts.ndim < 1 or pts.shape[-1] != 3:
        msg = f'points must have shape (..., 3); got {pts.shape}'
        raise ShapeError(msg)
    dtype = pts.dtype if np.issubdtype(pts.dtype, np.floating) else np.float64
    rot = arr[:3, :3].astype(dtype)
    return (pts.astype(dtype, copy=False) @ rot.T + arr[:3, 3].astype(dtype)).astype(dtype)
