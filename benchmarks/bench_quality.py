"""Depth quality per regime: the shipped weights against nearest and morphological fills.

Fresh synthetic sequences (seeds never trained on) in 8 regimes (indoor / outdoor x VLP-16,
HDL-32E, HDL-64E, solid-state), plus two real photographs with ground-truth depth from
structured-light disparity and LiDAR-like scan lines as input: Middlebury 2014 "Motorcycle"
(inside scikit-image) and Middlebury 2006 "Aloe" (inside Debian's opencv-doc; fetch it once with
``bash scripts/fetch_real_frames.sh``).
Prints RMSE / MAE / AbsRel / delta1, the error at the input pixels and the flying-pixel share
(bilinear vs edge-aware upsampling) for each method; a few minutes on one CPU core at the
default sizes.

    python benchmarks/bench_quality.py                      # shipped weights vs fills
    python benchmarks/bench_quality.py --weights a.pt --weights b.pt   # compare checkpoints
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / 'benchmarks'):  # the package, and cpu_info beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from cpu_info import cpu_model  # noqa: E402
from g2mono_ros.config import EngineConfig  # noqa: E402
from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill  # noqa: E402
from g2mono_ros.evaluation.quality import (  # noqa: E402
    QUALITY_REGIMES,
    QualityFrame,
    regime_frames,
    score_methods,
)
from g2mono_ros.evaluation.real_frames import aloe_frames, motorcycle_frames  # noqa: E402
from g2mono_ros.models.engine import DepthEngine  # noqa: E402

WEIGHTS_DIR = ROOT / 'g2mono_ros' / 'weights'
DEFAULT_WEIGHTS = [str(WEIGHTS_DIR / 'g2mono_seed_small_v5.pt')]
def scanline_method(frame: QualityFrame) -> np.ndarray:
    """The scan-line fill of the v3 weights' pre-fill (``models.prefill.scanline_fill``), alone,
    at the camera size: shows what the classical part gives and what the network adds."""
    import torch

    from g2mono_ros.models.prefill import scanline_fill

    sparse = torch.from_numpy(np.ascontiguousarray(frame.sparse_m, np.float32))[None, None]
    return scanline_fill(sparse, (sparse > 0).float())[0, 0].numpy()


def guided_method(frame: QualityFrame) -> np.ndarray:
    """The colour-guided nearest fill of the v4/v5 weights' pre-fill
    (``models.prefill.guided_nearest_fill``), alone, at the camera size."""
    import torch

    from g2mono_ros.models.prefill import guided_nearest_fill

    sparse = torch.from_numpy(np.ascontiguousarray(frame.sparse_m, np.float32))[None, None]
    rgb = torch.from_numpy(np.ascontiguousarray(frame.rgb)).permute(2, 0, 1)[None]
    return guided_nearest_fill(sparse, (sparse > 0).float(), rgb)[0, 0].numpy()


def engine_method(engine: DepthEngine):
    return lambda frame: engine.infer(frame.rgb, frame.sparse_m)


def fmt_row(name: str, m: dict[str, float]) -> str:
    return (f'| {name} | {m["rmse"]:.3f} | {m["mae"]:.3f} | {m["absrel"]:.4f} | '
            f'{m["delta1"]:.4f} | {m["input_mae"]:.4f} | {100 * m["input_rel"]:.2f} | '
            f'{100 * m["flying"]:.2f} |')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', action='append', default=None,
                        help='checkpoint(s) to score (repeatable); default: the shipped v5')
    parser.add_argument('--seeds', type=int, nargs='+', default=[7001, 7002, 7003])
    parser.add_argument('--frames-per-seed', type=int, default=2)
    parser.add_argument('--width', type=int, default=384, help='camera width (px)')
    parser.add_argument('--height', type=int, default=256, help='camera height (px)')
    parser.add_argument('--input-height', type=int, default=128, help='network input height')
    parser.add_argument('--input-width', type=int, default=192, help='network input width')
    parser.add_argument('--regimes', nargs='+', default=list(QUALITY_REGIMES),
                        choices=list(QUALITY_REGIMES))
    parser.add_argument('--no-real', action='store_true', help='skip the real images')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--modes', nargs='+', default=['bilinear', 'edge_aware', 'prefill_guided'],
                        choices=['bilinear', 'edge_aware', 'prefill_guided'],
                        help='engine upsampling modes to score (each a row)')
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    weights = args.weights or DEFAULT_WEIGHTS
    print(f'# bench_quality on {cpu_model()}, torch {torch.__version__}, {args.threads} thread(s)')
    print(f'# camera {args.width}x{args.height}, network {args.input_width}x{args.input_height}, '
          f'seeds {args.seeds} x {args.frames_per_seed} frames per regime')
    engines: dict[str, DepthEngine] = {}
    for path in weights:
        label = Path(path).stem
        for mode in args.modes:
            config = EngineConfig(weights=path, device='cpu', input_height=args.input_height,
                                  input_width=args.input_width, upsample=mode)
            engines[f'{label} ({mode})'] = DepthEngine(config)
    methods = {
        'nearest fill': lambda f: nearest_fill(f.sparse_m),
        'morphological (IP-Basic)': lambda f: morphological_fill(f.sparse_m, 100.0),
        'scan-line fill (v3 pre-fill alone)': scanline_method,
        'colour-guided fill (v4/v5 pre-fill alone)': guided_method,
    }
    methods.update({name: engine_method(engine) for name, engine in engines.items()})

    suites: list[tuple[str, list[QualityFrame]]] = []
    started = time.perf_counter()
    for name in args.regimes:
        frames = list(regime_frames(QUALITY_REGIMES[name], tuple(args.seeds),
                                    frames_per_seed=args.frames_per_seed, width=args.width,
                                    height=args.height))
        suites.append((name, frames))
    print(f'# rendered {sum(len(f) for _, f in suites)} synthetic frames in '
          f'{time.perf_counter() - started:.1f} s')
    if not args.no_real:
        real = motorcycle_frames((16, 32, 64))
        if real is None:
            print('# real images: scikit-image not installed (it ships Middlebury "Motorcycle")')
        else:
            suites.extend((name, [frame]) for name, frame in real)
        aloe = aloe_frames((16, 32, 64))
        if aloe is None:
            print('# real images: Middlebury "Aloe" not fetched (bash scripts/fetch_real_frames.sh)')
        else:
            suites.extend((name, [frame]) for name, frame in aloe)

    header = ('| method | RMSE [m] | MAE [m] | AbsRel | d<1.25 | input MAE [m] | input err [%] '
              '| flying [%] |\n|---|---:|---:|---:|---:|---:|---:|---:|')
    verdicts = []
    for name, frames in suites:
        started = time.perf_counter()
        results = score_methods(frames, methods)
        gt_mean = float(np.mean([f.gt_m[f.gt_m > 0].mean() for f in frames]))
        print(f'\n### {name} ({len(frames)} frames, mean depth {gt_mean:.2f} m, '
              f'{time.perf_counter() - started:.1f} s)\n{header}')
        for method, metrics in results.items():
            print(fmt_row(method, metrics))
        fills = [results['nearest fill'], results['morphological (IP-Basic)']]
        for method in engines:
            m = results[method]
            ok = all(m['rmse'] < f['rmse'] and m['mae'] < f['mae'] for f in fills)
            verdicts.append((name, method, ok, m['input_rel'] < 0.01))
    print('\n### verdict: beats both fills on RMSE and MAE / input error < 1 %')
    for name, method, ok, pinned in verdicts:
        print(f'{name:22s} {method:45s} {"beats" if ok else "LOSES"} / '
              f'{"ok" if pinned else "over 1 %"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
