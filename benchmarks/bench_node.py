"""Latency of depth_node over DDS, split into stages, against the model alone in the same run.

Publishes 64k-point clouds, 640x480 rgb8 images and their CameraInfo at 10 Hz to a depth_node
subprocess started with ``publish_timing``, and receives /g2mono/depth. Each cloud goes first,
stamped 20 ms ahead (as a scan-end stamp would be), so the pair completes as the image arrives
and the cloud's own publishing is not charged to the image. Per frame, from the image stamp (taken
just before it is published) to the depth received:

    transport_in  image stamp -> image callback in the node (serialise, DDS, deserialise)
    sync_wait     image callback -> pair complete (waiting for the scan)
    queue         pair complete -> worker starts on it
    decode        image decode + area resize to the network input, cloud decode (worker)
    pre           one projection of the cloud (network size, and image size if published)
    model         DepthEngine.infer (resize in, network, resize out)
    post          sparse/colorized extras and the depth message built, up to its publish
    transport_out depth publish starts in the node -> depth received here

Around it, ``DepthEngine.infer`` alone on the same inputs in this process, with the node's
thread count, before the node starts and after it stopped (a shared machine's load drifts).
Run: ``.venv/bin/python benchmarks/bench_node.py [--variant seed_small] [--seconds 20]``.

``--frame-path``: instead, the per-frame path at camera resolution (1920x1080 bgr8 and yuyv,
640x480 rgb8, 128k points), old code path against new in one process: callback-thread busy
share and everything-except-the-model p50/p95, bilinear and edge-aware upsampling
(``benchmarks/frame_path.py``; ``--weights``, default the shipped ones).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from g2mono_ros.ros.dds_env import localhost_dds_env  # noqa: E402

HEIGHT, WIDTH = 480, 640
N_POINTS = 65_536
RATE_HZ = 10.0
CLOUD_LEAD_NS = 20_000_000  # well inside sync_max_offset (60 ms)
ROTATION = [0.5, -0.5, 0.5, 0.5]  # REP 103 LiDAR -> camera optical
STAGES = ('transport_in', 'sync_wait', 'queue', 'decode', 'pre', 'model', 'post',
          'transport_out')
#: total = stamp -> depth received; overhead = total minus model minus queue (the wait for the
#: worker to finish the previous pair, which only exists when the model is slower than 10 Hz).
SUMMARIES = ('total', 'total_minus_model', 'overhead')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', help='checkpoint; default: a fresh --variant checkpoint')
    parser.add_argument('--variant', default='seed', choices=('seed', 'seed_small'),
                        help='network of the fresh checkpoint (random weights: timing only)')
    parser.add_argument('--input-height', type=int, default=320)
    parser.add_argument('--seconds', type=float, default=20.0, help='measured publishing time')
    parser.add_argument('--warmup', type=float, default=5.0, help='seconds discarded first')
    parser.add_argument('--model-runs', type=int, default=10,
                        help='runs of the model alone, before and after the DDS phase')
    parser.add_argument('--frame-path', action='store_true',
                        help='time the per-frame path at 1080p and 480p, old vs new, no DDS')
    parser.add_argument('--breakdown', action='store_true',
                        help='with --frame-path: the new path split into stages instead')
    parser.add_argument('--edge-only', action='store_true',
                        help='with --frame-path: only the edge-aware (default upsampling) cases')
    parser.add_argument('--frames', type=int, default=20,
                        help='--frame-path: frames per case (each path)')
    parser.add_argument('--block', type=int, default=10,
                        help='--frame-path: the paths take turns of this many frames (1: every '
                             'frame, which also makes each path read past the others\' buffers)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch/OpenMP threads of the node and of the model alone '
                             '(default: OMP_NUM_THREADS, else torch default)')
    return parser.parse_args(argv)


def synthetic_inputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(480, 640, 3) uint8 textured image and (65536, 3) float32 LiDAR points ahead of it."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([(xx * 255 // WIDTH), (yy * 255 // HEIGHT), ((xx ^ yy) & 255)], axis=2)
    rgb = (rgb + rng.integers(0, 16, rgb.shape)).clip(0, 255).astype(np.uint8)
    # 64 rings x 1024 azimuths over a 360 degree scan; about a fifth falls in the camera view.
    ring = np.repeat(np.linspace(-0.39, 0.26, 64), 1024)
    azimuth = np.tile(np.linspace(-np.pi, np.pi, 1024, endpoint=False), 64)
    distance = rng.uniform(3.0, 40.0, N_POINTS)
    xyz = np.stack([distance * np.cos(ring) * np.cos(azimuth),
                    distance * np.cos(ring) * np.sin(azimuth),
                    distance * np.sin(ring)], axis=1).astype(np.float32)
    return rgb, xyz


def camera_info(header):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo()
    info.header = header
    info.height, info.width = HEIGHT, WIDTH
    f = 525.0
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    info.k = [f, 0.0, WIDTH / 2, 0.0, f, HEIGHT / 2, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, WIDTH / 2, 0.0, 0.0, f, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc), NaN when unreadable."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float('nan')


def percentiles(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def run_dds_phase(args: argparse.Namespace, weights: Path, rgb: np.ndarray, xyz: np.ndarray,
                  log_path: Path) -> tuple[dict[str, list[float]], int, int, list[float]]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from diagnostic_msgs.msg import DiagnosticStatus
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Header

    from g2mono_ros.ros.codecs import numpy_to_image, xyz_to_pointcloud2

    depth_node = shutil.which('depth_node') or str(Path(sys.executable).parent / 'depth_node')
    command = [depth_node, '--ros-args', '--params-file', str(REPO_ROOT / 'config' / 'depth.yaml'),
               '-p', f'weights:={weights}', '-p', 'device:=cpu',
               '-p', f'input_height:={args.input_height}', '-p', 'publish_timing:=true',
               '-p', 'extrinsic.translation:=[0.0, 0.0, 0.0]',
               '-p', f'extrinsic.rotation:={ROTATION}']
    log = open(log_path, 'w')
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('g2mono_bench', context=context)
    pub_image = node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, '/camera/camera_info', qos_profile_sensor_data)
    pub_points = node.create_publisher(PointCloud2, '/lidar/points', qos_profile_sensor_data)
    lock = threading.Lock()
    received: dict[int, int] = {}
    timing: dict[int, dict[str, str]] = {}

    def on_depth(msg: Image) -> None:
        now = time.time_ns()
        with lock:
            received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = now

    def on_timing(msg: DiagnosticStatus) -> None:
        values = {kv.key: kv.value for kv in msg.values}
        with lock:
            timing[int(values['stamp_ns'])] = values

    node.create_subscription(Image, '/g2mono/depth', on_depth, 5)
    node.create_subscription(DiagnosticStatus, '/g2mono/depth/timing', on_timing, 50)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    image_msg = numpy_to_image(rgb, 'rgb8', Header(frame_id='camera_optical'))
    cloud_msg = xyz_to_pointcloud2(xyz, Header(frame_id='lidar'))
    info_msg = camera_info(Header(frame_id='camera_optical'))
    deadline = time.monotonic() + 120
    while True:  # until the node answers
        with lock:
            if received:
                break
        if proc.poll() is not None:
            raise SystemExit(f'depth_node exited:\n{log_path.read_text()}')
        if time.monotonic() > deadline:
            raise SystemExit('depth_node did not answer within 120 s')
        if pub_image.get_subscription_count():
            publish_frame(pub_image, pub_info, pub_points, image_msg, info_msg, cloud_msg)
        time.sleep(1.0 / RATE_HZ)

    measured: set[int] = set()
    rss = []
    t_end_warmup = time.monotonic() + args.warmup
    t_end = t_end_warmup + args.seconds
    next_tick = time.monotonic()
    while time.monotonic() < t_end:
        stamp = publish_frame(pub_image, pub_info, pub_points, image_msg, info_msg, cloud_msg)
        if time.monotonic() >= t_end_warmup:
            if not measured or len(measured) % 50 == 0:
                rss.append(rss_mib(proc.pid))
            measured.add(stamp)
        next_tick += 1.0 / RATE_HZ
        time.sleep(max(0.0, next_tick - time.monotonic()))
    time.sleep(3.0)  # let the last frames through
    rss.append(rss_mib(proc.pid))

    proc.send_signal(signal.SIGINT)
    proc.wait(20)
    log.close()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)

    stages: dict[str, list[float]] = {name: [] for name in (*STAGES, *SUMMARIES)}
    with lock:
        frames = [(s, received[s], timing[s]) for s in sorted(measured)
                  if s in received and s in timing]
    for stamp, got_ns, t in frames:
        ms = {
            'transport_in': (int(t['received_wall_ns']) - stamp) * 1e-6,
            'sync_wait': float(t['sync_wait_s']) * 1e3,
            'queue': float(t['queue_s']) * 1e3,
            'decode': float(t.get('decode_s', 0.0)) * 1e3,
            'pre': float(t['pre_s']) * 1e3,
            'model': float(t['model_s']) * 1e3,
            'post': float(t['post_s']) * 1e3,
            'transport_out': (got_ns - int(t['depth_publish_wall_ns'])) * 1e-6,
            'total': (got_ns - stamp) * 1e-6,
        }
        ms['total_minus_model'] = ms['total'] - ms['model']
        ms['overhead'] = ms['total_minus_model'] - ms['queue']
        for name, value in ms.items():
            stages[name].append(value)
    return stages, len(measured), len(frames), rss


def _set_stamp(msg, stamp_ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)


def publish_frame(pub_image, pub_info, pub_points, image_msg, info_msg, cloud_msg) -> int:
    """Publish the cloud (stamped ahead), then the image and its CameraInfo; the image stamp."""
    _set_stamp(cloud_msg, time.time_ns() + CLOUD_LEAD_NS)
    pub_points.publish(cloud_msg)
    stamp = time.time_ns()
    _set_stamp(image_msg, stamp)
    _set_stamp(info_msg, stamp)
    pub_image.publish(image_msg)
    pub_info.publish(info_msg)
    return stamp


def run_model_alone(weights: Path, input_height: int, rgb: np.ndarray, xyz: np.ndarray,
                    runs: int) -> tuple[list[float], list[float]]:
    """(model ms, projection ms) per run, DepthEngine.infer as the node calls it."""
    from g2mono_ros.ros.codecs import camera_info_to_model
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.models.engine import DepthEngine
    from g2mono_ros.fusion.pipeline import sparse_at_network_size
    from g2mono_ros.fusion.transforms import transform_from_translation_quaternion
    from std_msgs.msg import Header

    engine = DepthEngine(EngineConfig(weights=str(weights), device='cpu',
                                      input_height=input_height))
    camera = camera_info_to_model(camera_info(Header()))
    T = transform_from_translation_quaternion(np.zeros(3), np.asarray(ROTATION))
    net_hw = engine.network_input_size(HEIGHT, WIDTH)
    model_ms, projection_ms = [], []
    for index in range(runs + 2):
        t0 = time.perf_counter()
        sparse = sparse_at_network_size(xyz, T, camera, net_hw, min_range=0.5, max_range=100.0)
        t1 = time.perf_counter()
        engine.infer(rgb, sparse)
        t2 = time.perf_counter()
        if index >= 2:  # warm-up
            projection_ms.append((t1 - t0) * 1e3)
            model_ms.append((t2 - t1) * 1e3)
    return model_ms, projection_ms


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(localhost_dds_env())
    os.environ.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    import torch

    from g2mono_ros.models.checkpoint import save_checkpoint
    from g2mono_ros.models import create_model

    threads = (args.threads or int(os.environ.get('OMP_NUM_THREADS', 0))
               or torch.get_num_threads())
    torch.set_num_threads(threads)
    os.environ['OMP_NUM_THREADS'] = str(threads)  # the node inherits it
    if args.frame_path:
        from frame_path import report, report_breakdown

        from g2mono_ros.weights import DEMO_WEIGHTS

        if args.breakdown:
            report_breakdown(args.weights or str(DEMO_WEIGHTS), args.frames,
                             edge_only=args.edge_only)
            return 0
        return report(args.weights or str(DEMO_WEIGHTS), args.frames,
                      edge_only=args.edge_only, block=max(1, args.block))
    rgb, xyz = synthetic_inputs(np.random.default_rng(0))
    with tempfile.TemporaryDirectory(prefix='g2mono_bench_') as tmp:
        weights = Path(args.weights) if args.weights else save_checkpoint(
            Path(tmp) / f'{args.variant}.pt', create_model(args.variant), variant=args.variant,
            model_kwargs={}, max_depth=80.0, input_height=args.input_height, input_width=0)
        before_ms, projection_ms = run_model_alone(weights, args.input_height, rgb, xyz,
                                                   args.model_runs)
        stages, sent, complete, rss = run_dds_phase(args, weights, rgb, xyz,
                                                    Path(tmp) / 'node.log')
        after_ms, _ = run_model_alone(weights, args.input_height, rgb, xyz, args.model_runs)

    print(f'depth_node over DDS: {WIDTH}x{HEIGHT} rgb8 + {N_POINTS} points at {RATE_HZ:g} Hz, '
          f'{args.seconds:g} s measured after {args.warmup:g} s warm-up')
    print(f'network: {args.weights or "fresh " + args.variant}, input height '
          f'{args.input_height}, CPU, torch {torch.__version__} with {threads} thread(s) in '
          f'the node and the model alone; {os.cpu_count()} CPUs; load average '
          f'{os.getloadavg()[0]:.1f}')
    print(f'frames published {sent}, depth received with timing {complete} '
          f'(the rest superseded by newer pairs while the model ran)')
    print('node resident memory, MiB, from the end of warm-up to the end: '
          + ' '.join(f'{value:.0f}' for value in rss))
    if not complete:
        print('no complete frames: nothing to report')
        return 1
    print(f'{"stage":<20}{"p50 ms":>10}{"p95 ms":>10}')
    for name in (*STAGES, *SUMMARIES):
        p50, p95 = percentiles(stages[name])
        print(f'{name:<20}{p50:>10.2f}{p95:>10.2f}')
    for label, values in (('model alone, before', before_ms), ('model alone, after', after_ms)):
        p50, p95 = percentiles(values)
        print(f'{label:<20}{p50:>10.2f}{p95:>10.2f}')
    p50, p95 = percentiles(projection_ms)
    print(f'{"projection alone":<20}{p50:>10.2f}{p95:>10.2f}')
    target = percentiles(stages['overhead'])[1]
    verdict = 'meets' if target < 10.0 else 'misses'
    print(f'everything except the model (and the queue behind it): p95 {target:.2f} ms '
          f'({verdict} the < 10 ms target)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
