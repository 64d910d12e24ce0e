"""``g2mono train``: train or fine-tune the network from a YAML config (torchrun for DDP)."""

from __future__ import annotations

import argparse
import dataclasses
import math

from g2mono_ros.training.config import load_train_config

__all__ = ['add_arguments', 'run']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``g2mono train``."""
    parser.add_argument('--config', required=True, help='training YAML (see config/train_*.yaml)')
    parser.add_argument('--resume', default=None,
                        help='a state_<step>.pt of an earlier run: continue exactly from it')
    parser.add_argument('--output-dir', default=None, help='override run.output_dir')
    parser.add_argument('--max-steps', type=int, default=None,
                        help='override optim.max_steps (stop early; the schedule is unchanged)')
    parser.epilog = ('Multi-GPU / multi-node: torchrun --nproc_per_node N -m g2mono_ros train '
                     '--config CONFIG.yaml')


def run(args: argparse.Namespace) -> int:
    """Load the config, train, print where the weights went."""
    from g2mono_ros.training.trainer import train

    config = load_train_config(args.config)
    if args.output_dir is not None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run,
                                                                     output_dir=args.output_dir))
    if args.max_steps is not None:
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim,
                                                                       max_steps=args.max_steps))
    result = train(config, resume=args.resume)
    if result.weights_path is not None:
        print(f'weights: {result.weights_path} (step {result.step}, last loss {result.last_loss:.4f})')
        for key in ('rmse', 'mae'):
            value = result.val_metrics.get(key, math.nan)
            if math.isfinite(value):
                print(f'val {key}: {value:.4f} m')
    return 0
