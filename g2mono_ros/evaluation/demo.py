"""``g2mono demo``: generate the built-in synthetic sequence, replay it through the live node,
evaluate, and print the summary and the report path. The README's main job.

The sequence uses ``DEMO_SEED``, which the shipped weights were not trained on.
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import time
from pathlib import Path
from typing import Any

from g2mono_ros.errors import ConfigError
from g2mono_ros.evaluation.cli import (
    add_common_arguments,
    exit_status,
    options_from_args,
    run_evaluation,
)

__all__ = ['DEMO_SEED', 'add_arguments', 'generate_demo_bag', 'run', 'shipped_weights']

#: Seed of the demo sequence: not one of the training or validation seeds.
DEMO_SEED = 4242
#: The demo rig's speed: fast enough that an uncompensated scan is visibly off (m/s).
DEMO_SPEED_MPS = 5.0


def shipped_weights() -> Path | None:
    """The demo checkpoint of ``g2mono_ros/weights``: its ``DEMO_WEIGHTS`` (which may name a
    file that is missing), else the folder's only ``.pt`` file, else None."""
    try:
        import g2mono_ros.weights as weights_pkg
    except ImportError:
        return None
    folder = Path(str(importlib.resources.files('g2mono_ros.weights')))
    named = getattr(weights_pkg, 'DEMO_WEIGHTS', None)
    if named:
        candidate = Path(named)
        return candidate if candidate.is_absolute() else folder / candidate
    files = sorted(folder.glob('*.pt'))
    return files[0] if len(files) == 1 else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``g2mono demo`` options."""
    parser.add_argument('--weights', default=None,
                        help='checkpoint to demonstrate (default: the shipped demo weights)')
    parser.add_argument('--out', default='demo_out',
                        help='folder for the generated bag and the report (default demo_out)')
    parser.add_argument('--frames', type=int, default=90,
                        help='camera frames to generate, at 30 Hz (default 90 = 3 s)')
    parser.add_argument('--seed', type=int, default=DEMO_SEED,
                        help=f'sequence seed (default {DEMO_SEED}, unseen in training)')
    # Defaults: the shipped weights' own input size (no resampling) and a VLP-16, the sparse
    # LiDAR where completion matters most (see g2mono_ros/weights/README.md for 32 beams).
    parser.add_argument('--width', type=int, default=192, help='image width (default 192)')
    parser.add_argument('--height', type=int, default=128, help='image height (default 128)')
    parser.add_argument('--beams', type=int, default=16, choices=(16, 32, 64),
                        help='LiDAR beams (default 16, a VLP-16)')
    parser.add_argument('--speed', type=float, default=DEMO_SPEED_MPS,
                        help='rig speed on its loop, m/s; the LiDAR sweeps while the rig moves '
                             '(per-point Velodyne times, 100 Hz odometry, clouds published after '
                             f'their sweep) and the node compensates (default {DEMO_SPEED_MPS:g}; '
                             '0 = the instantaneous-sweep sequence of earlier versions)')
    parser.add_argument('--mode', choices=('live', 'offline'), default='live',
                        help='live: through the real depth_node over DDS (default); offline: '
                             'the same pipeline without DDS')
    add_common_arguments(parser, input_height_default="the checkpoint's",
                         input_width_default="the checkpoint's")


def generate_demo_bag(path: Path, *, seed: int, frames: int, width: int, height: int, beams: int,
                      progress: bool = True, speed_mps: float = 0.0) -> None:
    """Write the synthetic sequence to ``path``, replacing an earlier demo bag there.

    Raises:
        ConfigError: ``path`` exists and is not a bag this command wrote.
        BagError: writing fails.
    """
    from tqdm import tqdm

    from g2mono_ros.synth import write_synthetic_bag
    from g2mono_ros.synth.bag import METADATA_KEY

    if path.exists():
        metadata = path / 'metadata.yaml'
        if not (metadata.is_file() and METADATA_KEY in metadata.read_text(errors='replace')):
            msg = f'{str(path)!r} exists and is not a g2mono synthetic bag; choose another --out'
            raise ConfigError(msg)
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=None, disable=not progress, desc='generate', unit='msg',
              dynamic_ncols=True, leave=False) as bar:
        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        moving: dict[str, Any] = {}
        if speed_mps > 0:
            # A real spinning LiDAR: stamped at sweep start, published after it, each point
            # with its own time; the odometry the node compensates with.
            moving = {'speed_mps': speed_mps, 'rolling_sweep': True, 'sweep_slices': 180,
                      'odom_rate_hz': 100.0, 'scan_delay_s': 0.11}
        write_synthetic_bag(path, seed, frames, width=width, height=height, beams=beams,
                            progress=on_progress, **moving)


def run(args: argparse.Namespace) -> int:
    """Generate, evaluate (live by default), report; print which weights were used."""
    from g2mono_ros.models.checkpoint import load_checkpoint, resolve_input_size
    from g2mono_ros.evaluation.report import format_table, write_report

    started = time.perf_counter()
    if args.weights:
        weights = Path(args.weights).expanduser()
        origin = 'given with --weights'
    else:
        found = shipped_weights()
        if found is None or not found.is_file():
            where = f' (expected {found})' if found is not None else ''
            msg = (f'no demo weights are shipped in g2mono_ros/weights{where}; '
                   'pass a checkpoint with --weights PATH')
            raise ConfigError(msg)
        weights, origin = found, 'the shipped demo weights'
    if not weights.is_file():
        msg = f'--weights: no checkpoint file at {str(weights)!r}'
        raise ConfigError(msg)
    # Left unset, the network runs at the size the checkpoint records (small on a CPU), by the
    # engine's rule; resolved here too only to print it.
    net_hw = resolve_input_size(args.input_height or 0, args.input_width or 0,
                                load_checkpoint(weights))
    out = Path(args.out).expanduser().resolve()
    bag = out / 'synthetic_bag'
    print(f'g2mono demo: weights {weights} ({origin})')
    print(f'generating {args.frames} frames (seed {args.seed}, {args.width}x{args.height}, '
          f'{args.beams}-beam LiDAR, rig at {args.speed:g} m/s) -> {bag}')
    generate_demo_bag(bag, seed=args.seed, frames=args.frames, width=args.width,
                      height=args.height, beams=args.beams, progress=not args.no_progress,
                      speed_mps=args.speed)
    if getattr(args, 'motion_source', None) is None:
        args.motion_source = 'odometry' if args.speed > 0 else 'none'
    options = options_from_args(args, weights=str(weights), mode=args.mode)
    how = (f'replaying into DDS at {options.rate:g}x through the depth_node process'
           if options.mode == 'live' else 'running the node pipeline offline')
    print(f'{how} (network input {net_hw[0]} x {net_hw[1] or "aspect-kept"}; motion '
          f'compensation: {options.motion.motion_source})')
    result = run_evaluation(bag, options)
    path, summary = write_report(result, options, out / 'report')
    print()
    print(f"ground truth: {summary['ground_truth']}")
    print(format_table(summary))
    print()
    print(f'weights used: {weights} ({origin})')
    print(f'report: {path} (report.md, summary.json, frames.csv, plots)')
    print(f'demo took {time.perf_counter() - started:.0f} s')
    return exit_status(summary)
