"""``g2mono evaluate BAG --weights W``: score the network (offline or through the live node).

Builds the same config records as the node (engine, projection, sync) from the options, runs
the evaluation, writes the report folder and prints the summary table.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from g2mono_ros.config import (SYNC_POLICIES, EngineConfig, ExtrinsicConfig, MotionConfig,
                               ProjectionConfig, SyncConfig)
from g2mono_ros.errors import ConfigError
from g2mono_ros.evaluation.evaluator import EvaluationOptions, EvaluationResult
from g2mono_ros.evaluation.metrics import DEFAULT_RANGE_BINS_M

__all__ = ['add_arguments', 'add_common_arguments', 'default_report_dir', 'exit_status',
           'options_from_args', 'run', 'run_evaluation']


def add_common_arguments(parser: argparse.ArgumentParser, *,
                         input_height_default: str = "the checkpoint's, as the node",
                         input_width_default: str = "the checkpoint's") -> None:
    """Options shared by ``evaluate`` and ``demo``: the network and the live replay."""
    net = parser.add_argument_group('network (as the node parameters of the same names)')
    net.add_argument('--variant', default='auto', help='auto | seed | official (default auto)')
    net.add_argument('--device', default='auto', help='auto | cuda | cpu (default auto)')
    net.add_argument('--precision', default='fp32', help='fp32 | fp16 | bf16 (default fp32)')
    net.add_argument('--input-height', type=int, default=None,
                     help=f'network input height, a multiple of 64 '
                          f'(default: {input_height_default})')
    net.add_argument('--input-width', type=int, default=None,
                     help='network input width, a multiple of 64; 0 keeps the aspect '
                          f'(default: {input_width_default})')
    net.add_argument('--max-depth', type=float, default=0.0,
                     help="metres mapped to 1.0; 0 = the checkpoint's value (default)")
    parser.add_argument('--rate', type=float, default=1.0,
                        help='live mode: replay speed factor of the recorded rate (default 1)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='stop after this many frames (default 0 = all)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    motion = parser.add_argument_group('motion compensation (as the node parameters of the same '
                                       'names)')
    motion.add_argument('--motion-source', choices=('none', 'odometry'), default=None,
                        help="move LiDAR points to the image time with the bag's odometry "
                             '(default: odometry when the bag has --odom-topic, else none)')
    motion.add_argument('--odom-topic', default='/odom', help='(default %(default)s)')
    motion.add_argument('--point-time-field', default=MotionConfig.point_time_field,
                        help='per-point time field: auto | none (scan-level) | a field name '
                             '(default %(default)s)')
    motion.add_argument('--point-time-unit', default=MotionConfig.point_time_unit,
                        help='auto | s | ms | us | ns (default %(default)s)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``g2mono evaluate`` options."""
    parser.add_argument('bag', help='rosbag2 directory or .mcap/.db3 file')
    parser.add_argument('--weights', required=True, help='checkpoint (.pt or release .pth)')
    parser.add_argument('--mode', choices=('offline', 'live'), default='offline',
                        help='offline: local engine, no DDS (default); live: the real depth_node '
                             'over DDS, the bag replayed at its recorded rate')
    parser.add_argument('--report', default=None,
                        help='report folder (default: reports/<bag name>_<mode>)')
    gt = parser.add_argument_group('ground truth')
    gt.add_argument('--gt-topic', default='/ground_truth/depth',
                    help='depth image topic with ground truth: 32FC1/16UC1 Image or a '
                         '.../compressedDepth CompressedImage (default /ground_truth/depth)')
    gt.add_argument('--ground-truth', choices=('auto', 'topic', 'holdout'), default='auto',
                    help='auto: the gt topic when present, else LiDAR hold-out (default)')
    gt.add_argument('--holdout-fraction', type=float, default=0.2,
                    help='hold-out: share of the projected points withheld per scan (default 0.2)')
    gt.add_argument('--seed', type=int, default=0, help='hold-out seed (default 0)')
    topics = parser.add_argument_group('topics and geometry')
    topics.add_argument('--image-topic', default='/camera/image_raw',
                        help='sensor_msgs/Image, or a CompressedImage topic such as '
                             '/camera/image_raw/compressed (default %(default)s)')
    topics.add_argument('--camera-info-topic', default='/camera/camera_info',
                        help='(default %(default)s)')
    topics.add_argument('--points-topic', default='/lidar/points', help='(default %(default)s)')
    topics.add_argument('--camera-model', choices=('raw', 'rectified'), default='raw',
                        help='the image is raw (CameraInfo K + D) or rectified (P); as the node '
                             'parameter camera_model (default %(default)s)')
    topics.add_argument('--extrinsic', nargs=7, type=float, default=None,
                        metavar=('TX', 'TY', 'TZ', 'QX', 'QY', 'QZ', 'QW'),
                        help="LiDAR -> camera optical (default: the bag's /tf_static)")
    topics.add_argument('--min-range', type=float, default=ProjectionConfig.min_range,
                        help='metres of depth; nearer points are ignored (default %(default)s)')
    topics.add_argument('--max-range', type=float, default=ProjectionConfig.max_range,
                        help='metres of depth; farther points are ignored (default %(default)s)')
    topics.add_argument('--sync-max-offset', type=float, default=SyncConfig.sync_max_offset,
                        help='seconds between an image and its scan (default %(default)s)')
    topics.add_argument('--sync-max-wait', type=float, default=SyncConfig.sync_max_wait,
                        help='seconds of arrival (log) time an image waits for a later scan '
                             '(default %(default)s)')
    topics.add_argument('--sync-policy', choices=SYNC_POLICIES, default=SyncConfig.sync_policy,
                        help='nearest scan, or the newest scan before the image (low latency);'
                             ' default %(default)s')
    topics.add_argument('--image-time-offset', type=float, default=0.0,
                        help='seconds added to image stamps for pairing (default 0)')
    topics.add_argument('--points-time-offset', type=float, default=0.0,
                        help='seconds added to cloud stamps for pairing (default 0)')
    topics.add_argument('--range-bins', type=float, nargs='+', default=None, metavar='M',
                        help='range bin edges in metres (default 0 5 10 20 40; a last bin is '
                             'open-ended)')
    add_common_arguments(parser)


