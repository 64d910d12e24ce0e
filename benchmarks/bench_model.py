"""Network latency: the engine's CPU settings against plain eager fp32, measured in the same run.

For each variant (seed, official) and input size, times the plain eager fp32 forward pass
(contiguous tensors, no autocast, ``torch.no_grad``, default allocator) and
``DepthEngine.infer_tensors`` at each precision (channels_last, ``torch.inference_mode``,
autocast, and on glibc the allocator tuning of ``tune_cpu_allocator``), and reports the
speed-up and the abs depth difference to the baseline as % of max depth. The two sides run in
two processes (the allocator setting is process-wide), called alternately round by round.
"best within 1%" is the fastest engine setting whose max error stays under 1% of max depth.
Where the engine runs the network's fused fp32 copy, the plain network in the engine is a row
too (what the fusion gains); where it runs that copy as oneDNN Graph TorchScript graphs
(``onednn_graph``, the seed's default), the fused torch copy (``backend: torch``) is a row too. Beside wall time, each call's process CPU time: on a machine
shared with other jobs it is the steadier figure.

Weights are random (the init scheme), with non-zero ReZero scalars and the head conv rescaled so
the outputs fall inside (0, 1) — otherwise random outputs clip and hide precision errors. Real
checkpoints need no such step. ``--backends`` adds the engine's ONNX Runtime backend to the CPU
rows (exported once, checked against torch at construction).

On CUDA, ``--device cuda`` times, p50/p95 with the GPU synchronised before every timer read,
against the plain eager fp32 network on the same GPU: the network alone (``infer_tensors`` on
device tensors) at fp32/fp16/bf16 (weights converted once) and fp16 with a CUDA graph, and the
full path as the node runs it (host uint8 image already at the network size, host 128k-point
cloud and camera at a KITTI-like 1.07x size in; projection on the device, network, bilinear
upsampling, and for fp16 + graph also the node's default edge-aware one with the camera-size
image, whose error column then compares upsamplers too; one synchronisation; host depth at
camera size out), each against the plain eager fp32 row of its kind (the full path's: numpy
projection, pageable uploads, eager fp32 network, ``.cpu()``).
Target: official fp16 full path < 10 ms at 352x1216. Without a CUDA device ``--device cuda``
exits with status 2 and says so.

Usage: python benchmarks/bench_model.py [--quick] [--variants seed official]
       [--sizes 256x512 320x1024] [--rounds N] [--threads N] [--device cpu|cuda] [--backends]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # frame_path (full-path inputs)

from g2mono_ros.config import EngineConfig  # noqa: E402
from g2mono_ros.errors import ConfigError  # noqa: E402
from g2mono_ros.models.engine import DepthEngine, tune_cpu_allocator  # noqa: E402
from g2mono_ros.models import create_model  # noqa: E402

MAX_DEPTH = 80.0
ERROR_BUDGET = 0.01  # of max depth


def synthetic_inputs(height: int, width: int, *, density: float = 0.05, seed: int = 0):
    """A smooth RGB scene and sparse metric depth on it: (1,3,H,W) uint8, (1,1,H,W) metres."""
    gen = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    base = torch.stack([0.5 + 0.4 * torch.sin(6 * xs + 3 * ys + k) for k in range(3)])
    noise = 0.05 * torch.randn(3, height, width, generator=gen)
    rgb = ((base + noise).clamp(0, 1) * 255).to(torch.uint8)[None]
    depth = 2.0 + 60.0 * ys.expand(height, width) + 5.0 * torch.sin(9 * xs).expand(height, width)
    keep = torch.rand(height, width, generator=gen) < density
    return rgb, (depth * keep)[None, None].float()


def prepare_model(variant: str, height: int, width: int, *, seed: int = 0) -> nn.Module:
    """Random-init network with alphas in [0.1, 0.5] and a head giving outputs inside (0, 1)."""
    torch.manual_seed(seed)
    model = create_model(variant).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('alpha'):
                param.copy_(0.1 + 0.4 * torch.rand((), generator=gen))
        captured: list[Tensor] = []
        hook = model.head.register_forward_hook(lambda mod, args, out: captured.append(out))
        rgb, sparse = synthetic_inputs(min(height, 128), min(width, 256), seed=seed + 2)
        model(*normalised_inputs(rgb, sparse))
        hook.remove()
        scale = 0.15 / float(captured[0].std())
        model.head.weight.mul_(scale)
        model.head.bias.mul_(scale).add_(0.5 - scale * float(captured[0].mean()))
    return model


def normalised_inputs(rgb: Tensor, sparse: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The release conventions, written out for the baseline."""
    return (rgb.float() / 255.0, (sparse / MAX_DEPTH).clamp(0, 1), (sparse > 0).float())


