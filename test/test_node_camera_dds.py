"""depth_node over real DDS with a rectified stereo camera whose resolution changes mid-run:
P (not K + D) projects the LiDAR, the output follows the image size, CameraInfo goes by stamp,
and the network runs at the size recorded in the checkpoint (input_height left at 0)."""

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

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from g2mono_ros.fusion.projection import project_points_to_depth  # noqa: E402
from g2mono_ros.fusion.transforms import transform_from_translation_quaternion  # noqa: E402
from g2mono_ros.models import create_model  # noqa: E402
from g2mono_ros.models.checkpoint import save_checkpoint  # noqa: E402
from g2mono_ros.ros.codecs import (camera_info_to_model, image_to_numpy,  # noqa: E402
                                   numpy_to_image, xyz_to_pointcloud2)

pytestmark = [pytest.mark.timeout(240), pytest.mark.dds]

DEPTH_NODE = shutil.which('depth_node') or str(Path(sys.executable).parent / 'depth_node')
TOPICS = {'image': '/camtest/left/image_rect', 'camera_info': '/camtest/left/camera_info',
          'points': '/camtest/lidar'}
OUT = '/camtest/g2mono'
ROTATION = (0.5, -0.5, 0.5, 0.5)  # REP 103 LiDAR -> camera optical
TRANSLATION = (0.0, -0.05, 0.0)
SIZES = ((96, 160), (64, 128))  # (height, width) before and after the resolution change


