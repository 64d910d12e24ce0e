"""The tf2_ros path: ``TfTransformSource`` against a real StaticTransformBroadcaster, and
``depth_node`` taking its extrinsic from TF (no ``extrinsic.*`` parameters) over DDS.

Needs tf2_ros (a full ROS 2 install); skipped in the pip venv, where tf2_ros cannot be
installed. The resolver's logic is tested here without it in ``test_fusion_extrinsic.py``.
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
pytest.importorskip('tf2_ros')

from geometry_msgs.msg import TransformStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from tf2_ros.static_transform_broadcaster import StaticTransformBroadcaster  # noqa: E402

from g2mono_ros.errors import TransformError  # noqa: E402
from g2mono_ros.fusion.projection import project_points_to_depth  # noqa: E402
from g2mono_ros.fusion.transforms import (invert_transform,  # noqa: E402
                                          transform_from_translation_quaternion)
from g2mono_ros.models import create_model  # noqa: E402
from g2mono_ros.models.checkpoint import save_checkpoint  # noqa: E402
from g2mono_ros.ros.codecs import (  # noqa: E402
    camera_info_to_model, image_to_numpy, numpy_to_image, xyz_to_pointcloud2)
from g2mono_ros.ros.tf_lookup import TfTransformSource  # noqa: E402
from test_node_dds import DEPTH_NODE, make_camera_info, make_header, make_points  # noqa: E402

pytestmark = [pytest.mark.timeout(240), pytest.mark.dds]

# base_link -> lidar (REP 103, 20 cm up) and base_link -> camera_optical (optical rotation).
BASE_LIDAR = ((0.10, 0.0, 0.20), (0.0, 0.0, 0.0, 1.0))
BASE_CAMERA = ((0.15, 0.03, 0.05), (-0.5, 0.5, -0.5, 0.5))
T_CAM_LIDAR = (invert_transform(transform_from_translation_quaternion(*BASE_CAMERA))
               @ transform_from_translation_quaternion(*BASE_LIDAR))


def _stamped(node: Node, parent: str, child: str, pose) -> TransformStamped:
    msg = TransformStamped()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id, msg.child_frame_id = parent, child
    (msg.transform.translation.x, msg.transform.translation.y,
     msg.transform.translation.z) = pose[0]
    (msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z,
     msg.transform.rotation.w) = pose[1]
    return msg


@pytest.fixture
def graph():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('g2mono_tf_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    broadcaster = StaticTransformBroadcaster(node)
    broadcaster.sendTransform([_stamped(node, 'base_link', 'lidar', BASE_LIDAR),
                               _stamped(node, 'base_link', 'camera_optical', BASE_CAMERA)])
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    spinner.join(5.0)


def test_static_chain_is_composed_and_known_static(graph):
    node, _ = graph
    source = TfTransformSource(node)
    deadline = time.monotonic() + 20.0
    while True:
        try:
            T = source.lookup('camera_optical', 'lidar', time.time_ns(), 0.5)
            break
        except TransformError:
            assert time.monotonic() < deadline, 'no transform from /tf_static within 20 s'
    np.testing.assert_allclose(T, T_CAM_LIDAR, atol=1e-9)
    deadline = time.monotonic() + 5.0
    while not source.is_static('camera_optical', 'lidar'):
        assert time.monotonic() < deadline, '/tf_static not seen by the static tree'
        time.sleep(0.05)
    with pytest.raises(TransformError):
        source.lookup('camera_optical', 'no_such_frame', time.time_ns(), 0.2)


def test_close_leaves_the_node_as_it_was(graph):
    """Lifecycle cleanup then configure: no second tf2_frames service, no leftover /tf
    subscriptions (tf2_ros's Buffer(node=...) registers a service that outlives it)."""
    node, _ = graph

    def registered():
        # Service.srv_name (Humble), .service_name (newer releases).
        return (sorted(getattr(s, 'service_name', None) or s.srv_name for s in node.services),
                sorted(s.topic_name for s in node.subscriptions))

    before = registered()
    for _ in range(2):
        source = TfTransformSource(node)
        assert any(name.endswith('tf2_frames') for name in registered()[0])
        source.close()
        assert registered() == before


def test_depth_node_takes_its_extrinsic_from_tf(graph, repo_root, tmp_path):
    node, _ = graph
    weights = save_checkpoint(tmp_path / 'seed_small.pt', create_model('seed_small'),
                              variant='seed_small', model_kwargs={}, max_depth=20.0,
                              input_height=64, input_width=128)
    ns = 'tf_rig'
    lock = threading.Lock()
    sparse: list[Image] = []
    sent: dict[int, np.ndarray] = {}

    def keep(msg: Image) -> None:
        with lock:
            sparse.append(msg)

    node.create_subscription(Image, f'/{ns}/g2mono/sparse_depth', keep, 10)
    pub_image = node.create_publisher(Image, f'/{ns}/camera/image_raw', qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, f'/{ns}/camera/camera_info',
                                     qos_profile_sensor_data)
    pub_points = node.create_publisher(PointCloud2, f'/{ns}/lidar/points', 10)
    log_path = tmp_path / 'depth_node.log'
    command = [DEPTH_NODE, '--ros-args', '-r', f'__ns:=/{ns}',
               '--params-file', str(repo_root / 'config' / 'depth.yaml'),
               '-p', f'weights:={weights}', '-p', 'device:=cpu', '-p', 'input_height:=64',
               '-p', 'max_depth:=20', '-p', 'publish_sparse:=true',
               '-p', 'extrinsic.tf_timeout:=0.5']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    rng = np.random.default_rng(5)
    try:
        deadline = time.monotonic() + 150.0
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, 'no sparse depth: ' + log_path.read_text()[-3000:]
            stamp = time.time_ns()
            xyz = make_points(rng)
            sent[stamp] = xyz
            pub_points.publish(xyz_to_pointcloud2(xyz, make_header(stamp, 'lidar')))
            header = make_header(stamp, 'camera_optical')
            pub_info.publish(make_camera_info(header))
            pub_image.publish(numpy_to_image(np.zeros((96, 160, 3), np.uint8), 'rgb8', header))
            time.sleep(0.1)
            with lock:
                if len(sparse) >= 2:
                    msgs = list(sparse)
                    break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
    assert 'extrinsic from TF' in log_path.read_text()
    camera = camera_info_to_model(make_camera_info(make_header(0, 'camera_optical')))
    for msg in msgs:
        xyz = sent[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec]
        expected, _ = project_points_to_depth(xyz, T_CAM_LIDAR, camera)
        got = image_to_numpy(msg)
        got = np.where(np.isnan(got), 0.0, got)
        assert np.count_nonzero(got) > 100
        # tf2 composes the chain in C++ doubles, the reference in numpy: a point exactly on a
        # pixel border may round the other way, nothing more.
        assert np.mean(got == expected) > 0.999