def _engine_config(args: argparse.Namespace, weights: str) -> EngineConfig:
    kwargs: dict[str, Any] = {'weights': weights, 'variant': args.variant, 'device': args.device,
                              'precision': args.precision, 'max_depth': args.max_depth}
    if args.input_height is not None:
        kwargs['input_height'] = args.input_height
    if args.input_width is not None:
        kwargs['input_width'] = args.input_width
    return EngineConfig(**kwargs)


def options_from_args(args: argparse.Namespace, *, weights: str | None = None,
                      mode: str | None = None) -> EvaluationOptions:
    """Build ``EvaluationOptions`` from parsed options (``evaluate``'s, or ``demo``'s).

    Raises:
        ConfigError: any value out of range, named.
    """
    extrinsic = None
    if getattr(args, 'extrinsic', None) is not None:
        values = args.extrinsic
        extrinsic = ExtrinsicConfig(tuple(values[:3]), tuple(values[3:]))
    bins: tuple[float, ...] = DEFAULT_RANGE_BINS_M
    if getattr(args, 'range_bins', None):
        bins = tuple(args.range_bins)
        if bins[-1] != math.inf:
            bins = (*bins, math.inf)
        if any(b <= a for a, b in zip(bins[:-1], bins[1:])) or bins[0] < 0:
            msg = f'--range-bins must be increasing metres >= 0; got {list(args.range_bins)}'
            raise ConfigError(msg)
    return EvaluationOptions(
        engine=_engine_config(args, weights or args.weights),
        mode=mode or args.mode,
        ground_truth=getattr(args, 'ground_truth', 'auto'),
        gt_topic=getattr(args, 'gt_topic', '/ground_truth/depth'),
        holdout_fraction=getattr(args, 'holdout_fraction', 0.2),
        seed=getattr(args, 'seed', 0),
        max_frames=args.max_frames,
        rate=args.rate,
        image_topic=getattr(args, 'image_topic', '/camera/image_raw'),
        camera_info_topic=getattr(args, 'camera_info_topic', '/camera/camera_info'),
        points_topic=getattr(args, 'points_topic', '/lidar/points'),
        camera_model=getattr(args, 'camera_model', 'raw'),
        projection=ProjectionConfig(getattr(args, 'min_range', ProjectionConfig.min_range),
                                    getattr(args, 'max_range', ProjectionConfig.max_range)),
        sync=SyncConfig(sync_max_offset=getattr(args, 'sync_max_offset',
                                                SyncConfig.sync_max_offset),
                        sync_max_wait=getattr(args, 'sync_max_wait', SyncConfig.sync_max_wait),
                        sync_policy=getattr(args, 'sync_policy', SyncConfig.sync_policy),
                        image_time_offset=getattr(args, 'image_time_offset', 0.0),
                        points_time_offset=getattr(args, 'points_time_offset', 0.0)),
        extrinsic=extrinsic,
        range_bins_m=bins,
        progress=not args.no_progress,
        motion=_motion_config(args),
    )


