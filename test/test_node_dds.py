"""depth_node over real DDS: the installed console script in a subprocess, fed by a test node.

One node process serves the whole module (start-up costs seconds); the tests run in file order
and each leaves the feed running normally. The first test runs before any CameraInfo was sent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from g2mono_ros.ros.codecs import (camera_info_to_model, image_to_numpy, numpy_to_image,  # noqa: E402
                               xyz_to_pointcloud2)
from g2mono_ros.fusion.projection import project_points_to_depth  # noqa: E402
from g2mono_ros.fusion.transforms import transform_from_translation_quaternion  # noqa: E402

HEIGHT, WIDTH = 96, 160
N_POINTS = 2000
FRAME_ID = 'test_camera_optical'
TRANSLATION = (0.05, -0.10, 0.02)
ROTATION = (0.5, -0.5, 0.5, 0.5)  # REP 103 LiDAR -> camera optical
CAMERA_HZ = 30.0
LIDAR_EVERY = 3  # 10 Hz LiDAR
LIDAR_OFFSET_NS = -7_000_000
TOPICS = {'image': '/test/cam/image', 'camera_info': '/test/cam/info', 'points': '/test/lidar'}
DEPTH_NODE = shutil.which('depth_node') or str(Path(sys.executable).parent / 'depth_node')

pytestmark = [pytest.mark.timeout(240), pytest.mark.dds]


def stamp_ns(header: Header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def make_header(stamp: int, frame_id: str) -> Header:
    header = Header()
    header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    header.frame_id = frame_id
    return header


def make_camera_info(header: Header) -> CameraInfo:
    info = CameraInfo()
    info.header = header
    info.height, info.width = HEIGHT, WIDTH
    fx = fy = 120.0
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    info.k = [fx, 0.0, WIDTH / 2, 0.0, fy, HEIGHT / 2, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, WIDTH / 2, 0.0, 0.0, fy, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def make_points(rng: np.random.Generator) -> np.ndarray:
    """(N, 3) float32 LiDAR frame: a wall 4-12 m ahead, spread across the camera's view."""
    x = rng.uniform(4.0, 12.0, N_POINTS)
    y = rng.uniform(-0.6, 0.6, N_POINTS) * x
    z = rng.uniform(-0.35, 0.35, N_POINTS) * x
    return np.stack([x, y, z], axis=1).astype(np.float32)


