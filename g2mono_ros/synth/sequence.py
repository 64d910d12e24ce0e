"""SyntheticSequence: seeded camera + LiDAR sequence with exact ground truth (ROS-free).

Camera frames (``image_frame(i)``, 30 Hz) and LiDAR sweeps (``scan(j)``, 10 Hz) have their own,
unaligned stamps, as in a real bag; ``render(i)`` pairs frame i with a sweep taken at the same
instant (training and geometry checks). Every call is a pure function of (seed, options, index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.errors import ConfigError
from g2mono_ros.synth.lidar import LidarModel, LidarReturns, lidar_model_for_beams, scan_scene
from g2mono_ros.synth.scene import Scene, make_scene
from g2mono_ros.synth.trajectory import DriveTrajectory, LoopTrajectory, rotation_xyz
from g2mono_ros.fusion.transforms import R_OPTICAL_FROM_REP103

__all__ = [
    'DEFAULT_PLUMB_BOB',
    'ImageFrame',
    'LidarScan',
    'SyntheticFrame',
    'SyntheticSequence',
    'default_T_cam_lidar',
]

#: plumb_bob coefficients (k1, k2, p1, p2, k3) used when ``distortion=True``: mild barrel.
DEFAULT_PLUMB_BOB = (-0.08, 0.02, 0.0005, -0.0004, 0.0)
#: First image stamp of every sequence (2023-11-14T22:13:20Z), nanoseconds.
DEFAULT_START_NS = 1_700_000_000_000_000_000
_STREAM_IMAGE, _STREAM_SCAN, _STREAM_NOISE, _STREAM_RENDER = 1, 2, 3, 4


def default_T_cam_lidar() -> np.ndarray:
    """The rig's extrinsic (4, 4) LiDAR -> camera optical: LiDAR 0.22 m above, 0.06 m behind and
    0.04 m left of the camera, yawed 2.5 deg, pitched -1.5 deg, rolled 0.8 deg."""
    R_body_lidar = rotation_xyz(np.deg2rad(0.8), np.deg2rad(-1.5), np.deg2rad(2.5))
    t_body = np.array([-0.06, 0.04, 0.22])
    T = np.eye(4)
    T[:3, :3] = R_OPTICAL_FROM_REP103 @ R_body_lidar
    T[:3, 3] = R_OPTICAL_FROM_REP103 @ t_body
    return T


class ImageFrame(NamedTuple):
    """One camera frame.

    Attributes:
        index: frame index i.
        stamp_ns: capture time, integer nanoseconds.
        rgb: (H, W, 3) uint8.
        depth_gt: (H, W) float32 metres, z in the camera optical frame; 0 = sky / beyond range.
        camera: the intrinsics.
        T_world_cam: (4, 4) float64 camera optical frame -> world.
    """

    index: int
    stamp_ns: int
    rgb: np.ndarray
    depth_gt: np.ndarray
    camera: CameraModel
    T_world_cam: np.ndarray


class LidarScan(NamedTuple):
    """One LiDAR sweep: taken instantly at its stamp, or (``rolling_sweep``) fired over one
    rotation starting at its stamp, each point from the LiDAR's pose at its own time.

    Attributes:
        index: sweep index j.
        stamp_ns: integer nanoseconds.
        points: (N, 3) float32 metres, LiDAR frame (REP 103).
        intensity: (N,) float32 in [0, 255].
        ring: (N,) uint16 beam index (0 = lowest).
        T_world_lidar: (4, 4) float64 LiDAR -> world at the stamp.
        time_offset_ns: (N,) int64 each point's firing time after ``stamp_ns`` (the points are
            in the LiDAR frame at that time), or None for an instantaneous sweep.
    """

    index: int
    stamp_ns: int
    points: np.ndarray
    intensity: np.ndarray
    ring: np.ndarray
    T_world_lidar: np.ndarray
    time_offset_ns: np.ndarray | None = None


@dataclass(frozen=True)
class SyntheticFrame:
    """A camera frame paired with a sweep taken at the same instant (``render``).

    Attributes:
        rgb: (H, W, 3) uint8.
        depth_gt: (H, W) float32 metres (camera z), 0 = no ground truth.
        points_lidar: (N, 3) float32 metres, LiDAR frame; only the beams whose azimuth can
            reach the image (all of them with ``full_sweep=True``).
        intensity: (N,) float32 in [0, 255].
        ring: (N,) uint16.
        camera: CameraModel of ``rgb``.
        T_cam_lidar: (4, 4) float64, ``p_cam = R @ p_lidar + t``.
        image_stamp_ns, scan_stamp_ns: equal here (the sweep is synchronised to the image).
        index: frame index.
    """

    rgb: np.ndarray
    depth_gt: np.ndarray
    points_lidar: np.ndarray
    intensity: np.ndarray
    ring: np.ndarray
    camera: CameraModel
    T_cam_lidar: np.ndarray
    image_stamp_ns: int
    scan_stamp_ns: int
    index: int


def _undistort_plumb_bob(xd: np.ndarray, yd: np.ndarray,
                         coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert plumb_bob distortion on normalised coordinates by fixed-point iteration."""
    k1, k2, p1, p2, k3 = coeffs
    x, y = xd.copy(), yd.copy()
    for _ in range(50):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return x, y


