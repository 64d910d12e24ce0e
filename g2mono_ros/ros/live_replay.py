"""Live replay over DDS: the real ``depth_node`` process, a bag replayed with rclpy publishers.

Owns starting the node (console script, the launch file's YAML plus this run's parameters, a
localhost-only DDS domain), the timed replay, recording ``/g2mono/depth`` and ``/diagnostics``,
and stopping the node. Scoring lives in ``evaluation.live``.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from g2mono_ros.errors import NodeError
from g2mono_ros.evaluation.evaluator import (
    BagSequence,
    EvaluationOptions,
    expected_frames,
    header_stamp_ns,
    progress_bar,
    split_scan,
)

__all__ = ['DEPTH_TOPIC', 'DepthStore', 'LiveRecording', 'NodeProcess', 'default_params_file',
           'node_command', 'node_overrides', 'replay']

DEPTH_TOPIC = '/g2mono/depth'


def default_params_file() -> Path | None:
    """The launch file's ``config/depth.yaml``: source tree, ament share, or venv share."""
    candidates = [Path(__file__).resolve().parents[2] / 'config' / 'depth.yaml']
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory('g2mono_ros')) / 'config' /
                          'depth.yaml')
    except Exception:  # noqa: BLE001 - not installed through ament (a venv or source tree)
        pass
    candidates.append(Path(sys.prefix) / 'share' / 'g2mono_ros' / 'config' / 'depth.yaml')
    return next((path for path in candidates if path.is_file()), None)


def node_overrides(sequence: BagSequence, options: EvaluationOptions) -> dict[str, Any]:
    """The node parameters this run sets on top of ``config/depth.yaml``."""
    engine, proj, sync = options.engine, options.projection, options.sync
    return {
        'weights': str(Path(engine.weights).expanduser().resolve()),
        'variant': engine.variant,
        'device': engine.device,
        'precision': engine.precision,
        'input_height': engine.input_height,
        'input_width': engine.input_width,
        'max_depth': float(engine.max_depth),
        'min_range': float(proj.min_range),
        'max_range': float(proj.max_range),
        'extrinsic': {'translation': [float(v) for v in sequence.extrinsic.translation],
                      'rotation': [float(v) for v in sequence.extrinsic.rotation]},
        'sync_max_offset': float(sync.sync_max_offset),
        'sync_max_wait': float(sync.sync_max_wait),
        'sync_queue_size': int(sync.sync_queue_size),
        'sync_policy': sync.sync_policy,
        'image_time_offset': float(sync.image_time_offset),
        'points_time_offset': float(sync.points_time_offset),
        # A `<image>/compressed` topic is played as recorded; the node subscribes to it the
        # image_transport way (base topic + image_transport: compressed).
        'image_topic': _image_base_topic(options.image_topic),
        'image_transport': 'compressed' if _is_compressed_topic(options.image_topic) else 'raw',
        'camera_info_topic': options.camera_info_topic,
        'camera_model': options.camera_model,
        'points_topic': options.points_topic,
        'depth_topic': DEPTH_TOPIC,
        'output_encoding': '32FC1',
        'input_qos': 'sensor_data',
        'output_qos': 'reliable',
        **_motion_overrides(sequence, options),
    }


def _is_compressed_topic(topic: str) -> bool:
    return topic.rstrip('/').endswith('/compressed')


def _image_base_topic(topic: str) -> str:
    return topic.rstrip('/')[:-len('/compressed')] if _is_compressed_topic(topic) else topic


def _motion_overrides(sequence: BagSequence, options: EvaluationOptions) -> dict[str, Any]:
    """The node compensates motion as the offline evaluator does (same mounting, same times)."""
    from g2mono_ros.fusion.transforms import quaternion_from_rotation

    motion = options.motion
    values: dict[str, Any] = {'motion_source': motion.motion_source,
                              'odom_topic': motion.odom_topic,
                              'point_time_field': motion.point_time_field,
                              'point_time_unit': motion.point_time_unit,
                              'motion_max_extrapolation': float(motion.motion_max_extrapolation),
                              'motion_max_gap': float(motion.motion_max_gap)}
    T = getattr(sequence, 'T_base_lidar', None)
    if T is not None:
        values['lidar_to_base'] = {
            'translation': [float(v) for v in T[:3, 3]],
            'rotation': [float(v) for v in quaternion_from_rotation(T[:3, :3])]}
    return values


