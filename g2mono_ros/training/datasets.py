"""Training datasets: synthetic (on the fly), rosbags, KITTI depth completion, RGB + depth PNGs.

A *source* loads a frame at the network input size (``FrameSample``); ``TrainingDataset``
turns it into tensors, simulating the network's sparse input (``simulation``) from a seed
derived from (run seed, epoch, index), so every sample is reproducible and resumable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.errors import DatasetError, G2MonoError
from g2mono_ros.training.config import DataConfig, SimulationConfig, TrainConfig
from g2mono_ros.training.photometric import photometric_augment, sensor_dropouts
from g2mono_ros.training.simulation import (
    simulate_g2_input,
    simulate_lidar_image,
    simulate_lidar_scan,
)

__all__ = [
    'EpochSampler',
    'FrameSample',
    'FrameSource',
    'KittiSource',
    'PngFolderSource',
    'ScanInView',
    'SyntheticSource',
    'TrainingDataset',
    'build_source',
    'collate_samples',
    'read_depth_png',
    'resize_dense_depth',
]


#: the epoch number validation samples are seeded with (never a training epoch).
VALIDATION_EPOCH = 2**31 - 2


class ScanInView(NamedTuple):
    """A LiDAR scan restricted to points the camera can see.

    Attributes:
        points_lidar: (N, 3) float32 metres, LiDAR frame.
        ring: (N,) beam ids, or ``None`` (then elevation is binned).
        T_cam_lidar: (4, 4) float64 LiDAR -> camera optical.
        camera: intrinsics at the network input size.
    """

    points_lidar: np.ndarray
    ring: np.ndarray | None
    T_cam_lidar: np.ndarray
    camera: CameraModel


class FrameSample(NamedTuple):
    """One frame at the network input size, before input simulation.

    Attributes:
        rgb: (H, W, 3) uint8.
        target_m: (H, W) float32 metres, 0 = no ground truth.
        scan: the LiDAR scan (rosbag, synthetic), or ``None``.
        sparse_m: (H, W) float32 metres of a given sparse input (KITTI velodyne_raw), or ``None``.
    """

    rgb: np.ndarray
    target_m: np.ndarray
    scan: ScanInView | None = None
    sparse_m: np.ndarray | None = None


class FrameSource(Protocol):
    """What ``TrainingDataset`` needs from a dataset kind."""

    def __len__(self) -> int: ...

    def load(self, index: int, rng: np.random.Generator | None) -> FrameSample:
        """Frame ``index``; ``rng`` draws a random crop when training (``None``: centred)."""
        ...


# --------------------------------------------------------------------------- image helpers


def resize_dense_depth(depth: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a depth map (never blends across edges)."""
    if depth.shape == tuple(out_hw):
        return depth.astype(np.float32, copy=False)
    return cv2.resize(depth.astype(np.float32), (out_hw[1], out_hw[0]),
                      interpolation=cv2.INTER_NEAREST)


