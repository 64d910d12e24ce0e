"""The ``g2mono`` / ``python -m g2mono_ros`` command line: one parser, one subcommand per job.

Subcommand modules are imported lazily so that ``g2mono infer`` does not pay for rclpy and
``g2mono node`` does not pay for the trainer. Each module provides ``add_arguments(parser)`` and
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from g2mono_ros.errors import G2MonoError

__all__ = ['SUBCOMMANDS', 'main']

#: name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'infer': ('g2mono_ros.infer_cli', 'dense depth from one RGB image and a sparse depth map'),
    'node': ('g2mono_ros.ros.node', 'run the ROS 2 depth node (same as `ros2 run g2mono_ros depth_node`)'),
    'synth': ('g2mono_ros.synth.cli', 'write a synthetic camera+LiDAR rosbag with ground truth'),
    'evaluate': ('g2mono_ros.evaluation.cli', 'score the network on a rosbag (offline or live)'),
    'demo': ('g2mono_ros.evaluation.demo', 'generate, replay through the live node, evaluate'),
    'train': ('g2mono_ros.training.cli', 'train or fine-tune the network from a YAML config'),
    'export': ('g2mono_ros.training.export', 'export a checkpoint to ONNX'),
}


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='g2mono', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    wanted = argv[0] if argv else None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (keeps `--help` and start-up fast).
        if name == wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except G2MonoError as exc:
        print(f'g2mono {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
