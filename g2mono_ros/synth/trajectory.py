"""The camera rig's path through the synthetic scene: a closed loop, so any frame index is valid.

Poses are REP 103 body poses in the world (x forward along the path, z up); the camera optical
frame and the LiDAR hang off the body through fixed transforms (see ``sequence.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ['DriveTrajectory', 'LoopTrajectory', 'rotation_xyz']


def rotation_xyz(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """(3, 3) rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (REP 103 roll-pitch-yaw, radians)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class LoopTrajectory:
    """An elliptic loop on the ground with a gentle bob, head wobble, pitch and roll.

    Attributes:
        semi_x_m, semi_y_m: ellipse semi-axes, metres.
        start_angle_rad: where on the ellipse the rig is at time 0.
        speed_mps: mean speed along the loop, metres per second.
        height_m: mean height of the body (= camera centre) above the ground.
    """

    semi_x_m: float
    semi_y_m: float
    start_angle_rad: float
    speed_mps: float = 1.5
    height_m: float = 1.5

    @classmethod
    def random(cls, rng: np.random.Generator, *, speed_mps: float = 1.5) -> LoopTrajectory:
        return cls(float(rng.uniform(9.0, 14.0)), float(rng.uniform(5.0, 8.0)),
                   float(rng.uniform(-np.pi, np.pi)), speed_mps=speed_mps)

    def _angle(self, time_s: float) -> float:
        mean_radius = 0.5 * (self.semi_x_m + self.semi_y_m)
        return self.start_angle_rad + self.speed_mps * time_s / mean_radius

    def ground_samples(self, count: int = 400) -> np.ndarray:
        """(count, 2) points of the path on the ground (x, y), metres."""
        angle = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
        return np.stack([self.semi_x_m * np.cos(angle), self.semi_y_m * np.sin(angle)], axis=1)

    def body_pose(self, time_s: float) -> np.ndarray:
        """(4, 4) T_world_body at ``time_s`` seconds after the sequence start."""
        angle = self._angle(time_s)
        heading = np.arctan2(self.semi_y_m * np.cos(angle), -self.semi_x_m * np.sin(angle))
        yaw = heading + 0.05 * np.sin(0.7 * time_s)
        pitch = 0.03 + 0.02 * np.sin(0.45 * time_s)
        roll = 0.015 * np.sin(0.33 * time_s)
        pose = np.eye(4)
        pose[:3, :3] = rotation_xyz(roll, pitch, yaw)
        pose[:3, 3] = (self.semi_x_m * np.cos(angle), self.semi_y_m * np.sin(angle),
                       self.height_m + 0.03 * np.sin(2.0 * np.pi * 1.1 * time_s))
        return pose


@dataclass(frozen=True)
class DriveTrajectory:
    """A rig driving at constant speed and yaw rate (a straight line or a circular arc) from the
    origin along +x, with the same gentle bob, pitch and roll as the loop.

    Unlike the loop it does not come back: the scene is built around the stretch the sequence
    covers (``ground_samples(duration_s)``).

    Attributes:
        speed_mps: forward speed, metres per second (>= 0).
        yaw_rate_rad_s: turn rate, radians per second (positive = left, REP 103).
        height_m: mean height of the body (= camera centre) above the ground.
    """

    speed_mps: float
    yaw_rate_rad_s: float = 0.0
    height_m: float = 1.5

    def _xy_heading(self, time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.asarray(time_s, dtype=np.float64)
        heading = self.yaw_rate_rad_s * t
        if abs(self.yaw_rate_rad_s) < 1e-12:
            return self.speed_mps * t, np.zeros_like(t), heading
        radius = self.speed_mps / self.yaw_rate_rad_s
        return radius * np.sin(heading), radius * (1.0 - np.cos(heading)), heading

    def ground_samples(self, duration_s: float = 10.0, count: int = 400) -> np.ndarray:
        """(count, 2) points of the path on the ground (x, y) from 1 s before to 1 s after
        ``[0, duration_s]``, metres; at least a 4 m stretch, so a standing rig has a scene."""
        span = max(duration_s + 2.0, 4.0 / max(self.speed_mps, 1e-3))
        time_s = np.linspace(-1.0, span - 1.0, count)
        x, y, _ = self._xy_heading(time_s)
        if self.speed_mps < 2.0:  # short path: widen it so the scene has room around the rig
            x = x + np.linspace(-2.0, 2.0, count)
        return np.stack([x, y], axis=1)

    def body_pose(self, time_s: float) -> np.ndarray:
        """(4, 4) T_world_body at ``time_s`` seconds after the sequence start."""
        x, y, heading = self._xy_heading(np.asarray(time_s))
        pitch = 0.03 + 0.02 * np.sin(0.45 * time_s)
        roll = 0.015 * np.sin(0.33 * time_s)
        pose = np.eye(4)
        pose[:3, :3] = rotation_xyz(roll, pitch, float(heading))
        pose[:3, 3] = (float(x), float(y),
                       self.height_m + 0.03 * np.sin(2.0 * np.pi * 1.1 * time_s))
        return pose
