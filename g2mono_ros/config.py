"""Validated, frozen configuration records shared by the node, the evaluator and the trainer.

Config flows one way: YAML -> declared ROS parameters (or CLI options) -> these dataclasses ->
constructor arguments of the ROS-free parts. Field names equal the ROS parameter names, so a
bad value fails at start-up with a ``ConfigError`` naming the parameter and the allowed values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from g2mono_ros.errors import ConfigError

__all__ = [
    'BACKENDS',
    'CAMERA_MODELS',
    'DEVICES',
    'IMAGE_TRANSPORTS',
    'PRECISIONS',
    'QOS_PROFILES',
    'SYNC_POLICIES',
    'UPSAMPLE_MODES',
    'VARIANTS',
    'EngineConfig',
    'ExtrinsicConfig',
    'MOTION_SOURCES',
    'MotionConfig',
    'NodeConfig',
    'ProjectionConfig',
    'SyncConfig',
    'flatten_params',
    'load_node_params_yaml',
]

VARIANTS = ('auto', 'seed', 'official')
DEVICES = ('auto', 'cuda', 'cpu')
PRECISIONS = ('fp32', 'fp16', 'bf16')
BACKENDS = ('auto', 'torch', 'onednn_graph', 'onnxruntime')
UPSAMPLE_MODES = ('edge_aware', 'bilinear', 'prefill_guided')
QOS_PROFILES = ('sensor_data', 'reliable', 'best_effort')
DEPTH_ENCODINGS = ('32FC1', '16UC1')
IMAGE_TRANSPORTS = ('raw', 'compressed')
SYNC_POLICIES = ('nearest', 'newest_before')
#: what the input image is: ``raw`` (CameraInfo K + D apply) or ``rectified`` (P, no distortion).
CAMERA_MODELS = ('raw', 'rectified')
MOTION_SOURCES = ('none', 'odometry', 'tf')
POINT_TIME_UNITS = ('auto', 's', 'ms', 'us', 'ns')


def _require_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        msg = f'parameter {name!r} must be one of {", ".join(choices)}; got {value!r}'
        raise ConfigError(msg)


def _require_finite(name: str, value: Any, *, low: float | None = None,
                    high: float | None = None, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = '' if low is None else f'{"> " if low_open else ">= "}{low}'
        hi = '' if high is None else f'<= {high}'
        allowed = ' and '.join(part for part in (lo, hi) if part) or 'finite'
        msg = f'parameter {name!r} must be a finite number {allowed}; got {value!r}'
        raise ConfigError(msg)


@dataclass(frozen=True)
class EngineConfig:
    """How to build and run the depth network.

    Attributes:
        weights: checkpoint path (ours or the official release's). Empty is an error.
        variant: ``seed`` | ``official`` | ``auto`` (as recorded in our checkpoint; the official
            release's bare state dict needs ``official``).
        device: ``auto`` (CUDA when available) | ``cuda`` | ``cpu``.
        precision: ``fp32`` | ``fp16`` | ``bf16`` (CUDA: weights converted once; CPU:
            autocast around fp32 weights).
        input_height: network input height in pixels, a positive multiple of 64; 0 (default)
            = the size recorded in the checkpoint (``models.checkpoint.resolve_input_size``).
        input_width: network input width in pixels, a multiple of 64; 0 = the checkpoint's
            when ``input_height`` is 0 too, else keep the camera's aspect ratio (rounded to a
            multiple of 64).
        max_depth: metres that map to 1.0 at the network input/output; 0 uses the value
            recorded in the checkpoint.
        num_threads: torch intra-op threads on CPU (process-wide); 0 keeps torch's default.
            On a small, busy CPU one thread can beat several (they spin-wait on each other).
        backend: ``auto`` (CPU fp32: ONNX Runtime for the official network, torch for the
            seed, as oneDNN Graph TorchScript graphs where they pass their check; chosen by
            measurement) | ``torch`` | ``onednn_graph`` (CPU fp32, seed: an error if it cannot
            run) | ``onnxruntime`` (CPU fp32: the network exported once and checked against
            torch at start-up; an error if it cannot run).
        cuda_graph: CUDA with a fixed input size (``input_width`` > 0): capture the network
            once as a CUDA graph and replay it every frame.
        upsample: network output -> camera size: ``edge_aware`` (no blending across depth
            edges, guided by the image; ``models.upsample``), ``bilinear``, or
            ``prefill_guided`` (residual networks with a nearest or scan-line pre-fill: their
            correction applied to the same fill of the points at the camera size; else as
            ``edge_aware``).
    """

    weights: str = ''
    variant: str = 'auto'
    device: str = 'auto'
    precision: str = 'fp32'
    input_height: int = 0
    input_width: int = 0
    max_depth: float = 0.0
    num_threads: int = 0
    backend: str = 'auto'
    cuda_graph: bool = False
    upsample: str = 'edge_aware'

    def __post_init__(self) -> None:
        if not isinstance(self.weights, str) or not self.weights.strip():
            msg = ("parameter 'weights' is empty: set it to a checkpoint path "
                   '(our .pt or the official G2-MonoDepth epoch_100.pth); '
                   'refusing to run with random weights')
            raise ConfigError(msg)
        _require_choice('variant', self.variant, VARIANTS)
        _require_choice('device', self.device, DEVICES)
        _require_choice('precision', self.precision, PRECISIONS)
        if not (isinstance(self.input_height, int) and self.input_height >= 0
                and self.input_height % 64 == 0):
            msg = (f"parameter 'input_height' must be a positive multiple of 64 (or 0 = the "
                   f"checkpoint's); got {self.input_height!r}")
            raise ConfigError(msg)
        if not (isinstance(self.input_width, int) and self.input_width >= 0
                and self.input_width % 64 == 0):
            msg = (f"parameter 'input_width' must be 0 (keep aspect) or a positive multiple of 64;"
                   f' got {self.input_width!r}')
            raise ConfigError(msg)
        _require_finite('max_depth', self.max_depth, low=0.0)
        if not (isinstance(self.num_threads, int) and not isinstance(self.num_threads, bool)
                and self.num_threads >= 0):
            msg = (f"parameter 'num_threads' must be an integer >= 0 (0 = torch's default);"
                   f' got {self.num_threads!r}')
            raise ConfigError(msg)
        _require_choice('backend', self.backend, BACKENDS)
        if not isinstance(self.cuda_graph, bool):
            msg = f"parameter 'cuda_graph' must be true or false; got {self.cuda_graph!r}"
            raise ConfigError(msg)
        _require_choice('upsample', self.upsample, UPSAMPLE_MODES)


@dataclass(frozen=True)
class ProjectionConfig:
    """Which LiDAR points become sparse depth.

    Attributes:
        min_range: metres; points nearer than this to the camera (depth) are dropped.
        max_range: metres; points farther than this are dropped.
    """

    min_range: float = 0.5
    max_range: float = 100.0

    def __post_init__(self) -> None:
        _require_finite('min_range', self.min_range, low=0.0)
        _require_finite('max_range', self.max_range, low=self.min_range, low_open=True)


@dataclass(frozen=True)
class SyncConfig:
    """Camera/LiDAR pairing policy (see ``fusion.sync.PairSynchronizer``).

    Attributes:
        sync_max_offset: seconds; an image pairs with a scan at most this far from it in time.
        sync_max_wait: seconds of arrival time (the node's clock) an image may wait for a later
            scan; cover the LiDAR's delivery delay (stamp to arrival) plus ``sync_max_offset``.
        sync_queue_size: bound on buffered images and scans, each, and on pairs waiting for the
            network.
        sync_policy: ``nearest`` (the scan nearest in time; may wait for the next scan) |
            ``newest_before`` (low latency: the newest scan at or before the image, at once;
            meant for motion-compensated scans).
        image_time_offset, points_time_offset: seconds added to each sensor's header stamps
            before pairing (known driver latencies, or two clocks that differ); the output
            keeps the camera's header stamp.
    """

    sync_max_offset: float = 0.06
    sync_max_wait: float = 0.5
    sync_queue_size: int = 30
    sync_policy: str = 'nearest'
    image_time_offset: float = 0.0
    points_time_offset: float = 0.0

    def __post_init__(self) -> None:
        _require_finite('sync_max_offset', self.sync_max_offset, low=0.0, low_open=True)
        _require_finite('sync_max_wait', self.sync_max_wait, low=0.0)
        if not (isinstance(self.sync_queue_size, int) and self.sync_queue_size >= 1):
            msg = f"parameter 'sync_queue_size' must be an integer >= 1; got {self.sync_queue_size!r}"
            raise ConfigError(msg)
        _require_choice('sync_policy', self.sync_policy, SYNC_POLICIES)
        _require_finite('image_time_offset', self.image_time_offset)
        _require_finite('points_time_offset', self.points_time_offset)

    @property
    def max_offset_ns(self) -> int:
        return round(self.sync_max_offset * 1e9)

    @property
    def max_wait_ns(self) -> int:
        return round(self.sync_max_wait * 1e9)

    @property
    def image_time_offset_ns(self) -> int:
        return round(self.image_time_offset * 1e9)

    @property
    def points_time_offset_ns(self) -> int:
        return round(self.points_time_offset * 1e9)


@dataclass(frozen=True)
class ExtrinsicConfig:
    """Rigid transform from the LiDAR frame to the camera optical frame (REP 103 optical: z fwd).

    A point p_lidar maps to p_cam = R(rotation) @ p_lidar + translation. Both left empty (the
    default) means "unset": the node then looks the transform up in TF, from the cloud's
    ``frame_id`` to the image's; there is no silent identity.

    Attributes:
        translation: (3,) metres, [x, y, z]; or () = unset.
        rotation: (4,) unit quaternion [x, y, z, w], normalised here if its norm is near 1;
            or () = unset.
        tf_timeout: seconds a TF lookup may wait for the transform (unset extrinsic only).
    """

    translation: tuple[float, ...] = ()
    rotation: tuple[float, ...] = ()
    tf_timeout: float = 0.1

    def __post_init__(self) -> None:
        t = tuple(self.translation)
        if t and (len(t) != 3 or not all(_is_number(v) for v in t)):
            msg = ("parameter 'extrinsic.translation' must be 3 finite numbers [x, y, z]; "
                   f'got {self.translation!r}')
            raise ConfigError(msg)
        q = tuple(self.rotation)
        if q and (len(q) != 4 or not all(_is_number(v) for v in q)):
            msg = ("parameter 'extrinsic.rotation' must be 4 finite numbers [x, y, z, w]; "
                   f'got {self.rotation!r}')
            raise ConfigError(msg)
        norm = math.sqrt(sum(v * v for v in q)) if q else 1.0
        if abs(norm - 1.0) > 1e-3:
            msg = (f"parameter 'extrinsic.rotation' must be a unit quaternion [x, y, z, w]"
                   f' (norm 1); got norm {norm:.6g} for {self.rotation!r}')
            raise ConfigError(msg)
        if bool(t) != bool(q):
            given, missing = (('translation', 'rotation') if t else ('rotation', 'translation'))
            msg = (f"parameter 'extrinsic.{missing}' is unset but 'extrinsic.{given}' is set: "
                   'set both (the extrinsic replaces TF) or neither (the transform comes from TF)')
            raise ConfigError(msg)
        _require_finite('extrinsic.tf_timeout', self.tf_timeout, low=0.0)
        object.__setattr__(self, 'translation', tuple(float(v) for v in t))
        object.__setattr__(self, 'rotation', tuple(float(v) / norm for v in q))
        object.__setattr__(self, 'tf_timeout', float(self.tf_timeout))

    @property
    def is_set(self) -> bool:
        """True when the parameters give the transform (TF is then not consulted)."""
        return bool(self.translation)


def _as_tuple(name: str, value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        msg = f'parameter {name!r} must be a list of numbers (or empty = unset); got {value!r}'
        raise ConfigError(msg)
    return tuple(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class MotionConfig:
    """Motion compensation: LiDAR points moved to the camera's image time before projection.

    Attributes:
        motion_source: ``none`` (project the scan as it is) | ``odometry`` (a
            ``nav_msgs/Odometry`` topic) | ``tf`` (tf2_ros through ``fixed_frame``).
        odom_topic: the odometry topic (``odometry``); its child frame is the rig's body.
        fixed_frame: the frame that does not move with the rig (``tf``), e.g. ``odom``.
        point_time_field: ``auto`` (detect ``time``, ``t``, ``timestamp``, ``time_stamp``,
            ``offset_time``), ``none`` (scan-level: every point at the cloud's stamp), or a
            field name: each point is moved from its own time (deskew).
        point_time_unit: ``auto`` | ``s`` | ``ms`` | ``us`` | ``ns`` of that field.
        motion_max_extrapolation: seconds a pose may be extrapolated past the newest (or before
            the oldest) odometry sample; points beyond are dropped and counted.
        motion_max_gap: seconds; odometry samples further apart are not interpolated across.
        motion_tf_timeout: seconds the worker waits for TF to catch up with a scan (``tf``).
        lidar_to_base_translation, lidar_to_base_rotation: (ROS parameters
            ``lidar_to_base.translation`` / ``.rotation``) the LiDAR's mounting on the odometry's
            child frame, ``p_base = R p_lidar + t``, metres and unit quaternion [x, y, z, w];
            identity when the odometry already describes the LiDAR (``odometry`` only).
    """

    motion_source: str = 'none'
    odom_topic: str = 'odom'
    fixed_frame: str = 'odom'
    point_time_field: str = 'auto'
    point_time_unit: str = 'auto'
    motion_max_extrapolation: float = 0.05
    motion_max_gap: float = 0.5
    motion_tf_timeout: float = 0.05
    lidar_to_base_translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lidar_to_base_rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        _require_choice('motion_source', self.motion_source, MOTION_SOURCES)
        _require_choice('point_time_unit', self.point_time_unit, POINT_TIME_UNITS)
        for name in ('odom_topic', 'fixed_frame', 'point_time_field'):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                msg = f'parameter {name!r} must be a non-empty string; got {value!r}'
                raise ConfigError(msg)
        _require_finite('motion_max_extrapolation', self.motion_max_extrapolation, low=0.0,
                        high=1.0)
        _require_finite('motion_max_gap', self.motion_max_gap, low=0.0, low_open=True)
        _require_finite('motion_tf_timeout', self.motion_tf_timeout, low=0.0, high=5.0)
        for name, value, size in (('translation', self.lidar_to_base_translation, 3),
                                  ('rotation', self.lidar_to_base_rotation, 4)):
            if len(tuple(value)) != size:  # unlike the extrinsic, there is no TF fallback
                what = '[x, y, z]' if size == 3 else '[x, y, z, w]'
                msg = (f"parameter 'lidar_to_base.{name}' must be {size} finite numbers {what};"
                       f' got {value!r}')
                raise ConfigError(msg)
        try:
            mount = ExtrinsicConfig(tuple(self.lidar_to_base_translation),
                                    tuple(self.lidar_to_base_rotation))
        except ConfigError as exc:  # same checks; name this parameter, not 'extrinsic'
            msg = str(exc).replace("'extrinsic.", "'lidar_to_base.")
            raise ConfigError(msg) from None
        object.__setattr__(self, 'lidar_to_base_translation', mount.translation)
        object.__setattr__(self, 'lidar_to_base_rotation', mount.rotation)


@dataclass(frozen=True)
class NodeConfig:
    """Everything the depth node needs; built from its ROS parameters (same names).

    Nested records keep their own parameter names; ``extrinsic.*`` are dotted ROS parameters.
    """

    engine: EngineConfig
    # Relative: they move with the node's namespace (`namespace:=cam_left`).
    image_topic: str = 'camera/image_raw'
    camera_info_topic: str = 'camera/camera_info'
    points_topic: str = 'lidar/points'
    depth_topic: str = 'g2mono/depth'
    output_encoding: str = '32FC1'
    camera_model: str = 'raw'  # raw: K + D | rectified: P, no distortion (image_rect topics)
    publish_colorized: bool = False
    publish_sparse: bool = False
    input_qos: str = 'sensor_data'
    output_qos: str = 'reliable'
    diagnostics_period: float = 1.0
    publish_timing: bool = False  # per-pair stage timings on <depth_topic>/timing (benchmarks)
    image_transport: str = 'raw'  # raw Image on image_topic | CompressedImage on <image_topic>/compressed
    publish_points: bool = False  # dense depth as PointCloud2 (xyz + rgb) on <depth_topic>/points
    points_decimation: int = 2  # every n-th pixel in rows and columns
    points_max_range: float = 0.0  # metres of camera depth; 0 = no limit
    colorized_max_depth: float = 0.0  # metres at the colour map's far end; 0 = per frame
    lazy: bool = False  # skip inference while no output has a subscriber
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    extrinsic: ExtrinsicConfig = field(default_factory=ExtrinsicConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)

    def __post_init__(self) -> None:
        for name in ('image_topic', 'camera_info_topic', 'points_topic', 'depth_topic'):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                msg = f'parameter {name!r} must be a non-empty topic name; got {value!r}'
                raise ConfigError(msg)
        _require_choice('output_encoding', self.output_encoding, DEPTH_ENCODINGS)
        _require_choice('camera_model', self.camera_model, CAMERA_MODELS)
        _require_choice('input_qos', self.input_qos, QOS_PROFILES)
        _require_choice('output_qos', self.output_qos, QOS_PROFILES)
        _require_finite('diagnostics_period', self.diagnostics_period, low=0.0, low_open=True)
        _require_choice('image_transport', self.image_transport, IMAGE_TRANSPORTS)
        if not (isinstance(self.points_decimation, int) and not isinstance(self.points_decimation,
                                                                           bool)
                and self.points_decimation >= 1):
            msg = (f"parameter 'points_decimation' must be an integer >= 1; "
                   f'got {self.points_decimation!r}')
            raise ConfigError(msg)
        _require_finite('points_max_range', self.points_max_range, low=0.0)
        _require_finite('colorized_max_depth', self.colorized_max_depth, low=0.0)

    @classmethod
    def from_flat(cls, params: Mapping[str, Any]) -> NodeConfig:
        """Build from flat ROS parameter names (``extrinsic.translation`` dotted).

        Raises:
            ConfigError: unknown parameter name, or any value out of range.
        """
        nested = {f.name for f in fields(EngineConfig)}
        projection = {f.name for f in fields(ProjectionConfig)}
        sync = {f.name for f in fields(SyncConfig)}
        motion = {f.name for f in fields(MotionConfig)} - {'lidar_to_base_translation',
                                                           'lidar_to_base_rotation'}
        top = {f.name for f in fields(cls)} - {'engine', 'projection', 'sync', 'extrinsic',
                                               'motion'}
        parts: dict[str, dict[str, Any]] = {'engine': {}, 'projection': {}, 'sync': {},
                                            'extrinsic': {}, 'motion': {}, 'top': {}}
        for name, value in params.items():
            if name in nested:
                parts['engine'][name] = value
            elif name in projection:
                parts['projection'][name] = value
            elif name in sync:
                parts['sync'][name] = value
            elif name in ('extrinsic.translation', 'extrinsic.rotation'):
                # `[]` in a YAML file reaches rclpy as an unset value (None): unset, like empty.
                parts['extrinsic'][name.split('.', 1)[1]] = _as_tuple(name, value)
            elif name == 'extrinsic.tf_timeout':
                parts['extrinsic']['tf_timeout'] = value
            elif name in motion:
                parts['motion'][name] = value
            elif name in ('lidar_to_base.translation', 'lidar_to_base.rotation'):
                parts['motion'][name.replace('.', '_')] = _as_tuple(name, value)
            elif name in top:
                parts['top'][name] = value
            elif name == 'use_sim_time':
                continue  # rclpy's own parameter
            else:
                msg = f'unknown parameter {name!r}'
                raise ConfigError(msg)
        return cls(engine=EngineConfig(**parts['engine']),
                   projection=ProjectionConfig(**parts['projection']),
                   sync=SyncConfig(**parts['sync']),
                   extrinsic=ExtrinsicConfig(**parts['extrinsic']),
                   motion=MotionConfig(**parts['motion']),
                   **parts['top'])


def flatten_params(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Flatten nested YAML mappings into dotted ROS parameter names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f'{name}.'))
        else:
            flat[name] = value
    return flat


def load_node_params_yaml(path: str | Path, node_name: str = 'depth_node') -> dict[str, Any]:
    """Read a ROS 2 parameters YAML (``node: ros__parameters: {...}``) into flat names.

    Accepts ``/**`` (any node, any namespace: what config/depth.yaml uses), the node's own name
    and ``/node`` keys, like the ROS parameter loader.

    Raises:
        ConfigError: the file is missing, is not YAML, or has no section for ``node_name``.
    """
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        msg = f'cannot read parameters file {str(path)!r}: {exc}'
        raise ConfigError(msg) from exc
    if not isinstance(document, Mapping):
        msg = f'parameters file {str(path)!r} is not a YAML mapping'
        raise ConfigError(msg)
    flat: dict[str, Any] = {}
    for key in ('/**', node_name, f'/{node_name}'):
        section = document.get(key)
        if isinstance(section, Mapping) and isinstance(section.get('ros__parameters'), Mapping):
            flat.update(flatten_params(section['ros__parameters']))
    if not flat:
        msg = f'parameters file {str(path)!r} has no "{node_name}: ros__parameters:" section'
        raise ConfigError(msg)
    return flat