def _motion_config(args: argparse.Namespace) -> MotionConfig:
    """``--motion-source`` (default: odometry when the bag has the odometry topic)."""
    source = getattr(args, 'motion_source', None)
    odom_topic = getattr(args, 'odom_topic', '/odom')
    if source is None:
        source = 'none'
        bag = getattr(args, 'bag', None)
        if bag is not None:
            from g2mono_ros.bagio import list_topics
            from g2mono_ros.errors import BagError

            try:
                source = 'odometry' if odom_topic in list_topics(bag) else 'none'
            except BagError:
                pass  # open_sequence reports the unreadable bag with its own message
    return MotionConfig(motion_source=source, odom_topic=odom_topic,
                        point_time_field=getattr(args, 'point_time_field', 'auto'),
                        point_time_unit=getattr(args, 'point_time_unit', 'auto'))


def run_evaluation(bag: str | Path, options: EvaluationOptions) -> EvaluationResult:
    """Offline or live, as ``options.mode`` says."""
    if options.mode == 'live':
        from g2mono_ros.evaluation.live import evaluate_live

        return evaluate_live(bag, options)
    from g2mono_ros.evaluation.evaluator import evaluate_offline

    return evaluate_offline(bag, options)


def default_report_dir(bag: str | Path, mode: str) -> Path:
    """``reports/<bag name>_<mode>`` under the current directory."""
    name = Path(bag).resolve().name
    for suffix in ('.mcap', '.db3'):
        name = name.removesuffix(suffix)
    return Path('reports') / f'{name}_{mode}'


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report, print the table and where the report is."""
    from g2mono_ros.evaluation.report import format_table, write_report

    options = options_from_args(args)
    weights = Path(options.engine.weights).expanduser()
    if not weights.is_file():
        msg = f'--weights: no checkpoint file at {str(weights)!r}'
        raise ConfigError(msg)
    result = run_evaluation(args.bag, options)
    report_dir = Path(args.report) if args.report else default_report_dir(args.bag, options.mode)
    path, summary = write_report(result, options, report_dir)
    print(f'g2mono evaluate: {args.bag} ({options.mode}), weights {weights}')
    print(f"ground truth: {summary['ground_truth']}")
    print(format_table(summary))
    print(f'report: {path}')
    return exit_status(summary)


def exit_status(summary: dict[str, Any]) -> int:
    """1 (with a line on stderr) when no frame could be scored, else 0."""
    import sys

    if summary['counts'].get('scored_frames', 0) == 0:
        drops = ', '.join(f'{k} {v}' for k, v in sorted(summary['drops'].items())) or 'none'
        print(f'g2mono: no frame could be scored (drops: {drops}); check the topics, the '
              'pairing window (--sync-max-offset) and the ground truth', file=sys.stderr)
        return 1
    return 0
