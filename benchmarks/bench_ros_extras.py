"""Benchmark: what compressed input and the PointCloud2 output add per frame on the node's worker.

At 480x640 (and 720x1280 unless --quick), each against a baseline measured in the same run:
  - decode: jpeg and png CompressedImage -> RGB (ours, OpenCV) vs the raw rgb8 Image decode;
  - cloud: depth -> points (decimation 1, 2, 4; pinhole and distorted) + PointCloud2 encoding
    vs encoding the same depth as a 32FC1 Image (what the node publishes anyway).
Run:
    .venv/bin/python benchmarks/bench_ros_extras.py [--repeats 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from cpu_info import cpu_model

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.fusion.cloud import depth_to_points, pack_rgb
from g2mono_ros.ros.codecs import depth_to_image, numpy_to_image, rgb_from_image, xyz_to_pointcloud2
from g2mono_ros.ros.compressed import compressed_image_payload, rgb_from_compressed


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (OpenCV, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _scene(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A camera-like RGB (gradients, edges, noise) and a depth image 1-40 m with some holes."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / w * 255, y / h * 255, ((x // 40 + y // 40) % 2) * 200], axis=2)
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    depth = (1.0 + 39.0 * y / h + 2.0 * np.sin(x / 30)).astype(np.float32)
    depth[rng.random((h, w)) < 0.05] = 0.0
    return rgb, depth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--quick', action='store_true', help='480x640 only, 10 repeats')
    args = parser.parse_args()
    repeats = 10 if args.quick else args.repeats
    sizes = [(480, 640)] if args.quick else [(480, 640), (720, 1280)]
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(f'CPU: {cpu_model()} x{os.cpu_count()} (load average {load}); '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}; '
          f'median of {repeats} runs, ms')
    for h, w in sizes:
        rgb, depth = _scene(h, w)
        print(f'\n{w}x{h}')
        raw_msg = numpy_to_image(rgb, 'rgb8')
        baseline = _median_ms(lambda: rgb_from_image(raw_msg), repeats)
        print(f'  {"raw rgb8 Image decode (baseline)":<46} {baseline:8.2f}')
        for fmt in ('jpeg', 'png'):
            format_, data = compressed_image_payload(rgb, fmt)
            msg = SimpleNamespace(format=format_, data=data)
            ms = _median_ms(lambda: rgb_from_compressed(msg), repeats)
            print(f'  {fmt + " CompressedImage decode":<46} {ms:8.2f}  '
                  f'({len(data) / rgb.nbytes:.0%} of raw bytes)')
        baseline = _median_ms(lambda: depth_to_image(depth, encoding='32FC1'), repeats)
        print(f'  {"depth -> 32FC1 Image (baseline)":<46} {baseline:8.2f}')
        for distorted in (False, True):
            D = [0.08, -0.2, 0.001, -0.0005, 0.05] if distorted else [0.0] * 5
            camera = CameraModel(width=w, height=h, K=[[0.8 * w, 0, w / 2 - 0.5],
                                                       [0, 0.8 * w, h / 2 - 0.5], [0, 0, 1]],
                                 D=D, distortion_model='plumb_bob')
            for decimation in (1, 2, 4):
                def cloud() -> object:
                    xyz, colours = depth_to_points(depth, camera, decimation=decimation,
                                                   rgb=rgb)
                    return xyz_to_pointcloud2(xyz, None, {'rgb': pack_rgb(colours)})

                ms = _median_ms(cloud, repeats)
                n = int((depth[::decimation, ::decimation] > 0).sum())
                label = f'PointCloud2 xyz+rgb, decimation {decimation}' + \
                    (', distorted' if distorted else '')
                print(f'  {label:<46} {ms:8.2f}  ({n} points)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