class Feeder:
    """Publishes the synthetic camera (30 Hz), CameraInfo and LiDAR (10 Hz) from a thread."""

    def __init__(self, node: Node, topics: dict[str, str], all_reliable: bool = False) -> None:
        self.node = node
        camera_qos = 10 if all_reliable else qos_profile_sensor_data
        self.pub_image = node.create_publisher(Image, topics['image'], camera_qos)
        self.pub_info = node.create_publisher(CameraInfo, topics['camera_info'], camera_qos)
        # By default a reliable LiDAR publisher and a best-effort camera: the node's sensor-data
        # subscriptions must match both.
        self.pub_points = node.create_publisher(PointCloud2, topics['points'], 10)
        self.rng = np.random.default_rng(7)
        self.lock = threading.Lock()
        self.send_camera_info = False
        self.send_points = True
        self.stamp_offset_ns = 0
        self.sent_images: dict[int, np.ndarray] = {}
        self.sent_scans: dict[int, np.ndarray] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        frame = 0
        period = 1.0 / CAMERA_HZ
        next_time = time.monotonic()
        while not self._stop.is_set():
            with self.lock:
                self._publish_frame(frame)
            frame += 1
            next_time += period
            time.sleep(max(0.0, next_time - time.monotonic()))

    def _publish_frame(self, frame: int) -> None:
        stamp = time.time_ns() + self.stamp_offset_ns
        header = make_header(stamp, FRAME_ID)
        rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        rgb[..., 0] = (np.arange(WIDTH) * 255 // WIDTH).astype(np.uint8)
        rgb[..., 1] = frame % 256
        self.sent_images[stamp] = rgb
        self.pub_image.publish(numpy_to_image(rgb, 'rgb8', header))
        if self.send_camera_info:
            self.pub_info.publish(make_camera_info(header))
        if self.send_points and frame % LIDAR_EVERY == 0:
            scan_stamp = stamp + LIDAR_OFFSET_NS
            xyz = make_points(self.rng)
            self.sent_scans[scan_stamp] = xyz
            self.pub_points.publish(xyz_to_pointcloud2(xyz, make_header(scan_stamp, 'test_lidar')))

    def publish_raw_points(self, msg: PointCloud2) -> None:
        self.pub_points.publish(msg)

    def publish_raw_image(self, msg: Image) -> None:
        self.pub_image.publish(msg)


class Sink:
    """Collects what the depth node publishes."""

    def __init__(self, node: Node, prefix: str = '/g2mono', node_name: str = 'depth_node',
                 qos=10) -> None:
        self.lock = threading.RLock()  # predicates of wait_for call drops() under it
        self.node_name = node_name
        self.depth: list[Image] = []
        self.sparse: list[Image] = []
        self.colorized: list[Image] = []
        self.info: list[CameraInfo] = []
        self.timing: list[DiagnosticStatus] = []
        self.diagnostics: list[dict[str, str]] = []
        node.create_subscription(Image, f'{prefix}/depth', self._keep(self.depth), qos)
        node.create_subscription(Image, f'{prefix}/sparse_depth', self._keep(self.sparse), qos)
        node.create_subscription(Image, f'{prefix}/depth/colorized', self._keep(self.colorized),
                                 qos)
        node.create_subscription(CameraInfo, f'{prefix}/camera_info', self._keep(self.info), qos)
        node.create_subscription(DiagnosticStatus, f'{prefix}/depth/timing',
                                 self._keep(self.timing), 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _keep(self, store: list):
        def callback(msg) -> None:
            with self.lock:
                store.append(msg)
                del store[:-50]  # bounded, newest kept
        return callback

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f'{self.node_name}: '):
                values = {kv.key: kv.value for kv in status.values}
                values['_level'] = str(int.from_bytes(status.level, 'little')
                                       if isinstance(status.level, bytes) else status.level)
                values['_hardware_id'] = status.hardware_id
                with self.lock:
                    self.diagnostics.append(values)

    def clear(self) -> None:
        with self.lock:
            for store in (self.depth, self.sparse, self.colorized, self.info, self.timing,
                          self.diagnostics):
                store.clear()

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                result = predicate(self)
            if result:
                return result
            time.sleep(0.05)
        pytest.fail(f'timed out after {timeout} s waiting for {what}')

    def latest_diagnostics(self, timeout: float = 10.0) -> dict[str, str]:
        return self.wait_for(lambda s: s.diagnostics[-1] if s.diagnostics else None, timeout,
                             'a diagnostics message')

    def drops(self, kind: str) -> int:
        return int(self.latest_diagnostics().get(f'drops.{kind}', 0))


@pytest.fixture(scope='module')
def graph():
    """A test node in its own rclpy context, spun by a background executor."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('g2mono_test_io', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    feeder = Feeder(node, TOPICS)
    sink = Sink(node)
    spinner.start()
    feeder.start()
    yield feeder, sink, node
    feeder.stop()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    spinner.join(5.0)


def node_command(repo_root: Path, checkpoint: Path, *extra: str, topics=TOPICS,
                 executable: tuple[str, ...] = (DEPTH_NODE,)) -> list[str]:
    """The command line launch/depth.launch.py would build (params file, overrides, remaps)."""
    return [*executable, '--ros-args', '--params-file', str(repo_root / 'config' / 'depth.yaml'),
            '-p', f'weights:={checkpoint}', '-p', 'device:=cpu', '-p', 'input_height:=64',
            '-p', 'publish_sparse:=true', '-p', 'publish_colorized:=true',
            '-p', 'diagnostics_period:=0.25', '-p', 'max_depth:=20',
            '-p', f'extrinsic.translation:={list(TRANSLATION)}',
            '-p', f'extrinsic.rotation:={list(ROTATION)}',
            '-r', f'/camera/image_raw:={topics["image"]}',
            '-r', f'/camera/camera_info:={topics["camera_info"]}',
            '-r', f'/lidar/points:={topics["points"]}', *extra]


def start_node_process(command: list[str], log_path: Path) -> subprocess.Popen:
    """The node as a child process (one OpenMP thread), its output in ``log_path``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def stop_node_process(proc: subprocess.Popen, wait_s: float = 15.0) -> None:
    """SIGINT (the node's clean exit), then kill after ``wait_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope='module')
def depth_node(repo_root, checkpoint, graph, tmp_path_factory):
    proc = start_node_process(node_command(repo_root, checkpoint),
                              tmp_path_factory.mktemp('node') / 'depth_node.log')
    yield proc
    stop_node_process(proc, wait_s=10)


def assert_alive(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        pytest.fail(f'depth_node exited with {proc.returncode}:\n{proc.log_path.read_text()}')


def test_no_camera_info_is_counted_and_nothing_is_published(depth_node, graph):
    feeder, sink, _ = graph
    sink.wait_for(lambda s: len(s.diagnostics) > 0 and s.drops('no_camera_info') >= 3, 90,
                  'diagnostics counting pairs without CameraInfo')
    assert_alive(depth_node)
    assert sink.depth == []
    latest = sink.diagnostics[-1]
    assert latest['device'] == 'cpu' and latest['_hardware_id'] == 'cpu'
    assert latest['_level'] == '1', 'WARN while images arrive and nothing is published'


def test_depth_has_the_image_header_size_encoding_and_finite_values(depth_node, graph):
    feeder, sink, _ = graph
    feeder.send_camera_info = True
    sink.wait_for(lambda s: len(s.depth) >= 5, 60, 'five depth images')
    assert_alive(depth_node)
    with sink.lock:
        depth_msgs = list(sink.depth)
    for msg in depth_msgs:
        assert stamp_ns(msg.header) in feeder.sent_images
        assert msg.header.frame_id == FRAME_ID
        assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, '32FC1')
        depth = image_to_numpy(msg)
        assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
        # REP 118: an estimate is a positive finite depth, no estimate is NaN (never 0 or Inf;
        # these random weights output 0, i.e. no estimate, on part of the image).
        estimated = ~np.isnan(depth)
        assert estimated.any() and (depth[estimated] > 0).all()
        assert np.isfinite(depth[estimated]).all()


def test_camera_info_and_colorized_carry_the_image_header(depth_node, graph):
    feeder, sink, _ = graph
    sink.wait_for(lambda s: len(s.info) >= 3 and len(s.colorized) >= 3, 30, 'info + colorized')
    with sink.lock:
        info, colorized = sink.info[-1], sink.colorized[-1]
    assert stamp_ns(info.header) in feeder.sent_images and info.header.frame_id == FRAME_ID
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert list(info.k) == list(make_camera_info(info.header).k)
    assert colorized.encoding == 'rgb8' and (colorized.height, colorized.width) == (HEIGHT, WIDTH)
    assert stamp_ns(colorized.header) in feeder.sent_images


def test_sparse_depth_equals_the_core_projection_of_the_nearest_scan(depth_node, graph):
    feeder, sink, _ = graph
    sink.wait_for(lambda s: len(s.sparse) >= 3, 30, 'sparse depth')
    camera = camera_info_to_model(make_camera_info(make_header(0, FRAME_ID)))
    T = transform_from_translation_quaternion(np.asarray(TRANSLATION), np.asarray(ROTATION))
    with sink.lock:
        sparse_msgs = list(sink.sparse)
    for msg in sparse_msgs:
        image_stamp = stamp_ns(msg.header)
        scan_stamp = min(feeder.sent_scans, key=lambda s: abs(s - image_stamp))
        expected, _ = project_points_to_depth(feeder.sent_scans[scan_stamp], T, camera,
                                              min_range=0.5, max_range=100.0)
        got = image_to_numpy(msg)
        assert msg.encoding == '32FC1' and got.shape == (HEIGHT, WIDTH)
        assert np.count_nonzero(np.isfinite(got)) > 100
        # REP 118: pixels no LiDAR point reached are NaN, not 0 (a point at the camera centre).
        assert not np.any(got == 0)
        np.testing.assert_array_equal(got, np.where(expected > 0, expected, np.nan))


def _faults_then_resume(sink: Sink, kind: str, inject, proc: subprocess.Popen) -> None:
    before = sink.drops(kind)
    inject()
    sink.wait_for(lambda s: s.drops(kind) > before, 20, f'diagnostics counting {kind}')
    assert_alive(proc)
    sink.clear()
    sink.wait_for(lambda s: len(s.depth) >= 2, 30, f'depth output to resume after {kind}')


def test_every_image_of_a_burst_gets_depth_when_the_node_keeps_up(depth_node, graph):
    """30 Hz / 10 Hz in slow motion (stamps on that grid, sent 10x slower, so a CPU-only network
    keeps up on a loaded machine): pairs complete in bursts when a scan arrives, and every image
    gets depth (the one-slot mailbox kept one pair per burst). The first scans let the node learn
    the slower LiDAR period (its latency window)."""
    feeder, sink, _ = graph
    slow = 10
    with feeder.lock:  # the feeder's thread publishes under this lock: it pauses
        time.sleep(1.0)  # what was in flight drains
        t0 = time.time_ns() + feeder.stamp_offset_ns
        images = [t0 + round(k * 1e9 / 30) for k in range(30)]
        scans = [t0 + k * 100_000_000 + 12_000_000 for k in range(10)]
        events = sorted([(t, 'image') for t in images] + [(t, 'scan') for t in scans])
        start = time.monotonic()
        for stamp, kind in events:
            time.sleep(max(0.0, start + (stamp - t0) * slow * 1e-9 - time.monotonic()))
            header = make_header(stamp, FRAME_ID if kind == 'image' else 'test_lidar')
            if kind == 'image':
                rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
                feeder.sent_images[stamp] = rgb
                feeder.pub_image.publish(numpy_to_image(rgb, 'rgb8', header))
                feeder.pub_info.publish(make_camera_info(header))
            else:
                scan = make_points(feeder.rng)
                feeder.sent_scans[stamp] = scan
                feeder.pub_points.publish(xyz_to_pointcloud2(scan, header))
        measured = set(images[-12:])  # after six scans
        got = sink.wait_for(lambda s: measured <= {stamp_ns(m.header) for m in s.depth}
                            and {stamp_ns(m.header) for m in s.depth}, 30,
                            f'depth for all {len(measured)} images (each has a scan within 60 ms)')
    assert measured <= got
    assert_alive(depth_node)


def test_malformed_cloud_is_counted_and_output_resumes(depth_node, graph):
    feeder, sink, _ = graph

    def inject() -> None:
        msg = xyz_to_pointcloud2(make_points(feeder.rng), make_header(time.time_ns(), 'lidar'))
        msg.data = bytes(msg.data)[: len(msg.data) // 2]  # truncated: row_step says otherwise
        feeder.publish_raw_points(msg)

    _faults_then_resume(sink, 'malformed_cloud', inject, depth_node)


def test_empty_cloud_is_counted_and_output_resumes(depth_node, graph):
    feeder, sink, _ = graph
    empty = np.zeros((0, 3), np.float32)
    _faults_then_resume(sink, 'empty_cloud', lambda: feeder.publish_raw_points(
        xyz_to_pointcloud2(empty, make_header(time.time_ns(), 'lidar'))), depth_node)


def test_unsupported_image_encoding_is_counted_and_output_resumes(depth_node, graph):
    feeder, sink, _ = graph

    def inject() -> None:
        msg = numpy_to_image(np.zeros((HEIGHT, WIDTH, 3), np.uint8), 'rgb8',
                             make_header(time.time_ns(), FRAME_ID))
        msg.encoding = 'yuv444_not_an_encoding'
        feeder.publish_raw_image(msg)

    _faults_then_resume(sink, 'unsupported_encoding', inject, depth_node)


def test_malformed_image_is_counted_and_output_resumes(depth_node, graph):
    feeder, sink, _ = graph

    def inject() -> None:
        msg = numpy_to_image(np.zeros((HEIGHT, WIDTH, 3), np.uint8), 'rgb8',
                             make_header(time.time_ns(), FRAME_ID))
        msg.data = bytes(msg.data)[:100]
        feeder.publish_raw_image(msg)

    _faults_then_resume(sink, 'malformed_image', inject, depth_node)


def test_lidar_stopping_drops_images_and_output_resumes(depth_node, graph):
    feeder, sink, _ = graph
    before = {k: v for k, v in sink.latest_diagnostics().items() if k.startswith('drops.sync_')}
    feeder.send_points = False
    deadline = time.monotonic() + 10.0
    while True:  # pairs already made drain out; then the output stops
        with sink.lock:
            sink.depth.clear()
        time.sleep(0.7)
        if not sink.depth:
            break
        assert time.monotonic() < deadline, 'depth kept coming without LiDAR'
    latest = sink.wait_for(lambda s: s.diagnostics and any(
        int(v) > int(before.get(k, 0)) for k, v in s.diagnostics[-1].items()
        if k.startswith('drops.sync_')) and s.diagnostics[-1], 10, 'sync drops counted')
    assert latest['_level'] == '1'
    assert_alive(depth_node)
    feeder.send_points = True
    sink.wait_for(lambda s: len(s.depth) >= 2, 30, 'depth output to resume with LiDAR')


def test_time_jumping_back_is_counted_and_output_resumes(depth_node, graph):
    feeder, sink, _ = graph
    before = sink.drops('image_time_jump_back') + sink.drops('points_time_jump_back')
    with feeder.lock:
        # Also when this test runs alone: the CameraInfo stream starts in an earlier test.
        feeder.send_camera_info = True
        feeder.stamp_offset_ns = -30_000_000_000  # a bag loop: 30 s back
    sink.wait_for(lambda s: s.drops('image_time_jump_back') + s.drops('points_time_jump_back')
                  > before, 20, 'a counted time jump')
    # A pair already in the network when time jumped may still come out: wait for the new ones.
    sink.wait_for(lambda s: [m for m in s.depth
                             if stamp_ns(m.header) < time.time_ns() - 20_000_000_000],
                  30, 'depth stamped on the new (30 s earlier) timeline')
    assert_alive(depth_node)


def test_diagnostics_report_rates_latency_and_pairs(depth_node, graph):
    feeder, sink, _ = graph
    sink.clear()
    latest = sink.wait_for(lambda s: s.diagnostics[-1] if len(s.diagnostics) >= 4 else None,
                           20, 'diagnostics')
    assert float(latest['image_rate_hz']) == pytest.approx(CAMERA_HZ, rel=0.5)
    assert float(latest['points_rate_hz']) == pytest.approx(CAMERA_HZ / LIDAR_EVERY, rel=0.5)
    assert int(latest['pairs_processed']) > 10
    for stage in ('pre', 'model', 'post', 'total', 'stamp_to_publish', 'pair_gap'):
        assert float(latest[f'{stage}_ms_p95']) > 0.0
    # The feed's scans are stamped 7 ms before every third image: gaps of 7, 26 and 40 ms.
    assert 6.0 <= float(latest['pair_gap_ms_p50']) <= 41.0
    assert float(latest['pair_gap_ms_max']) <= 60.0, 'within sync_max_offset'
    assert 0.0 < float(latest['images_with_depth_fraction']) <= 1.0
    assert float(latest['total_ms_p95']) >= float(latest['model_ms_p50'])
    # The feed stamps with this machine's clock: stamp-to-publish covers the node's own stages.
    assert float(latest['stamp_to_publish_ms_p50']) >= float(latest['model_ms_p50'])


def test_sigterm_exits_cleanly(depth_node):
    assert_alive(depth_node)
    depth_node.send_signal(signal.SIGTERM)
    assert depth_node.wait(15) == 0, depth_node.log_path.read_text()[-4000:]
    log = depth_node.log_path.read_text()
    assert 'Traceback' not in log, log[-4000:]


# --- a second node: the `g2mono node` entry point with the other output/QoS options ---------

TOPICS_B = {'image': '/test_b/cam/image', 'camera_info': '/test_b/cam/info',
            'points': '/test_b/lidar'}


@pytest.fixture(scope='module')
def options_node(repo_root, checkpoint, graph, tmp_path_factory):
    """`python -m g2mono_ros node`: 16UC1, reliable inputs, best-effort outputs, timing, and a
    network input large enough to be slower than the camera."""
    _, _, test_node = graph
    feeder = Feeder(test_node, TOPICS_B, all_reliable=True)
    feeder.send_camera_info = True
    sink = Sink(test_node, prefix='/g2mono_b', node_name='depth_node_b',
                qos=qos_profile_sensor_data)
    feeder.start()
    log_path = tmp_path_factory.mktemp('node_b') / 'depth_node_b.log'
    # input_height 256 makes the network slower than the 30 Hz camera: pairs must be superseded.
    command = node_command(repo_root, checkpoint, '-p', 'output_encoding:=16UC1',
                           '-p', 'input_height:=256',
                           '-p', 'input_qos:=reliable', '-p', 'output_qos:=best_effort',
                           '-p', 'publish_timing:=true', '-p', 'publish_sparse:=false',
                           '-p', 'publish_colorized:=false', '-p', 'depth_topic:=/g2mono_b/depth',
                           '-p', 'max_dept:=5.0',  # a typo: warned about, not fatal
                           '-r', '__node:=depth_node_b', topics=TOPICS_B,
                           executable=(sys.executable, '-m', 'g2mono_ros', 'node'))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_path = log_path  # type: ignore[attr-defined]
    yield proc, feeder, sink, test_node
    feeder.stop()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_16uc1_output_with_reliable_inputs(options_node):
    proc, feeder, sink, _ = options_node
    sink.wait_for(lambda s: len(s.depth) >= 3, 90, '16UC1 depth images')
    assert_alive(proc)
    with sink.lock:
        msg = sink.depth[-1]
    assert stamp_ns(msg.header) in feeder.sent_images and msg.header.frame_id == FRAME_ID
    assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, '16UC1')
    depth_mm = image_to_numpy(msg)
    assert depth_mm.dtype == np.uint16 and depth_mm.shape == (HEIGHT, WIDTH)
    assert depth_mm.max() <= 20_000, 'millimetres, at most max_depth'


def test_unknown_parameter_is_named_in_a_warning(options_node):
    proc, _, sink, _ = options_node
    sink.wait_for(lambda s: len(s.depth) >= 1, 90, 'depth')
    assert "ignoring unknown parameter(s) 'max_dept'" in proc.log_path.read_text()


def test_optional_outputs_are_not_advertised(options_node):
    proc, _, sink, test_node = options_node
    sink.wait_for(lambda s: len(s.depth) >= 1, 60, 'depth')
    assert test_node.get_publishers_info_by_topic('/g2mono_b/sparse_depth') == []
    assert test_node.get_publishers_info_by_topic('/g2mono_b/depth/colorized') == []
    assert len(test_node.get_publishers_info_by_topic('/g2mono_b/camera_info')) == 1


def test_timing_topic_splits_each_pair_into_stages(options_node):
    proc, feeder, sink, _ = options_node
    sink.wait_for(lambda s: len(s.timing) >= 3, 30, 'timing messages')
    with sink.lock:
        status = sink.timing[-1]
    values = {kv.key: kv.value for kv in status.values}
    assert int(values['stamp_ns']) in feeder.sent_images
    wall = [int(values[key]) for key in ('stamp_ns', 'received_wall_ns', 'paired_wall_ns',
                                         'start_wall_ns', 'depth_publish_wall_ns',
                                         'published_wall_ns')]
    assert wall == sorted(wall), 'stamp <= received <= paired <= start <= publish <= done'
    for stage in ('pre', 'model', 'post', 'publish', 'sync_wait', 'queue', 'total'):
        assert float(values[f'{stage}_s']) >= 0.0
    assert float(values['total_s']) >= float(values['model_s'])


def test_best_aligned_pairs_run_when_the_model_is_slower_than_the_camera(options_node):
    proc, feeder, sink, _ = options_node
    sink.wait_for(lambda s: len(s.timing) >= 8, 120, 'eight processed pairs')
    assert_alive(proc)
    with sink.lock:
        runs = sorted(({kv.key: kv.value for kv in status.values} for status in sink.timing),
                      key=lambda values: int(values['start_wall_ns']))
    assert sink.drops('pair_superseded') + sink.drops('pair_stale') > 0
    stamps = [int(values['stamp_ns']) for values in runs]
    assert stamps == sorted(stamps), 'output in image time order'
    # Of each scan's three images (gaps 7, 26 and 40 ms) the one at the scan is the best; the
    # worker mostly gets to choose among them, so it mostly runs that one.
    gaps_ms = [float(values['pair_gap_s']) * 1e3 for values in runs[1:]]
    assert np.median(gaps_ms) <= 8.0, gaps_ms
    for previous, current in zip(runs, runs[1:]):
        # A pair waits at most the latency window: one processing period, or one LiDAR period
        # (0.1 s) when that is longer; never behind a growing queue.
        busy_s = (int(previous['published_wall_ns']) - int(previous['start_wall_ns'])) * 1e-9
        assert float(current['queue_s']) <= max(busy_s, 0.1) * 1.5 + 0.1


def test_sigint_exits_cleanly(options_node):
    proc = options_node[0]
    # Also when this test runs alone: a Ctrl-C before start-up is done is Python's own
    # KeyboardInterrupt (exit -2), not the node's shutdown path this test is about.
    deadline = time.monotonic() + 90
    while 'depth node ready' not in proc.log_path.read_text():
        assert_alive(proc)
        assert time.monotonic() < deadline, 'the node did not start'
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0, proc.log_path.read_text()[-4000:]
    assert 'Traceback' not in proc.log_path.read_text(), proc.log_path.read_text()[-4000:]


def test_sigint_during_a_long_inference_exits_cleanly(repo_root, checkpoint, graph,
                                                       tmp_path):
    """A huge network input keeps the worker inside torch for seconds when SIGINT comes."""
    feeder, _, _ = graph
    feeder.send_camera_info = True
    feeder.send_points = True
    log_path = tmp_path / 'depth_node_c.log'
    command = node_command(repo_root, checkpoint, '-p', 'input_height:=1024',
                           '-p', 'depth_topic:=/g2mono_c/depth', '-r', '__node:=depth_node_c')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while 'depth node ready' not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, 'depth_node_c did not start'
            time.sleep(0.2)
        time.sleep(2.0)  # the first pair is in the network by now
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert 'Traceback' not in text and 'terminate called' not in text, text[-4000:]
