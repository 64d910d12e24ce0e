"""Two depth_node processes in two namespaces at once over DDS, each with its own extrinsic.

The installed console script with the shipped YAML (keyed ``/**``) and only ``-r __ns:=...``:
the relative default topics land in each namespace, each node projects with its own extrinsic,
and a ``qos_overrides.*`` parameter changes the reliability of one node's depth publisher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from g2mono_ros.fusion.projection import project_points_to_depth  # noqa: E402
from g2mono_ros.fusion.transforms import transform_from_translation_quaternion  # noqa: E402
from g2mono_ros.models import create_model  # noqa: E402
from g2mono_ros.models.checkpoint import save_checkpoint  # noqa: E402
from g2mono_ros.ros.codecs import (  # noqa: E402
    camera_info_to_model, image_to_numpy, numpy_to_image, xyz_to_pointcloud2)
from test_node_dds import DEPTH_NODE, make_camera_info, make_header, make_points  # noqa: E402

pytestmark = [pytest.mark.timeout(240), pytest.mark.dds]

#: namespace -> (translation, rotation): LiDAR -> camera optical, different per robot.
RIGS = {
    'cam_left': ((0.05, -0.10, 0.02), (0.5, -0.5, 0.5, 0.5)),
    'cam_right': ((-0.30, 0.05, 0.10), (0.5416752, -0.4545195, 0.4545195, 0.5416752)),
}
QOS_OVERRIDE_NS = 'cam_right'
# A third rig with a forgotten extrinsic (identity on a REP 103 LiDAR): warned about.
WRONG_NS = 'cam_wrong'
NAMESPACES = {**RIGS, WRONG_NS: ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))}


@pytest.fixture(scope='module')
def rigs(repo_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('namespaces')
    weights = save_checkpoint(work / 'seed_small.pt', create_model('seed_small'),
                              variant='seed_small', model_kwargs={}, max_depth=20.0,
                              input_height=64, input_width=128)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('g2mono_test_namespaces', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    lock = threading.Lock()
    pubs, sent, sparse = {}, {ns: {} for ns in NAMESPACES}, {ns: [] for ns in NAMESPACES}
    diagnostics: dict[str, list[dict[str, str]]] = {ns: [] for ns in NAMESPACES}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            ns = status.name.split('/', 1)[0]
            if ns in diagnostics:
                values = {kv.key: kv.value for kv in status.values}
                values['_name'] = status.name
                with lock:
                    diagnostics[ns].append(values)

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    for ns in NAMESPACES:
        # Relative names as a driver in that namespace would publish them.
        pubs[ns] = (node.create_publisher(Image, f'/{ns}/camera/image_raw',
                                          qos_profile_sensor_data),
                    node.create_publisher(CameraInfo, f'/{ns}/camera/camera_info',
                                          qos_profile_sensor_data),
                    node.create_publisher(PointCloud2, f'/{ns}/lidar/points',
                                          qos_profile_sensor_data))

        def keep(msg, ns=ns):
            with lock:
                sparse[ns].append(msg)
        node.create_subscription(Image, f'/{ns}/g2mono/sparse_depth', keep, 10)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    procs = {}
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    for ns, (t, q) in NAMESPACES.items():
        command = [DEPTH_NODE, '--ros-args', '-r', f'__ns:=/{ns}',
                   '--params-file', str(repo_root / 'config' / 'depth.yaml'),
                   '-p', f'weights:={weights}', '-p', 'device:=cpu', '-p', 'input_height:=64',
                   '-p', 'max_depth:=20', '-p', 'publish_sparse:=true',
                   '-p', 'diagnostics_period:=0.5',
                   '-p', f'extrinsic.translation:={list(t)}',
                   '-p', f'extrinsic.rotation:={list(q)}']
        if ns == QOS_OVERRIDE_NS:
            command += ['-p', f'qos_overrides./{ns}/g2mono/depth.publisher.reliability:='
                              'best_effort']
        log_path = work / f'{ns}.log'
        with open(log_path, 'w') as log:
            procs[ns] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs[ns].log_path = log_path

    stop = threading.Event()
    rng = np.random.default_rng(3)

    def feed() -> None:
        frame = 0
        while not stop.is_set():
            for i, ns in enumerate(NAMESPACES):
                stamp = time.time_ns() + i  # distinct stamps per rig
                xyz = make_points(rng)
                with lock:
                    sent[ns][stamp] = xyz
                pub_image, pub_info, pub_points = pubs[ns]
                pub_points.publish(xyz_to_pointcloud2(xyz, make_header(stamp, f'{ns}_lidar')))
                header = make_header(stamp, f'{ns}_optical')
                pub_info.publish(make_camera_info(header))
                rgb = np.full((96, 160, 3), frame % 256, np.uint8)
                pub_image.publish(numpy_to_image(rgb, 'rgb8', header))
            frame += 1
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    yield procs, node, lock, sent, sparse, diagnostics
    stop.set()
    feeder.join(5.0)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    spinner.join(5.0)


def _wait(predicate, timeout_s: float, what: str, procs) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ns, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f'{ns} depth_node exited {proc.returncode}:\n'
                            f'{proc.log_path.read_text()[-3000:]}')
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f'timed out after {timeout_s} s waiting for {what}')


def test_each_namespace_projects_with_its_own_extrinsic(rigs):
    procs, _, lock, sent, sparse, _ = rigs

    def enough() -> bool:
        with lock:
            return all(len(sparse[ns]) >= 2 for ns in RIGS)

    _wait(enough, 150, 'sparse depth from both namespaces', procs)
    for ns, (t, q) in RIGS.items():
        T = transform_from_translation_quaternion(np.asarray(t), np.asarray(q))
        with lock:
            msgs = list(sparse[ns])
            scans = dict(sent[ns])
        camera = camera_info_to_model(make_camera_info(make_header(0, f'{ns}_optical')))
        for msg in msgs:
            assert msg.header.frame_id == f'{ns}_optical'
            xyz = scans[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec]
            expected, _ = project_points_to_depth(xyz, T, camera, min_range=0.5, max_range=100.0)
            got = image_to_numpy(msg)
            got = np.where(np.isnan(got), 0.0, got)  # REP 118: NaN or 0 mark "no point"
            assert np.count_nonzero(got) > 100
            np.testing.assert_array_equal(got, expected)
    # The two extrinsics give different images of one scan: the check above tells them apart.
    left, right = (transform_from_translation_quaternion(np.asarray(t), np.asarray(q))
                   for t, q in RIGS.values())
    assert not np.array_equal(project_points_to_depth(xyz, left, camera)[0],
                              project_points_to_depth(xyz, right, camera)[0])


def test_qos_override_parameter_sets_the_depth_publishers_reliability(rigs):
    procs, node, *_ = rigs

    def reliability(ns: str):
        infos = node.get_publishers_info_by_topic(f'/{ns}/g2mono/depth')
        return infos[0].qos_profile.reliability if infos else None

    _wait(lambda: reliability('cam_left') is not None and reliability(QOS_OVERRIDE_NS)
          is not None, 60, 'both depth publishers', procs)
    assert reliability('cam_left') == ReliabilityPolicy.RELIABLE  # output_qos default
    assert reliability(QOS_OVERRIDE_NS) == ReliabilityPolicy.BEST_EFFORT


def test_a_forgotten_extrinsic_is_warned_about_per_namespace(rigs):
    """Identity on a REP 103 LiDAR: no point lands in the image; log + diagnostics say so."""
    procs, _, lock, _, _, diagnostics = rigs

    def warned() -> bool:
        with lock:
            latest = diagnostics[WRONG_NS][-1:] + diagnostics['cam_left'][-1:]
        return (len(latest) == 2 and int(latest[0].get('drops.extrinsic_suspect', 0)) > 0
                and 'points_in_image_pct' in latest[1])

    _wait(warned, 120, 'an extrinsic_suspect count on /diagnostics', procs)
    with lock:
        wrong, left = diagnostics[WRONG_NS][-1], diagnostics['cam_left'][-1]
    assert wrong['_name'] == f'{WRONG_NS}/depth_node: depth completion'
    assert wrong['extrinsic_source'] == 'parameters' and wrong['points_in_image_pct'] == '0.0'
    assert 'drops.extrinsic_suspect' not in left and float(left['points_in_image_pct']) > 50
    log = procs[WRONG_NS].log_path.read_text()
    assert ("the transform from 'cam_wrong_lidar' to 'cam_wrong_optical' is probably wrong"
            in log)