def _pixel_rays(camera: CameraModel) -> np.ndarray:
    """(H*W, 3) float64 unit rays through the pixel centres, camera optical frame, row-major."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    y = (v.ravel() - camera.cy) / camera.fy
    x = (u.ravel() - camera.cx - camera.K[0, 1] * y) / camera.fx
    if camera.distortion_model == 'plumb_bob' and camera.is_distorted:
        x, y = _undistort_plumb_bob(x, y, camera.D)
    rays = np.stack([x, y, np.ones_like(x)], axis=1)
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def _make_camera(width: int, height: int, fov_x_deg: float, distortion: bool) -> CameraModel:
    fx = 0.5 * width / np.tan(np.deg2rad(fov_x_deg) / 2.0)
    # A principal point off the centre, so that a projection ignoring cx/cy shows up in tests.
    cx = 0.5 * (width - 1) + 0.015 * width
    cy = 0.5 * (height - 1) - 0.01 * height
    K = np.array([[fx, 0.0, cx], [0.0, fx, cy], [0.0, 0.0, 1.0]])
    D = np.array(DEFAULT_PLUMB_BOB if distortion else (0.0,) * 5)
    return CameraModel(width=width, height=height, K=K, D=D, distortion_model='plumb_bob')


class SyntheticSequence:
    """A seeded scene, a camera rig looping through it, and a spinning LiDAR on the rig.

    Args:
        seed: everything (scene, path, stamps, noise) derives from it.
        num_frames: camera frames in the sequence (``len``); ``render`` accepts any index >= 0
            (the path is a closed loop).
        width, height: image size in pixels.
        fov_x_deg: horizontal field of view of the undistorted pinhole, degrees.
        distortion: use ``DEFAULT_PLUMB_BOB`` distortion (the depth is rendered through it).
        camera: explicit intrinsics (overrides width/height/fov/distortion); distortion model
            ``plumb_bob`` or ``none``.
        beams: 16 (VLP-16), 32 (HDL-32E) or 64 (HDL-64E); ignored when ``lidar`` is given.
        lidar: explicit LiDAR model (e.g. ``LIDAR_MODELS['os1-64']``).
        T_cam_lidar: (4, 4) extrinsic LiDAR -> camera optical; default ``default_T_cam_lidar()``.
        camera_rate_hz, lidar_rate_hz: nominal rates (30 and 10).
        speed_mps: rig speed along the loop (or the drive); >= 0.
        yaw_rate_dps: None = the closed loop; a number = drive from the origin at ``speed_mps``
            turning at this many degrees per second (0 = straight), for motion tests. The scene
            is built around the stretch the ``num_frames`` cover.
        rolling_sweep: fire each sweep over one LiDAR period from its stamp (counter-clockwise
            seen from above, starting behind the rig), each point cast from the LiDAR's pose at
            its own time (``LidarScan.time_offset_ns``), as real spinning sensors do. False: an
            instantaneous sweep at the stamp (already motion-free).
        sweep_slices: with ``rolling_sweep``, firing times per rotation (each point carries its
            slice's exact time; 360 = every degree).
        max_depth_m: ground-truth depth beyond this is 0.
        range_noise_m: Gaussian LiDAR range noise (std, metres); 0 = exact points.
        shadows: cast sun shadows in the RGB image (a depth cue; ~1.5x the image cost).
        start_ns: stamp of frame 0 before jitter.
        environment: ``outdoor`` (streets and yards, to 80 m) or ``indoor`` (a furnished room,
            0.5-10 m; ``synth.rooms``).
        photo_textures: share of surfaces (0-1) textured with real photographs
            (``synth.textures.PHOTO_NAMES``) instead of a procedural pattern; 0 keeps the
            scene exactly as without the option.

    Raises:
        ConfigError: a size, rate, count or model out of range.
    """

    def __init__(self, seed: int, *, num_frames: int = 300, width: int = 320, height: int = 240,
                 fov_x_deg: float = 80.0, distortion: bool = False,
                 camera: CameraModel | None = None, beams: int = 16,
                 lidar: LidarModel | None = None, T_cam_lidar: np.ndarray | None = None,
                 camera_rate_hz: float = 30.0, lidar_rate_hz: float = 10.0,
                 speed_mps: float = 1.5, max_depth_m: float = 80.0, range_noise_m: float = 0.0,
                 shadows: bool = True, start_ns: int = DEFAULT_START_NS,
                 yaw_rate_dps: float | None = None, rolling_sweep: bool = False,
                 sweep_slices: int = 360, environment: str = 'outdoor',
                 photo_textures: float = 0.0) -> None:
        if not (isinstance(seed, (int, np.integer)) and seed >= 0):
            msg = f'seed must be an integer >= 0; got {seed!r}'
            raise ConfigError(msg)
        if num_frames < 1:
            msg = f'num_frames must be >= 1; got {num_frames!r}'
            raise ConfigError(msg)
        if camera is None:
            if width < 8 or height < 8:
                msg = f'image size must be at least 8x8; got {width}x{height}'
                raise ConfigError(msg)
            if not 10.0 <= fov_x_deg <= 150.0:
                msg = f'fov_x_deg must be in [10, 150]; got {fov_x_deg!r}'
                raise ConfigError(msg)
            camera = _make_camera(int(width), int(height), float(fov_x_deg), bool(distortion))
        elif camera.distortion_model not in ('plumb_bob', 'none'):
            msg = (f'synthetic rendering supports plumb_bob or none distortion; '
                   f'got {camera.distortion_model!r}')
            raise ConfigError(msg)
        if lidar is None:
            try:
                lidar = lidar_model_for_beams(beams)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        for name, value in (('camera_rate_hz', camera_rate_hz), ('lidar_rate_hz', lidar_rate_hz),
                            ('max_depth_m', max_depth_m)):
            if not value > 0:
                msg = f'{name} must be > 0; got {value!r}'
                raise ConfigError(msg)
        if not speed_mps >= 0:
            msg = f'speed_mps must be >= 0; got {speed_mps!r}'
            raise ConfigError(msg)
        if yaw_rate_dps is not None and not np.isfinite(yaw_rate_dps):
            msg = f'yaw_rate_dps must be a finite number or None; got {yaw_rate_dps!r}'
            raise ConfigError(msg)
        if not (isinstance(sweep_slices, (int, np.integer)) and sweep_slices >= 1):
            msg = f'sweep_slices must be an integer >= 1; got {sweep_slices!r}'
            raise ConfigError(msg)
        if range_noise_m < 0:
            msg = f'range_noise_m must be >= 0; got {range_noise_m!r}'
            raise ConfigError(msg)
        T = default_T_cam_lidar() if T_cam_lidar is None else np.asarray(T_cam_lidar, np.float64)
        if T.shape != (4, 4) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6):
            msg = f'T_cam_lidar must be a (4, 4) rigid transform; got {T.tolist()}'
            raise ConfigError(msg)

        self.seed = int(seed)
        self.num_frames = int(num_frames)
        self.camera = camera
        self.lidar = lidar
        self.T_cam_lidar = T
        self.camera_rate_hz = float(camera_rate_hz)
        self.lidar_rate_hz = float(lidar_rate_hz)
        self.max_depth_m = float(max_depth_m)
        self.range_noise_m = float(range_noise_m)
        self.start_ns = int(start_ns)
        self.shadows = bool(shadows)
        self.rolling_sweep = bool(rolling_sweep)
        self.sweep_slices = int(sweep_slices)

        rng = np.random.default_rng([self.seed, 0])
        self.trajectory: LoopTrajectory | DriveTrajectory
        if environment == 'indoor':
            from g2mono_ros.synth.rooms import make_room_scene, room_trajectory
            self.trajectory = room_trajectory(rng, speed_mps=min(float(speed_mps), 0.8))
            self.scene: Scene = make_room_scene(rng, self.trajectory.ground_samples())
        elif environment == 'outdoor':
            if yaw_rate_dps is None:
                self.trajectory = LoopTrajectory.random(rng, speed_mps=float(speed_mps))
                path = self.trajectory.ground_samples()
            else:
                self.trajectory = DriveTrajectory(float(speed_mps),
                                                  float(np.deg2rad(yaw_rate_dps)))
                path = self.trajectory.ground_samples(self.num_frames / self.camera_rate_hz)
            self.scene = make_scene(rng, path)
        else:
            msg = f"environment must be 'outdoor' or 'indoor'; got {environment!r}"
            raise ConfigError(msg)
        if not 0.0 <= photo_textures <= 1.0:
            msg = f'photo_textures must be in [0, 1]; got {photo_textures!r}'
            raise ConfigError(msg)
        if photo_textures > 0:
            self._use_photo_textures(float(photo_textures))
        # The first sweep comes 11-29 ms after the first image: never aligned with the camera.
        self.scan_offset_ns = int(rng.integers(11_000_000, 29_000_000))
        self._T_body_cam = np.eye(4)
        self._T_body_cam[:3, :3] = R_OPTICAL_FROM_REP103.T
        self._rays_cam = _pixel_rays(camera)
        self._sweep = lidar.ray_directions()
        self._sector = self._camera_sector()

    def _use_photo_textures(self, share: float) -> None:
        """Give about ``share`` of the surfaces a real photograph as texture.

        Its own random stream, so the scene's geometry and other materials do not change.
        Tiles of 0.5-4 m: a photo's edges then look like the texture edges of real rooms and
        streets, which are not depth edges.
        """
        from dataclasses import replace

        rng = np.random.default_rng([self.seed, 5])
        self.scene.materials = [
            replace(mat, texture='photo', scale_m=float(rng.uniform(0.5, 4.0)),
                    photo=int(rng.integers(1 << 16)))
            if rng.random() < share else mat
            for mat in self.scene.materials]

    def __len__(self) -> int:
        return self.num_frames

    # ---- time and poses -------------------------------------------------------------------

    def _jitter_ns(self, stream: int, index: int, max_ns: int) -> int:
        return int(np.random.default_rng([self.seed, stream, index]).integers(-max_ns, max_ns + 1))

    def image_stamp_ns(self, index: int) -> int:
        """Stamp of camera frame ``index``: nominal 30 Hz grid plus up to +-1 ms jitter."""
        nominal = self.start_ns + round(index * 1e9 / self.camera_rate_hz)
        return nominal + self._jitter_ns(_STREAM_IMAGE, index, 1_000_000)

    def scan_stamp_ns(self, index: int) -> int:
        """Stamp of sweep ``index``: 10 Hz grid, offset from the camera, plus up to +-2 ms."""
        nominal = self.start_ns + self.scan_offset_ns + round(index * 1e9 / self.lidar_rate_hz)
        return nominal + self._jitter_ns(_STREAM_SCAN, index, 2_000_000)

    @property
    def num_scans(self) -> int:
        """Sweeps whose stamps fall within the camera frames' span (plus half a sweep period)."""
        end = self.image_stamp_ns(self.num_frames - 1) + round(0.5e9 / self.lidar_rate_hz)
        count = 0
        while self.scan_stamp_ns(count) <= end:
            count += 1
        return count

    def T_world_body(self, stamp_ns: int) -> np.ndarray:
        """(4, 4) rig body (REP 103 ``base_link``, at the camera centre) -> world at ``stamp_ns``;
        the odometry the bag writes (odom = world)."""
        return self.trajectory.body_pose((stamp_ns - self.start_ns) * 1e-9)

    @property
    def T_body_cam(self) -> np.ndarray:
        """(4, 4) camera optical frame -> body (fixed)."""
        return self._T_body_cam.copy()

    def T_world_cam(self, stamp_ns: int) -> np.ndarray:
        """(4, 4) camera optical frame -> world at ``stamp_ns``."""
        return self.T_world_body(stamp_ns) @ self._T_body_cam

    def T_world_lidar(self, stamp_ns: int) -> np.ndarray:
        """(4, 4) LiDAR frame -> world at ``stamp_ns``."""
        return self.T_world_cam(stamp_ns) @ self.T_cam_lidar

    # ---- rendering ------------------------------------------------------------------------

    def _camera_sector(self) -> tuple[np.ndarray, np.ndarray]:
        """Beams whose azimuth (seen from the camera) can reach the image, with parallax margin."""
        dirs, ring = self._sweep
        d_cam = dirs @ self.T_cam_lidar[:3, :3].T
        ray_angle = np.arctan2(self._rays_cam[:, 0], self._rays_cam[:, 2])
        half = float(np.abs(ray_angle).max()) + 0.25
        keep = (d_cam[:, 2] > 0) & (np.abs(np.arctan2(d_cam[:, 0], d_cam[:, 2])) <= half)
        return dirs[keep], ring[keep]

    def _render_image(self, index: int, stamp_ns: int) -> ImageFrame:
        T = self.T_world_cam(stamp_ns)
        dirs_world = self._rays_cam @ T[:3, :3].T
        hits = self.scene.cast(T[:3, 3], dirs_world)
        rgb = self.scene.shade(T[:3, 3], dirs_world, hits, shadows=self.shadows)
        depth = hits.range_m * self._rays_cam[:, 2]
        depth = np.where(np.isfinite(depth) & (depth <= self.max_depth_m), depth, 0.0)
        shape = (self.camera.height, self.camera.width)
        rgb8 = np.round(rgb * 255.0).astype(np.uint8).reshape(*shape, 3)
        return ImageFrame(index, stamp_ns, rgb8, depth.astype(np.float32).reshape(shape),
                          self.camera, T)

    def _render_scan(self, stamp_ns: int, stream_index: tuple[int, ...],
                     beams: tuple[np.ndarray, np.ndarray]) -> tuple[LidarReturns, np.ndarray]:
        T = self.T_world_lidar(stamp_ns)
        noise = np.random.default_rng([self.seed, *stream_index]) if self.range_noise_m else None
        returns = scan_scene(self.scene, T, beams[0], beams[1], self.lidar,
                             range_noise_m=self.range_noise_m, rng=noise)
        return returns, T

    def image_frame(self, index: int) -> ImageFrame:
        """Camera frame ``index`` (>= 0) at its own stamp."""
        index = self._check_index(index)
        return self._render_image(index, self.image_stamp_ns(index))

    def scan(self, index: int) -> LidarScan:
        """Full 360-degree sweep ``index`` (>= 0) at its own stamp (``rolling_sweep``: fired over
        the period that starts there)."""
        index = self._check_index(index)
        stamp = self.scan_stamp_ns(index)
        if self.rolling_sweep:
            return self._rolling_scan(index, stamp)
        returns, T = self._render_scan(stamp, (_STREAM_NOISE, index), self._sweep)
        return LidarScan(index, stamp, returns.points, returns.intensity, returns.ring, T)

    def _rolling_scan(self, index: int, stamp: int) -> LidarScan:
        dirs, ring = self._sweep
        # Counter-clockwise from behind (azimuth -pi): the camera's view is fired mid-sweep.
        fraction = (np.arctan2(dirs[:, 1], dirs[:, 0]) + np.pi) / (2.0 * np.pi)
        slices = np.minimum((fraction * self.sweep_slices).astype(np.int64),
                            self.sweep_slices - 1)
        period_ns = 1e9 / self.lidar_rate_hz
        parts = []
        for k in np.unique(slices):
            rows = np.flatnonzero(slices == k)
            offset = round(int(k) * period_ns / self.sweep_slices)
            returns, _ = self._render_scan(stamp + offset, (_STREAM_NOISE, index, int(k)),
                                           (dirs[rows], ring[rows]))
            parts.append((returns, np.full(len(returns.points), offset, dtype=np.int64)))
        points = np.concatenate([p[0].points for p in parts])
        intensity = np.concatenate([p[0].intensity for p in parts])
        rings = np.concatenate([p[0].ring for p in parts])
        offsets = np.concatenate([p[1] for p in parts])
        return LidarScan(index, stamp, points, intensity, rings, self.T_world_lidar(stamp),
                         offsets)

    def scan_points_at(self, scan: LidarScan, stamp_ns: int) -> np.ndarray:
        """Exact ground truth for motion compensation: where each point of ``scan`` is in the
        LiDAR frame at ``stamp_ns`` (the world point it hit, seen from the LiDAR's pose then).

        Returns:
            (N, 3) float32 metres.
        """
        offsets = (np.zeros(len(scan.points), dtype=np.int64) if scan.time_offset_ns is None
                   else scan.time_offset_ns)
        T_lidar_world = np.linalg.inv(self.T_world_lidar(int(stamp_ns)))
        out = np.empty((len(scan.points), 3))
        unique, inverse = np.unique(offsets, return_inverse=True)
        for k, offset in enumerate(unique):
            rows = inverse == k
            T = T_lidar_world @ self.T_world_lidar(scan.stamp_ns + int(offset))
            out[rows] = scan.points[rows].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        return out.astype(np.float32)

    def render(self, index: int, *, full_sweep: bool = False) -> SyntheticFrame:
        """Camera frame ``index`` with a sweep taken from the LiDAR's pose at the same instant.

        Args:
            index: frame index >= 0 (may exceed ``len``; the path loops).
            full_sweep: cast all 360 degrees instead of only the beams that can reach the image
                (the default, ~3x faster; the projected depth is the same).

        Returns:
            SyntheticFrame.
        """
        frame = self.image_frame(index)
        beams = self._sweep if full_sweep else self._sector
        returns, _ = self._render_scan(frame.stamp_ns, (_STREAM_RENDER, frame.index), beams)
        return SyntheticFrame(frame.rgb, frame.depth_gt, returns.points, returns.intensity,
                              returns.ring, self.camera, self.T_cam_lidar.copy(), frame.stamp_ns,
                              frame.stamp_ns, frame.index)

    @staticmethod
    def _check_index(index: int) -> int:
        if not (isinstance(index, (int, np.integer)) and index >= 0):
            msg = f'frame index must be an integer >= 0; got {index!r}'
            raise ConfigError(msg)
        return int(index)
