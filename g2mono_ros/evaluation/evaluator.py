"""Offline bag evaluation: the node's pairing, projection and engine on a bag, scored per frame.

Owns the evaluation options, opening a bag, turning it into scorable frames (ground truth from a
depth topic or the LiDAR hold-out protocol) and the offline run; ``live`` reuses the frame
stream with the real node's outputs in place of the local engine. Scoring is in ``scoring``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from g2mono_ros.config import (CAMERA_MODELS, EngineConfig, ExtrinsicConfig, MotionConfig,
                               ProjectionConfig, SyncConfig)
from g2mono_ros.errors import BagError, ConfigError
from g2mono_ros.evaluation.holdout import (
    choose_holdout_rows,
    cloud_rows,
    holdout_targets,
    select_cloud_rows,
)
from g2mono_ros.evaluation.metrics import DEFAULT_RANGE_BINS_M
from g2mono_ros.evaluation.scoring import (
    METHODS,
    EvaluationResult,
    FrameInputs,
    FrameRecord,
    SampleFrame,
    ScoreBook,
    sample_indices_for,
)

__all__ = [
    'METHODS',
    'BagSequence',
    'EvaluationOptions',
    'EvaluationResult',
    'FrameInputs',
    'FrameRecord',
    'SampleFrame',
    'ScoreBook',
    'evaluate_offline',
    'expected_frames',
    'header_stamp_ns',
    'iter_frames',
    'open_sequence',
    'progress_bar',
    'sample_indices_for',
    'split_scan',
]

GroundTruthMode = Literal['auto', 'topic', 'holdout']


@dataclass(frozen=True)
class EvaluationOptions:
    """What to evaluate and how (the ``g2mono evaluate`` options).

    Attributes:
        engine: the network, as the node would build it (``weights`` required).
        mode: ``offline`` (local engine, no DDS) or ``live`` (the real node over DDS).
        ground_truth: ``topic`` (``gt_topic`` must exist), ``holdout`` (LiDAR hold-out), or
            ``auto`` (the topic when the bag has it, else hold-out).
        gt_topic: depth image topic with ground truth (32FC1 m or 16UC1 mm), image stamps.
        holdout_fraction: share of the projected points withheld per scan, in (0, 1).
        seed: hold-out seed (with each scan's stamp it fixes the split).
        max_frames: stop after this many paired frames; 0 = all.
        rate: live replay speed factor (1 = recorded rate).
        camera_model: ``raw`` (CameraInfo K + D) or ``rectified`` (P), as the node parameter.
        projection, sync: as the node's parameters of the same names.
        extrinsic: None = the bag's stored extrinsic (error if it has none); else an
            ``ExtrinsicConfig`` that overrides it.
        range_bins_m: ground-truth range bin edges for the per-range metrics.
        progress: show tqdm progress bars.
        motion: motion compensation as the node's parameters of the same names; the bag's
            ``odom_topic`` feeds it (``none`` or ``odometry``; TF is not replayed). The LiDAR's
            mounting comes from the bag's ``/tf_static`` (odometry child frame -> cloud frame),
            else ``lidar_to_base``.
    """

    engine: EngineConfig
    mode: Literal['offline', 'live'] = 'offline'
    ground_truth: GroundTruthMode = 'auto'
    gt_topic: str = '/ground_truth/depth'
    holdout_fraction: float = 0.2
    seed: int = 0
    max_frames: int = 0
    rate: float = 1.0
    image_topic: str = '/camera/image_raw'
    camera_info_topic: str = '/camera/camera_info'
    points_topic: str = '/lidar/points'
    camera_model: str = 'raw'
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    extrinsic: ExtrinsicConfig | None = None
    range_bins_m: tuple[float, ...] = DEFAULT_RANGE_BINS_M
    progress: bool = True
    motion: MotionConfig = field(default_factory=MotionConfig)

    def __post_init__(self) -> None:
        if self.motion.motion_source == 'tf':
            msg = ("the evaluator compensates motion from the bag's odometry: use "
                   "motion_source 'odometry' (or 'none'), not 'tf'")
            raise ConfigError(msg)
        if self.mode not in ('offline', 'live'):
            msg = f"mode must be 'offline' or 'live'; got {self.mode!r}"
            raise ConfigError(msg)
        if self.camera_model not in CAMERA_MODELS:
            msg = (f'camera model must be one of {", ".join(CAMERA_MODELS)}; '
                   f'got {self.camera_model!r}')
            raise ConfigError(msg)
        if self.ground_truth not in ('auto', 'topic', 'holdout'):
            msg = f"ground_truth must be 'auto', 'topic' or 'holdout'; got {self.ground_truth!r}"
            raise ConfigError(msg)
        if not (isinstance(self.holdout_fraction, (int, float))
                and 0.0 < self.holdout_fraction < 1.0):
            msg = f'holdout fraction must be in (0, 1); got {self.holdout_fraction!r}'
            raise ConfigError(msg)
        if not (isinstance(self.max_frames, int) and self.max_frames >= 0):
            msg = f'max_frames must be an integer >= 0 (0 = all); got {self.max_frames!r}'
            raise ConfigError(msg)
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate)
                and self.rate > 0):
            msg = f'rate must be a positive factor of the recorded rate; got {self.rate!r}'
            raise ConfigError(msg)
        edges = self.range_bins_m
        if len(edges) < 2 or edges[0] < 0 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
            msg = f'range bins must be increasing metres >= 0 (at least 2 edges); got {edges!r}'
            raise ConfigError(msg)


class BagSequence(NamedTuple):
    """An opened bag: what every frame shares, and how to stream its messages.

    Attributes:
        path: the bag.
        camera: ``CameraModel`` of the image stream (from the first CameraInfo).
        camera_info: that CameraInfo message (rosbags), replayed first in live mode.
        T_cam_lidar: (4, 4) float64 LiDAR -> camera optical.
        extrinsic: the ``ExtrinsicConfig`` it came from (passed to the live node).
        ground_truth: ``'topic'`` or ``'holdout'`` (resolved from the options).
        topic_counts: topic -> number of messages.
        messages: callable returning an iterator of ``(topic, log_time_ns, msg, raw)`` in log
            time order over the topics the evaluation needs (``raw``: serialized CDR bytes).
        T_base_lidar: (4, 4) LiDAR -> odometry child frame (motion compensation), else None.
    """

    path: Path
    camera: Any
    camera_info: Any
    T_cam_lidar: np.ndarray
    extrinsic: Any
    ground_truth: str
    topic_counts: dict[str, int]
    messages: Callable[[], Iterator[tuple[str, int, Any, bytes]]]
    T_base_lidar: np.ndarray | None = None


def header_stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def open_sequence(bag: str | Path, options: EvaluationOptions) -> BagSequence:
    """Open ``bag`` and check it has what the evaluation needs.

    Raises:
        BagError: the bag is missing or corrupt, lacks the image, CameraInfo or points topic,
            lacks ground truth when ``ground_truth='topic'``, or stores no extrinsic (and
            none was given).
    """
    from g2mono_ros import bagio
    from g2mono_ros.fusion.transforms import quaternion_from_rotation

    path = Path(bag)
    with bagio.BagReader(path) as reader:
        topic_counts = {name: topic.count for name, topic in reader.topics.items()}
        required = {'image': options.image_topic, 'CameraInfo': options.camera_info_topic,
                    'point cloud': options.points_topic}
        missing = [f'{what} topic {topic}' for what, topic in required.items()
                   if topic_counts.get(topic, 0) == 0]
        if missing:
            present = ', '.join(sorted(topic_counts)) or 'none'
            msg = (f'bag {str(path)!r} has no messages on {"; ".join(missing)}'
                   f' (topics present: {present})')
            compressed = f'{options.image_topic.rstrip("/")}/compressed'
            if topic_counts.get(compressed, 0) and options.image_topic in missing[0]:
                msg += f'; the images are compressed: pass --image-topic {compressed}'
            raise BagError(msg)
        has_gt = topic_counts.get(options.gt_topic, 0) > 0
        if options.ground_truth == 'topic' and not has_gt:
            msg = (f'bag {str(path)!r} has no ground-truth topic {options.gt_topic}; name another'
                   ' with --gt-topic, or use the LiDAR hold-out (--ground-truth holdout)')
            raise BagError(msg)
        camera = reader.camera_model(options.camera_info_topic, options.camera_model)
        camera_info = reader.first_message(options.camera_info_topic).msg
        extrinsic = options.extrinsic
        if extrinsic is None:
            try:
                T = bagio.read_extrinsic(reader, camera_info_topic=options.camera_info_topic,
                                         points_topic=options.points_topic)
            except BagError as exc:
                msg = f'{exc}; or give the LiDAR -> camera extrinsic with --extrinsic'
                raise BagError(msg) from exc
            q_xyzw = quaternion_from_rotation(T[:3, :3])
            extrinsic = ExtrinsicConfig(tuple(float(v) for v in T[:3, 3]),
                                        tuple(float(v) for v in q_xyzw))
        T_base_lidar = (_lidar_mounting(reader, options)
                        if options.motion.motion_source == 'odometry' else None)
    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

    T = transform_from_translation_quaternion(np.asarray(extrinsic.translation, np.float64),
                                              np.asarray(extrinsic.rotation, np.float64))
    ground_truth = 'topic' if options.ground_truth == 'topic' or (
        options.ground_truth == 'auto' and has_gt) else 'holdout'
    topics = [options.image_topic, options.camera_info_topic, options.points_topic]
    if ground_truth == 'topic':
        topics.append(options.gt_topic)
    if T_base_lidar is not None:
        topics.append(options.motion.odom_topic)

    def messages() -> Iterator[tuple[str, int, Any, bytes]]:
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        with bagio.BagReader(path) as reader:
            for topic, msgtype, log_ns, raw in reader.raw_messages(topics):
                try:
                    msg = store.deserialize_cdr(raw, msgtype)
                except Exception as exc:  # rosbags raises assorted types on bad CDR
                    err = f'cannot deserialise a {msgtype} on {topic} in {str(path)!r}: {exc}'
                    raise BagError(err) from exc
                yield topic, log_ns, msg, raw

    return BagSequence(path, camera, camera_info, T, extrinsic, ground_truth, topic_counts,
                       messages, T_base_lidar)


def _lidar_mounting(reader: Any, options: EvaluationOptions) -> np.ndarray:
    """T_base_lidar for odometry compensation: the bag's static TF from the odometry's child
    frame to the cloud's frame, else the ``lidar_to_base`` setting.

    Raises:
        BagError: the bag has no odometry on ``odom_topic``.
    """
    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

    motion = options.motion
    if reader.topics.get(motion.odom_topic) is None or reader.topics[motion.odom_topic].count == 0:
        msg = (f'bag {str(reader.path)!r} has no odometry on {motion.odom_topic} for '
               "motion_source 'odometry'; name it with odom_topic, or use motion_source 'none'")
        raise BagError(msg)
    base = str(reader.first_message(motion.odom_topic).msg.child_frame_id).lstrip('/')
    try:
        return reader.read_extrinsic(base, reader.frame_id(options.points_topic))
    except BagError:
        return transform_from_translation_quaternion(
            np.asarray(motion.lidar_to_base_translation, dtype=np.float64),
            np.asarray(motion.lidar_to_base_rotation, dtype=np.float64))


class _Scan(NamedTuple):
    kept_xyz: np.ndarray
    held_xyz: np.ndarray | None
    kept_msg: Any
    kept_stamps_ns: np.ndarray | int = 0  # per point (deskew) or the header stamp
    held_stamps_ns: np.ndarray | int = 0


def split_scan(msg: Any, sequence: BagSequence, options: EvaluationOptions) -> _Scan:
    """Decode one cloud; under hold-out, remove the withheld points (shared with ``live``)."""
    from g2mono_ros.ros.codecs import pointcloud2_to_xyz

    motion = options.motion.motion_source != 'none'
    if sequence.ground_truth != 'holdout':
        xyz, _ = pointcloud2_to_xyz(msg)
        return _Scan(xyz, None, msg, _point_stamps(msg, options) if motion else 0)
    rows, all_xyz = cloud_rows(msg)
    held = choose_holdout_rows(all_xyz, sequence.T_cam_lidar, sequence.camera,
                               fraction=options.holdout_fraction, seed=options.seed,
                               stamp_ns=header_stamp_ns(msg),
                               min_range=options.projection.min_range,
                               max_range=options.projection.max_range)
    kept_msg = select_cloud_rows(msg, ~held, rows)
    # The network's points are decoded from the filtered message, exactly as the node would.
    kept_xyz, _ = pointcloud2_to_xyz(kept_msg)
    held_xyz = all_xyz[held].astype(np.float32)
    if not motion:
        return _Scan(kept_xyz, held_xyz, kept_msg)
    held_msg = select_cloud_rows(msg, held, rows)
    held_xyz, _ = pointcloud2_to_xyz(held_msg)  # aligned with its stamps (finite points)
    return _Scan(kept_xyz, held_xyz, kept_msg, _point_stamps(kept_msg, options),
                 _point_stamps(held_msg, options))


def _point_stamps(msg: Any, options: EvaluationOptions) -> np.ndarray | int:
    from g2mono_ros.ros.motion import cloud_point_stamps

    return cloud_point_stamps(msg, field=options.motion.point_time_field,
                              unit=options.motion.point_time_unit)


#: Ground-truth images wait at most this long (bag time) for their pair, and vice versa.
_GT_PATIENCE_NS = 2_000_000_000


def iter_frames(sequence: BagSequence, options: EvaluationOptions,
                drops: dict[str, int], gaps: Any | None = None) -> Iterator[FrameInputs]:
    """Stream the bag through the node's synchroniser and yield scorable frames.

    Pairing is the node's ``PairSynchronizer`` with the same config; each message arrives at
    its log time (when the recorder received it), so waits count as they did on the robot.
    ``gaps`` (a ``fusion.sync.PairGapStats``) receives every pair and counts the images.
    With ``motion_source: odometry`` each pair's points (kept and withheld) are moved to the
    image time as the node does (same per-point times, same ``compensate_points``), once the
    bag's odometry covers the scan and the image; ``no_odometry`` counts pairs left without
    points, ``no_odometry_points`` the points dropped.
    ``drops`` (reason -> count) receives the synchroniser's image and scan drops
    (``sync_image_*``, ``sync_scan_*``) and the frames lost here
    (``no_ground_truth``: no depth image with the image's stamp; ``empty_target``: no target
    pixel, e.g. no withheld point in view).

    Raises:
        BagError: a message cannot be decoded (wrapped with its topic).
    """
    from g2mono_ros.ros.compressed import depth_from_any_image, rgb_from_any_image
    from g2mono_ros.errors import G2MonoError
    from g2mono_ros.fusion.sync import PairGapStats, PairSynchronizer

    sync = PairSynchronizer(options.sync)
    gaps = PairGapStats() if gaps is None else gaps
    camera = sequence.camera
    motion = None
    poses = None
    if sequence.T_base_lidar is not None:
        from g2mono_ros.fusion.motion import OdometryMotion, PoseBuffer

        poses = PoseBuffer(max_gap_s=options.motion.motion_max_gap,
                           max_extrapolation_s=options.motion.motion_max_extrapolation)
        motion = OdometryMotion(poses, sequence.T_base_lidar)
    proj = options.projection
    gt_buffer: dict[int, np.ndarray] = {}
    pending: list[Any] = []
    index = 0
    newest_ns = 0
    newest_log_ns = 0

    def ready(now_ns: int, final: bool) -> Iterator[FrameInputs]:
        nonlocal index
        still: list[Any] = []
        for pair in pending:
            target: np.ndarray | None
            scan: _Scan = pair.scan
            if motion is not None:
                points_offset = options.sync.points_time_offset_ns
                needed = int(np.max(np.atleast_1d(scan.kept_stamps_ns) + points_offset,
                                    initial=pair.image_time_ns))
                newest = poses.newest_ns
                if not final and (newest is None or newest < needed) \
                        and now_ns - needed < _GT_PATIENCE_NS:
                    still.append(pair)  # the odometry for this pair is still to come
                    continue
                scan = _compensate(scan, pair.image_time_ns, motion, drops, points_offset)
                if scan is None:
                    continue
            if sequence.ground_truth == 'topic':
                target = gt_buffer.pop(pair.image_stamp_ns, None)
                if target is None:
                    if final or now_ns - pair.image_stamp_ns > _GT_PATIENCE_NS:
                        drops['no_ground_truth'] = drops.get('no_ground_truth', 0) + 1
                    else:
                        still.append(pair)
                    continue
                from g2mono_ros.fusion.projection import project_points_to_depth

                sparse, _ = project_points_to_depth(scan.kept_xyz, sequence.T_cam_lidar, camera,
                                                    min_range=proj.min_range,
                                                    max_range=proj.max_range)
            else:
                split = holdout_targets(scan.held_xyz, scan.kept_xyz, sequence.T_cam_lidar,
                                        camera, min_range=proj.min_range,
                                        max_range=proj.max_range)
                target, sparse = split.target_m, split.kept_sparse_m
            if target.shape != (camera.height, camera.width):
                msg = (f'ground truth on {options.gt_topic!r} is {target.shape[1]}x'
                       f'{target.shape[0]} but the camera is {camera.width}x{camera.height}')
                raise BagError(msg)
            if not np.any(target > 0):
                drops['empty_target'] = drops.get('empty_target', 0) + 1
                continue
            index += 1
            yield FrameInputs(index - 1, pair.image_stamp_ns, pair.scan_stamp_ns, pair.image,
                              scan.kept_xyz, sparse.astype(np.float32),
                              target.astype(np.float32))
        pending[:] = still
        for stamp in [s for s in gt_buffer if now_ns - s > _GT_PATIENCE_NS]:
            del gt_buffer[stamp]

    def finished() -> bool:
        return bool(options.max_frames) and index >= options.max_frames

    def paired(pairs: list[Any]) -> None:
        gaps.add(pairs)
        pending.extend(pairs)

    def feed(topic: str, msg: Any, log_ns: int) -> int | None:
        """Decode one message into the synchroniser or the GT buffer; its stamp, or None."""
        stamp = header_stamp_ns(msg)
        if topic == options.image_topic:
            rgb = rgb_from_any_image(msg)  # Image, or CompressedImage (jpeg/png)
            if not rgb.flags.writeable:  # a view of the bag's buffer; torch wants its own
                rgb = rgb.copy()
            if rgb.shape[:2] != (camera.height, camera.width):
                msg_ = (f'image on {topic!r} is {rgb.shape[1]}x{rgb.shape[0]} but CameraInfo'
                        f' is {camera.width}x{camera.height}')
                raise BagError(msg_)
            gaps.images_in += 1
            paired(sync.add_image(stamp, rgb, arrival_ns=log_ns))
        elif topic == options.points_topic:
            paired(sync.add_scan(stamp, split_scan(msg, sequence, options), arrival_ns=log_ns))
        elif topic == options.gt_topic and sequence.ground_truth == 'topic':
            gt_buffer[stamp] = depth_from_any_image(msg).astype(np.float32)
        elif poses is not None and topic == options.motion.odom_topic:
            from g2mono_ros.ros.motion import odometry_to_pose

            poses.add(*odometry_to_pose(msg))
        else:
            return None
        return stamp

    try:
        for topic, log_ns, msg, _raw in sequence.messages():
            try:
                stamp = feed(topic, msg, log_ns)
            except BagError:
                raise
            except G2MonoError as exc:
                msg_ = f'cannot decode a message on {topic!r} in {str(sequence.path)!r}: {exc}'
                raise BagError(msg_) from exc
            if stamp is None:
                continue
            # Ground truth waits in stamp time; pairing waits in arrival (log) time.
            newest_ns = max(newest_ns, stamp)
            newest_log_ns = max(newest_log_ns, log_ns)
            paired(sync.flush(newest_log_ns))
            for frame in ready(newest_ns, final=False):
                yield frame
                if finished():
                    return
        paired(sync.flush(newest_log_ns + 10 * options.sync.max_wait_ns + 1_000_000_000))
        for frame in ready(newest_ns, final=True):
            yield frame
            if finished():
                return
    finally:
        # Images the synchroniser dropped are lost frames; scans it never used are only noted.
        for prefix, counter in (('sync_image_', sync.image_drops), ('sync_scan_', sync.scan_drops)):
            for reason, count in counter.items():
                drops[f'{prefix}{reason}'] = drops.get(f'{prefix}{reason}', 0) + int(count)


def _compensate(scan: _Scan, image_time_ns: int, motion: Any, drops: dict[str, int],
                points_offset_ns: int = 0) -> _Scan | None:
    """The scan's points at the image time (the node's ``compensate_points``); None if none.

    Times are the pairing's: stamps plus the sensors' time offsets, as in the node.
    """
    from g2mono_ros.fusion.motion import compensate_points

    kept = compensate_points(scan.kept_xyz, scan.kept_stamps_ns + points_offset_ns,
                             image_time_ns, motion)
    held = None
    lost = kept.no_odometry
    if scan.held_xyz is not None:
        moved = compensate_points(scan.held_xyz, scan.held_stamps_ns + points_offset_ns,
                                  image_time_ns, motion)
        held, lost = moved.points, lost + moved.no_odometry
    if lost:
        drops['no_odometry_points'] = drops.get('no_odometry_points', 0) + lost
    if len(kept.points) == 0:
        drops['no_odometry'] = drops.get('no_odometry', 0) + 1
        return None
    return scan._replace(kept_xyz=kept.points, held_xyz=held)


def expected_frames(sequence: BagSequence, options: EvaluationOptions) -> int:
    images = sequence.topic_counts.get(options.image_topic, 0)
    return min(images, options.max_frames) if options.max_frames else images


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, disable=not enabled, desc=desc, unit='frame',
                dynamic_ncols=True, leave=False)


def evaluate_offline(bag: str | Path, options: EvaluationOptions,
                     engine: Any | None = None) -> EvaluationResult:
    """Score the local engine on every paired frame of ``bag``; no DDS.

    Each pair goes through ``fusion.pipeline.process_pair`` (the node's projection at the
    network input size and ``DepthEngine.infer``). Latency is that call's wall time.

    Args:
        bag: rosbag2 directory or file.
        options: see ``EvaluationOptions``.
        engine: a ready ``DepthEngine``-like object (tests); default builds one from
            ``options.engine``.

    Raises:
        BagError, ConfigError, CheckpointError: see ``open_sequence`` and ``DepthEngine``.
    """
    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.sync import PairGapStats

    started = time.perf_counter()
    sequence = open_sequence(bag, options)
    if engine is None:
        from g2mono_ros.models.engine import DepthEngine

        engine = DepthEngine(options.engine)
    expected = expected_frames(sequence, options)
    book = ScoreBook(options.range_bins_m, options.projection.max_range,
                     sample_indices_for(expected))
    drops: dict[str, int] = {}
    gaps = PairGapStats()
    proj = options.projection
    with progress_bar(expected, options.progress, 'evaluate (offline)') as bar:
        for frame in iter_frames(sequence, options, drops, gaps):
            t0 = time.perf_counter()
            work = process_pair(engine, PairInputs(frame.rgb, frame.points_lidar,
                                                   sequence.camera),
                                sequence.T_cam_lidar, min_range=proj.min_range,
                                max_range=proj.max_range, want_sparse=False,
                                want_colorized=False)
            latency_ms = (time.perf_counter() - t0) * 1e3
            book.add(frame, work.depth_m, latency_ms)
            bar.update(1)
    book.finish_samples()
    counts = {'images': expected,  # in the bag, or the first --max-frames of them
              'scans_in_bag': sequence.topic_counts.get(options.points_topic, 0),
              'scored_frames': len(book.frames)}
    return EvaluationResult(
        bag=str(bag), mode='offline', weights=options.engine.weights,
        ground_truth=sequence.ground_truth, book=book,
        latency_kind='engine call (projection + network + resize), wall clock, per pair',
        counts=counts, drops=drops, wall_s=time.perf_counter() - started,
        pairing={**gaps.summary(), 'gap_source': 'the pairs run (offline: every pair)'})