def node_command(params_files: Sequence[Path]) -> list[str]:
    """The ``depth_node`` console script next to this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / 'depth_node'
    exe = str(beside) if beside.is_file() else shutil.which('depth_node')
    command = [exe] if exe else [sys.executable, '-c',
                                 'import sys; from g2mono_ros.ros.node import main; sys.exit(main())']
    command.append('--ros-args')
    for path in params_files:
        command += ['--params-file', str(path)]
    return command


class NodeProcess:
    """The depth node as a child process, its output in ``log_path``.

    Args:
        command: argv to run.
        env: the full environment of the child.
        log_path: file receiving its stdout and stderr.
    """

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open('wb')
        self.process = subprocess.Popen(command, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self, max_bytes: int = 1 << 20) -> str:
        """The end of the node's output (at most ``max_bytes``)."""
        if not self._log.closed:
            self._log.flush()
        try:
            with self.log_path.open('rb') as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - max_bytes))
                return handle.read().decode(errors='replace')
        except OSError:
            return ''

    def log_tail(self, lines: int = 15) -> str:
        return '\n'.join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT (a clean ROS shutdown), then SIGTERM, then SIGKILL; returns the exit code."""
        if self.alive():
            for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0),
                              (signal.SIGKILL, 5.0)):
                self.process.send_signal(sig)
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()
        return int(self.process.returncode if self.process.returncode is not None else -1)


class DepthStore(Mapping[int, np.ndarray]):
    """Received depth images kept on disk, not in memory: a long bag's outputs would not fit.

    A read-only mapping image stamp (ns) -> (H, W) float32 metres; ``put`` adds one. The files
    live in a temporary folder removed by ``close()`` (or when the store is collected).
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix='g2mono_live_depth_')
        self._paths: dict[int, Path] = {}
        self._lock = threading.Lock()

    def put(self, stamp_ns: int, depth_m: np.ndarray) -> None:
        path = Path(self._tmp.name) / f'{stamp_ns}.npy'
        np.save(path, np.asarray(depth_m, dtype=np.float32))
        with self._lock:
            self._paths[stamp_ns] = path

    def __getitem__(self, stamp_ns: int) -> np.ndarray:
        with self._lock:
            path = self._paths[stamp_ns]
        return np.load(path)

    def __iter__(self) -> Iterator[int]:
        with self._lock:
            return iter(list(self._paths))

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)

    def close(self) -> None:
        """Delete the files."""
        self._tmp.cleanup()


@dataclass
class LiveRecording:
    """What one replay produced.

    Attributes:
        depth: image stamp (ns) -> (H, W) float32 metres received on the depth topic.
        received_wall_ns: image stamp -> wall time the depth arrived.
        published_wall_ns: image stamp -> wall time the replayer published that image.
        scans_published: clouds sent.
        diagnostics: the node's last /diagnostics key/values.
        node_log: the node's stdout and stderr (the last megabyte).
    """

    depth: DepthStore = field(default_factory=DepthStore)
    received_wall_ns: dict[int, int] = field(default_factory=dict)
    published_wall_ns: dict[int, int] = field(default_factory=dict)
    scans_published: int = 0
    diagnostics: dict[str, str] = field(default_factory=dict)
    node_log: str = ''


@functools.lru_cache(maxsize=1)
def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _serialize(msg: Any, msgtype: str) -> bytes:
    """CDR bytes of a rosbags message (a filtered cloud, the first CameraInfo)."""
    return bytes(_typestore().serialize_cdr(msg, msgtype))