def interleaved_timings(calls: dict[str, Callable[[], Tensor]], rounds: int,
                        device: torch.device) -> tuple[dict[str, list[float]], dict[str, Tensor]]:
    """Seconds per call for each setting, the settings interleaved round by round so that load
    from other processes on a shared machine hits all of them alike; one warm-up round first."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    outputs: dict[str, Tensor] = {}
    for round_index in range(rounds + 1):
        for name, call in calls.items():
            start = time.perf_counter()
            out = call()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            if round_index:
                times[name].append(time.perf_counter() - start)
            outputs[name] = out
    return times, outputs


def _row(variant: str, size: str, setting: str, times: list[float], base_best: float,
         out: Tensor, reference: Tensor, cpu_times: list[float] | None = None,
         base_cpu_best: float | None = None) -> dict:
    error = (out.float() - reference.float()).abs() / MAX_DEPTH * 100
    row = {'variant': variant, 'size': size, 'setting': setting, 'best_ms': min(times) * 1e3,
           'median_ms': statistics.median(times) * 1e3,
           'p95_ms': float(np.percentile(np.asarray(times), 95)) * 1e3,
           'speedup': base_best / min(times),
           'max_err_pct': float(error.max()), 'mean_err_pct': float(error.mean())}
    if cpu_times and base_cpu_best:
        row['cpu_ms'] = min(cpu_times) * 1e3
        row['cpu_speedup'] = base_cpu_best / min(cpu_times)
    return row


def _with_threads(call: Callable[[], Tensor], threads: int) -> Callable[[], Tensor]:
    def run() -> Tensor:
        default = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return call()
        finally:
            torch.set_num_threads(default)
    return run


BASELINE = 'eager fp32 (baseline)'


def _cpu_engines(config: EngineConfig, model: nn.Module) -> list[DepthEngine]:
    """The engine as configured; beside it the fused torch copy where the engine runs oneDNN
    Graph (what that gains), and the plain network where it runs a fused copy."""
    engines = [DepthEngine(config, model=model, fuse_cpu=True)]
    if engines[0].backend == 'torch+onednn_graph':
        torch_config = dataclasses.replace(config, backend='torch')
        engines.append(DepthEngine(torch_config, model=model, fuse_cpu=True))
    if engines[0].fused:
        engines.append(DepthEngine(config, model=model, fuse_cpu=False))
    return engines


def _cpu_worker(conn: Connection, role: str, variant: str, height: int, width: int,
                precisions: tuple[str, ...], thread_counts: tuple[int, ...],
                threads: int, backends: bool = False) -> None:
    """One side of the CPU comparison, in its own process: 'baseline' keeps the default
    allocator; 'engine' builds DepthEngines (which tune the allocator process-wide)."""
    if threads:
        torch.set_num_threads(threads)
    model = prepare_model(variant, height, width)
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    rgb, sparse = synthetic_inputs(height, width)
    calls: dict[str, Callable[[], Tensor]] = {}
    if role == 'baseline':
        inputs = normalised_inputs(rgb, sparse)

        def eager() -> Tensor:
            with torch.no_grad():
                return model(*inputs).clamp(0, 1) * MAX_DEPTH
        calls[BASELINE] = eager
        for count in thread_counts:
            calls[f'{BASELINE} {count} thread(s)'] = _with_threads(eager, count)
    else:
        for precision in precisions:
            config = EngineConfig(weights='<random init>', device='cpu', precision=precision,
                                  input_height=height, input_width=width, max_depth=MAX_DEPTH)
            for count in (None, *thread_counts):
                # Engines built (and oneDNN Graph compiled) at the thread count they run with:
                # its kernels are compiled for the thread count of their first calls.
                default = torch.get_num_threads()
                torch.set_num_threads(count or default)
                try:
                    engines = _cpu_engines(config, model)
                finally:
                    torch.set_num_threads(default)
                for engine in engines:
                    call = (lambda engine=engine: engine.infer_tensors(rgb, sparse))
                    kind = {'torch+onednn_graph': ' onednn_graph'}.get(
                        engine.backend, ' fused' if engine.fused else '')
                    label = f'engine {precision}{kind}'
                    if count is None:
                        calls[label] = call
                    else:
                        calls[f'{label} {count} thread(s)'] = _with_threads(call, count)
        if backends:
            config = EngineConfig(weights='<random init>', device='cpu', precision='fp32',
                                  input_height=height, input_width=width, max_depth=MAX_DEPTH,
                                  backend='onnxruntime', num_threads=threads)
            engine = DepthEngine(config, model=model)
            calls['engine fp32 onnxruntime'] = (
                lambda engine=engine: engine.infer_tensors(rgb, sparse))
    conn.send((list(calls), checksum, tune_cpu_allocator() if role == 'engine' else False))
    while True:
        name = conn.recv()
        if name is None:
            break
        start, cpu_start = time.perf_counter(), time.process_time()
        out = calls[name]()
        conn.send((time.perf_counter() - start, time.process_time() - cpu_start,
                   out.float().numpy()))
    conn.close()


def bench_cpu(variant: str, height: int, width: int, rounds: int,
              precisions: tuple[str, ...], thread_counts: tuple[int, ...] = (),
              threads: int = 0, backends: bool = False) -> list[dict]:
    """Baseline and engine run in two processes (the engine's allocator setting is
    process-wide), called alternately round by round so that load from other processes on a
    shared machine hits all settings alike; one warm-up round first."""
    context = multiprocessing.get_context('spawn')
    owner: dict[str, Connection] = {}
    processes = []
    checksums = []
    tuned = False
    for role in ('baseline', 'engine'):
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_cpu_worker, daemon=True,
                                  args=(child_end, role, variant, height, width, precisions,
                                        thread_counts, threads, backends))
        process.start()
        processes.append((process, parent_end))
        names, checksum, role_tuned = parent_end.recv()
        checksums.append(checksum)
        tuned = tuned or role_tuned
        owner.update({name: parent_end for name in names})
    if checksums[0] != checksums[1]:
        msg = f'the two processes built different weights ({checksums})'
        raise RuntimeError(msg)
    times: dict[str, list[float]] = {name: [] for name in owner}
    cpu_times: dict[str, list[float]] = {name: [] for name in owner}
    outputs: dict[str, np.ndarray] = {}
    for round_index in range(rounds + 1):
        for name, conn in owner.items():
            conn.send(name)
            seconds, cpu_seconds, outputs[name] = conn.recv()
            if round_index:
                times[name].append(seconds)
                cpu_times[name].append(cpu_seconds)
    for process, conn in processes:
        conn.send(None)
        process.join(timeout=30)
    size = f'{height}x{width}'
    reference = torch.from_numpy(outputs[BASELINE])
    rows = []
    for name in owner:
        # Each engine row is compared with the baseline at the same thread count.
        suffix = name[name.rindex(' ', 0, name.index(' thread')):] if ' thread' in name else ''
        base = f'{BASELINE}{suffix}' if name.startswith('engine') else name
        row = _row(variant, size, name, times[name], min(times[base]),
                   torch.from_numpy(outputs[name]), reference, cpu_times[name],
                   min(cpu_times[base]))
        if name.startswith('engine') and tuned:
            row['setting'] += ' +alloc'
        rows.append(row)
    engine_rows = [row for row in rows if row['setting'].startswith('engine')]
    within = [row for row in engine_rows if row['max_err_pct'] < ERROR_BUDGET * 100]
    if within:
        max(within, key=lambda row: row['speedup'])['mark'] = 'best within 1%'
    fastest = max(engine_rows, key=lambda row: row['speedup'])
    if 'mark' not in fastest:
        fastest['mark'] = 'fastest'
    return rows


def bench_cuda(variant: str, height: int, width: int, rounds: int) -> list[dict]:
    """Network alone and full path on the GPU, against eager fp32 (see the module docstring)."""
    import copy

    from frame_path import _camera, _cloud

    from g2mono_ros.fusion.pipeline import PairInputs, process_pair
    from g2mono_ros.fusion.sparse import SparseProjector
    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

    device = torch.device('cuda')
    model = prepare_model(variant, height, width)
    rgb, sparse = synthetic_inputs(height, width)
    rgb_d, sparse_d = rgb.to(device), sparse.to(device)
    plain = copy.deepcopy(model).to(device)
    plain_inputs = [t.to(device) for t in normalised_inputs(rgb, sparse)]

    def eager() -> Tensor:
        with torch.no_grad():
            return plain(*plain_inputs).clamp(0, 1) * MAX_DEPTH
    network: dict[str, Callable[[], Tensor]] = {'eager fp32 network (baseline)': eager}
    cam_h, cam_w = round(height * 375 / 352), round(width * 1242 / 1216)
    camera = _camera(cam_h, cam_w)
    points = _cloud(np.random.default_rng(0))
    rotation = np.asarray([0.5, -0.5, 0.5, 0.5])
    T = transform_from_translation_quaternion(np.zeros(3), rotation)
    rgb_host = rgb[0].permute(1, 2, 0).contiguous().numpy()  # (h, w, 3) uint8: decoded, resized
    host_projector = SparseProjector()

    def eager_full() -> Tensor:
        """The plain way: numpy projection, pageable uploads, eager fp32, ``.cpu()``."""
        sparse_net = host_projector.project(points, T, camera, (height, width), min_range=0.5,
                                            max_range=100.0, want_full=False).net
        rgb_t = torch.from_numpy(rgb_host).to(device).permute(2, 0, 1)[None]
        sparse_t = torch.from_numpy(sparse_net).to(device)[None, None]
        with torch.no_grad():
            depth = plain(*normalised_inputs(rgb_t, sparse_t)).clamp(0, 1) * MAX_DEPTH
            depth = F.interpolate(depth, size=(cam_h, cam_w), mode='bilinear',
                                  align_corners=False)
        return torch.from_numpy(depth[0, 0].cpu().numpy())
    full: dict[str, Callable[[], Tensor]] = {'eager fp32 full path (baseline)': eager_full}
    # The node's default upsampling (edge_aware) takes the camera-size image as its guide.
    guide = synthetic_inputs(cam_h, cam_w, seed=1)[0][0].permute(1, 2, 0).contiguous().numpy()
    settings = [('fp32', False, 'bilinear'), ('fp16', False, 'bilinear'),
                ('bf16', False, 'bilinear'), ('fp16', True, 'bilinear'),
                ('fp16', True, 'edge_aware')]
    for precision, graph, upsample in settings:
        config = EngineConfig(weights='<random init>', device='cuda', precision=precision,
                              input_height=height, input_width=width, max_depth=MAX_DEPTH,
                              cuda_graph=graph, upsample=upsample)
        label = f'engine {precision}{" cuda graph" if graph else ""}'
        edge_aware = upsample == 'edge_aware'
        if edge_aware:
            label += ' edge_aware'
        try:  # warm-up, start-up check (and capture) here
            engine = DepthEngine(config, model=copy.deepcopy(model))
        except ConfigError as exc:  # e.g. the start-up check at this precision: the rest runs
            print(f'  {variant} {label}: not timed: {exc}', flush=True)
            continue
        print(f'  {variant} {label}: backend {engine.backend}, start-up difference '
              f'{engine.backend_error} (normalised depth)', flush=True)
        if not edge_aware:  # the same network as the row without it
            network[f'{label} network'] = (
                lambda engine=engine: engine.infer_tensors(rgb_d, sparse_d))
        projector = SparseProjector(device)
        inputs = PairInputs(rgb_host, points, camera, guide=guide if edge_aware else None)

        def full_path(engine=engine, projector=projector, inputs=inputs) -> Tensor:
            work = process_pair(engine, inputs, T, min_range=0.5, max_range=100.0,
                                want_sparse=False, want_colorized=False, projector=projector)
            return torch.from_numpy(work.depth_m)
        full[f'{label} full path'] = full_path
    rows = []
    size = f'{height}x{width}'
    times, outputs = interleaved_timings({**network, **full}, rounds, device)
    names = list(network)
    base_best = min(times[names[0]])
    rows += [_row(variant, size, name, times[name], base_best, outputs[name].cpu(),
                  outputs[names[0]].cpu()) for name in names]
    full_names = list(full)
    full_best = min(times[full_names[0]])
    rows += [_row(variant, f'{cam_h}x{cam_w}', name, times[name], full_best, outputs[name],
                  outputs[full_names[0]]) for name in full_names]
    fp16_full = [row for row in rows if row['setting'] == 'engine fp16 full path']
    if variant == 'official' and fp16_full:
        fp16_full[0]['mark'] = 'target < 10 ms: ' + (
            'met' if fp16_full[0]['median_ms'] < 10.0 else 'missed')
    return rows


def print_table(rows: list[dict], baseline: str) -> None:
    header = (f'{"variant":<10} {"size":<9} {"setting":<46} {"best ms":>9} {"median ms":>10} '
              f'{"p95 ms":>8} '
              f'{"x " + baseline:>9} {"max err":>8} {"mean err":>9}'
              + (f' {"cpu ms":>8} {"x cpu":>6}' if any('cpu_ms' in row for row in rows) else ''))
    print(header)
    print('-' * len(header))
    for row in rows:
        mark = f'  <- {row["mark"]}' if row.get('mark') else ''
        print(f'{row["variant"]:<10} {row["size"]:<9} {row["setting"]:<46} {row["best_ms"]:>9.1f} '
              f'{row["median_ms"]:>10.1f} {row["p95_ms"]:>8.1f} {row["speedup"]:>8.2f}x {row["max_err_pct"]:>7.3f}% '
              f'{row["mean_err_pct"]:>8.4f}%'
              + (f' {row["cpu_ms"]:>8.1f} {row["cpu_speedup"]:>5.2f}x' if 'cpu_ms' in row else '')
              + mark)
    sys.stdout.flush()  # piped through tee: each table out before the next (slow) measurement


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='256x512 only, fewer iterations')
    parser.add_argument('--variants', nargs='+', default=['seed', 'official'],
                        choices=['seed', 'seed_small', 'official'])
    parser.add_argument('--sizes', nargs='+', default=None, help='HxW, multiples of 64')
    parser.add_argument('--rounds', type=int, default=None,
                        help='timed rounds (each calls every setting once) after one warm-up')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16', 'fp16'],
                        choices=['fp32', 'bf16', 'fp16'], help='engine settings tried on CPU')
    parser.add_argument('--thread-counts', nargs='+', type=int, default=[],
                        help='also time each engine setting with these torch thread counts')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--backends', action='store_true',
                        help='CPU: also time the ONNX Runtime backend (fp32)')
    args = parser.parse_args(argv)

    if args.device == 'cuda' and not torch.cuda.is_available():
        print(f'--device cuda: no CUDA device is available to torch {torch.__version__} '
              f'(built with CUDA {torch.version.cuda}); run on a machine with an NVIDIA GPU and '
              'a CUDA build of torch, or use --device cpu', file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda':
        sizes = args.sizes or ['352x1216']
        rounds = args.rounds or 20
    else:
        sizes = args.sizes or (['256x512'] if args.quick else ['256x512', '320x1024'])
        rounds = args.rounds or (1 if args.quick else 2)
    print(f'g2mono_ros model benchmark: torch {torch.__version__}, device {args.device}, '
          f'{torch.get_num_threads()} threads, CPU capability '
          f'{torch.backends.cpu.get_cpu_capability()}, batch 1, {rounds} interleaved rounds')
    from cpu_info import cpu_model

    gpu = f', GPU {torch.cuda.get_device_name()}' if args.device == 'cuda' else ''
    print(f'CPU {cpu_model()}, {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.1f}{gpu}')
    print('weights: RANDOM init with non-zero ReZero alphas (0.1-0.5) and a head rescaled to '
          'outputs in (0, 1); max depth 80 m')
    rows: list[dict] = []
    for variant in args.variants:
        for size in sizes:
            height, width = (int(v) for v in size.lower().split('x'))
            if args.device == 'cuda':
                done = bench_cuda(variant, height, width, rounds)
                # Each table as soon as it is measured: a run cut short keeps what it has.
                print()
                print_table(done, 'fp32')
            else:
                done = bench_cpu(variant, height, width, rounds, tuple(args.precisions),
                                 tuple(args.thread_counts), args.threads, args.backends)
            rows += done
            print(f'  done {variant} {size}', flush=True)
    print()
    print_table(rows, 'eager' if args.device == 'cpu' else 'fp32')
    print('\nms: wall time per call (best of the rounds; median beside it). Speed-up: best '
          'times, against the baseline at the same thread count.\n+alloc: the engine process '
          'ran with tune_cpu_allocator() (glibc). errors: |depth - baseline depth| as % of max '
          'depth (max and mean over pixels).')
    if args.device == 'cpu':
        print('cpu ms: process CPU time per call (best of the rounds), less disturbed than wall '
              'time by other processes on a busy machine; x cpu: the speed-up on it.')
    if args.device == 'cpu':
        print(f'"best within 1%" = fastest engine setting whose max error < {ERROR_BUDGET:.0%} '
              'of max depth; "fastest" = fastest regardless. Target: >= 2x at 256x512, '
              'error < 1%.')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
