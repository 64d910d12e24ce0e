"""Pairing policy in real time with a real network: images that get depth, pair gaps, latency.

A 30 Hz camera and a 10 Hz LiDAR (the synthetic rig's stamps: +-1 ms / +-2 ms jitter, the LiDAR
11-29 ms off the camera) are delivered in real time, each message at its stamp plus a delivery
delay, to the node's path without DDS: a "callback" thread feeds the synchroniser and a 50 ms
flush timer, a worker thread runs ``fusion.pipeline.process_pair`` with a ``DepthEngine``
(``seed_small``, a small image). Two policies see the same streams in the same run:

    new  the package's ``PairSynchronizer`` (waits in arrival time) + ``PairQueue`` (every pair
         while the worker keeps up, the best aligned when it cannot)
    old  the pre-issue-10 policy (``benchmarks/legacy_pairing.py``: waits in stamp time,
         defaults wait 0.15 s / 10 buffered) + the one-slot newest-pair mailbox (``LatestSlot``)

Scenarios: ``keep_up`` (clouds delivered 30 ms after their stamp), ``delayed`` (250 ms: a driver
stamping at sweep start), ``overload`` (the worker padded to a ~200 ms model period). Figures:
share of images with depth (target >= 95 % when the worker keeps up), mean |scan - image| gap of
the pairs run against the best possible (each image's nearest scan among all), and latency from
the image's arrival to its depth (p50 / p95) against the model period (median worker time).

Run: ``.venv/bin/python benchmarks/bench_pairing.py [--seconds 10] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))

from cpu_info import cpu_model  # noqa: E402
from g2mono_ros.config import EngineConfig, SyncConfig  # noqa: E402
from g2mono_ros.fusion.pair_queue import PairQueue  # noqa: E402
from g2mono_ros.fusion.pipeline import LatestSlot, PairInputs, process_pair  # noqa: E402
from g2mono_ros.fusion.sync import ArrivalClock, PairSynchronizer  # noqa: E402

MS = 1_000_000
FLUSH_NS = 50 * MS
SCENARIOS = {  # name -> (cloud delivery delay ns, worker padding s)
    'keep_up': (30 * MS, 0.0),
    'delayed': (250 * MS, 0.0),
    'overload': (30 * MS, 0.2),
}
IMAGE_DELAY_NS = 5 * MS
#: newest_before pairs with a scan up to a LiDAR period plus its delay old (then compensated).
LOW_LATENCY_OFFSET_S = 0.4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='stream length per run')
    parser.add_argument('--width', type=int, default=192)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--input-height', type=int, default=64)
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--threads', type=int, default=1, help='torch threads (CPU)')
    parser.add_argument('--scenarios', nargs='+', default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument('--simulated-periods-ms', type=float, nargs='*', default=None,
                        help='also run the policies on a simulated clock at these model periods '
                             '(default: the measured one, 10 and 200)')
    return parser.parse_args(argv)


@dataclass
class Run:
    """What one policy did with one scenario."""

    images: int = 0
    done: list[tuple[int, int, float, float]] = field(default_factory=list)
    # (image stamp, scan stamp, latency s, worker s)
    drops: dict[str, int] = field(default_factory=dict)


def _streams(seconds: float) -> tuple[list[int], list[int]]:
    from g2mono_ros.synth.sequence import SyntheticSequence

    frames = int(seconds * 30)
    sequence = SyntheticSequence(7, num_frames=frames, width=64, height=48)
    images = [sequence.image_stamp_ns(i) for i in range(frames)]
    scans = [sequence.scan_stamp_ns(j) for j in range(sequence.num_scans)]
    return images, scans


def _inputs(width: int, height: int) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
    """A textured image, a VLP-16-like cloud ahead of the camera, its model and extrinsic."""
    from g2mono_ros.fusion.camera import CameraModel
    from g2mono_ros.fusion.transforms import R_OPTICAL_FROM_REP103

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    elevation = np.repeat(np.deg2rad(np.linspace(-15, 15, 16)), 1800)
    azimuth = np.tile(np.linspace(-np.pi, np.pi, 1800, endpoint=False), 16)
    distance = rng.uniform(3.0, 40.0, elevation.size)
    xyz = np.stack([distance * np.cos(elevation) * np.cos(azimuth),
                    distance * np.cos(elevation) * np.sin(azimuth),
                    distance * np.sin(elevation)], axis=1).astype(np.float32)
    f = 0.6 * width
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)
    camera = CameraModel(width, height, K, np.zeros(5), 'plumb_bob')
    T = np.eye(4)
    T[:3, :3] = R_OPTICAL_FROM_REP103
    return rgb, xyz, camera, T


def run_policy(policy: str, engine: Any, inputs: tuple, images: list[int], scans: list[int],
               scan_delay_ns: int, pad_s: float) -> Run:
    """Deliver the streams in real time through one policy; returns what the worker did."""
    from legacy_pairing import PairSynchronizer as LegacySynchronizer

    rgb, xyz, camera, T = inputs
    run = Run(images=len(images))
    clock = ArrivalClock(time.monotonic_ns)
    if policy == 'new':
        config = SyncConfig()
        sync: Any = PairSynchronizer(config)
        queue: Any = PairQueue(config.sync_queue_size, clock=clock.now_ns)
    else:
        sync = LegacySynchronizer(SyncConfig(sync_max_wait=0.15, sync_queue_size=10))
        queue = LatestSlot()
    arrival_of: dict[int, int] = {}
    stop = threading.Event()

    def offer(pairs: list[Any]) -> None:
        if policy == 'new':
            queue.put(pairs)
        else:
            for pair in pairs:
                queue.put(pair)

    def worker() -> None:
        while not stop.is_set():
            taken = queue.take(0.05)
            if taken is None:
                continue
            pair = taken.pair if policy == 'new' else taken
            t0 = clock.now_ns()
            process_pair(engine, PairInputs(rgb, xyz, camera), T, min_range=0.5,
                         max_range=100.0, want_sparse=False, want_colorized=False)
            if pad_s:
                time.sleep(pad_s)  # a slower network, known exactly
            t1 = clock.now_ns()
            if policy == 'new':
                queue.done(t1 - t0)
            run.done.append((pair.image_stamp_ns, pair.scan_stamp_ns,
                             (t1 - arrival_of[pair.image_stamp_ns]) * 1e-9, (t1 - t0) * 1e-9))

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    t_first = min(images[0], scans[0])
    events = sorted([(t - t_first + IMAGE_DELAY_NS, 0, t) for t in images]
                    + [(t - t_first + scan_delay_ns, 1, t) for t in scans])
    end = events[-1][0] + 1_000_000_000
    flushes = [(k, 2, 0) for k in range(0, end, FLUSH_NS)]
    events = sorted(events + flushes)
    start = time.monotonic_ns()
    newest: tuple[int, int] | None = None  # old node: (newest stamp, monotonic ns when seen)
    for offset, kind, stamp in events:
        delay = start + offset - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay * 1e-9)
        now = clock.now_ns()
        if kind == 2:
            if policy == 'new':
                offer(sync.flush(now))
            elif newest is not None:  # the old node flushed by data time
                offer(sync.flush(newest[0] + time.monotonic_ns() - newest[1]))
            continue
        if policy == 'old' and (newest is None or stamp > newest[0]):
            newest = (stamp, time.monotonic_ns())
        if kind == 0:
            arrival_of[stamp] = now
            offer(sync.add_image(stamp, None, arrival_ns=now) if policy == 'new'
                  else sync.add_image(stamp, None))
        else:
            if policy == 'new':
                offer(sync.add_scan(stamp, None, arrival_ns=now))
            else:
                offer(sync.add_scan(stamp, None))
    time.sleep(0.5 + pad_s)
    stop.set()
    thread.join(10.0)
    run.drops = {f'sync_image_{k}': v for k, v in sync.image_drops.items() if v}
    if policy == 'new':
        run.drops.update({f'queue_{k}': v for k, v in queue.drops.items() if v})
    else:
        run.drops['mailbox_superseded'] = queue.superseded
    return run


def simulate_policy(policy: str, images: list[int], scans: list[int], scan_delay_ns: int,
                    period_ns: int) -> Run:
    """The same node path on a simulated clock: the worker takes exactly ``period_ns`` per pair.

    Free of this machine's load, so the policies compare at a known model period (the real-time
    runs above show the same on the real clock).
    """
    import heapq

    from legacy_pairing import PairSynchronizer as LegacySynchronizer

    now = [0]
    run = Run(images=len(images))
    if policy == 'before':
        policy = 'new'
        config = SyncConfig(sync_policy='newest_before', sync_max_offset=LOW_LATENCY_OFFSET_S)
        sync: Any = PairSynchronizer(config)
        queue: Any = PairQueue(config.sync_queue_size, clock=lambda: now[0])
    elif policy == 'new':
        config = SyncConfig()
        sync = PairSynchronizer(config)
        queue = PairQueue(config.sync_queue_size, clock=lambda: now[0])
    else:
        sync = LegacySynchronizer(SyncConfig(sync_max_wait=0.15, sync_queue_size=10))
        queue = LatestSlot()
    events = [(t + IMAGE_DELAY_NS, 1, 0, t) for t in images]
    events += [(t + scan_delay_ns, 1, 1, t) for t in scans]
    first, last = min(e[0] for e in events), max(e[0] for e in events)
    events += [(t, 2, 2, 0) for t in range(first, last + 1_000_000_000, FLUSH_NS)]
    heapq.heapify(events)
    newest: tuple[int, int] | None = None
    busy = False
    while events:
        now[0], _, kind, stamp = heapq.heappop(events)
        pairs: list[Any] = []
        if kind == 0:
            pairs = (sync.add_image(stamp, now[0], arrival_ns=now[0]) if policy == 'new'
                     else sync.add_image(stamp, now[0]))
        elif kind == 1:
            if policy == 'new':
                pairs = sync.add_scan(stamp, None, arrival_ns=now[0])
            else:
                pairs = sync.add_scan(stamp, None)
        elif kind == 2:
            if policy == 'new':
                pairs = sync.flush(now[0])
            elif newest is not None:
                pairs = sync.flush(newest[0] + now[0] - newest[1])
        elif kind == 3:
            busy = False
            if policy == 'new':
                queue.done(period_ns)
        if policy == 'old' and kind in (0, 1) and (newest is None or stamp > newest[0]):
            newest = (stamp, now[0])
        if policy == 'new':
            queue.put(pairs)
        else:
            for pair in pairs:
                queue.put(pair)
        if not busy:
            taken = queue.take(0)
            if taken is not None:
                pair = taken.pair if policy == 'new' else taken
                busy = True
                end = now[0] + period_ns
                run.done.append((pair.image_stamp_ns, pair.scan_stamp_ns,
                                 (end - pair.image) * 1e-9, period_ns * 1e-9))
                heapq.heappush(events, (end, 0, 3, 0))
    run.drops = {f'sync_image_{k}': v for k, v in sync.image_drops.items() if v}
    if policy == 'new':
        run.drops.update({f'queue_{k}': v for k, v in queue.drops.items() if v})
    else:
        run.drops['mailbox_superseded'] = queue.superseded
    return run


def nearest_gaps_ms(images: list[int], scans: list[int], max_offset_ns: int) -> dict[int, float]:
    """The best possible assignment: each image's nearest scan among all, within the window."""
    scan_arr = np.asarray(scans, dtype=np.int64)
    out = {}
    for t in images:
        gap = np.abs(scan_arr - t).min()
        if gap <= max_offset_ns:
            out[t] = gap * 1e-6
    return out


