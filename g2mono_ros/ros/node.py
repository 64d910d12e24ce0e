"""The ROS 2 depth node ``depth_node``: camera + CameraInfo + LiDAR in, dense metric depth out.

Callbacks only check and keep the messages (O(1) per message) and feed the camera/LiDAR
synchroniser; a worker thread decodes, projects and runs the network on the pairs it completes
(all of them while it keeps up, the best aligned when it cannot).
Run it with ``ros2 run g2mono_ros depth_node`` or ``g2mono node``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from g2mono_ros.config import (EngineConfig, ExtrinsicConfig, MotionConfig, NodeConfig,
                               ProjectionConfig, SyncConfig)
from g2mono_ros.errors import ConfigError, G2MonoError
from g2mono_ros.fusion.extrinsic import CoverageCheck, ExtrinsicResolver
from g2mono_ros.fusion.pair_queue import PairQueue
from g2mono_ros.fusion.pipeline import (FaultLog, PairInputs, RateMeter, StageStats,
                                      classify_image_error, process_pair)

__all__ = ['LIVE_PARAMETERS', 'NODE_NAME', 'PARAMETERS', 'DepthNode', 'DepthNodePhases',
           'read_only_reason', 'add_arguments', 'main', 'output_topics', 'run']

NODE_NAME = 'depth_node'


class ParameterSpec(NamedTuple):
    """One declared ROS parameter: its default (which fixes the type) and its description."""

    default: Any
    description: str
    dynamic: bool = False  # floats: also accept integers written without a decimal point


def _defaults() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for record in (EngineConfig, ProjectionConfig, SyncConfig):
        for f in fields(record):
            values[f.name] = f.default
    values['weights'] = ''
    for f in fields(NodeConfig):
        if f.name not in ('engine', 'projection', 'sync', 'extrinsic', 'motion'):
            values[f.name] = f.default
    motion = MotionConfig()
    for f in fields(MotionConfig):
        if not f.name.startswith('lidar_to_base_'):
            values[f.name] = f.default
    values['lidar_to_base.translation'] = [float(v) for v in motion.lidar_to_base_translation]
    values['lidar_to_base.rotation'] = [float(v) for v in motion.lidar_to_base_rotation]
    extrinsic = ExtrinsicConfig()  # unset: [] (the transform then comes from TF)
    values['extrinsic.translation'] = [float(v) for v in extrinsic.translation]
    values['extrinsic.rotation'] = [float(v) for v in extrinsic.rotation]
    values['extrinsic.tf_timeout'] = extrinsic.tf_timeout
    return values


_D = _defaults()

#: Every parameter the node declares; names equal the fields of ``NodeConfig`` and its records.
PARAMETERS: dict[str, ParameterSpec] = {
    'weights': ParameterSpec(_D['weights'], 'Checkpoint path: ours (.pt) or the official '
                             'G2-MonoDepth epoch_100.pth. Required.'),
    'variant': ParameterSpec(_D['variant'], 'Network: auto (as recorded in the checkpoint) | seed '
                             '| official (needed for the official bare state dict).'),
    'device': ParameterSpec(_D['device'], 'auto (CUDA when available) | cuda | cpu.'),
    'precision': ParameterSpec(_D['precision'], 'fp32 | fp16 | bf16 (CUDA: weights converted '
                               'once; CPU: autocast).'),
    'input_height': ParameterSpec(_D['input_height'], 'Network input height, px; 0 = the size '
                                  'recorded in the checkpoint, else a multiple of 64.'),
    'input_width': ParameterSpec(_D['input_width'], 'Network input width, px; a multiple of 64, '
                                 "or 0: the checkpoint's when input_height is 0, else keep the "
                                 "camera's aspect ratio."),
    'max_depth': ParameterSpec(_D['max_depth'], 'Metres mapped to 1.0 at the network; 0 = the '
                               "checkpoint's value.", True),
    'num_threads': ParameterSpec(_D['num_threads'], 'CPU only: torch intra-op threads; 0 = '
                                 "torch's default (one per core)."),
    'backend': ParameterSpec(_D['backend'], 'auto (CPU fp32: onnxruntime for the official '
                             'network, torch for the seed: oneDNN Graph where it passes its '
                             'check) | torch | onednn_graph (CPU fp32, seed) | onnxruntime '
                             '(CPU fp32: exported once, checked against torch at start-up).'),
    'cuda_graph': ParameterSpec(_D['cuda_graph'], 'CUDA with a fixed input_width: capture the '
                                'network as a CUDA graph and replay it per frame.'),
    'upsample': ParameterSpec(_D['upsample'], 'Network output -> camera size: edge_aware (no '
                              'blending across depth edges) | bilinear | prefill_guided '
                              '(residual nearest-fill networks: keeps a dense scan\'s detail).'),
    'min_range': ParameterSpec(_D['min_range'], 'LiDAR points nearer than this (m, camera depth) '
                               'are ignored.', True),
    'max_range': ParameterSpec(_D['max_range'], 'LiDAR points farther than this (m) are ignored.',
                               True),
    'sync_max_offset': ParameterSpec(_D['sync_max_offset'], 'An image pairs with the LiDAR scan '
                                     'nearest in time within this many seconds.', True),
    'sync_max_wait': ParameterSpec(_D['sync_max_wait'], 'Seconds (node clock, from arrival) an '
                                   'image may wait for a later scan; cover the LiDAR delivery '
                                   'delay.', True),
    'sync_queue_size': ParameterSpec(_D['sync_queue_size'], 'Images and scans buffered for '
                                     'pairing, each, and pairs waiting for the network (>= 1).'),
    'sync_policy': ParameterSpec(_D['sync_policy'], 'nearest (the scan nearest in time; may wait '
                                 'for the next scan) | newest_before (low latency: the newest '
                                 'scan at or before the image, at once; for motion-compensated '
                                 'scans).'),
    'image_time_offset': ParameterSpec(_D['image_time_offset'], 'Seconds added to image stamps '
                                       'for pairing (output keeps the camera stamp).', True),
    'points_time_offset': ParameterSpec(_D['points_time_offset'], 'Seconds added to cloud stamps '
                                        'for pairing (driver latency, clock offset).', True),
    'extrinsic.translation': ParameterSpec(_D['extrinsic.translation'], 'LiDAR -> camera optical '
                                           'frame translation [x, y, z], m: '
                                           'p_cam = R p_lidar + t; empty = from TF.', True),
    'extrinsic.rotation': ParameterSpec(_D['extrinsic.rotation'], 'LiDAR -> camera optical frame '
                                        'rotation, unit quaternion [x, y, z, w]; empty = from '
                                        'TF.', True),
    'extrinsic.tf_timeout': ParameterSpec(_D['extrinsic.tf_timeout'], 'Seconds a TF lookup '
                                          '(cloud frame_id -> image frame_id) may wait.', True),
    'image_topic': ParameterSpec(_D['image_topic'], 'Camera image input (rgb8, bgr8, mono8, '
                                 '...).'),
    'camera_info_topic': ParameterSpec(_D['camera_info_topic'], 'CameraInfo of that camera.'),
    'camera_model': ParameterSpec(_D['camera_model'], 'raw (CameraInfo K + D: image_raw) | '
                                  'rectified (P, no distortion: image_rect, stereo/RGB-D '
                                  'drivers).'),
    'points_topic': ParameterSpec(_D['points_topic'], 'LiDAR sensor_msgs/PointCloud2 input.'),
    'depth_topic': ParameterSpec(_D['depth_topic'], 'Depth output; camera_info, sparse_depth, '
                                 'depth/colorized and depth/timing are published beside it.'),
    'output_encoding': ParameterSpec(_D['output_encoding'], '32FC1 (metres, NaN = no '
                                     'estimate) | 16UC1 (millimetres, 0 = no estimate or beyond '
                                     '65.535 m); REP 118.'),
    'publish_colorized': ParameterSpec(_D['publish_colorized'], 'Also publish an rgb8 rendering '
                                       'on <depth_topic>/colorized.'),
    'publish_sparse': ParameterSpec(_D['publish_sparse'], 'Also publish the projected LiDAR '
                                    'input (32FC1, image size, NaN where no point landed) on '
                                    '<ns>/sparse_depth.'),
    'input_qos': ParameterSpec(_D['input_qos'], 'Subscriptions: sensor_data (best effort; matches '
                               'best-effort and reliable drivers) | reliable | best_effort.'),
    'output_qos': ParameterSpec(_D['output_qos'], 'Publishers: reliable (matches every '
                                'subscriber) | sensor_data | best_effort.'),
    'diagnostics_period': ParameterSpec(_D['diagnostics_period'], 'Seconds between /diagnostics '
                                        'messages.', True),
    'publish_timing': ParameterSpec(_D['publish_timing'], 'Publish per-pair stage timings on '
                                    '<depth_topic>/timing (for benchmarks).'),
    'image_transport': ParameterSpec(_D['image_transport'], 'raw (sensor_msgs/Image on '
                                     'image_topic) | compressed (CompressedImage jpeg/png on '
                                     '<image_topic>/compressed, image_transport naming).'),
    'publish_points': ParameterSpec(_D['publish_points'], 'Also publish the dense depth as a '
                                    'PointCloud2 (x y z rgb, camera optical frame) on '
                                    '<depth_topic>/points.'),
    'points_decimation': ParameterSpec(_D['points_decimation'], 'Point cloud: every n-th pixel '
                                       'in rows and columns (>= 1).'),
    'points_max_range': ParameterSpec(_D['points_max_range'], 'Point cloud: drop points deeper '
                                      'than this (m); 0 = no limit.', True),
    'colorized_max_depth': ParameterSpec(_D['colorized_max_depth'], 'Metres shown at the end of '
                                         'the colour map in <depth_topic>/colorized; 0 = per '
                                         'frame, 1.1x the 99th percentile of its depth.', True),
    'lazy': ParameterSpec(_D['lazy'], 'Skip inference while nothing subscribes to any output '
                          '(diagnostics say so).'),
    'motion_source': ParameterSpec(_D['motion_source'], 'Move LiDAR points to the image time: '
                                   'none | odometry (nav_msgs/Odometry on odom_topic) | tf '
                                   '(tf2_ros through fixed_frame).'),
    'odom_topic': ParameterSpec(_D['odom_topic'], 'nav_msgs/Odometry input (motion_source '
                                'odometry); its child frame is the rig body.'),
    'fixed_frame': ParameterSpec(_D['fixed_frame'], 'Frame that does not move with the rig '
                                 '(motion_source tf), e.g. odom.'),
    'point_time_field': ParameterSpec(_D['point_time_field'], 'Per-point time field for '
                                      'deskew: auto (time, t, timestamp, time_stamp, '
                                      'offset_time) | none (scan-level) | a field name.'),
    'point_time_unit': ParameterSpec(_D['point_time_unit'], 'Unit of that field: auto | s | ms '
                                     '| us | ns (relative or absolute is detected).'),
    'motion_max_extrapolation': ParameterSpec(_D['motion_max_extrapolation'], 'Seconds a pose '
                                              'may be extrapolated past the odometry; points '
                                              'beyond are dropped and counted.', True),
    'motion_max_gap': ParameterSpec(_D['motion_max_gap'], 'Seconds: odometry samples further '
                                    'apart are not interpolated across.', True),
    'motion_tf_timeout': ParameterSpec(_D['motion_tf_timeout'], 'Seconds one TF lookup for '
                                       'motion may wait (motion_source tf).', True),
    'lidar_to_base.translation': ParameterSpec(_D['lidar_to_base.translation'], 'LiDAR -> '
                                               'odometry child frame translation [x, y, z], m '
                                               '(motion_source odometry).', True),
    'lidar_to_base.rotation': ParameterSpec(_D['lidar_to_base.rotation'], 'LiDAR -> odometry '
                                            'child frame rotation, unit quaternion [x, y, z, '
                                            'w].', True),
}

#: Parameters ``ros2 param set`` may change while the node runs (validated like at start-up).
LIVE_PARAMETERS = frozenset({
    'min_range', 'max_range', 'sync_max_offset', 'sync_max_wait', 'publish_colorized',
    'publish_sparse', 'publish_points', 'points_decimation', 'points_max_range',
    'colorized_max_depth', 'publish_timing', 'diagnostics_period', 'lazy'})
_ENGINE_PARAMETERS = frozenset({f.name for f in fields(EngineConfig)})
_WIRING_PARAMETERS = frozenset({'image_topic', 'camera_info_topic', 'points_topic', 'depth_topic',
                                'input_qos', 'output_qos', 'image_transport', 'output_encoding',
                                'odom_topic', 'motion_source'})


def read_only_reason(name: str) -> str:
    """Why ``name`` cannot change at run time ('' for the live parameters)."""
    if name in LIVE_PARAMETERS:
        return ''
    if name in _ENGINE_PARAMETERS:
        return ('read-only: it loads or shapes the network; restart the node (lifecycle: '
                'deactivate, cleanup, configure, activate)')
    if name in _WIRING_PARAMETERS:
        return ('read-only: subscriptions and publishers are made with it at start-up; '
                'restart the node')
    return 'read-only: set at start-up; restart the node'

_FLUSH_PERIOD_S = 0.05
_JUMP_BACK_NS = 1_000_000_000  # a stamp this much older than the newest = time went back
# Drops that happen in normal operation (overload: best-aligned pair wins; spare scans): no
# warning level.
_ROUTINE_DROPS = frozenset({'pair_superseded', 'pair_stale', 'sync_superseded'})
_WORKER_POLL_S = 0.2
# ros2 launch escalates SIGINT to SIGTERM after 5 s: stop waiting for an inference before that.
_WORKER_JOIN_S = 3.0
# Stamps further than this from the node's clock are not live (a bag replayed without
# use_sim_time, a camera on another clock): stamp-to-publish latency is then not measured.
_STAMP_LIVE_S = 10.0


def output_topics(depth_topic: str) -> dict[str, str]:
    """Every output name, derived from ``depth_topic`` (``g2mono/depth`` -> ``g2mono/...``)."""
    parent = depth_topic.rsplit('/', 1)[0] if '/' in depth_topic else ''
    prefix = f'{parent}/' if parent or depth_topic.startswith('/') else ''
    return {
        'depth': depth_topic,
        'camera_info': f'{prefix}camera_info',
        'sparse_depth': f'{prefix}sparse_depth',
        'colorized': f'{depth_topic}/colorized',
        'timing': f'{depth_topic}/timing',
        'points': f'{depth_topic}/points',
    }


def _qos(name: str, *, output: bool) -> QoSProfile:
    # A new profile per entity: qos_overrides.* parameters are written into the one passed.
    if name == 'sensor_data':
        return QoSProfile(history=qos_profile_sensor_data.history,
                          depth=qos_profile_sensor_data.depth,
                          reliability=qos_profile_sensor_data.reliability,
                          durability=qos_profile_sensor_data.durability)
    reliability = (ReliabilityPolicy.RELIABLE if name == 'reliable'
                   else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5 if output else 10,
                      reliability=reliability)


def _rgb_convertible_encodings(table: dict[str, Any]) -> frozenset[str]:
    # What codecs.rgb_from_image accepts: 8/16-bit colour or mono, and the generic 8UC1/3/4.
    generic = ('8UC1', '8UC3', '8UC4')
    return frozenset(name for name, spec in table.items()
                     if (spec.layout or name in generic) and spec.dtype in ('u1', 'u2'))


def _widen(name: str, value: Any) -> Any:
    """Integers given for float parameters (``max_range:=80``) become floats."""
    spec = PARAMETERS.get(name)
    if spec is None or not spec.dynamic:
        return value
    if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(spec.default, list) and isinstance(value, (list, tuple)):
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class _ImageItem(NamedTuple):
    msg: Any  # Image or CompressedImage, decoded on the worker only if its pair is processed
    received_wall_ns: int
    compressed: bool = False


class _ScanItem(NamedTuple):
    msg: PointCloud2  # decoded on the worker (points, per-point times), only if it is used
    received_wall_ns: int
    frame_id: str = ''


class DepthNodePhases:
    """The depth node's set-up in phases, shared by ``DepthNode`` and ``LifecycleDepthNode``.

    ``_declare_parameters`` (constructor) -> ``_configure`` (validate, load the network, create
    the publishers) -> ``_activate`` (subscriptions, timers, worker thread) -> ``_deactivate``
    (stop those; the network stays loaded) -> ``_cleanup`` (publishers and network freed). The
    plain node runs the first three in its constructor; the lifecycle node maps them to its
    transitions. Mixed into an rclpy ``Node`` (or ``LifecycleNode``) subclass.
    """

    config: NodeConfig
    engine: Any

    def _configure(self) -> None:
        """Validate the parameters, load the network, create the publishers.

        Raises:
            ConfigError: a parameter is out of range, or the weights file is missing.
            CheckpointError: the weights cannot be loaded as the requested variant.
        """
        self.config = NodeConfig.from_flat(self._parameter_values())
        weights = Path(self.config.engine.weights).expanduser()
        if not weights.is_file():
            msg = f"parameter 'weights': no checkpoint file at {str(weights)!r}"
            raise ConfigError(msg)
        if not self.config.extrinsic.is_set:
            from g2mono_ros.ros.tf_lookup import tf2_available

            why = tf2_available()
            if why is not None:
                msg = ("no LiDAR -> camera extrinsic: parameters 'extrinsic.translation' and "
                       "'extrinsic.rotation' are unset and TF is not available (tf2_ros does "
                       f'not import: {why}). Either set extrinsic.translation [x, y, z] and '
                       'extrinsic.rotation [x, y, z, w], or install tf2_ros (a ROS 2 install) '
                       "and publish TF from the cloud's frame_id to the image's")
                raise ConfigError(msg)

        # Imported only after the parameters are valid: a typo fails before torch loads.
        from g2mono_ros.ros import codecs
        from g2mono_ros.models.engine import DepthEngine
        from g2mono_ros.fusion.sparse import SparseProjector
        from g2mono_ros.fusion.sync import ArrivalClock, PairSynchronizer
        from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

        self._codecs = codecs
        self._rgb_encodings = _rgb_convertible_encodings(codecs.IMAGE_ENCODINGS)
        self.engine = DepthEngine(self.config.engine)
        # One projection per pair, on the engine's device; buffers reused by the worker.
        self._projector = SparseProjector(
            self.engine.device if self.engine.device.type != 'cpu' else None)
        # Depth and sparse_depth messages refilled frame after frame (publish serialises them
        # first): no 8 MB allocation per 1080p message, the sparse one resets its points only.
        self._depth_encoder = codecs.DepthImageEncoder(self.config.output_encoding)
        self._sparse_encoder = codecs.DepthImageEncoder('32FC1')
        ext = self.config.extrinsic
        self.faults = FaultLog()
        self._tf_source: Any = None
        if ext.is_set:
            self._extrinsic = ExtrinsicResolver(fixed=transform_from_translation_quaternion(
                np.asarray(ext.translation, dtype=np.float64),
                np.asarray(ext.rotation, dtype=np.float64)))
        else:
            from g2mono_ros.ros.tf_lookup import TfTransformSource

            self._tf_source = TfTransformSource(self)
            self._extrinsic = ExtrinsicResolver(source=self._tf_source, timeout_s=ext.tf_timeout,
                                                record=self._log_fault)
        self._coverage = CoverageCheck()
        self.stages = StageStats()
        self.rates = {'image': RateMeter(), 'points': RateMeter(), 'camera_info': RateMeter()}
        self.pairs_processed = 0
        self._sync = PairSynchronizer(self.config.sync, backwards_jump_ns=_JUMP_BACK_NS)
        # Waits count in arrival time on the node's clock (sim time with a bag), never going back.
        self._arrival = ArrivalClock(self._ros_now_ns)
        self._queue = PairQueue(self.config.sync.sync_queue_size, clock=self._arrival.now_ns)
        self._queue.close()  # a fresh one is opened by _activate
        self._jumps_seen = 0
        from g2mono_ros.fusion.camera_info_buffer import CameraInfoBuffer

        # (CameraModel, CameraInfo) by stamp: an image gets the calibration with its stamp.
        self._camera_infos: CameraInfoBuffer[tuple[Any, CameraInfo]] = CameraInfoBuffer()
        self._last_publish_mono = time.monotonic()
        self._faults_at_last_diag: dict[str, int] = {}
        self._subscriptions_active: list[Any] = []
        self._timers_active: list[Any] = []
        self._worker: threading.Thread | None = None
        self.pairs_skipped_lazy = 0
        self._lazy_idle = False
        self._stamp_age_s: float | None = None  # node clock - newest published image stamp
        self.poses: Any = None  # PoseBuffer of the odometry (motion_source: odometry)
        self._motion = self._make_motion_source()

        self._pub_lock = threading.Lock()  # optional publishers come and go with live tuning
        topics = output_topics(self.config.depth_topic)
        def out_qos() -> QoSProfile:
            return _qos(self.config.output_qos, output=True)

        # qos_overrides.<topic>.publisher.{reliability,history,depth} parameters apply here.
        overridable = QoSOverridingOptions.with_default_policies()
        self._pub_depth = self.create_publisher(Image, topics['depth'], out_qos(),
                                                qos_overriding_options=overridable)
        self._pub_info = self.create_publisher(CameraInfo, topics['camera_info'], out_qos(),
                                               qos_overriding_options=overridable)
        self._pub_sparse = self._pub_color = self._pub_timing = self._pub_points = None
        self._sync_optional_publishers(self.config)
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

    def _sync_optional_publishers(self, config: NodeConfig) -> None:
        """Create or destroy the optional publishers to match ``config``'s publish flags."""
        topics = output_topics(config.depth_topic)
        # qos_overrides.<topic>.publisher.* apply (declared once, kept when re-created).
        overridable = QoSOverridingOptions.with_default_policies()
        wanted = {'_pub_sparse': (config.publish_sparse, Image, topics['sparse_depth'], True),
                  '_pub_color': (config.publish_colorized, Image, topics['colorized'], True),
                  '_pub_timing': (config.publish_timing, DiagnosticStatus, topics['timing'],
                                  False),
                  '_pub_points': (config.publish_points, PointCloud2, topics['points'], True)}
        for attr, (on, msg_type, topic, data_output) in wanted.items():
            current = getattr(self, attr)
            if on and current is None:
                setattr(self, attr, self.create_publisher(
                    msg_type, topic, _qos(config.output_qos, output=True),
                    qos_overriding_options=overridable)
                    if data_output else self.create_publisher(msg_type, topic, 10))
            elif not on and current is not None:
                with self._pub_lock:  # not while the worker publishes on it
                    setattr(self, attr, None)
                self.destroy_publisher(current)

    def _activate(self) -> None:
        """Subscribe to the inputs, start the timers and the worker thread."""
        def in_qos() -> QoSProfile:
            return _qos(self.config.input_qos, output=False)

        # qos_overrides.<topic>.subscription.{reliability,history,depth} parameters apply here.
        overridable = QoSOverridingOptions.with_default_policies()
        if self.config.image_transport == 'compressed':
            from sensor_msgs.msg import CompressedImage

            from g2mono_ros.ros.compressed import compressed_topic

            # image_transport's rule: remap (and namespace) the base topic, then append
            # /compressed, so `-r image:=/cam/image` moves both.
            sub_image = self.create_subscription(
                CompressedImage, compressed_topic(self.resolve_topic_name(self.config.image_topic)),
                self._on_compressed_image, in_qos(), qos_overriding_options=overridable)
        else:
            sub_image = self.create_subscription(Image, self.config.image_topic, self._on_image,
                                                 in_qos(), qos_overriding_options=overridable)
        sub_info = self.create_subscription(CameraInfo, self.config.camera_info_topic,
                                            self._on_camera_info, in_qos(),
                                            qos_overriding_options=overridable)
        sub_points = self.create_subscription(PointCloud2, self.config.points_topic,
                                              self._on_points, in_qos(),
                                              qos_overriding_options=overridable)
        self._subscriptions_active = [sub_image, sub_info, sub_points]
        if self.poses is not None:
            from g2mono_ros.ros.motion import subscribe_odometry

            self._subscriptions_active.append(subscribe_odometry(
                self, self.config.motion.odom_topic, self.poses, in_qos(), self._log_fault,
                qos_overriding_options=overridable))
        self._diag_timer = self.create_timer(self.config.diagnostics_period,
                                             self._publish_diagnostics)
        self._timers_active = [self.create_timer(_FLUSH_PERIOD_S, self._on_flush_timer),
                               self._diag_timer]

        drops = self._queue.drops  # running totals go on across activations
        self._queue = PairQueue(self.config.sync.sync_queue_size, clock=self._arrival.now_ns)
        self._queue.drops.update(drops)
        self._last_publish_mono = time.monotonic()
        self._worker = threading.Thread(target=self._work, args=(self._queue,),
                                        name='g2mono_depth_worker', daemon=True)
        self._worker.start()
        names = [getattr(entity, 'topic_name', '?')  # resolved, i.e. after remapping
                 for entity in (sub_image, sub_info, sub_points, self._pub_depth)]
        self.get_logger().info(
            f'depth node ready: {names[0]} + {names[1]} + {names[2]} -> {names[3]} '
            f'({self.config.output_encoding}) on {self.engine.device} '
            f'({self.engine.backend}, {self.engine.config.precision}), network input '
            f'{self.engine.input_height} x {self.engine.input_width or "aspect-kept"}, '
            f'max depth {self.engine.max_depth:g} m, '
            + ('extrinsic from TF (cloud frame_id -> image frame_id)' if self._extrinsic.uses_tf
               else 'extrinsic from the parameters (TF not consulted)'))
        if getattr(self.engine, 'backend_note', ''):  # why a faster backend is not running
            self.get_logger().info(f'engine: {self.engine.backend_note}')
        self._warn_camera_model(names[0])

    def _deactivate(self, timeout_s: float = _WORKER_JOIN_S) -> bool:
        """Stop subscriptions, timers and the worker; the network stays loaded.

        Returns:
            False if the worker is still inside an inference after ``timeout_s``.
        """
        for sub in self._subscriptions_active:
            self.destroy_subscription(sub)
        for timer in self._timers_active:
            self.destroy_timer(timer)
        self._subscriptions_active, self._timers_active = [], []
        stopped = self.close(timeout_s)
        self._sync.clear()
        if self.poses is not None:
            self.poses.clear()
        return stopped

    def _cleanup(self) -> None:
        """Destroy the publishers and free the network (after ``_deactivate``)."""
        for pub in (self._pub_depth, self._pub_info, self._pub_sparse, self._pub_color,
                    self._pub_timing, self._pub_points, self._pub_diag):
            if pub is not None:
                self.destroy_publisher(pub)
        self._pub_sparse = self._pub_color = self._pub_timing = self._pub_points = None
        self._pub_depth = self._pub_info = self._pub_diag = None
        self.engine = None
        self._camera_infos.clear()
        if getattr(self, '_tf_source', None) is not None:  # a new configure makes a new one
            self._tf_source.close()
            self._tf_source = None
        if hasattr(getattr(self, '_motion', None), 'close'):  # TfMotion's own listener
            self._motion.close()
        self._motion = None

    # --- set-up -------------------------------------------------------------------------------

    def _warn_camera_model(self, image_topic: str) -> None:
        # The usual topic names say which images are rectified; a mismatch is the classic
        # mistake (distortion applied twice, or never), and costs tens of pixels at the edges.
        leaf = image_topic.rsplit('/', 1)[-1]
        looks = 'rectified' if 'rect' in leaf else 'raw' if leaf.endswith('_raw') else None
        if looks is not None and looks != self.config.camera_model:
            self.get_logger().warning(
                f"image topic {image_topic} looks {looks} but parameter 'camera_model' is "
                f"{self.config.camera_model!r}; set camera_model: {looks} if it is")

    def _make_motion_source(self) -> Any:
        """The ego-motion source of ``motion_source`` (None for ``none``)."""
        motion = self.config.motion
        if motion.motion_source == 'none':
            return None
        from g2mono_ros.fusion.motion import OdometryMotion, PoseBuffer

        if motion.motion_source == 'tf':
            try:
                from g2mono_ros.ros.motion import TfMotion

                shared = getattr(self, '_tf_source', None)  # the extrinsic's TF listener
                return TfMotion(self, motion.fixed_frame, timeout_s=motion.motion_tf_timeout,
                                max_gap_s=motion.motion_max_gap,
                                max_extrapolation_s=motion.motion_max_extrapolation,
                                buffer=None if shared is None else shared.buffer)
            except ImportError as exc:
                msg = (f"parameter 'motion_source' is tf but tf2_ros cannot be imported ({exc}); "
                       'source a ROS installation, or use motion_source: odometry')
                raise ConfigError(msg) from exc
        from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

        # The odometry subscription comes with the other inputs, in _activate.
        self.poses = PoseBuffer(max_gap_s=motion.motion_max_gap,
                                max_extrapolation_s=motion.motion_max_extrapolation)
        T_base_lidar = transform_from_translation_quaternion(
            np.asarray(motion.lidar_to_base_translation, dtype=np.float64),
            np.asarray(motion.lidar_to_base_rotation, dtype=np.float64))
        return OdometryMotion(self.poses, T_base_lidar)

    def _declare_parameters(self) -> None:
        """Declare every parameter (constructor); values are read and checked by _configure.

        Raises:
            ConfigError: a parameter override has the wrong type.
        """
        for name, spec in PARAMETERS.items():
            reason = read_only_reason(name)
            description = f'{spec.description} ({reason})' if reason else spec.description
            descriptor = ParameterDescriptor(description=description, read_only=bool(reason),
                                             dynamic_typing=spec.dynamic)
            try:
                self.declare_parameter(name, spec.default, descriptor)
            except InvalidParameterTypeException as exc:
                kind = type(spec.default).__name__
                msg = (f'parameter {name!r} must be of type {kind} (default '
                       f'{spec.default!r}): {exc}')
                raise ConfigError(msg) from exc
        self._warn_unknown_overrides()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _parameter_values(self) -> dict[str, Any]:
        """The current values of the declared parameters, integers widened where floats are due."""
        values: dict[str, Any] = {}
        for name in PARAMETERS:
            values[name] = _widen(name, self.get_parameter(name).value)
        return values

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        """``ros2 param set``: validate the whole config with the new values, then apply them.

        rclpy itself rejects read-only parameters (their descriptors say why) and type changes.
        """
        from rcl_interfaces.msg import SetParametersResult

        if getattr(self, 'engine', None) is None or not any(p.name in PARAMETERS
                                                              for p in params):
            # Lifecycle node, unconfigured: nothing runs; configure validates the values. Or
            # rclpy's own (use_sim_time, qos_overrides.* declared with each publisher).
            return SetParametersResult(successful=True)
        values = self._parameter_values()
        for param in params:
            if param.name in PARAMETERS:
                values[param.name] = _widen(param.name, param.value)
        try:
            config = NodeConfig.from_flat(values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._apply_live(config)
        changed = ', '.join(f'{p.name}={p.value!r}' for p in params)
        self.get_logger().info(f'parameters changed: {changed}')
        return SetParametersResult(successful=True)

    def _apply_live(self, config: NodeConfig) -> None:
        """Switch to ``config`` (only LIVE_PARAMETERS differ from the running one)."""
        old = self.config
        if config.sync != old.sync:
            from g2mono_ros.fusion.sync import PairSynchronizer

            sync = PairSynchronizer(config.sync, backwards_jump_ns=_JUMP_BACK_NS)
            for reason, count in self._sync.drops.items():  # totals stay monotonic
                sync.record_drop(reason, count)
            self._sync = sync  # buffered messages are let go: pairing restarts
        self.config = config  # the worker reads it once per pair
        self._sync_optional_publishers(config)
        if config.diagnostics_period != old.diagnostics_period and self._timers_active:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(config.diagnostics_period,
                                                 self._publish_diagnostics)
            self._timers_active[-1] = self._diag_timer

    def _warn_unknown_overrides(self) -> None:
        # rclpy ignores overrides nobody declares: a typo in a YAML key would go unnoticed.
        overrides = getattr(self, '_parameter_overrides', None) or {}
        unknown = sorted(name for name in overrides if name not in PARAMETERS
                         and name != 'use_sim_time' and not name.startswith('qos_overrides.'))
        if unknown:
            self.get_logger().warning(
                f'ignoring unknown parameter(s) {", ".join(map(repr, unknown))}; this node '
                f'declares: {", ".join(PARAMETERS)}')

    # --- callbacks (executor thread): check, count, pair; O(1), never decode or infer ---------

    def _log_fault(self, kind: str, detail: str = '', count: int = 1) -> None:
        line = self.faults.record(kind, detail, count)
        if line:
            self.get_logger().warning(line)

    def _ros_now_ns(self) -> int:
        # Sim time before the first /clock reads 0: fall back to the steady clock until then.
        return self.get_clock().now().nanoseconds or time.monotonic_ns()

    def _note_time_jumps(self) -> None:
        """Log the synchroniser's per-stream jumps; pairs still queued are from before it."""
        if self._sync.time_jumps == self._jumps_seen:
            return
        self._jumps_seen = self._sync.time_jumps
        jump = self._sync.last_time_jump
        stream = 'points' if jump.stream == 'scan' else jump.stream
        self._log_fault(f'{stream}_time_jump_back',
                        f'stamp {jump.to_ns * 1e-9:.3f} s is older than earlier {stream} messages '
                        f'({jump.from_ns * 1e-9:.3f} s); pairing restarts')
        self._queue.clear()  # counted as pair_time_jump
        # TF from the earlier pass would answer (and interpolate) until it ages out.
        tf_buffers = (getattr(getattr(self, '_tf_source', None), 'buffer', None),
                      getattr(getattr(self, '_motion', None), 'buffer', None))  # TfMotion's
        if any(buffer is not None for buffer in tf_buffers):
            from g2mono_ros.ros.tf_lookup import forget_dynamic_transforms

            forget_dynamic_transforms(*tf_buffers)

    def _on_image(self, msg: Image) -> None:
        arrival = self._arrival.now_ns()
        received = time.time_ns()
        self.rates['image'].tick()
        stamp = _stamp_ns(msg.header)
        try:
            if msg.encoding not in self._rgb_encodings:
                self._codecs.rgb_from_image(msg)  # raises the codec's own message
            self._codecs.check_image(msg)  # sizes and data length; no pixel is read
        except G2MonoError as exc:
            kind = classify_image_error(exc, msg.encoding, self._rgb_encodings)
            self._log_fault(kind, f'{exc}')
            return
        self._accept_image(stamp, _ImageItem(msg, received), arrival)

    def _on_compressed_image(self, msg: Any) -> None:
        # Kept as bytes: OpenCV decodes on the worker, and only the pairs it runs.
        arrival = self._arrival.now_ns()
        received = time.time_ns()
        self.rates['image'].tick()
        self._accept_image(_stamp_ns(msg.header), _ImageItem(msg, received, compressed=True),
                           arrival)

    def _accept_image(self, stamp: int, item: _ImageItem, arrival_ns: int) -> None:
        pairs = self._sync.add_image(stamp, item, arrival_ns=arrival_ns)
        self._note_time_jumps()
        self._offer(pairs)

    def _on_points(self, msg: PointCloud2) -> None:
        arrival = self._arrival.now_ns()
        received = time.time_ns()
        self.rates['points'].tick()
        stamp = _stamp_ns(msg.header)
        try:
            count = self._codecs.check_pointcloud2(msg)  # fields and sizes; no point is read
        except G2MonoError as exc:
            self._log_fault('malformed_cloud', f'{exc}')
            return
        if count == 0:
            self._log_fault('empty_cloud', 'a PointCloud2 with no points')
            return
        pairs = self._sync.add_scan(stamp, _ScanItem(msg, received, msg.header.frame_id),
                                    arrival_ns=arrival)
        self._note_time_jumps()
        self._offer(pairs)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.rates['camera_info'].tick()
        try:
            model = self._codecs.camera_info_to_model(msg, self.config.camera_model)
        except G2MonoError as exc:
            self._log_fault('malformed_camera_info', f'{exc}')
            return
        self._camera_infos.add(_stamp_ns(msg.header), (model, msg))

    def _on_flush_timer(self) -> None:
        # Arrival time: images stop waiting when their wait is over even if every stream stopped.
        self._offer(self._sync.flush(self._arrival.now_ns()))
        for line in self.faults.sync_counts('sync_', dict(self._sync.drops)):
            self.get_logger().warning(line)
            lead = self._sync.stream_offset_ns
            if line.startswith('sync_no_partner') and lead is not None and abs(lead) > 1e9:
                self._log_fault('clock_offset_suspected',
                                f'cloud stamps run {lead * 1e-9:+.3f} s from image stamps '
                                'arriving at the same time: if the camera and LiDAR clocks '
                                f'differ, set points_time_offset to about {-lead * 1e-9:.2f}')
        # Queue drops under overload are routine (pair_superseded, pair_stale): counted silently.
        self.faults.sync_counts('pair_', dict(self._queue.drops))

    def _offer(self, pairs: Sequence[Any]) -> None:
        self._queue.put(pairs, tag=time.time_ns())  # tag: paired wall time, for the timings

    # --- worker thread ------------------------------------------------------------------------

    def _work(self, queue: Any) -> None:
        # Its own queue, not self._queue: a worker that outlives a deactivate (stuck in the
        # network) must not start taking the next activation's pairs.
        while not queue.closed:
            taken = queue.take(_WORKER_POLL_S)
            if taken is None:
                continue
            started = self._arrival.now_ns()
            try:
                self._process(taken.pair, taken.tag)
            except Exception as exc:  # noqa: BLE001 - one bad pair must not stop the node
                if queue.closed or not self.context.ok():
                    return
                self._log_fault('processing_error', f'{type(exc).__name__}: {exc}')
            finally:
                queue.done(self._arrival.now_ns() - started)

    def _has_subscribers(self) -> bool:
        # Counted under the lock: live tuning may destroy an optional publisher meanwhile,
        # and a destroyed publisher's count raises.
        with self._pub_lock:
            return any(pub is not None and pub.get_subscription_count() > 0
                       for pub in (self._pub_depth, self._pub_info, self._pub_sparse,
                                   self._pub_color, self._pub_points))

    def _process(self, pair: Any, paired_wall_ns: int) -> None:
        start_wall_ns = time.time_ns()
        config = self.config  # one snapshot per pair: live tuning may swap it meanwhile
        image: _ImageItem = pair.image
        scan: _ScanItem = pair.scan
        if config.lazy and not self._has_subscribers():
            self.pairs_skipped_lazy += 1
            self._lazy_idle = True
            return
        self._lazy_idle = False
        t_decode = time.perf_counter()
        rgb_full = None
        if image.compressed:  # no size without decoding: decode it whole now
            from g2mono_ros.ros.compressed import rgb_from_compressed

            try:
                rgb_full = rgb_from_compressed(image.msg)
            except G2MonoError as exc:
                self._log_fault('malformed_image', f'{exc}')
                return
            image_hw = rgb_full.shape[:2]
        else:
            image_hw = (image.msg.height, image.msg.width)
        decode_s = time.perf_counter() - t_decode
        image_stamp = _stamp_ns(image.msg.header)
        match = self._camera_infos.lookup(
            image_stamp, fits=lambda item: (item[0].height, item[0].width) == image_hw)
        if match is None:
            self._log_fault('no_camera_info', f'no CameraInfo on {self.config.camera_info_topic} '
                                              'yet; pair skipped')
            return
        if not match.exact:
            # Drivers stamp CameraInfo like the image; without one, the newest that fits.
            self._log_fault('camera_info_fallback',
                            f'no CameraInfo stamped {image_stamp * 1e-9:.6f} s (the image); '
                            f'using the newest that fits, stamped {match.stamp_ns * 1e-9:.6f} s')
        model, info = match.item
        if (model.height, model.width) != tuple(image_hw):
            self._log_fault('camera_info_mismatch',
                            f'CameraInfo is {model.width}x{model.height}, image is '
                            f'{image_hw[1]}x{image_hw[0]}; pair skipped')
            return
        decoded = self._decode(image.msg, rgb_full, scan.msg, model)
        if decoded is None:
            return
        rgb, rgb_full, points, point_stamps, seconds = decoded
        decode_s += seconds
        proj = config.projection
        image_frame = image.msg.header.frame_id
        resolved = self._extrinsic.resolve(scan.frame_id, image_frame, pair.image_stamp_ns)
        if resolved.T_cam_lidar is None:  # counted and logged (no_transform) by the resolver
            return
        T_cam_lidar = resolved.T_cam_lidar
        if self._motion is not None:
            points = self._compensate(scan, points, point_stamps, pair.image_time_ns)
            if points is None:
                return
        suspect = self._coverage.observe(points, T_cam_lidar, model,
                                         min_range=proj.min_range, max_range=proj.max_range,
                                         cloud_frame=scan.frame_id, image_frame=image_frame)
        if suspect:
            self._log_fault('extrinsic_suspect', suspect)
        # Lazy, as image_transport publishes: no image-size map nobody subscribed to.
        with self._pub_lock:  # live tuning may destroy the publisher meanwhile
            want_sparse = (self._pub_sparse is not None
                           and self._pub_sparse.get_subscription_count() > 0)
        if self._depth_encoder.encoding != config.output_encoding:
            self._depth_encoder = self._codecs.DepthImageEncoder(config.output_encoding)
        # 32FC1: the engine writes the depth straight into the message's buffer.
        work = process_pair(self.engine, PairInputs(rgb, points, model, guide=rgb_full),
                            T_cam_lidar, min_range=proj.min_range, max_range=proj.max_range,
                            want_sparse=want_sparse, want_colorized=False,
                            projector=self._projector,
                            out=self._depth_encoder.target((model.height, model.width)))
        if self._queue.closed:  # shutting down: the publishers may already be gone
            return
        t0 = time.perf_counter()
        header = image.msg.header
        # The engine's output is finite and >= 0: no cleaning pass, only REP 118's NaN (written
        # in place: work.depth_m is the message's buffer, and NaN reads as "no depth" below),
        # and not even a search for zeros where the engine knows there are none.
        depth_msg = self._depth_encoder.encode(work.depth_m, header,
                                               positive=work.depth_positive)
        timings = dict(work.timings_s)
        timings['decode'] = decode_s
        timings['post'] += time.perf_counter() - t0  # up to the depth publish: it is what waits
        depth_publish_wall_ns = time.time_ns()
        self._pub_depth.publish(depth_msg)
        self._pub_info.publish(_camera_info_with_header(info, header))
        with self._pub_lock:
            self._publish_optional(config, work, rgb_full, model, header)
        published_wall_ns = time.time_ns()
        timings['publish'] = (published_wall_ns - depth_publish_wall_ns) * 1e-9
        timings['sync_wait'] = (paired_wall_ns - image.received_wall_ns) * 1e-9
        timings['queue'] = (start_wall_ns - paired_wall_ns) * 1e-9
        timings['total'] = (depth_publish_wall_ns - image.received_wall_ns) * 1e-9
        # Against the node's clock (sim time with a bag): the latency a consumer of the depth
        # sees, camera exposure to depth out, when the camera's clock agrees with ours.
        # Stamps far from the node's clock (a bag replayed without use_sim_time) would make it
        # meaningless (~1e11 ms): then only the receive-based stages are measured.
        now_ns = self.get_clock().now().nanoseconds
        age_s = (now_ns - _stamp_ns(header)) * 1e-9
        self._stamp_age_s = age_s
        if abs(age_s) <= _STAMP_LIVE_S:
            timings['stamp_to_publish'] = age_s
        timings['pair_gap'] = abs(pair.gap_ns) * 1e-9  # scan time - image time, offsets applied
        for stage, seconds in timings.items():
            self.stages.add(stage, seconds)
        self.pairs_processed += 1
        self._last_publish_mono = time.monotonic()
        pub_timing = self._pub_timing
        if pub_timing is not None:
            pub_timing.publish(_timing_status(_stamp_ns(header), {
                'received_wall_ns': image.received_wall_ns, 'paired_wall_ns': paired_wall_ns,
                'start_wall_ns': start_wall_ns, 'depth_publish_wall_ns': depth_publish_wall_ns,
                'published_wall_ns': published_wall_ns,
                'scan_received_wall_ns': scan.received_wall_ns}, timings))

    def _decode(self, image_msg: Any, rgb_full: np.ndarray | None, cloud_msg: PointCloud2,
                model: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray,
                                     np.ndarray | int, float] | None:
        """Decode the pair's image and cloud on the worker.

        The image becomes (h, w, 3) uint8 at the network input size (OpenCV, area-shrunk on
        uint8); the camera-size image is kept too when something needs it (edge-aware
        upsampling, coloured points, a compressed image decoded whole).

        Returns (rgb_net, rgb_full or None, xyz (N, 3) float32, per-point stamps (N,) ns or the
        cloud's stamp, seconds), or None after logging the fault (the callbacks checked sizes
        only; non-finite points are dropped here).
        """
        from g2mono_ros.imaging import area_resize

        t0 = time.perf_counter()
        net_hw = self.engine.network_input_size(model.height, model.width)
        want_full = (self.engine.config.upsample in ('edge_aware', 'prefill_guided')
                     or self._pub_points is not None)
        try:
            if rgb_full is None:  # a view of 8-bit RGB/BGR images where the full size is wanted
                rgb, rgb_full = self._codecs.rgb_for_network(image_msg, net_hw,
                                                             camera_size=want_full)
            else:
                rgb = area_resize(rgb_full, net_hw)
        except G2MonoError as exc:
            self._log_fault(classify_image_error(exc, image_msg.encoding, self._rgb_encodings),
                            f'{exc}')
            return None
        try:
            xyz, _ = self._codecs.pointcloud2_to_xyz(cloud_msg)
        except G2MonoError as exc:
            self._log_fault('malformed_cloud', f'{exc}')
            return None
        if xyz.shape[0] == 0:
            self._log_fault('empty_cloud', 'a PointCloud2 with no finite points')
            return None
        point_stamps: np.ndarray | int = _stamp_ns(cloud_msg.header)
        if self._motion is not None:
            from g2mono_ros.ros.motion import cloud_point_stamps

            try:
                point_stamps = cloud_point_stamps(cloud_msg,
                                                  field=self.config.motion.point_time_field,
                                                  unit=self.config.motion.point_time_unit)
            except G2MonoError as exc:  # fall back to scan-level for this cloud
                self._log_fault('bad_point_times', f'{exc}; cloud compensated at its stamp')
        return rgb, rgb_full, xyz, point_stamps, time.perf_counter() - t0

    def _publish_optional(self, config: NodeConfig, work: Any, rgb: np.ndarray | None,
                          model: Any, header: Any) -> None:
        """Sparse input, colour rendering and point cloud, for those switched on (under
        ``_pub_lock``); ``rgb`` is the camera-size image when one was decoded."""
        codecs = self._codecs
        if self._pub_sparse is not None and work.sparse_m is not None:
            self._pub_sparse.publish(self._sparse_encoder.encode(work.sparse_m, header,
                                                                 pixels=work.sparse_pixels))
        if self._pub_color is not None:
            from g2mono_ros.visualize import colorize_depth, depth_colour_scale

            top = config.colorized_max_depth or depth_colour_scale(work.depth_m)
            self._pub_color.publish(codecs.numpy_to_image(colorize_depth(work.depth_m, top),
                                                          'rgb8', header))
        if self._pub_points is not None:
            from g2mono_ros.fusion.cloud import depth_to_points, pack_rgb

            xyz, colours = depth_to_points(work.depth_m, model,
                                           decimation=config.points_decimation,
                                           max_range_m=config.points_max_range, rgb=rgb)
            self._pub_points.publish(codecs.xyz_to_pointcloud2(xyz, header,
                                                               {'rgb': pack_rgb(colours)}))
    def _compensate(self, scan: _ScanItem, points: np.ndarray, point_stamps_ns: np.ndarray | int,
                    image_stamp_ns: int) -> np.ndarray | None:
        """The scan's points in the LiDAR frame at the image time; None skips the pair."""
        from g2mono_ros.fusion.motion import compensate_points

        source = self._motion
        if self.config.motion.motion_source == 'tf':
            source = source.for_frame(scan.frame_id)
        # The sensors' time offsets apply here too: poses are looked up at corrected times.
        point_stamps = point_stamps_ns + self.config.sync.points_time_offset_ns
        result = compensate_points(points, point_stamps, image_stamp_ns, source)
        if result.no_odometry and len(result.points):
            self.faults.record('no_odometry_points', count=result.no_odometry)
        if len(result.points) == 0:
            detail = getattr(self._motion, 'last_error', '') or (
                f'no {self.config.motion.motion_source} pose within '
                f'{self.config.motion.motion_max_extrapolation:g} s of the image or scan time')
            self._log_fault('no_odometry', f'{detail}; pair skipped')
            return None
        return result.points

    # --- diagnostics --------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        counts = self.faults.counts()
        new_faults = {k: v - self._faults_at_last_diag.get(k, 0) for k, v in counts.items()
                      if v > self._faults_at_last_diag.get(k, 0) and k not in _ROUTINE_DROPS}
        self._faults_at_last_diag = counts
        stages = self.stages.summary_ms()
        # Stale: nothing out for several diagnostics periods, or twice the slowest recent pair
        # (a CPU-only network can take seconds per pair and still be healthy).
        slowest_s = stages.get('total', (0.0, 0.0, 0.0))[2] * 1e-3
        stale_after_s = max(3 * self.config.diagnostics_period, 2 * slowest_s)
        stale = time.monotonic() - self._last_publish_mono > stale_after_s
        status = DiagnosticStatus()
        # Namespaced (`cam_left/depth_node: ...`): nodes of several cameras stay apart.
        status.name = f"{self.get_fully_qualified_name().lstrip('/')}: depth completion"
        status.hardware_id = str(self.engine.device)
        status.level = DiagnosticStatus.OK
        status.message = 'ok'
        lazy_idle = self.config.lazy and self._lazy_idle
        if lazy_idle:
            status.message = 'idle (lazy): no subscriber on any output, inference skipped'
        elif self.rates['image'].rate_hz() > 0 and stale:
            status.level = DiagnosticStatus.WARN
            status.message = f'images arrive but no depth for over {stale_after_s:.1f} s'
        elif new_faults:
            status.level = DiagnosticStatus.WARN
            status.message = 'dropped input: ' + ', '.join(f'{k} x{v}'
                                                          for k, v in sorted(new_faults.items()))
        values = {
            'device': str(self.engine.device),
            'motion_source': self.config.motion.motion_source,
            'image_rate_hz': f'{self.rates["image"].rate_hz():.2f}',
            'points_rate_hz': f'{self.rates["points"].rate_hz():.2f}',
            'camera_info_rate_hz': f'{self.rates["camera_info"].rate_hz():.2f}',
            'images_received': str(self.rates['image'].total),
            'clouds_received': str(self.rates['points'].total),
            'pairs_processed': str(self.pairs_processed),
            'lazy': ('idle: no subscribers, inference skipped' if lazy_idle else
                     'on' if self.config.lazy else 'off'),
            'pairs_skipped_lazy': str(self.pairs_skipped_lazy),
            'clock': 'sim (/clock)' if self.get_parameter('use_sim_time').value else 'system',
            'stamps': self._stamps_verdict(),
            # Share of the decoded images that got depth (all of them while the device keeps up).
            'images_with_depth_fraction': (
                f'{self.pairs_processed / self.rates["image"].total:.3f}'
                if self.rates['image'].total else 'nan'),
            'extrinsic_source': self._extrinsic.last_source,
        }
        coverage = self._coverage.fraction
        if coverage is not None:
            values['points_in_image_pct'] = f'{100 * coverage:.1f}'
        for stage, (p50, p95, worst) in sorted(stages.items()):
            values[f'{stage}_ms_p50'] = f'{p50:.2f}'
            values[f'{stage}_ms_p95'] = f'{p95:.2f}'
            values[f'{stage}_ms_max'] = f'{worst:.2f}'
        for kind, count in sorted(counts.items()):
            values[f'drops.{kind}'] = str(count)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._pub_diag.publish(array)

    def _stamps_verdict(self) -> str:
        age = self._stamp_age_s
        if age is None:
            return 'no output yet'
        if abs(age) <= _STAMP_LIVE_S:
            return 'live (stamp_to_publish measured against the node clock)'
        side = 'in the past' if age > 0 else 'in the future'
        return (f'{abs(age):.3g} s {side} of the node clock (a replayed bag without '
                'use_sim_time, or another clock): stamp_to_publish not measured; total_ms is '
                'from receipt')

    def close(self, timeout_s: float = _WORKER_JOIN_S) -> bool:
        """Stop the worker thread after its current pair; False if it is still running."""
        self._queue.close()
        worker = self._worker
        if worker is None:
            return True
        if worker.is_alive() and threading.current_thread() is not worker:
            worker.join(timeout=timeout_s)
        return not worker.is_alive()


class DepthNode(DepthNodePhases, Node):
    """Dense metric depth from a camera image, its CameraInfo and a LiDAR cloud.

    Configured and active from the constructor on (see ``LifecycleDepthNode`` for the managed
    variant).

    Raises:
        ConfigError: a parameter is out of range, or the weights file is missing.
        CheckpointError: the weights cannot be loaded as the requested variant.
    """

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._declare_parameters()
        self._configure()
        self._activate()


def _camera_info_with_header(info: CameraInfo, header: Any) -> CameraInfo:
    out = CameraInfo()
    out.header = header
    out.height, out.width = info.height, info.width
    out.distortion_model = info.distortion_model
    out.d, out.k, out.r, out.p = info.d, info.k, info.r, info.p
    out.binning_x, out.binning_y, out.roi = info.binning_x, info.binning_y, info.roi
    return out


def _timing_status(stamp_ns: int, wall_ns: dict[str, int],
                   timings_s: dict[str, float]) -> DiagnosticStatus:
    status = DiagnosticStatus()
    status.name = 'g2mono depth timing'
    status.message = str(stamp_ns)
    values = [KeyValue(key='stamp_ns', value=str(stamp_ns))]
    values += [KeyValue(key=k, value=str(v)) for k, v in wall_ns.items()]
    values += [KeyValue(key=f'{k}_s', value=f'{v:.9f}') for k, v in timings_s.items()]
    status.values = values
    return status


def _ignore_half_built_rclpy_tasks() -> None:
    """From shutdown on, drop one known upstream artefact from stderr.

    Ctrl-C raises KeyboardInterrupt wherever the executor is. When it lands inside
    ``rclpy.task.Task.__init__``, the half-built task is later collected, and
    ``Future.__del__`` prints an ``AttributeError`` traceback ("no attribute '_exception'"),
    which is harmless. Every other unraisable exception still goes to the previous hook.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        where = getattr(unraisable.object, '__qualname__', '')
        module = getattr(unraisable.object, '__module__', '')
        if (isinstance(unraisable.exc_value, AttributeError) and where == 'Future.__del__'
                and module == 'rclpy.task'):
            return
        previous(unraisable)

    sys.unraisablehook = hook


def _run_node(argv: Sequence[str], node_class: type | None = None) -> int:
    """Init rclpy with ``argv`` (ROS arguments), spin the node until shutdown; raises on config.

    Args:
        node_class: ``DepthNode`` (default) or ``LifecycleDepthNode``.
    """
    rclpy.init(args=list(argv))
    node = None
    worker_stopped = True
    try:
        node = (node_class or DepthNode)()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal can interrupt rclpy inside a message take (it surfaces as a RuntimeError);
        # once the context is shut down that is the shutdown, not a failure.
        if rclpy.ok():
            raise
    finally:
        _ignore_half_built_rclpy_tasks()
        try:
            if node is not None:
                worker_stopped = node.close()
                node.destroy_node()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for the worker
            worker_stopped = False
        finally:
            rclpy.try_shutdown()
    if not worker_stopped:
        # The worker is inside the network. Letting the interpreter finalise would kill that
        # daemon thread inside torch's C++ code (std::terminate, exit status -6); leave now.
        print(f'{NODE_NAME}: shut down while an inference was running; not waiting for it',
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def main(args: Sequence[str] | None = None) -> int:
    """Console entry point ``depth_node``: exit 0 on a clean shutdown, 2 on a bad setting."""
    argv = list(sys.argv if args is None else args)
    try:
        return _run_node(argv)
    except G2MonoError as exc:
        print(f'{NODE_NAME}: error: {exc}', file=sys.stderr)
        return 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``g2mono node --ros-args ...``: everything after ``--ros-args`` goes to rclpy."""
    parser.add_argument('--ros-args', dest='ros_args', nargs=argparse.REMAINDER, default=[],
                        metavar='ROS_ARGS',
                        help='ROS arguments, e.g. --ros-args --params-file config/depth.yaml '
                             '-p weights:=model.pt -r /camera/image_raw:=/cam/image')
    parser.add_argument('--lifecycle', action='store_true',
                        help='run the managed (lifecycle) node: it waits for configure and '
                             'activate (ros2 lifecycle set /depth_node configure)')


def run(args: argparse.Namespace) -> int:
    """Run the node from the ``g2mono`` CLI; errors propagate to the CLI's handler."""
    ros_args = list(args.ros_args or [])
    node_class = None
    if getattr(args, 'lifecycle', False):
        from g2mono_ros.ros.lifecycle_node import LifecycleDepthNode
        node_class = LifecycleDepthNode
    return _run_node([NODE_NAME, *(['--ros-args', *ros_args] if ros_args else [])], node_class)


if __name__ == '__main__':
    sys.exit(main())
