"""The training configuration: a YAML file -> a validated, frozen ``TrainConfig``.

Every key is checked on load; a wrong or unknown key raises ``ConfigError`` naming the dotted
key (``optim.lr``) and the allowed values, before any data is read or a network is built.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from g2mono_ros.config import CAMERA_MODELS
from g2mono_ros.errors import ConfigError
from g2mono_ros.training.photometric import PhotometricConfig
from g2mono_ros.training.simulation import G2SimConfig, LidarSimConfig

__all__ = [
    'DATA_KINDS',
    'DataConfig',
    'ModelConfig',
    'OptimConfig',
    'RunConfig',
    'SimulationConfig',
    'TrainConfig',
    'config_from_mapping',
    'config_to_dict',
    'load_train_config',
]

DATA_KINDS = ('synthetic', 'rosbag', 'kitti', 'png_folder')
SIM_MODES = ('lidar', 'g2', 'mixed')
AMP_MODES = ('none', 'bf16', 'fp16')
DEVICES = ('auto', 'cpu', 'cuda')


def _fail(key: str, expected: str, value: Any) -> typing.NoReturn:
    msg = f'parameter {key!r} must be {expected}; got {value!r}'
    raise ConfigError(msg)


def _positive_int(key: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        _fail(key, 'an integer >= 0' if allow_zero else 'an integer > 0', value)


def _finite(key: str, value: Any, *, low: float = -math.inf, low_open: bool = False,
            high: float = math.inf) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if low_open else value >= low) and value <= high)
    if not ok:
        bound = f'{">" if low_open else ">="} {low:g}' if math.isfinite(low) else 'finite'
        if math.isfinite(high):
            bound += f' and <= {high:g}'
        _fail(key, f'a number {bound}', value)


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train.

    Attributes:
        variant: ``seed_small`` | ``seed`` | ``official``.
        kwargs: constructor overrides (e.g. ``widths``), recorded in the checkpoint.
        max_depth: metres that map to 1.0 at the network input and output.
        init_weights: checkpoint to start from (ours or the official release); empty = random.
        output_init: for a network trained from scratch, scale the last convolution's weights by
            0.1 and set its bias to ``output_bias`` (normalised depth), so a ReLU output starts
            active on every pixel (a ReLU head initialised as usual often dies early: its
            pixels then get no gradient and the loss stalls).
        output_bias: the starting output in normalised depth (0.2 x max_depth metres).
    """

    variant: str = 'seed_small'
    kwargs: dict = field(default_factory=dict)
    max_depth: float = 80.0
    init_weights: str = ''
    output_init: bool = True
    output_bias: float = 0.2

    def __post_init__(self) -> None:
        _finite('model.output_bias', self.output_bias, low=0.0, high=1.0)
        if self.variant not in ('seed', 'seed_small', 'official'):
            _fail('model.variant', 'one of seed, seed_small, official', self.variant)
        _finite('model.max_depth', self.max_depth, low=0.0, low_open=True)


