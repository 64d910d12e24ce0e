"""Spinning LiDAR models (beam layouts of common sensors) and scanning the synthetic scene.

A sweep is rendered as if taken instantly at its stamp (motion during the 0.1 s rotation is
ignored, i.e. the cloud is already motion-compensated). Points are in the LiDAR frame (REP 103).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from g2mono_ros.synth.scene import Scene

__all__ = ['LIDAR_MODELS', 'LidarModel', 'LidarReturns', 'lidar_model_for_beams', 'scan_scene']


@dataclass(frozen=True)
class LidarModel:
    """Beam layout of a spinning LiDAR.

    Attributes:
        name: sensor name.
        elevations_deg: (B,) beam elevation angles, degrees, ascending; ring r = index r
            (ring 0 is the lowest beam, as the Velodyne and Ouster drivers number them).
        azimuth_samples: firings per revolution (horizontal resolution 360 / this).
        min_range_m, max_range_m: returns outside this range are dropped.
    """

    name: str
    elevations_deg: tuple[float, ...]
    azimuth_samples: int = 1024
    min_range_m: float = 0.5
    max_range_m: float = 100.0

    @property
    def beams(self) -> int:
        return len(self.elevations_deg)

    def ray_directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit beam directions in the LiDAR frame, firing order (azimuth outer, beam inner).

        Returns:
            (dirs (N, 3) float64, ring (N,) uint16).
        """
        azimuth = np.arange(self.azimuth_samples) * (2.0 * np.pi / self.azimuth_samples)
        azimuth = np.where(azimuth > np.pi, azimuth - 2.0 * np.pi, azimuth)
        elevation = np.deg2rad(np.asarray(self.elevations_deg))
        az, el = np.meshgrid(azimuth, elevation, indexing='ij')
        dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
        ring = np.broadcast_to(np.arange(self.beams, dtype=np.uint16), az.shape)
        return dirs.reshape(-1, 3), ring.reshape(-1).copy()


def _uniform(low: float, high: float, count: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(low, high, count))


#: Vertical layouts: VLP-16 (+-15 deg every 2 deg), HDL-32E (-30.67..+10.67 deg, 1.33 deg),
#: HDL-64E (upper block +2..-8.33 deg at 1/3 deg, lower block -8.83..-24.33 deg at 1/2 deg),
#: OS1-64 (uniform +-22.5 deg).
LIDAR_MODELS: dict[str, LidarModel] = {
    'vlp16': LidarModel('VLP-16', _uniform(-15.0, 15.0, 16), azimuth_samples=1800),
    'hdl32': LidarModel('HDL-32E', _uniform(-30.67, 10.67, 32), azimuth_samples=1800,
                        max_range_m=80.0),
    'hdl64': LidarModel('HDL-64E', tuple(sorted(_uniform(-24.33, -8.83, 32)
                                                + _uniform(-8.33, 2.0, 32))),
                        azimuth_samples=2048, max_range_m=120.0),
    'os1-64': LidarModel('OS1-64', _uniform(-22.5, 22.5, 64), azimuth_samples=1024,
                         max_range_m=120.0),
}


def lidar_model_for_beams(beams: int) -> LidarModel:
    """The default model for a beam count: 16 -> VLP-16, 32 -> HDL-32E, 64 -> HDL-64E.

    Raises:
        ValueError: beams is not 16, 32 or 64.
    """
    table = {16: 'vlp16', 32: 'hdl32', 64: 'hdl64'}
    if beams not in table:
        msg = f'beams must be 16, 32 or 64; got {beams!r}'
        raise ValueError(msg)
    return LIDAR_MODELS[table[beams]]


class LidarReturns(NamedTuple):
    """One sweep's returns, LiDAR frame (REP 103: x forward, y left, z up).

    Attributes:
        points: (N, 3) float32 metres.
        intensity: (N,) float32 in [0, 255].
        ring: (N,) uint16 beam index, 0 = lowest beam.
    """

    points: np.ndarray
    intensity: np.ndarray
    ring: np.ndarray


def scan_scene(scene: Scene, T_world_lidar: np.ndarray, dirs_lidar: np.ndarray, ring: np.ndarray,
               model: LidarModel, *, range_noise_m: float = 0.0,
               rng: np.random.Generator | None = None) -> LidarReturns:
    """Cast the beams into the scene and return the points that hit within range.

    Args:
        scene: the scene.
        T_world_lidar: (4, 4) pose of the LiDAR in the world (maps LiDAR -> world).
        dirs_lidar: (N, 3) unit beam directions in the LiDAR frame (``model.ray_directions``).
        ring: (N,) uint16 beam index of each direction.
        model: gives the range limits.
        range_noise_m: standard deviation of Gaussian range noise, metres (0 = exact).
        rng: noise source; required when ``range_noise_m > 0``.

    Returns:
        LidarReturns in the LiDAR frame.
    """
    R, t = T_world_lidar[:3, :3], T_world_lidar[:3, 3]
    dirs_world = dirs_lidar @ R.T
    hits = scene.cast(t, dirs_world)
    rng_m = hits.range_m
    keep = np.isfinite(rng_m) & (rng_m >= model.min_range_m) & (rng_m <= model.max_range_m)
    measured = rng_m[keep]
    if range_noise_m > 0.0:
        if rng is None:
            msg = 'scan_scene needs rng when range_noise_m > 0'
            raise ValueError(msg)
        measured = measured + rng.normal(0.0, range_noise_m, size=measured.shape)
    points = dirs_lidar[keep] * measured[:, None]
    kept_hits = type(hits)(*(field[keep] for field in hits))
    intensity = scene.reflectance(dirs_world[keep], kept_hits)
    return LidarReturns(points.astype(np.float32), intensity.astype(np.float32), ring[keep])