def _resize_rgb(rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == tuple(out_hw):
        return rgb
    shrink = out_hw[0] < rgb.shape[0]
    return cv2.resize(rgb, (out_hw[1], out_hw[0]),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _cover_and_crop(rgb: np.ndarray, depths: Sequence[np.ndarray], out_hw: tuple[int, int],
                    rng: np.random.Generator | None, anchor: str = 'centre'
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scale so the image covers ``out_hw`` (aspect kept), then crop to it.

    Sparse depths keep their nearest point per pixel (``resize_sparse_depth``); the crop is
    random when ``rng`` is given, else centred (or bottom-aligned with ``anchor='bottom'``).
    """
    from g2mono_ros.models.engine import resize_sparse_depth

    h0, w0 = rgb.shape[:2]
    scale = max(out_hw[0] / h0, out_hw[1] / w0)
    size = (max(out_hw[0], round(h0 * scale)), max(out_hw[1], round(w0 * scale)))
    rgb = _resize_rgb(rgb, size)
    depths = [resize_sparse_depth(d, size) for d in depths]
    dy, dx = size[0] - out_hw[0], size[1] - out_hw[1]
    if rng is not None:
        top, left = int(rng.integers(dy + 1)), int(rng.integers(dx + 1))
    else:
        top = dy if anchor == 'bottom' else dy // 2
        left = dx // 2
    crop = (slice(top, top + out_hw[0]), slice(left, left + out_hw[1]))
    return rgb[crop], [d[crop] for d in depths]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        msg = f'cannot read image {str(path)!r} (missing or not an image)'
        raise DatasetError(msg)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_depth_png(path: Path, scale_m: float) -> np.ndarray:
    """A 16-bit depth PNG in metres: ``value * scale_m`` (0 = no data).

    Raises:
        DatasetError: unreadable, or not a single-channel 16-bit image.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        msg = f'cannot read depth PNG {str(path)!r} (missing or not an image)'
        raise DatasetError(msg)
    if image.dtype != np.uint16 or image.ndim != 2:
        msg = (f'depth PNG {str(path)!r} must be single-channel 16-bit; '
               f'got {image.dtype} with shape {image.shape}')
        raise DatasetError(msg)
    return image.astype(np.float32) * np.float32(scale_m)


# --------------------------------------------------------------------------- synthetic


def _points_in_view(points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel,
                    margin_px: float = 8.0) -> np.ndarray:
    """(N,) bool: in front of the camera and within the (undistorted) image plus a margin."""
    p_cam = points.astype(np.float64) @ T_cam_lidar[:3, :3].T + T_cam_lidar[:3, 3]
    z = p_cam[:, 2]
    front = z > 0.05
    u = np.full(z.shape, -1e9)
    v = np.full(z.shape, -1e9)
    u[front] = camera.fx * p_cam[front, 0] / z[front] + camera.cx
    v[front] = camera.fy * p_cam[front, 1] / z[front] + camera.cy
    return (front & (u > -margin_px) & (u < camera.width + margin_px)
            & (v > -margin_px) & (v < camera.height + margin_px))


class SyntheticSource:
    """Frames of seeded synthetic sequences (``g2mono_ros.synth``), rendered on demand.

    Frame ``k`` of sequence ``s`` is ``SyntheticSequence(seeds[s]).render(k * frame_stride)``.
    Rendered frames are cached in memory (and in ``cache_dir`` as .npz when set).
    """

    def __init__(self, config: DataConfig, out_hw: tuple[int, int], max_depth: float) -> None:
        from g2mono_ros.synth.sequence import SyntheticSequence

        self.config = config
        self.out_hw = out_hw
        self.max_depth = max_depth
        # Sequences are built on first use: each holds a scene, and most frames come from cache.
        self._sequences: dict[int, Any] = {}
        self._make_sequence = SyntheticSequence
        try:
            self.camera = self._sequence(0).camera.scaled(out_hw[1], out_hw[0])
        except G2MonoError as exc:
            msg = f'cannot build the synthetic dataset: {exc}'
            raise DatasetError(msg) from exc
        count = len(config.seeds) * config.frames_per_sequence
        self.length = min(count, config.limit) if config.limit else count
        self._cache: dict[int, FrameSample] = {}
        self._rendered: dict[int, int] = {}
        self.cache_dir = Path(config.cache_dir) if config.cache_dir else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return self.length

    def _variety(self, number: int) -> tuple[str, str, float]:
        """(environment, LiDAR pattern name or '', horizontal FOV) of sequence ``number``."""
        c = self.config
        environment = c.environments[number % len(c.environments)]
        pattern = ''
        if c.lidar_patterns:
            pattern = c.lidar_patterns[(number // len(c.environments)) % len(c.lidar_patterns)]
        fov = float(np.random.default_rng([c.seeds[number], 77]).uniform(*c.fov_x_deg))
        return environment, pattern, fov

    def _sequence(self, number: int) -> Any:
        if number not in self._sequences:
            from g2mono_ros.synth.patterns import lidar_pattern

            c = self.config
            environment, pattern, fov = self._variety(number)
            self._sequences[number] = self._make_sequence(
                c.seeds[number], num_frames=c.frames_per_sequence * c.frame_stride,
                width=c.render_width, height=c.render_height, beams=c.beams[number % len(c.beams)],
                lidar=lidar_pattern(pattern) if pattern else None, fov_x_deg=fov,
                environment=environment, speed_mps=1.5 if environment == 'outdoor' else 0.5,
                range_noise_m=c.range_noise_m, max_depth_m=self.max_depth,
                photo_textures=c.photo_textures)
        return self._sequences[number]

    def _cache_path(self, index: int) -> Path | None:
        if self.cache_dir is None:
            return None
        c = self.config
        number = index // c.frames_per_sequence
        key = (f'{c.seeds[number]}-{index % c.frames_per_sequence}-{c.frame_stride}-'
               f'{c.render_width}x{c.render_height}-{c.beams[number % len(c.beams)]}-{c.range_noise_m}-'
               f'{self.out_hw}-{self.max_depth}')
        if (c.environments, c.lidar_patterns, tuple(c.fov_x_deg)) != (('outdoor',), (), (80.0, 80.0)):
            key += f'-{self._variety(number)}'
        if c.photo_textures:
            key += f'-photo{c.photo_textures}'
        return self.cache_dir / f'synth_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz'

    def _render(self, index: int) -> FrameSample:
        number = index // self.config.frames_per_sequence
        seq = self._sequence(number)
        frame = seq.render((index % self.config.frames_per_sequence) * self.config.frame_stride)
        self._rendered[number] = self._rendered.get(number, 0) + 1
        if self._rendered[number] >= self.config.frames_per_sequence and number:
            del self._sequences[number]  # every frame is cached now: free the scene
        camera = frame.camera.scaled(self.out_hw[1], self.out_hw[0])
        keep = _points_in_view(frame.points_lidar, frame.T_cam_lidar, camera)
        scan = ScanInView(frame.points_lidar[keep].astype(np.float32),
                          frame.ring[keep].astype(np.int16), frame.T_cam_lidar, camera)
        return FrameSample(_resize_rgb(frame.rgb, self.out_hw),
                           resize_dense_depth(frame.depth_gt, self.out_hw), scan)

    def load(self, index: int, rng: np.random.Generator | None) -> FrameSample:
        del rng  # rendered at the input size: no crop
        if index in self._cache:
            return self._cache[index]
        path = self._cache_path(index)
        sample = None
        if path is not None and path.exists():
            try:
                with np.load(path) as data:
                    sample = FrameSample(data['rgb'], data['target_m'], ScanInView(
                        data['points'], data['ring'], data['T_cam_lidar'], self.camera))
            except (OSError, KeyError, ValueError):
                sample = None  # a truncated cache file: render again
        if sample is None:
            sample = self._render(index)
            if path is not None:
                tmp = path.with_suffix('.tmp.npz')
                np.savez(tmp, rgb=sample.rgb, target_m=sample.target_m,
                         points=sample.scan.points_lidar, ring=sample.scan.ring.astype(np.uint8),
                         T_cam_lidar=sample.scan.T_cam_lidar)
                tmp.replace(path)
        self._cache[index] = sample
        return sample


# --------------------------------------------------------------------------- KITTI


class KittiSource:
    """KITTI depth completion: ``velodyne_raw`` inputs, ``groundtruth`` targets, raw RGB.

    Layouts:
        ``<path>/<split>/<drive>/proj_depth/{groundtruth,velodyne_raw}/image_0{2,3}/<f>.png``
        with RGB at ``<raw_root>/<date>/<drive>/image_0X/data/<f>.png`` (or under
        ``<path>/<split>/<drive>/image_0X/data``); or the ``val_selection_cropped`` layout
        ``<path>/{image,velodyne_raw,groundtruth_depth}/``. Depth PNGs are metres x 256.

    Raises:
        DatasetError: folder missing, no samples, or a sample's RGB / input file missing.
    """

    DEPTH_SCALE_M = 1.0 / 256.0

    def __init__(self, config: DataConfig, out_hw: tuple[int, int]) -> None:
        self.out_hw = out_hw
        root = Path(config.path)
        if not root.is_dir():
            msg = f'KITTI depth folder {str(root)!r} does not exist'
            raise DatasetError(msg)
        triples: list[tuple[Path, Path, Path]] = []
        if (root / 'groundtruth_depth').is_dir():
            for gt in sorted((root / 'groundtruth_depth').glob('*.png')):
                rgb = root / 'image' / gt.name.replace('groundtruth_depth', 'image')
                velo = root / 'velodyne_raw' / gt.name.replace('groundtruth_depth', 'velodyne_raw')
                triples.append((rgb, velo, gt))
        else:
            split_dir = root / config.split
            if not split_dir.is_dir():
                msg = (f'KITTI depth folder {str(root)!r} has no {config.split!r} split '
                       '(expected <path>/<split>/<drive>/proj_depth/groundtruth/...) nor a '
                       'val_selection_cropped layout (groundtruth_depth/, image/, velodyne_raw/)')
                raise DatasetError(msg)
            raw_root = Path(config.raw_root) if config.raw_root else None
            for gt in sorted(split_dir.glob('*/proj_depth/groundtruth/image_0[23]/*.png')):
                camera_dir = gt.parent.name
                drive_dir = gt.parents[3]
                velo = drive_dir / 'proj_depth' / 'velodyne_raw' / camera_dir / gt.name
                local = drive_dir / camera_dir / 'data' / gt.name
                if raw_root is not None:
                    rgb = raw_root / drive_dir.name[:10] / drive_dir.name / camera_dir / 'data' / gt.name
                else:
                    rgb = local
                triples.append((rgb, velo, gt))
        if not triples:
            msg = f'no KITTI ground-truth PNGs found under {str(root)!r}'
            raise DatasetError(msg)
        for rgb, velo, gt in triples:
            for what, path in (('RGB image', rgb), ('velodyne_raw input', velo)):
                if not path.is_file():
                    msg = f'KITTI sample {str(gt)!r}: {what} {str(path)!r} is missing'
                    raise DatasetError(msg)
        self.samples = triples[:config.limit] if config.limit else triples
        self.load(0, None)  # fail on a malformed file now, not mid-training

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, rng: np.random.Generator | None) -> FrameSample:
        rgb_path, velo_path, gt_path = self.samples[index]
        rgb = _read_rgb(rgb_path)
        velo = read_depth_png(velo_path, self.DEPTH_SCALE_M)
        gt = read_depth_png(gt_path, self.DEPTH_SCALE_M)
        if velo.shape != rgb.shape[:2] or gt.shape != rgb.shape[:2]:
            msg = (f'KITTI sample {str(gt_path)!r}: sizes differ: RGB {rgb.shape[:2]}, '
                   f'velodyne_raw {velo.shape}, groundtruth {gt.shape}')
            raise DatasetError(msg)
        rgb, (velo, gt) = _cover_and_crop(rgb, [velo, gt], self.out_hw, rng, anchor='bottom')
        return FrameSample(rgb, gt, None, velo)


# --------------------------------------------------------------------------- PNG folders


class PngFolderSource:
    """``<path>/rgb/<name>.{png,jpg}`` with ``<path>/depth/<name>.png`` (16-bit).

    Depth in metres = value / 65535 x ``depth_max_depth`` (the G2 release convention).

    Raises:
        DatasetError: folder missing, no images, a depth file missing or not 16-bit.
    """

    def __init__(self, config: DataConfig, out_hw: tuple[int, int]) -> None:
        self.out_hw = out_hw
        self.scale_m = config.depth_max_depth / 65535.0
        root = Path(config.path)
        for sub in ('rgb', 'depth'):
            if not (root / sub).is_dir():
                msg = f'PNG dataset {str(root)!r} has no {sub}/ folder (expected rgb/ and depth/)'
                raise DatasetError(msg)
        images = sorted(p for p in (root / 'rgb').iterdir()
                        if p.suffix.lower() in ('.png', '.jpg', '.jpeg'))
        if not images:
            msg = f'PNG dataset {str(root / "rgb")!r} holds no .png/.jpg images'
            raise DatasetError(msg)
        pairs = []
        for image in images:
            depth = root / 'depth' / f'{image.stem}.png'
            if not depth.is_file():
                msg = f'PNG dataset: depth {str(depth)!r} for image {image.name!r} is missing'
                raise DatasetError(msg)
            pairs.append((image, depth))
        self.samples = pairs[:config.limit] if config.limit else pairs
        self.load(0, None)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, rng: np.random.Generator | None) -> FrameSample:
        rgb_path, depth_path = self.samples[index]
        rgb = _read_rgb(rgb_path)
        depth = read_depth_png(depth_path, self.scale_m)
        if depth.shape != rgb.shape[:2]:
            msg = f'PNG dataset: {depth_path.name!r} is {depth.shape}, its image {rgb.shape[:2]}'
            raise DatasetError(msg)
        rgb, (depth,) = _cover_and_crop(rgb, [depth], self.out_hw, rng)
        return FrameSample(rgb, depth)


def build_source(config: DataConfig, out_hw: tuple[int, int], max_depth: float) -> FrameSource:
    """The source for ``config.kind``; it checks its files now.

    Raises:
        DatasetError: missing or malformed dataset.
    """
    if config.kind == 'synthetic':
        return SyntheticSource(config, out_hw, max_depth)
    if config.kind == 'kitti':
        return KittiSource(config, out_hw)
    if config.kind == 'png_folder':
        return PngFolderSource(config, out_hw)
    from g2mono_ros.training.bag_dataset import RosbagSource

    return RosbagSource(config, out_hw, max_depth)


# --------------------------------------------------------------------------- tensors


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that depends only on (run seed, epoch, index)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _color_jitter(rgb: Tensor, amount: float, generator: torch.Generator) -> Tensor:
    if amount <= 0:
        return rgb
    factors = 1.0 + (torch.rand(3, generator=generator) * 2 - 1) * amount
    rgb = rgb * factors[0]  # brightness
    mean = rgb.mean()
    rgb = (rgb - mean) * factors[1] + mean  # contrast
    gray = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).unsqueeze(0)
    rgb = (rgb - gray) * factors[2] + gray  # saturation
    return rgb.clamp(0.0, 1.0)


class TrainingDataset(Dataset):
    """Tensors for the trainer from a ``FrameSource``.

    Items are indexed by ``(epoch, index)`` (see ``EpochSampler``) and return a dict:
    ``rgb`` (3, H, W) float [0, 1], ``input`` (1, H, W) normalised sparse depth, ``target``
    (1, H, W) normalised ground truth (0 = none).

    Training items draw a crop, flip, colour jitter and a simulated input; validation items
    (``train=False``) have no augmentation and feed the full scan / the given sparse input (a
    fixed-seed G2 input where a dataset has none), or with ``simulate_val`` the training
    simulation drawn from a fixed seed per frame.
    """

    def __init__(self, source: FrameSource, config: TrainConfig, *, train: bool,
                 simulate_val: bool = False) -> None:
        self.source = source
        self.sim: SimulationConfig = config.simulation
        self.max_depth = config.model.max_depth
        self.seed = config.seed
        self.train = train
        self.simulate_val = simulate_val
        self.min_range_m = self.sim.lidar.min_range_m

    def __len__(self) -> int:
        return len(self.source)

    def _project(self, scan: ScanInView, keep: np.ndarray | None) -> np.ndarray:
        from g2mono_ros.fusion.projection import project_points_to_depth

        points = scan.points_lidar if keep is None else scan.points_lidar[keep]
        depth, _ = project_points_to_depth(points, scan.T_cam_lidar, scan.camera,
                                           min_range=max(self.min_range_m, 1e-3),
                                           max_range=self.max_depth)
        return depth

    def _lidar_input(self, frame: FrameSample, rng: np.random.Generator,
                     generator: torch.Generator) -> np.ndarray | Tensor:
        full = rng.random() < self.sim.p_full_scan
        if frame.scan is not None:
            if full:
                return self._project(frame.scan, None)
            result = simulate_lidar_scan(frame.scan.points_lidar, rng, ring=frame.scan.ring,
                                         config=self.sim.lidar)
            return self._project(frame.scan, result.keep)
        sparse = torch.from_numpy(self._normalise(frame.sparse_m)).unsqueeze(0)
        if full:
            return sparse
        return simulate_lidar_image(sparse, generator, max_depth=self.max_depth,
                                    config=self.sim.lidar)

    def _normalise(self, depth_m: np.ndarray) -> np.ndarray:
        depth = np.where(np.isfinite(depth_m) & (depth_m > 0) & (depth_m <= self.max_depth),
                         depth_m, 0.0)
        return (depth / self.max_depth).astype(np.float32)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        seed = sample_seed(self.seed, epoch if self.train else VALIDATION_EPOCH, index)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        frame = self.source.load(index, rng if self.train else None)
        target = torch.from_numpy(self._normalise(frame.target_m)).unsqueeze(0)
        has_points = frame.scan is not None or frame.sparse_m is not None
        if not self.train and not self.simulate_val:
            if frame.scan is not None:
                raw: Any = self._project(frame.scan, None)
            elif frame.sparse_m is not None:
                raw = torch.from_numpy(self._normalise(frame.sparse_m)).unsqueeze(0)
            else:
                raw = simulate_g2_input(target, generator, self.sim.g2).raw
        else:
            use_g2 = (self.sim.mode == 'g2' or not has_points
                      or (self.sim.mode == 'mixed' and rng.random() < self.sim.p_g2))
            raw = (simulate_g2_input(target, generator, self.sim.g2).raw if use_g2
                   else self._lidar_input(frame, rng, generator))
        rgb_np = frame.rgb
        if self.train and self.sim.p_photometric and rng.random() < self.sim.p_photometric:
            photo = photometric_augment(frame.rgb, rng, self.sim.photometric)
            sparse = raw if isinstance(raw, np.ndarray) else raw[0].numpy() * self.max_depth
            raw = sensor_dropouts(sparse, frame.rgb, photo.specular, rng, self.sim.photometric)
            rgb_np = photo.rgb
        if isinstance(raw, np.ndarray):
            raw = torch.from_numpy(self._normalise(raw)).unsqueeze(0)
        if not rgb_np.flags.writeable:  # a decoded bag image views the message's bytes
            rgb_np = rgb_np.copy()
        rgb = torch.from_numpy(np.ascontiguousarray(rgb_np)).permute(2, 0, 1).float() / 255.0
        if self.train:
            if float(torch.rand((), generator=generator)) < self.sim.hflip:
                rgb, raw, target = rgb.flip(-1), raw.flip(-1), target.flip(-1)
            rgb = _color_jitter(rgb, self.sim.color_jitter, generator)
        return {'rgb': rgb.contiguous(), 'input': raw.float().contiguous(),
                'target': target.contiguous()}


def collate_samples(items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack per-sample dicts into a batch."""
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys: a seeded permutation per epoch, sharded by rank.

    Every rank sees ``batches_per_epoch * batch_size`` distinct indices (the tail is dropped so
    all ranks step together). ``start_batch`` skips batches already done (exact resume).
    """

    def __init__(self, length: int, *, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, start_batch: int = 0) -> None:
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.start_batch = start_batch

    @staticmethod
    def batches_per_epoch(length: int, batch_size: int, world_size: int) -> int:
        return length // (batch_size * world_size)

    def _indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, 2**31 - 1))
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        per_rank = self.batches_per_epoch(self.length, self.batch_size, self.world_size) * self.batch_size
        mine = order[self.rank:per_rank * self.world_size:self.world_size]
        return mine[self.start_batch * self.batch_size:]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self._indices()])

    def __len__(self) -> int:
        return len(self._indices())


def shard_indices(length: int, rank: int, world_size: int) -> list[int]:
    """Validation indices of one rank (every index exactly once over all ranks)."""
    return list(range(rank, length, world_size))


def describe_source(source: FrameSource) -> str:
    """One line naming the source and its size (for logs)."""
    return f'{type(source).__name__} with {len(source)} frames'


