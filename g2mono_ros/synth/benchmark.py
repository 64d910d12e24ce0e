"""Timing of the synthetic generator: ``python -m g2mono_ros.synth.benchmark [--repeats N]``.

Prints seconds per call for the trainer's path (``render`` at 128x256), the bag path (image
frames and full sweeps) and, as the same-run baseline, the ray cast without bounding-sphere
culling (every ray against every object).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from g2mono_ros.synth.scene import Scene
from g2mono_ros.synth.sequence import SyntheticSequence

__all__ = ['brute_force_ranges', 'main']


def brute_force_ranges(scene: Scene, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Nearest range (N,) of every ray against every object, no culling (the baseline)."""
    with np.errstate(divide='ignore'):
        best = np.where(dirs[:, 2] < -1e-12, -origin[2] / dirs[:, 2], np.inf)
    for obj in range(1, scene.num_objects):
        best = np.minimum(best, scene._object_range(obj, origin, dirs))
    return best


def _seconds(fn: Callable[[int], object], repeats: int) -> float:
    fn(0)  # warm-up: caches, first-touch allocations
    start = time.perf_counter()
    for i in range(1, repeats + 1):
        fn(i)
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args(argv)
    n = args.repeats

    train = SyntheticSequence(0, width=256, height=128)
    flat = SyntheticSequence(0, width=256, height=128, shadows=False)
    bag = SyntheticSequence(0, width=320, height=240)
    dense = SyntheticSequence(0, width=320, height=240, beams=64)
    rows = [
        ('render 128x256 + VLP-16 sector (trainer)', _seconds(train.render, n)),
        ('render 128x256, no shadows', _seconds(flat.render, n)),
        ('image_frame 240x320 (bag)', _seconds(bag.image_frame, n)),
        ('scan VLP-16 full 360 deg (28.8k beams)', _seconds(bag.scan, n)),
        ('scan HDL-64E full 360 deg (131k beams)', _seconds(dense.scan, max(1, n // 3))),
    ]
    T = train.T_world_cam(train.image_stamp_ns(0))
    dirs = train._rays_cam @ T[:3, :3].T
    culled = _seconds(lambda _: train.scene.cast(T[:3, 3], dirs), n)
    brute = _seconds(lambda _: brute_force_ranges(train.scene, T[:3, 3], dirs), n)
    rows += [('cast 128x256 camera rays, culled', culled),
             ('cast 128x256 camera rays, brute force (baseline)', brute)]
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f'{name:<{width}}  {seconds * 1e3:8.1f} ms')
    print(f'culling speed-up over the baseline: {brute / culled:.1f}x '
          f'({train.scene.num_objects - 1} objects)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
