"""Benchmark: LiDAR -> sparse depth projection and PointCloud2 parsing, against baselines.

A 120k-point, 64-beam-like scan (HDL-64E elevations, 1875 azimuth steps) is projected with
plumb_bob distortion and the z-buffer into 352x1216 (KITTI-like) and 480x640 images by:
  - ours, numpy;  ours, torch on the CPU (and on CUDA when available);
  - a plain argsort-based numpy projector (matmul, cull, distort, argsort by depth, assign);
  - a per-point Python loop (timed on a subset and scaled to 120k points; said in the table).
Then PointCloud2 -> xyz for 120k points in three layouts. Run:
    .venv/bin/python benchmarks/bench_projection.py [--repeats 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from g2mono_ros.fusion.camera import CameraModel
from g2mono_ros.ros.codecs import pointcloud2_to_xyz, xyz_to_pointcloud2
from g2mono_ros.fusion.projection import project_points_to_depth, project_points_to_depth_torch
from g2mono_ros.fusion.transforms import R_OPTICAL_FROM_REP103

D_KITTI = np.array([-0.3691481, 0.1968681, 0.001353473, 0.0005677587, -0.06770705])


def hdl64_like_scan(seed: int = 0, azimuth_steps: int = 1875) -> np.ndarray:
    """(64 * azimuth_steps, 3) float32 points: ground at -1.73 m, walls/objects 4..80 m."""
    rng = np.random.default_rng(seed)
    elevation = np.deg2rad(np.linspace(-24.8, 2.0, 64))
    azimuth = np.linspace(-np.pi, np.pi, azimuth_steps, endpoint=False)
    el, az = np.meshgrid(elevation, azimuth, indexing='ij')
    ground = np.where(el < -0.005, 1.73 / np.sin(-np.minimum(el, -0.005)), np.inf)
    # piecewise-constant obstacles per azimuth sector, plus range noise
    sectors = rng.uniform(4.0, 80.0, 90)[(np.floor((az + np.pi) / (2 * np.pi) * 90)).astype(int)]
    rng_m = np.minimum(ground, sectors) + rng.normal(0, 0.02, el.shape)
    pts = np.stack([rng_m * np.cos(el) * np.cos(az), rng_m * np.cos(el) * np.sin(az),
                    rng_m * np.sin(el)], axis=-1).reshape(-1, 3)
    return pts.astype(np.float32)


def cameras() -> dict[str, CameraModel]:
    kitti = CameraModel(width=1242, height=375, K=[[721.5377, 0, 609.5593],
                                                    [0, 721.5377, 172.854], [0, 0, 1]],
                        D=D_KITTI, distortion_model='plumb_bob')
    vga = CameraModel(width=640, height=480, K=[[525.0, 0, 319.5], [0, 525.0, 239.5],
                                                 [0, 0, 1]],
                      D=[0.08, -0.2, 0.001, -0.0005, 0.05], distortion_model='plumb_bob')
    return {'352x1216': kitti.scaled(1216, 352), '480x640': vga}


def extrinsic() -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = R_OPTICAL_FROM_REP103
    transform[:3, 3] = [0.0, -0.08, -0.27]
    return transform


def argsort_baseline(points: np.ndarray, transform: np.ndarray, cam: CameraModel,
                     min_range: float = 0.5, max_range: float = 100.0) -> np.ndarray:
    """The plain vectorised projector: matmul, cull, distort, argsort far-to-near, assign."""
    pc = points @ transform[:3, :3].T.astype(np.float32) + transform[:3, 3].astype(np.float32)
    pc = pc[(pc[:, 2] >= min_range) & (pc[:, 2] <= max_range)]
    x, y, z = pc[:, 0] / pc[:, 2], pc[:, 1] / pc[:, 2], pc[:, 2]
    k1, k2, p1, p2, k3 = cam.D
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u = np.floor(cam.fx * xd + cam.cx + 0.5).astype(np.int64)
    v = np.floor(cam.fy * yd + cam.cy + 0.5).astype(np.int64)
    ok = (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    u, v, z = u[ok], v[ok], z[ok]
    order = np.argsort(-z, kind='stable')
    depth = np.zeros((cam.height, cam.width), np.float32)
    depth[v[order], u[order]] = z[order]
    return depth


def loop_baseline(points: np.ndarray, transform: np.ndarray, cam: CameraModel,
                  min_range: float = 0.5, max_range: float = 100.0) -> np.ndarray:
    """One point at a time in Python: the obvious first implementation."""
    r = transform[:3, :3].tolist()
    t = transform[:3, 3].tolist()
    k1, k2, p1, p2, k3 = cam.D.tolist()
    fx, fy, cx, cy = cam.fx, cam.fy, cam.cx, cam.cy
    depth = np.zeros((cam.height, cam.width), np.float32)
    for px, py, pz in points.tolist():
        z = r[2][0] * px + r[2][1] * py + r[2][2] * pz + t[2]
        if not min_range <= z <= max_range:
            continue
        x = (r[0][0] * px + r[0][1] * py + r[0][2] * pz + t[0]) / z
        y = (r[1][0] * px + r[1][1] * py + r[1][2] * pz + t[1]) / z
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        u = fx * (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)) + cx
        v = fy * (y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y) + cy
        col, row = math.floor(u + 0.5), math.floor(v + 0.5)
        if 0 <= col < cam.width and 0 <= row < cam.height:
            old = depth[row, col]
            if old == 0 or z < old:
                depth[row, col] = z
    return depth


def time_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None
            ) -> tuple[float, float]:
    """(median, 90th percentile) wall time in ms after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.9 * len(samples)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--loop-subset', type=int, default=6000,
                        help='points the Python loop baseline is timed on (then scaled)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    points = hdl64_like_scan()
    transform = extrinsic()
    n = len(points)
    load = ', '.join(f'{v:.1f}' for v in os.getloadavg())
    print(f'# bench_projection: {n} points, plumb_bob + z-buffer; '
          f'{platform.processor() or platform.machine()} x{os.cpu_count()} (load average {load}), '
          f'numpy {np.__version__}, torch {torch.__version__} ({args.threads} thread(s)); '
          f'median / p90 of {args.repeats} runs')
    print(f'{"image":>9} | {"method":<34} | {"median ms":>9} | {"p90 ms":>8} | {"pixels":>6} | '
          f'{"x loop":>7}')
    print('-' * 88)
    for name, cam in cameras().items():
        subset = points[:: max(1, n // args.loop_subset)]
        loop_med, _ = time_ms(lambda: loop_baseline(subset, transform, cam), 3)
        loop_full = loop_med * n / len(subset)
        ref, ref_mask = project_points_to_depth(points, transform, cam)
        torch_points = torch.from_numpy(points)
        rows: list[tuple[str, Callable[[], object], Callable[[], None], np.ndarray | None]] = [
            ('ours numpy', lambda: project_points_to_depth(points, transform, cam),
             lambda: None, ref_mask),
            ('ours torch cpu',
             lambda: project_points_to_depth_torch(torch_points, transform, cam), lambda: None,
             project_points_to_depth_torch(torch_points, transform, cam)[1].numpy()),
            ('argsort numpy baseline', lambda: argsort_baseline(points, transform, cam),
             lambda: None, argsort_baseline(points, transform, cam) > 0),
        ]
        if torch.cuda.is_available():
            cuda_points = torch_points.cuda()
            rows.append(('ours torch cuda (synchronised)',
                         lambda: project_points_to_depth_torch(cuda_points, transform, cam),
                         torch.cuda.synchronize,
                         project_points_to_depth_torch(cuda_points, transform,
                                                       cam)[1].cpu().numpy()))
        for label, fn, sync, mask in rows:
            med, p90 = time_ms(fn, args.repeats, sync)
            pixels = int(mask.sum()) if mask is not None else 0
            print(f'{name:>9} | {label:<34} | {med:9.3f} | {p90:8.3f} | {pixels:6d} | '
                  f'{loop_full / med:6.0f}x')
        loop_pixels = int((loop_baseline(subset, transform, cam) > 0).sum())
        label = f'python loop ({len(subset)} pts, x{n / len(subset):.1f})'
        print(f'{name:>9} | {label:<34} | {loop_full:9.1f} | {"-":>8} | {loop_pixels:6d} | '
              f'{1:6.0f}x')
    print('pixels: filled pixels. The baselines have no distortion fold guard: where their count'
          ' is higher, the extra points come from beyond the lens model\'s valid radius and are'
          ' mirrored into the image by the polynomial (OpenCV does the same).')
    print()
    print(f'{"PointCloud2 -> xyz (120k points)":<48} | {"median ms":>9} | {"p90 ms":>8}')
    print('-' * 72)
    rng = np.random.default_rng(1)
    extra = {'intensity': rng.random(n).astype(np.float32),
             'ring': np.repeat(np.arange(64, dtype=np.uint16), n // 64),
             'time': rng.random(n).astype(np.float32)}
    velodyne = xyz_to_pointcloud2(points, None, extra)
    with_nan = points.copy()
    with_nan[::10] = np.nan
    velodyne_nan = xyz_to_pointcloud2(with_nan, None, extra)
    doubles = xyz_to_pointcloud2(points, None, extra)
    record = np.zeros(n, dtype=np.dtype({'names': ['x', 'y', 'z'], 'formats': ['>f8'] * 3,
                                         'offsets': [0, 8, 16], 'itemsize': 32}))
    for i, c in enumerate('xyz'):
        record[c] = points[:, i]
    for i, field in enumerate(doubles.fields[:3]):
        field.offset, field.datatype = 8 * i, 8
    doubles.fields = doubles.fields[:3]
    doubles.is_bigendian, doubles.point_step, doubles.row_step = True, 32, 32 * n
    doubles.data = record.tobytes()
    cases = [
        ('float32 xyz+intensity+ring+time (22 B), dense', lambda: pointcloud2_to_xyz(velodyne)),
        ('  same, 10% NaN points', lambda: pointcloud2_to_xyz(velodyne_nan)),
        ('  same, + intensity and ring by name',
         lambda: pointcloud2_to_xyz(velodyne, ('intensity', 'ring'))),
        ('big-endian float64 xyz, 32 B step', lambda: pointcloud2_to_xyz(doubles)),
    ]
    for label, fn in cases:
        med, p90 = time_ms(fn, args.repeats)
        print(f'{label:<48} | {med:9.3f} | {p90:8.3f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