def make_camera_info(header: Header, height: int, width: int) -> CameraInfo:
    """A rectified stereo right camera: P differs from K, strong D (must be ignored), Tx != 0."""
    info = CameraInfo()
    info.header = header
    info.height, info.width = height, width
    f = 0.8 * width
    info.distortion_model = 'plumb_bob'
    info.d = [-0.3, 0.1, 0.0, 0.0, 0.0]
    info.k = [f * 1.1, 0.0, width / 2 + 3, 0.0, f * 1.1, height / 2 - 2, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, width / 2, -f * 0.2, 0.0, f, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def header_at(stamp: int, frame_id: str) -> Header:
    header = Header()
    header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    header.frame_id = frame_id
    return header


def stamp_of(header: Header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Rig:
    """Publishes camera + CameraInfo (20 Hz) and LiDAR (same stamps) and records the outputs."""

    def __init__(self, node: Node) -> None:
        self.pub_image = node.create_publisher(Image, TOPICS['image'], 10)
        self.pub_info = node.create_publisher(CameraInfo, TOPICS['camera_info'], 10)
        self.pub_points = node.create_publisher(PointCloud2, TOPICS['points'], 10)
        self.lock = threading.Lock()
        self.size = SIZES[0]
        self.info_stamp_offset_ns = 0
        self.scans: dict[int, np.ndarray] = {}
        self.cameras: dict[int, CameraInfo] = {}
        self.depth: list[Image] = []
        self.sparse: list[Image] = []
        self.diagnostics: list[dict[str, str]] = []
        node.create_subscription(Image, f'{OUT}/depth', self._keep(self.depth), 10)
        node.create_subscription(Image, f'{OUT}/sparse_depth', self._keep(self.sparse), 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.rng = np.random.default_rng(5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _keep(self, store: list):
        def callback(msg) -> None:
            with self.lock:
                store.append(msg)
                del store[:-30]
        return callback

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith('depth_node_cam: '):
                with self.lock:
                    self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                height, width = self.size
                offset = self.info_stamp_offset_ns
            stamp = time.time_ns()
            header = header_at(stamp, 'camtest_optical')
            rgb = np.full((height, width, 3), 90, np.uint8)
            rgb[:, : width // 2, 0] = 200
            info = make_camera_info(header_at(stamp + offset, 'camtest_optical'), height, width)
            x = self.rng.uniform(3.0, 12.0, 1500)
            xyz = np.stack([x, self.rng.uniform(-0.7, 0.7, x.size) * x,
                            self.rng.uniform(-0.5, 0.5, x.size) * x], 1).astype(np.float32)
            with self.lock:
                self.scans[stamp] = xyz
                self.cameras[stamp] = info
            self.pub_info.publish(info)
            self.pub_image.publish(numpy_to_image(rgb, 'rgb8', header))
            self.pub_points.publish(xyz_to_pointcloud2(xyz, header_at(stamp, 'camtest_lidar')))
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                result = predicate(self)
            if result:
                return result
            time.sleep(0.05)
        pytest.fail(f'timed out after {timeout} s waiting for {what}')


@pytest.fixture(scope='module')
def rig_and_node(repo_root, tmp_path_factory):
    weights = tmp_path_factory.mktemp('w') / 'seed_small_64x128.pt'
    save_checkpoint(weights, create_model('seed_small'), variant='seed_small', model_kwargs={},
                    max_depth=20.0, input_height=64, input_width=128)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('g2mono_camera_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rig = Rig(node)
    log_path = tmp_path_factory.mktemp('node') / 'depth_node.log'
    command = [DEPTH_NODE, '--ros-args', '--params-file', str(repo_root / 'config' / 'depth.yaml'),
               '-r', '__node:=depth_node_cam', '-p', f'weights:={weights}', '-p', 'device:=cpu',
               '-p', 'camera_model:=rectified', '-p', 'publish_sparse:=true',
               '-p', 'diagnostics_period:=0.25', '-p', 'sync_max_offset:=0.001',
               '-p', f'extrinsic.translation:={list(TRANSLATION)}',
               '-p', f'extrinsic.rotation:={list(ROTATION)}',
               '-p', f'image_topic:={TOPICS["image"]}',
               '-p', f'camera_info_topic:={TOPICS["camera_info"]}',
               '-p', f'points_topic:={TOPICS["points"]}', '-p', f'depth_topic:={OUT}/depth']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_path = log_path  # type: ignore[attr-defined]
    yield rig, proc
    rig.stop()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    spinner.join(5.0)


def _check_sparse(rig: Rig, msg: Image) -> None:
    """The sparse output is the LiDAR projected with P of the image's own CameraInfo."""
    stamp = stamp_of(msg.header)
    with rig.lock:
        xyz, info = rig.scans[stamp], rig.cameras[stamp]
    camera = camera_info_to_model(info, 'rectified')
    T = transform_from_translation_quaternion(np.asarray(TRANSLATION), np.asarray(ROTATION))
    expected, _ = project_points_to_depth(xyz, T, camera, min_range=0.5, max_range=100.0)
    got = image_to_numpy(msg)
    assert got.shape == (info.height, info.width)
    assert np.count_nonzero(np.isfinite(got)) > 100
    np.testing.assert_array_equal(got, np.where(expected > 0, expected, np.nan))
    # Had D been applied (the raw path), the points would land elsewhere.
    raw, _ = project_points_to_depth(xyz, T, camera_info_to_model(info, 'raw'), min_range=0.5,
                                     max_range=100.0)
    assert not np.array_equal(raw > 0, expected > 0)


def _alive(proc) -> None:
    if proc.poll() is not None:
        pytest.fail(f'depth_node exited with {proc.returncode}:\n{proc.log_path.read_text()}')


def test_rectified_camera_and_the_checkpoint_input_size(rig_and_node) -> None:
    rig, proc = rig_and_node
    rig.wait_for(lambda r: len(r.sparse) >= 3 and len(r.depth) >= 3, 90, 'depth and sparse')
    _alive(proc)
    with rig.lock:
        sparse = list(rig.sparse)
    for msg in sparse:
        _check_sparse(rig, msg)
    log = proc.log_path.read_text()
    assert 'network input 64 x 128' in log, log[-3000:]
    assert 'looks' not in log, 'image_rect with camera_model rectified: no mismatch warning'


def test_resolution_change_mid_run_output_follows_the_image(rig_and_node) -> None:
    rig, proc = rig_and_node
    with rig.lock:
        rig.size = SIZES[1]
    new_size = rig.wait_for(
        lambda r: [m for m in r.depth[-3:] if (m.height, m.width) == SIZES[1]], 60,
        'depth at the new size')
    _alive(proc)
    assert new_size
    rig.wait_for(lambda r: len([m for m in r.sparse if (m.height, m.width) == SIZES[1]]) >= 2,
                 30, 'sparse depth at the new size')
    with rig.lock:
        depth, sparse = list(rig.depth), [m for m in rig.sparse
                                          if (m.height, m.width) == SIZES[1]]
        cameras = dict(rig.cameras)
    for msg in depth:  # every output has its image's size, before and after the change
        info = cameras[stamp_of(msg.header)]
        assert (msg.height, msg.width) == (info.height, info.width)
    for msg in sparse:
        _check_sparse(rig, msg)
    diagnostics = rig.diagnostics[-1]
    assert int(diagnostics.get('drops.camera_info_mismatch', 0)) == 0
    assert int(diagnostics.get('drops.camera_info_fallback', 0)) == 0


def test_camera_info_with_other_stamps_falls_back_with_a_counted_warning(rig_and_node) -> None:
    rig, proc = rig_and_node
    with rig.lock:
        rig.info_stamp_offset_ns = 1_000_000  # a driver that stamps CameraInfo on its own
        rig.depth.clear()
    rig.wait_for(lambda r: r.diagnostics and
                 int(r.diagnostics[-1].get('drops.camera_info_fallback', 0)) >= 3, 30,
                 'camera_info_fallback counted in diagnostics')
    rig.wait_for(lambda r: len(r.depth) >= 3, 30, 'depth output to go on')
    _alive(proc)
    with rig.lock:
        assert all((m.height, m.width) == SIZES[1] for m in rig.depth)
    assert 'camera_info_fallback: no CameraInfo stamped' in proc.log_path.read_text()