def _replay_messages(sequence: BagSequence, options: EvaluationOptions
                     ) -> Iterator[tuple[str, int, bytes, int | None]]:
    """(topic, log time, payload bytes, image stamp or None) to send, hold-out applied."""
    topics = (options.image_topic, options.camera_info_topic, options.points_topic)
    if sequence.T_base_lidar is not None:
        topics += (options.motion.odom_topic,)
    images = 0
    stop_after_ns: int | None = None
    for topic, log_ns, msg, raw in sequence.messages():
        if topic not in topics:
            continue
        stamp = header_stamp_ns(msg)
        if stop_after_ns is not None and stamp > stop_after_ns:
            return
        if topic == options.image_topic:
            if options.max_frames and images >= options.max_frames:
                continue
            images += 1
            if options.max_frames and images == options.max_frames:
                stop_after_ns = stamp + options.sync.max_wait_ns + options.sync.max_offset_ns
            yield topic, log_ns, bytes(raw), stamp
        elif topic == options.points_topic and sequence.ground_truth == 'holdout':
            # The node must never see the withheld points: send the filtered cloud.
            kept = split_scan(msg, sequence, options).kept_msg
            yield topic, log_ns, _serialize(kept, 'sensor_msgs/msg/PointCloud2'), None
        else:
            yield topic, log_ns, bytes(raw), None


def replay(sequence: BagSequence, options: EvaluationOptions, *, startup_timeout_s: float = 180.0,
           drain_s: float = 4.0, node_log: Path | None = None) -> LiveRecording:
    """Start the node, replay the bag into DDS at ``options.rate``, record its depth, stop it.

    Raises:
        NodeError: the node exits or does not subscribe within ``startup_timeout_s``.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from g2mono_ros.ros.dds_env import localhost_dds_env

    dds = localhost_dds_env(int(os.environ['ROS_DOMAIN_ID'])
                            if os.environ.get('ROS_DOMAIN_ID', '').isdigit()
                            and os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') == 'LOCALHOST'
                            else None)
    os.environ.update(dds)  # this process's rclpy context must share the node's domain
    os.environ.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    workdir = Path(tempfile.mkdtemp(prefix='g2mono_live_'))
    overrides = workdir / 'overrides.yaml'
    import yaml

    overrides.write_text(yaml.safe_dump(
        {'depth_node': {'ros__parameters': node_overrides(sequence, options)}}))
    env = dict(os.environ)
    env['PYTHONUNBUFFERED'] = '1'
    log_path = node_log or workdir / 'depth_node.log'
    # The launch file's YAML first, then this run's values (the later file wins).
    params = [path for path in (default_params_file(), overrides) if path is not None]
    node_proc = NodeProcess(node_command(params), env, log_path)
    recording = LiveRecording()
    context = Context()
    try:
        rclpy.init(args=[], context=context)
        node = rclpy.create_node('g2mono_eval_replay', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
        try:
            _record_and_replay(node, spinner, node_proc, sequence, options, recording, drain_s,
                               startup_timeout_s)
        finally:
            executor.shutdown(timeout_sec=2.0)
            if spinner.ident is not None:
                spinner.join(timeout=5.0)
            node.destroy_node()
    finally:
        node_proc.stop()
        recording.node_log = node_proc.log_text()
        rclpy.try_shutdown(context=context)
        shutil.rmtree(workdir, ignore_errors=True)
    return recording


def _record_and_replay(node: Any, spinner: threading.Thread, node_proc: NodeProcess,
                       sequence: BagSequence, options: EvaluationOptions,
                       recording: LiveRecording, drain_s: float,
                       startup_timeout_s: float = 180.0) -> None:
    """Subscribe to the node's outputs, wait for it, replay on schedule, wait for the tail."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

    from g2mono_ros.ros.codecs import depth_from_image

    lock = threading.Lock()

    def on_depth(msg: Any) -> None:
        now = time.time_ns()
        stamp = header_stamp_ns(msg)
        recording.depth.put(stamp, depth_from_image(msg))
        with lock:
            recording.received_wall_ns[stamp] = now

    diagnostics_seen = [0]

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            if 'depth_node' in status.name:
                with lock:
                    recording.diagnostics = {kv.key: kv.value for kv in status.values}
                    diagnostics_seen[0] += 1

    out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                         reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, DEPTH_TOPIC, on_depth, out_qos)
    node.create_subscription(_diagnostic_array_type(), '/diagnostics', on_diagnostics, 10)
    publishers = {
        options.image_topic: node.create_publisher(
            CompressedImage if _is_compressed_topic(options.image_topic) else Image,
            options.image_topic, qos_profile_sensor_data),
        options.camera_info_topic: node.create_publisher(CameraInfo, options.camera_info_topic,
                                                         qos_profile_sensor_data),
        options.points_topic: node.create_publisher(PointCloud2, options.points_topic,
                                                    qos_profile_sensor_data),
    }
    if sequence.T_base_lidar is not None:
        from nav_msgs.msg import Odometry

        publishers[options.motion.odom_topic] = node.create_publisher(
            Odometry, options.motion.odom_topic, 50)
    spinner.start()
    _wait_ready(node, node_proc, publishers, startup_timeout_s)
    # The node skips pairs until it has a CameraInfo: give it one before the first image.
    publishers[options.camera_info_topic].publish(
        _serialize(sequence.camera_info, 'sensor_msgs/msg/CameraInfo'))
    time.sleep(0.2)
    total_images = expected_frames(sequence, options)
    with progress_bar(total_images, options.progress, 'replay (live)') as bar:
        start_wall = time.monotonic()
        first_log: int | None = None
        for topic, log_ns, payload, image_stamp in _replay_messages(sequence, options):
            if first_log is None:
                first_log = log_ns
            delay = start_wall + (log_ns - first_log) * 1e-9 / options.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not node_proc.alive():
                msg = (f'depth_node exited with status {node_proc.process.returncode} during'
                       f' the replay; its log:\n{node_proc.log_tail()}')
                raise NodeError(msg)
            if image_stamp is not None:
                with lock:
                    recording.published_wall_ns[image_stamp] = time.time_ns()
                bar.update(1)
            elif topic == options.points_topic:
                recording.scans_published += 1
            publishers[topic].publish(payload)
    _drain(recording, lock, total_images, drain_s)
    # One more /diagnostics after the last output, so its drop counters are final.
    seen = diagnostics_seen[0]
    deadline = time.monotonic() + 2.5
    while diagnostics_seen[0] == seen and time.monotonic() < deadline:
        time.sleep(0.05)


