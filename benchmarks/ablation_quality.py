"""Design-choice ablation: each input/output formulation trained briefly with the same budget.

Variants (all ``seed_small``, same data, seed, steps and evaluation frames):
plain G2 (depth / 80 m, G2 loss + dense L1), per-image median scale, per-image log scale,
log + push-pull pre-fill input + zero-initialised residual head, that + pinning, and the
same with the nearest-point pre-fill (the shipped design).
Prints RMSE / MAE per regime (bench_quality's regimes at the network size) and on the real
Middlebury frame. About 2 minutes of one core per variant at the defaults.

    python benchmarks/ablation_quality.py --steps 150   # 64x128 inputs, batch 4
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / 'benchmarks'):  # the package, and the modules beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_quality import scanline_method  # noqa: E402
from cpu_info import cpu_model  # noqa: E402
from g2mono_ros.config import EngineConfig  # noqa: E402
from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill  # noqa: E402
from g2mono_ros.evaluation.quality import QUALITY_REGIMES, regime_frames, score_methods  # noqa: E402
from g2mono_ros.evaluation.real_frames import motorcycle_frames  # noqa: E402
from g2mono_ros.models.engine import DepthEngine  # noqa: E402
from g2mono_ros.training.config import load_train_config  # noqa: E402
from g2mono_ros.training.trainer import train  # noqa: E402

VARIANTS: dict[str, tuple[dict, dict, dict]] = {
    # name: (model kwargs, ModelConfig overrides, OptimConfig overrides)
    'plain G2 (/80 m)': ({}, {'max_depth': 80.0, 'output_init': True}, {'loss_scale': 'global'}),
    'median scale': ({'depth_norm': 'median'}, {}, {}),
    'log scale': ({'depth_norm': 'log'}, {}, {}),
    'log + pre-fill + residual': ({'depth_norm': 'log', 'prefill_input': True,
                                   'residual': True}, {}, {}),
    'log + pre-fill + residual + pin': ({'depth_norm': 'log', 'prefill_input': True,
                                         'residual': True, 'pin_points': True}, {}, {}),
    'log + nearest pre-fill + residual + pin': ({'depth_norm': 'log', 'prefill_input': True,
                                                 'residual': True, 'pin_points': True,
                                                 'prefill_kind': 'nearest'}, {}, {}),
    'log + scan-line pre-fill + residual + pin': ({'depth_norm': 'log', 'prefill_input': True,
                                                   'residual': True, 'pin_points': True,
                                                   'prefill_kind': 'scanline'}, {}, {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=str(ROOT / 'config' / 'train_quality.yaml'))
    parser.add_argument('--steps', type=int, default=150)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--input-height', type=int, default=64)
    parser.add_argument('--input-width', type=int, default=128)
    parser.add_argument('--train-seeds', type=int, default=32)
    parser.add_argument('--frames-per-sequence', type=int, default=4)
    parser.add_argument('--output-dir', default=str(ROOT / 'runs' / 'ablation'))
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    base = load_train_config(args.config)
    print(f'# ablation on {cpu_model()}: {args.steps} steps x batch {args.batch_size}, '
          f'{args.train_seeds} sequences x {args.frames_per_sequence} frames')
    size = {'width': args.input_width, 'height': args.input_height}
    frames = {name: list(regime_frames(regime, (7001,), frames_per_seed=1, **size))
              for name, regime in QUALITY_REGIMES.items()}
    real = motorcycle_frames((16, 64)) or []
    frames.update({name: [frame] for name, frame in real})
    fills = {'nearest fill': lambda f: nearest_fill(f.sparse_m),
             'morphological': lambda f: morphological_fill(f.sparse_m, 100.0),
             'scan-line fill (alone)': scanline_method}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, suite in frames.items():
        for method, metrics in score_methods(suite, fills).items():
            table.setdefault(method, {})[name] = metrics
    for variant in args.variants:
        kwargs, model_over, optim_over = VARIANTS[variant]
        model = dataclasses.replace(base.model, kwargs=kwargs,
                                    **{'output_init': False, **model_over})
        data = dataclasses.replace(base.train_data, seeds=base.train_data.seeds[:args.train_seeds],
                                   frames_per_sequence=args.frames_per_sequence,
                                   render_width=args.input_width, render_height=args.input_height)
        optim = dataclasses.replace(base.optim, max_steps=args.steps, epochs=1000,
                                    batch_size=args.batch_size,
                                    warmup_steps=min(base.optim.warmup_steps, args.steps // 5),
                                    **optim_over)
        slug = ''.join(c if c.isalnum() else '_' for c in variant)
        run = dataclasses.replace(base.run, output_dir=f'{args.output_dir}/{slug}',
                                  checkpoint_every=0, progress=False)
        config = dataclasses.replace(base, model=model, train_data=data, val_data=None,
                                     optim=optim, run=run, input_height=args.input_height,
                                     input_width=args.input_width)
        started = time.perf_counter()
        result = train(config)
        minutes = (time.perf_counter() - started) / 60
        engine = DepthEngine(EngineConfig(weights=str(result.weights_path), device='cpu',
                                          input_height=args.input_height,
                                          input_width=args.input_width))
        for name, suite in frames.items():
            scored = score_methods(suite, {'m': lambda f: engine.infer(f.rgb, f.sparse_m)})
            table.setdefault(variant, {})[name] = scored['m']
        print(f'# {variant}: {minutes:.1f} min, last loss {result.last_loss:.4f}', flush=True)

    names = list(frames)
    print(f'\nRMSE [m] / MAE [m] per regime (seed 7001, {args.input_width}x{args.input_height};'
          ' real = Middlebury Motorcycle at that size)')
    print('| method | ' + ' | '.join(names) + ' | mean rel. to nearest |')
    print('|---|' + '---:|' * (len(names) + 1))
    for method, per in table.items():
        cells = [f'{per[n]["rmse"]:.3f} / {per[n]["mae"]:.3f}' for n in names]
        rel = np.mean([per[n]['rmse'] / table['nearest fill'][n]['rmse'] for n in names])
        print(f'| {method} | ' + ' | '.join(cells) + f' | {rel:.2f} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
