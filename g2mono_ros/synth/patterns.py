"""LiDAR scan patterns beyond the named spinning sensors: 8-128 beam spinners and solid-state.

Every pattern has the ``LidarModel`` interface (``name``, ``beams``, ``ray_directions()``,
``min_range_m``, ``max_range_m``) so ``SyntheticSequence(lidar=...)`` and ``scan_scene`` take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from g2mono_ros.synth.lidar import LIDAR_MODELS, LidarModel

__all__ = ['LIDAR_PATTERNS', 'SolidStateLidar', 'lidar_pattern', 'spinning_lidar']


def spinning_lidar(beams: int, *, low_deg: float, high_deg: float, azimuth_samples: int = 1024,
                   max_range_m: float = 100.0, name: str = '') -> LidarModel:
    """A spinning LiDAR with ``beams`` evenly spaced between ``low_deg`` and ``high_deg``.

    Raises:
        ValueError: fewer than 2 beams or an empty vertical field of view.
    """
    if beams < 2 or not high_deg > low_deg:
        msg = f'spinning_lidar needs >= 2 beams and high_deg > low_deg; got {beams}, {low_deg}..{high_deg}'
        raise ValueError(msg)
    elevations = tuple(float(v) for v in np.linspace(low_deg, high_deg, beams))
    return LidarModel(name or f'spin-{beams}', elevations, azimuth_samples=azimuth_samples,
                      max_range_m=max_range_m)


@dataclass(frozen=True)
class SolidStateLidar:
    """A non-repetitive rosette scanner (Livox Mid/Avia-like) looking along +x.

    Points follow a rose curve ``r = sin(k theta)`` over a circular field of view that slowly
    precesses, so one integration period covers the centre densely and the rim sparsely, with
    curved scan lines instead of rings.

    Attributes:
        name: sensor name.
        fov_deg: full cone angle of the field of view, degrees.
        points_per_scan: rays per integration period.
        petals: rose-curve parameter (petal count 2k for even k).
        turns: precession turns of the rosette per period.
        min_range_m, max_range_m: returns outside are dropped.
    """

    name: str = 'solid-state'
    fov_deg: float = 70.0
    points_per_scan: int = 24000
    petals: int = 6
    turns: float = 9.37
    min_range_m: float = 0.3
    max_range_m: float = 90.0

    @property
    def beams(self) -> int:
        """Ring ids used (the petal a point lies on); training treats them as beams."""
        return 2 * self.petals

    def ray_directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit ray directions in the LiDAR frame (x forward) and a ring id per ray.

        Returns:
            (dirs (N, 3) float64, ring (N,) uint16 = petal index).
        """
        t = np.linspace(0.0, 1.0, self.points_per_scan, endpoint=False)
        theta = 2.0 * np.pi * self.petals * 7.0 * t  # many passes over the rose per period
        radius = np.abs(np.sin(self.petals * theta)) * np.deg2rad(self.fov_deg / 2.0)
        phase = theta + 2.0 * np.pi * self.turns * t
        # Off-axis angle ``radius`` towards the in-plane direction ``phase`` (y left, z up).
        dirs = np.stack([np.cos(radius), np.sin(radius) * np.cos(phase),
                         np.sin(radius) * np.sin(phase)], axis=1)
        ring = (np.floor(theta * self.petals / np.pi) % (2 * self.petals)).astype(np.uint16)
        return dirs, ring


#: name -> pattern, from 8 to 128 beams and one solid-state scanner.
LIDAR_PATTERNS: dict[str, LidarModel | SolidStateLidar] = {
    'spin8': spinning_lidar(8, low_deg=-12.0, high_deg=9.0, azimuth_samples=1024),
    'vlp16': LIDAR_MODELS['vlp16'],
    'hdl32': LIDAR_MODELS['hdl32'],
    'hdl64': LIDAR_MODELS['hdl64'],
    'os1-64': LIDAR_MODELS['os1-64'],
    'os128': spinning_lidar(128, low_deg=-22.5, high_deg=22.5, azimuth_samples=2048,
                            max_range_m=120.0, name='OS-128'),
    'narrow32': spinning_lidar(32, low_deg=-16.0, high_deg=15.0, azimuth_samples=1800,
                               name='narrow-32'),
    'solid': SolidStateLidar(),
}


def lidar_pattern(name: str) -> LidarModel | SolidStateLidar:
    """The pattern called ``name`` (a key of ``LIDAR_PATTERNS``).

    Raises:
        ValueError: unknown name.
    """
    if name not in LIDAR_PATTERNS:
        msg = f'unknown LiDAR pattern {name!r}; expected one of {", ".join(LIDAR_PATTERNS)}'
        raise ValueError(msg)
    return LIDAR_PATTERNS[name]