def _diagnostic_array_type() -> Any:
    from diagnostic_msgs.msg import DiagnosticArray

    return DiagnosticArray


def _spin(executor: Any) -> None:
    try:
        executor.spin()
    except Exception:  # noqa: BLE001 - the context was shut down under the executor
        pass


def _wait_ready(node: Any, node_proc: NodeProcess, publishers: dict[str, Any],
                timeout_s: float) -> None:
    """Until the node subscribes to every input and publishes depth (engine loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not node_proc.alive():
            msg = (f'depth_node exited with status {node_proc.process.returncode} before it was'
                   f' ready; its log:\n{node_proc.log_tail()}')
            raise NodeError(msg)
        subscribed = all(pub.get_subscription_count() > 0 for pub in publishers.values())
        if subscribed and node.count_publishers(DEPTH_TOPIC) > 0:
            time.sleep(0.5)  # let discovery finish on both sides of the depth topic
            return
        time.sleep(0.1)
    msg = (f'depth_node did not subscribe to its inputs within {timeout_s:.0f} s; its log:\n'
           f'{node_proc.log_tail()}')
    raise NodeError(msg)


def _drain(recording: LiveRecording, lock: threading.Lock, expected: int,
           quiet_s: float, cap_s: float = 120.0) -> None:
    """Wait for the last outputs: until all arrived, or none for ``quiet_s`` seconds."""
    deadline = time.monotonic() + cap_s
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        with lock:
            count = len(recording.depth)
        if count >= expected:
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            return
        time.sleep(0.05)