def summarise(run: Run, best: dict[int, float], best_per_scan_ms: float) -> dict[str, float]:
    gaps = np.array([abs(s - i) * 1e-6 for i, s, _, _ in run.done]) if run.done else np.zeros(0)
    latency = np.array([lat for *_, lat, _ in run.done]) * 1e3
    worker = np.array([w for *_, w in run.done]) * 1e3
    best_same = [best[i] for i, *_ in run.done if i in best]
    nan = float('nan')
    return {
        'depth_pct': 100.0 * len(run.done) / run.images,
        'gap_mean': float(gaps.mean()) if gaps.size else nan,
        'best_same': float(np.mean(best_same)) if best_same else nan,
        'best_all': float(np.mean(list(best.values()))),
        'best_per_scan': best_per_scan_ms,
        'lat_p50': float(np.percentile(latency, 50)) if latency.size else nan,
        'lat_p95': float(np.percentile(latency, 95)) if latency.size else nan,
        'period': float(np.median(worker)) if worker.size else nan,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from g2mono_ros.models import create_model
    from g2mono_ros.models.checkpoint import save_checkpoint
    from g2mono_ros.models.engine import DepthEngine

    if args.device == 'cpu' and args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / 'seed_small.pt'
        save_checkpoint(weights, create_model('seed_small'), variant='seed_small',
                        model_kwargs={}, max_depth=80.0, input_height=args.input_height,
                        input_width=0)
        engine = DepthEngine(EngineConfig(weights=str(weights), device=args.device,
                                          input_height=args.input_height))
    inputs = _inputs(args.width, args.height)
    for _ in range(5):  # warm-up (allocator, kernels)
        process_pair(engine, PairInputs(*inputs[:3]), inputs[3], min_range=0.5, max_range=100.0,
                     want_sparse=False, want_colorized=False)
    warm = []
    for _ in range(10):
        t0 = time.perf_counter()
        process_pair(engine, PairInputs(*inputs[:3]), inputs[3], min_range=0.5, max_range=100.0,
                     want_sparse=False, want_colorized=False)
        warm.append(time.perf_counter() - t0)
    measured_ms = float(np.median(warm)) * 1e3
    images, scans = _streams(args.seconds)
    offset_ns = SyncConfig().max_offset_ns
    best = nearest_gaps_ms(images, scans, offset_ns)
    per_scan: dict[int, float] = {}
    scan_arr = np.asarray(scans, dtype=np.int64)
    for t in images:  # the best image of each scan: what an overloaded worker should run
        j = int(np.abs(scan_arr - t).argmin())
        per_scan[j] = min(per_scan.get(j, 1e9), abs(int(scan_arr[j]) - t) * 1e-6)
    best_per_scan = float(np.mean(list(per_scan.values())))
    gpu = torch.cuda.get_device_name(0) if args.device == 'cuda' else ''
    print(f'bench_pairing: CPU {cpu_model()} ({platform.machine()}), torch '
          f'{torch.__version__}, device {engine.device} {gpu}, threads {torch.get_num_threads()}')
    print(f'streams: {len(images)} images at 30 Hz, {len(scans)} scans at 10 Hz over '
          f'{args.seconds:g} s; image {args.width}x{args.height}, network input '
          f'{args.input_height} high (seed_small); sync_max_offset {offset_ns / 1e9:g} s')
    print()
    print(f'model alone: {measured_ms:.1f} ms per pair (median of 10, projection + network)')
    print()
    header = (f"{'scenario':<9} {'policy':<6} {'depth %':>8} {'gap mean':>9} {'best same':>10} "
              f"{'best all':>9} {'best/scan':>10} {'lat p50':>8} {'lat p95':>8} {'period':>7}"
              '  drops')
    print(header)
    print('-' * len(header))
    for name in args.scenarios:
        delay_ns, pad_s = SCENARIOS[name]
        for policy in ('old', 'new'):
            run = run_policy(policy, engine, inputs, images, scans, delay_ns, pad_s)
            s = summarise(run, best, best_per_scan)
            drops = ', '.join(f'{k} {v}' for k, v in sorted(run.drops.items())) or 'none'
            print(f"{name:<9} {policy:<6} {s['depth_pct']:>7.1f}% {s['gap_mean']:>7.1f}ms "
                  f"{s['best_same']:>8.1f}ms {s['best_all']:>7.1f}ms {s['best_per_scan']:>8.1f}ms"
                  f" {s['lat_p50']:>6.0f}ms {s['lat_p95']:>6.0f}ms {s['period']:>5.0f}ms  {drops}",
                  flush=True)
    periods = (args.simulated_periods_ms if args.simulated_periods_ms is not None
               else [round(measured_ms, 1), 10.0, 200.0])
    if periods:
        print()
        print('simulated clock (no machine load), the same streams; the worker takes exactly the '
              'period:')
        print(header.replace('scenario ', 'period   '))
        print('-' * len(header))
    for period_ms in periods:
        for name, (delay_ns, _) in SCENARIOS.items():
            if name == 'overload':
                continue  # the period itself sets the load here
            for policy in ('old', 'new', 'before'):
                run = simulate_policy(policy, images, scans, delay_ns, int(period_ms * MS))
                s = summarise(run, best, best_per_scan)
                drops = ', '.join(f'{k} {v}' for k, v in sorted(run.drops.items())) or 'none'
                label = f'{period_ms:g}ms/{name}'
                print(f"{label:<9} {policy:<6} {s['depth_pct']:>7.1f}% {s['gap_mean']:>7.1f}ms "
                      f"{s['best_same']:>8.1f}ms {s['best_all']:>7.1f}ms "
                      f"{s['best_per_scan']:>8.1f}ms {s['lat_p50']:>6.0f}ms {s['lat_p95']:>6.0f}ms"
                      f" {s['period']:>5.0f}ms  {drops}", flush=True)
    print()
    print(f"policies: old = stamp-time waits + newest-pair mailbox; new = sync_policy nearest"
          f" + PairQueue; before = sync_policy newest_before (low latency, sync_max_offset "
          f"{LOW_LATENCY_OFFSET_S:g} s: its gaps are for motion compensation to close)")
    print('depth %: images that got depth. gap mean: |scan - image| of the pairs run; best same: '
          'the nearest scan of those same images; best all: of every image; best/scan: the best '
          'image of each scan (what an overloaded worker should pick). lat: image arrival -> '
          'depth done. period: median worker time per pair (the model period).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
