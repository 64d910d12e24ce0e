"""``g2mono synth``: write the built-in synthetic camera + LiDAR sequence as a rosbag2 (MCAP)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from g2mono_ros.errors import ConfigError

__all__ = ['add_arguments', 'run']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's options."""
    parser.add_argument('--out', required=True, metavar='BAG',
                        help='bag directory to create (must not exist)')
    parser.add_argument('--seed', type=int, default=0, help='scene and stamp seed (default 0)')
    parser.add_argument('--frames', type=int, default=90,
                        help='camera frames at 30 Hz (default 90 = 3 s)')
    parser.add_argument('--beams', type=int, choices=(16, 32, 64), default=16,
                        help='LiDAR: 16 = VLP-16, 32 = HDL-32E, 64 = HDL-64E (default 16)')
    parser.add_argument('--width', type=int, default=320, help='image width in pixels')
    parser.add_argument('--height', type=int, default=240, help='image height in pixels')
    parser.add_argument('--fov', type=float, default=80.0, dest='fov_x_deg',
                        help='horizontal field of view in degrees (default 80)')
    parser.add_argument('--distortion', action='store_true',
                        help='render through plumb_bob lens distortion (stored in CameraInfo)')
    parser.add_argument('--range-noise', type=float, default=0.0, dest='range_noise_m',
                        help='LiDAR range noise standard deviation in metres (default 0)')
    parser.add_argument('--speed', type=float, default=1.5, dest='speed_mps',
                        help='rig speed in metres per second (default 1.5)')
    parser.add_argument('--environment', choices=('outdoor', 'indoor'), default='outdoor',
                        help='outdoor scene (to 80 m) or a furnished indoor room (0.5-10 m)')
    parser.add_argument('--lidar', default=None, metavar='PATTERN',
                        help='LiDAR pattern from synth.patterns (spin8, vlp16, narrow32, hdl32, '
                             'hdl64, os1-64, os128, solid); overrides --beams')
    parser.add_argument('--image-format', choices=('raw', 'jpeg', 'png'), default='raw',
                        help='raw rgb8 Image, or a CompressedImage on '
                             '/camera/image_raw/compressed (default raw)')
    parser.add_argument('--depth-format', choices=('raw', 'compressedDepth'), default='raw',
                        help='ground truth as 32FC1 Image, or 16UC1 compressedDepth on '
                             '/ground_truth/depth/compressedDepth (default raw)')
    moving = parser.add_argument_group('moving rig (motion compensation tests)')
    moving.add_argument('--yaw-rate', type=float, default=None, dest='yaw_rate_dps',
                        help='drive from the origin at --speed turning at this many deg/s '
                             '(0 = straight) instead of the closed loop')
    moving.add_argument('--rolling-sweep', action='store_true',
                        help='fire each LiDAR sweep over its 0.1 s period, each point from its '
                             'own pose, with a per-point time field')
    moving.add_argument('--time-layout', default=None,
                        help='per-point time field layout: velodyne (default with '
                             '--rolling-sweep), ouster, hesai, livox, livox_offset, autoware')
    moving.add_argument('--odom-rate', type=float, default=0.0,
                        help='write nav_msgs/Odometry on /odom and /tf at this rate (Hz)')
    moving.add_argument('--scan-delay', type=float, default=0.0,
                        help='log each cloud this many seconds after its stamp (e.g. 0.11)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """Write the bag and print what it holds.

    Raises:
        ConfigError: bad option values.
        BagError: the output exists or cannot be written.
    """
    from pathlib import Path

    from g2mono_ros.errors import BagError
    from g2mono_ros.synth.bag import SYNTH_TOPICS, write_synthetic_bag

    if args.frames < 1:
        msg = f'--frames must be >= 1; got {args.frames}'
        raise ConfigError(msg)
    if Path(args.out).exists():
        msg = f'bag {args.out!r} exists already; not overwriting'
        raise BagError(msg)
    lidar = None
    if getattr(args, 'lidar', None):
        from g2mono_ros.synth.patterns import lidar_pattern

        try:
            lidar = lidar_pattern(args.lidar)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    bar = None
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit='frame', desc='synth', file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        info = write_synthetic_bag(args.out, args.seed, args.frames, progress=progress,
                                   width=args.width, height=args.height,
                                   fov_x_deg=args.fov_x_deg, distortion=args.distortion,
                                   beams=args.beams, range_noise_m=args.range_noise_m,
                                   speed_mps=args.speed_mps, lidar=lidar,
                                   environment=getattr(args, 'environment', 'outdoor'),
                                   yaw_rate_dps=args.yaw_rate_dps,
                                   rolling_sweep=args.rolling_sweep,
                                   point_time_layout=args.time_layout,
                                   odom_rate_hz=args.odom_rate, scan_delay_s=args.scan_delay,
                                   image_format=getattr(args, 'image_format', 'raw'),
                                   depth_format=getattr(args, 'depth_format', 'raw'))
    finally:
        if bar is not None:
            bar.close()
    with np.printoptions(precision=4, suppress=True):
        print(f'wrote {info.path}: {info.num_images} images {info.camera.width}x'
              f'{info.camera.height} at 30 Hz, {info.num_scans} LiDAR sweeps at 10 Hz')
        for role, topic in (info.topics or SYNTH_TOPICS).items():
            if role in ('odom', 'tf') and not info.odom_stamps_ns:
                continue
            print(f'  {topic:<22} {role}')
        print(f'  extrinsic T_cam_lidar ({info.lidar_frame} -> {info.camera_frame}):')
        print('    ' + str(info.T_cam_lidar).replace('\n', '\n    '))
    return 0