@dataclass(frozen=True)
class DataConfig:
    """One dataset. Which keys apply depends on ``kind``; the others must stay at defaults.

    Attributes:
        kind: ``synthetic`` | ``rosbag`` | ``kitti`` | ``png_folder``.
        path: rosbag directory/file, KITTI depth root (holding ``train``/``val``) or PNG
            folder (holding ``rgb/`` and ``depth/``).
        seeds: synthetic: one generated sequence per seed.
        frames_per_sequence: synthetic: frames rendered per sequence.
        render_width, render_height: synthetic: rendered image size (then resized to the input).
        beams: synthetic: LiDAR beams per sequence (16, 32 or 64), cycled over ``seeds``.
        range_noise_m: synthetic: LiDAR range noise (std, metres).
        cache_dir: synthetic: directory caching rendered frames as .npz (empty = memory only).
        image_topic, camera_info_topic, points_topic: rosbag topics (images: Image, or a
            CompressedImage topic such as ``/camera/image_raw/compressed``).
        camera_model: rosbag: ``raw`` (CameraInfo K + D) or ``rectified`` (P), as the node.
        extrinsic_translation, extrinsic_rotation: rosbag: LiDAR -> camera optical transform
            (metres; quaternion x, y, z, w); used when the bag has no ``/tf_static`` for it.
        sync_max_offset: rosbag: seconds between an image and its scan.
        merge_neighbours: rosbag: scans on each side merged into the target (needs
            ``odom_topic``; 0 = the paired scan alone).
        odom_topic: rosbag: nav_msgs/Odometry of the LiDAR frame, for ``merge_neighbours``.
        frame_stride: rosbag: use every n-th image; synthetic: frames this far apart.
        raw_root: kitti: KITTI raw root (``<date>/<drive>/image_02/data``); empty = ``path``.
        split: kitti: ``train`` or ``val``.
        depth_max_depth: png_folder: metres of the 16-bit value 65535.
        limit: use at most this many samples (0 = all).
        environments: synthetic: ``outdoor`` / ``indoor`` scenes, cycled over ``seeds``.
        lidar_patterns: synthetic: names from ``synth.patterns.LIDAR_PATTERNS`` (8-128 beams,
            ``solid``), cycled over the sequences of each environment; overrides ``beams``.
        fov_x_deg: synthetic: [lo, hi] horizontal field of view, drawn per sequence (varied
            intrinsics).
        photo_textures: synthetic: share of surfaces (0-1) textured with real photographs
            (``SyntheticSequence(photo_textures=)``), so texture edges of real images are seen
            on surfaces without depth edges.
    """

    kind: str = 'synthetic'
    path: str = ''
    seeds: tuple = (0,)
    frames_per_sequence: int = 50
    render_width: int = 320
    render_height: int = 240
    beams: tuple = (64,)
    range_noise_m: float = 0.0
    cache_dir: str = ''
    image_topic: str = '/camera/image_raw'
    camera_info_topic: str = '/camera/camera_info'
    points_topic: str = '/lidar/points'
    camera_model: str = 'raw'
    extrinsic_translation: tuple = ()
    extrinsic_rotation: tuple = ()
    sync_max_offset: float = 0.06
    merge_neighbours: int = 0
    odom_topic: str = ''
    frame_stride: int = 1
    raw_root: str = ''
    split: str = 'train'
    depth_max_depth: float = 0.0
    limit: int = 0
    environments: tuple = ('outdoor',)
    lidar_patterns: tuple = ()
    fov_x_deg: tuple = (80.0, 80.0)
    photo_textures: float = 0.0

    def validate(self, prefix: str = 'data') -> None:
        """Check every key, naming them ``<prefix>.<key>``.

        Raises:
            ConfigError: a value out of range.
        """
        if self.kind not in DATA_KINDS:
            _fail(f'{prefix}.kind', f'one of {", ".join(DATA_KINDS)}', self.kind)
        if self.kind != 'synthetic' and not self.path:
            _fail(f'{prefix}.path', f'a non-empty path for kind {self.kind!r}', self.path)
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            _fail(f'{prefix}.seeds', 'a non-empty list of integers >= 0', self.seeds)
        _positive_int(f'{prefix}.frames_per_sequence', self.frames_per_sequence)
        _positive_int(f'{prefix}.render_width', self.render_width)
        _positive_int(f'{prefix}.render_height', self.render_height)
        if not self.beams or not all(b in (16, 32, 64) for b in self.beams):
            _fail(f'{prefix}.beams', 'a list of 16, 32 or 64', self.beams)
        if not self.environments or not all(e in ('outdoor', 'indoor') for e in self.environments):
            _fail(f'{prefix}.environments', 'a list of outdoor / indoor', self.environments)
        from g2mono_ros.synth.patterns import LIDAR_PATTERNS
        if not all(name in LIDAR_PATTERNS for name in self.lidar_patterns):
            _fail(f'{prefix}.lidar_patterns', f'names among {", ".join(LIDAR_PATTERNS)}',
                  self.lidar_patterns)
        if (len(self.fov_x_deg) != 2 or not all(isinstance(v, (int, float)) for v in self.fov_x_deg)
                or not 10.0 <= self.fov_x_deg[0] <= self.fov_x_deg[1] <= 150.0):
            _fail(f'{prefix}.fov_x_deg', '[lo, hi] with 10 <= lo <= hi <= 150', self.fov_x_deg)
        _finite(f'{prefix}.range_noise_m', self.range_noise_m, low=0.0)
        _finite(f'{prefix}.photo_textures', self.photo_textures, low=0.0, high=1.0)
        _finite(f'{prefix}.sync_max_offset', self.sync_max_offset, low=0.0, low_open=True)
        _positive_int(f'{prefix}.merge_neighbours', self.merge_neighbours, allow_zero=True)
        if self.merge_neighbours and not self.odom_topic:
            _fail(f'{prefix}.odom_topic', 'set when merge_neighbours > 0 (scans are merged in '
                  'the odometry frame)', self.odom_topic)
        _positive_int(f'{prefix}.frame_stride', self.frame_stride)
        if self.camera_model not in CAMERA_MODELS:
            _fail(f'{prefix}.camera_model', ' or '.join(CAMERA_MODELS), self.camera_model)
        if self.split not in ('train', 'val'):
            _fail(f'{prefix}.split', 'train or val', self.split)
        if self.kind == 'png_folder':
            _finite(f'{prefix}.depth_max_depth', self.depth_max_depth, low=0.0, low_open=True)
        _positive_int(f'{prefix}.limit', self.limit, allow_zero=True)
        if self.extrinsic_translation and len(self.extrinsic_translation) != 3:
            _fail(f'{prefix}.extrinsic_translation', '[x, y, z]', self.extrinsic_translation)
        if self.extrinsic_rotation and len(self.extrinsic_rotation) != 4:
            _fail(f'{prefix}.extrinsic_rotation', '[x, y, z, w]', self.extrinsic_rotation)


