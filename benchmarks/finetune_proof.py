"""Fine-tuning proof: the shipped weights adapted to an unseen domain with LiDAR-only supervision.

Writes two bags of one domain the weights never saw as a whole sequence (an indoor room scanned
by a 32-beam HDL-32E, seeds 8801 and 8802), scores the shipped weights on the second one with
the LiDAR hold-out (20 % of each scan withheld as targets), fine-tunes them on the first bag the
way a user would on their own recording (``kind: rosbag``: targets = the projected scan,
inputs = degraded copies of it; no dense ground truth), and scores again on the second bag.
A few minutes of one CPU core.

    python benchmarks/finetune_proof.py --steps 80
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / 'benchmarks'):  # the package, and the modules beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from cpu_info import cpu_model  # noqa: E402
from g2mono_ros.config import EngineConfig  # noqa: E402
from g2mono_ros.evaluation.evaluator import EvaluationOptions, evaluate_offline  # noqa: E402
from g2mono_ros.models.checkpoint import load_checkpoint  # noqa: E402
from g2mono_ros.synth.bag import write_synthetic_bag  # noqa: E402
from g2mono_ros.training.config import config_from_mapping  # noqa: E402
from g2mono_ros.training.trainer import train  # noqa: E402
from g2mono_ros.weights import DEMO_WEIGHTS  # noqa: E402

DOMAIN = {'environment': 'indoor', 'beams': 32, 'width': 192, 'height': 128,
          'speed_mps': 0.5}


def holdout_scores(bag: Path, weights: Path) -> dict[str, dict[str, float]]:
    options = EvaluationOptions(engine=EngineConfig(weights=str(weights), device='cpu',
                                                    input_height=128, input_width=192),
                                ground_truth='holdout', progress=False)
    result = evaluate_offline(bag, options)
    return {method: sums.finalize() for method, sums in result.book.totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', default=str(DEMO_WEIGHTS))
    parser.add_argument('--work-dir', default=str(ROOT / 'runs' / 'finetune_proof'))
    parser.add_argument('--train-frames', type=int, default=90)
    parser.add_argument('--eval-frames', type=int, default=45)
    parser.add_argument('--steps', type=int, default=80)
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f'# fine-tuning proof on {cpu_model()}, torch {torch.__version__}, 1 thread')
    started = time.perf_counter()
    train_bag = work / 'indoor32_8801'
    eval_bag = work / 'indoor32_8802'
    write_synthetic_bag(train_bag, 8801, args.train_frames, **DOMAIN)
    write_synthetic_bag(eval_bag, 8802, args.eval_frames, **DOMAIN)
    print(f'# bags written in {time.perf_counter() - started:.0f} s: {train_bag.name} '
          f'({args.train_frames} frames, training), {eval_bag.name} ({args.eval_frames}, scoring)')

    before = holdout_scores(eval_bag, Path(args.weights))
    loaded = load_checkpoint(args.weights)
    config = config_from_mapping({
        'seed': 8801,
        'input_height': loaded.input_height,
        'input_width': loaded.input_width,
        'model': {'variant': loaded.variant, 'kwargs': dict(loaded.model_kwargs),
                  'max_depth': loaded.max_depth, 'init_weights': str(args.weights),
                  'output_init': False},
        'train_data': {'kind': 'rosbag', 'path': str(train_bag), 'frame_stride': 1},
        'simulation': {'mode': 'lidar', 'p_full_scan': 0.0, 'color_jitter': 0.1,
                       'lidar': {'p_beam_subsample': 0.5, 'p_point_dropout': 0.7,
                                 'point_dropout': [0.2, 0.6]}},
        'optim': {'lr': 1.0e-4, 'min_lr': 1.0e-6, 'warmup_steps': 5, 'batch_size': 4,
                  'epochs': 100, 'max_steps': args.steps, 'dense_weight': 10.0,
                  'loss_scale': 'per_image', 'amp': 'none'},
        'run': {'output_dir': str(work / 'run'), 'checkpoint_every': 0, 'progress': False,
                'num_threads': 1, 'device': 'cpu'},
    })
    tuned_at = time.perf_counter()
    result = train(config, writer_factory=lambda _: None)
    minutes = (time.perf_counter() - tuned_at) / 60
    after = holdout_scores(eval_bag, result.weights_path)

    print(f'\nFine-tuned {result.step} steps (batch 4) in {minutes:.1f} min (wall clock, 1 thread); '
          f'hold-out scores on {eval_bag.name} (never trained on):\n')
    print('| weights | hold-out RMSE [m] | MAE [m] | AbsRel | d<1.25 |\n|---|---:|---:|---:|---:|')
    rows = [('shipped (before)', before['model']), ('fine-tuned (after)', after['model']),
            ('nearest fill', before['nearest']), ('morphological fill', before['morphological'])]
    for name, m in rows:
        print(f'| {name} | {m["rmse"]:.3f} | {m["mae"]:.3f} | {m["absrel"]:.4f} | '
              f'{m["delta1"]:.4f} |')
    change = after['model']['rmse'] / before['model']['rmse'] - 1.0
    print(f'\nhold-out RMSE change: {100 * change:+.1f} %; total '
          f'{(time.perf_counter() - started) / 60:.1f} min')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