@dataclass(frozen=True)
class SimulationConfig:
    """How network inputs are made from a sample.

    Attributes:
        mode: ``lidar`` (LiDAR-shaped degradations of the scan), ``g2`` (the release recipe on
            the target) or ``mixed`` (``g2`` with probability ``p_g2``, else ``lidar``).
        p_full_scan: in ``lidar`` mode, chance of feeding the whole scan undegraded.
        p_g2: in ``mixed`` mode, chance of the G2 recipe.
        hflip: chance of a horizontal flip; color_jitter: brightness/contrast/saturation
            jitter amplitude.
        p_photometric: chance that a training image gets real-camera degradations and the
            matching LiDAR dropouts (``photometric``; 0 = off, the old behaviour).
        g2, lidar, photometric: the recipes' parameters.
    """

    mode: str = 'lidar'
    p_full_scan: float = 0.3
    p_g2: float = 0.3
    hflip: float = 0.5
    color_jitter: float = 0.2
    p_photometric: float = 0.0
    g2: G2SimConfig = field(default_factory=G2SimConfig)
    lidar: LidarSimConfig = field(default_factory=LidarSimConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)

    def __post_init__(self) -> None:
        if self.mode not in SIM_MODES:
            _fail('simulation.mode', f'one of {", ".join(SIM_MODES)}', self.mode)
        for name in ('p_full_scan', 'p_g2', 'hflip', 'p_photometric'):
            _finite(f'simulation.{name}', getattr(self, name), low=0.0, high=1.0)
        _finite('simulation.color_jitter', self.color_jitter, low=0.0, high=1.0)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a per-iteration cosine schedule (reference section 3 defaults).

    Attributes:
        lr, weight_decay: AdamW; min_lr: the cosine floor; warmup_steps: linear warm-up.
        batch_size: per process; epochs: passes over the training set.
        max_steps: stop after this many optimiser steps (0 = epochs decide); the cosine spans
            the smaller of the two.
        grad_clip: max gradient norm (0 = off); grad_weight: weight of L_grad.
        dense_weight: weight of an extra L1 over every ground-truth pixel; not in the G2
            recipe (0, the default, trains with the G2 loss exactly).
        amp: ``none`` | ``bf16`` | ``fp16`` autocast (CUDA only; fp32 on CPU).
        loss_scale: ``global``: the loss sees depth / max_depth (the G2 recipe); ``per_image``:
            prediction, target and input are divided by the median of the image's input points
            first, so a 2 m room and an 80 m street weigh alike.
    """

    lr: float = 2e-4
    weight_decay: float = 0.05
    min_lr: float = 0.0
    warmup_steps: int = 0
    batch_size: int = 8
    epochs: int = 10
    max_steps: int = 0
    grad_clip: float = 1.0
    grad_weight: float = 0.5
    dense_weight: float = 0.0
    amp: str = 'bf16'
    loss_scale: str = 'global'

    def __post_init__(self) -> None:
        if self.loss_scale not in ('global', 'per_image'):
            _fail('optim.loss_scale', 'global or per_image', self.loss_scale)
        _finite('optim.lr', self.lr, low=0.0, low_open=True)
        _finite('optim.weight_decay', self.weight_decay, low=0.0)
        _finite('optim.min_lr', self.min_lr, low=0.0, high=self.lr)
        _positive_int('optim.warmup_steps', self.warmup_steps, allow_zero=True)
        _positive_int('optim.batch_size', self.batch_size)
        _positive_int('optim.epochs', self.epochs)
        _positive_int('optim.max_steps', self.max_steps, allow_zero=True)
        _finite('optim.grad_clip', self.grad_clip, low=0.0)
        _finite('optim.grad_weight', self.grad_weight, low=0.0)
        _finite('optim.dense_weight', self.dense_weight, low=0.0)
        if self.amp not in AMP_MODES:
            _fail('optim.amp', f'one of {", ".join(AMP_MODES)}', self.amp)


@dataclass(frozen=True)
class RunConfig:
    """Where and how the run happens.

    Attributes:
        output_dir: checkpoints (``state_*.pt``), ``model.pt`` and TensorBoard logs go here.
        checkpoint_every: optimiser steps between training-state files (0 = end only).
        keep_checkpoints: training-state files kept (oldest deleted first).
        log_every: steps between TensorBoard scalars.
        validate_every_epochs: epochs between validations (each epoch by default).
        val_input: ``full``: validation feeds the whole scan (or the dataset's sparse input);
            ``simulated``: the training simulation with a fixed seed per frame (use it when the
            target is the scan itself, e.g. a rosbag without ``merge_neighbours``).
        device: ``auto`` | ``cpu`` | ``cuda``.
        num_workers: DataLoader worker processes (0 = in the main process).
        num_threads: torch CPU threads (0 = leave torch's default).
        progress: show a tqdm bar.
    """

    output_dir: str = 'runs/train'
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    validate_every_epochs: int = 1
    val_input: str = 'full'
    device: str = 'auto'
    num_workers: int = 0
    num_threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.output_dir:
            _fail('run.output_dir', 'a non-empty directory', self.output_dir)
        _positive_int('run.checkpoint_every', self.checkpoint_every, allow_zero=True)
        _positive_int('run.keep_checkpoints', self.keep_checkpoints)
        _positive_int('run.log_every', self.log_every)
        _positive_int('run.validate_every_epochs', self.validate_every_epochs)
        if self.val_input not in ('full', 'simulated'):
            _fail('run.val_input', 'full or simulated', self.val_input)
        if self.device not in DEVICES:
            _fail('run.device', f'one of {", ".join(DEVICES)}', self.device)
        _positive_int('run.num_workers', self.num_workers, allow_zero=True)
        _positive_int('run.num_threads', self.num_threads, allow_zero=True)


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    Attributes:
        seed: seeds initialisation, sampling order and every simulated input.
        input_height, input_width: network input size, multiples of the network's stride (64).
        train_data, val_data: datasets (``val_data`` optional: ``None`` skips validation).
    """

    train_data: DataConfig
    val_data: DataConfig | None = None
    seed: int = 0
    input_height: int = 128
    input_width: int = 256
    model: ModelConfig = field(default_factory=ModelConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        _positive_int('seed', self.seed, allow_zero=True)
        if not isinstance(self.train_data, DataConfig):
            _fail('train_data', 'a dataset mapping', self.train_data)
        self.train_data.validate('train_data')
        if self.val_data is not None:
            self.val_data.validate('val_data')
        for name in ('input_height', 'input_width'):
            _positive_int(name, getattr(self, name))


def _convert(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(key, args[0], value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            _fail(key, 'a mapping', value)
        return _build(hint, value, f'{key}.')
    if hint in (tuple,) or origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(key, 'a list', value)
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if hint in (dict,) or origin is dict:
        if not isinstance(value, Mapping):
            _fail(key, 'a mapping', value)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(key, 'a number', value)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, 'an integer', value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            _fail(key, 'true or false', value)
        return value
    if hint is str:
        if not isinstance(value, str):
            _fail(key, 'a string', value)
        return value
    return value


def _build(cls: type, mapping: Mapping[str, Any], prefix: str = '') -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in names:
            msg = f'unknown key {prefix + str(key)!r}; expected one of {", ".join(sorted(names))}'
            raise ConfigError(msg)
        kwargs[key] = _convert(prefix + key, hints[key], value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        msg = f'missing key in {prefix.rstrip(".") or "config"}: {exc}'
        raise ConfigError(msg) from exc


def config_from_mapping(mapping: Mapping[str, Any]) -> TrainConfig:
    """Build and validate a ``TrainConfig`` from a nested mapping (parsed YAML).

    Raises:
        ConfigError: unknown key, wrong type or value out of range (the dotted key is named).
    """
    if not isinstance(mapping, Mapping):
        msg = f'a training config must be a YAML mapping; got {type(mapping).__name__}'
        raise ConfigError(msg)
    if 'train_data' not in mapping:
        msg = "missing key 'train_data' (the training dataset)"
        raise ConfigError(msg)
    return _build(TrainConfig, mapping)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML file.

    Raises:
        ConfigError: unreadable file, not YAML, or any invalid key (see ``config_from_mapping``).
    """
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        msg = f'cannot read training config {str(path)!r}: {exc}'
        raise ConfigError(msg) from exc
    return config_from_mapping(document)


def config_to_dict(config: Any) -> Any:
    """Plain nested dict/list form (for checkpoints and logs)."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    return config
