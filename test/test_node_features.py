"""depth_node over real DDS with compressed input, the PointCloud2 output, live parameters through
the parameter service (what ``ros2 param set`` calls), lazy mode and stamp/sim-time diagnostics.

One node process (compressed png input, points on) serves the tests in file order; a second one
runs on ``use_sim_time`` with a ``/clock`` the test publishes, as ``ros2 bag play --clock`` does.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402

from g2mono_ros.fusion.cloud import depth_to_points  # noqa: E402
from g2mono_ros.ros.codecs import (camera_info_to_model, image_to_numpy,  # noqa: E402
                                   pointcloud2_to_xyz)
from g2mono_ros.ros.compressed import to_compressed_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_node_dds import (FRAME_ID, Feeder, Sink, assert_alive, make_camera_info, make_header,  # noqa: E402
                           node_command, stamp_ns, start_node_process, stop_node_process)

TOPICS = {'image': '/feat/cam/image', 'camera_info': '/feat/cam/info', 'points': '/feat/lidar'}
NODE = 'depth_node_feat'

pytestmark = [pytest.mark.timeout(300), pytest.mark.dds]


class CompressingPublisher:
    """Publishes each Image the Feeder makes as a png CompressedImage on ``<image>/compressed``
    (what image_transport's compressed republisher would put on the wire)."""

    def __init__(self, node: Node, image_topic: str) -> None:
        self.pub = node.create_publisher(CompressedImage, f'{image_topic}/compressed', 10)

    def publish(self, msg: Image) -> None:
        self.pub.publish(to_compressed_image(image_to_numpy(msg), 'png', msg.header))


class Graph:
    def __init__(self, name: str, topics: dict[str, str], compressed: bool) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.feeder = Feeder(self.node, topics)
        self.feeder.send_camera_info = True
        if compressed:
            self.feeder.pub_image = CompressingPublisher(self.node, topics['image'])
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)

    def start(self) -> None:
        self.spinner.start()
        self.feeder.start()

    def close(self) -> None:
        self.feeder.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.spinner.join(5.0)

    def call(self, srv_type, service: str, request, timeout: float = 30.0):
        client = self.node.create_client(srv_type, service)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f'{service} not available'
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                assert time.monotonic() < deadline, f'{service} did not answer'
                time.sleep(0.05)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name: str, **values):
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()
                              for name, value in values.items()]
        return self.call(SetParameters, f'/{node_name}/set_parameters', request).results




@pytest.fixture(scope='module')
def feature_node(repo_root, tmp_path_factory):
    """The shipped demo weights: trained, so the depth (and the cloud) is mostly valid; random
    weights leave many frames with almost no positive depth."""
    from g2mono_ros.weights import DEMO_WEIGHTS

    graph = Graph('g2mono_test_features', TOPICS, compressed=True)
    watcher = Node('g2mono_test_watcher', context=graph.context)  # output subscriber (lazy test)
    graph.executor.add_node(watcher)
    outputs = Sink(watcher, prefix='/feat', node_name=NODE)
    graph.points: list[PointCloud2] = []  # type: ignore[attr-defined]
    watcher.create_subscription(PointCloud2, '/feat/depth/points', outputs._keep(graph.points),
                                10)
    diagnostics = Sink(graph.node, prefix='/feat_none', node_name=NODE)
    graph.start()
    command = node_command(repo_root, DEMO_WEIGHTS, '-p', 'max_depth:=0.0',
                           '-p', 'depth_topic:=/feat/depth',
                           '-p', 'image_transport:=compressed', '-p', 'publish_points:=true',
                           '-p', 'publish_colorized:=false', '-p', 'points_decimation:=2',
                           '-r', f'__node:={NODE}', topics=TOPICS)
    proc = start_node_process(command, tmp_path_factory.mktemp('feat') / 'node.log')
    yield proc, graph, outputs, diagnostics, watcher
    stop_node_process(proc)
    graph.close()


def test_compressed_input_gives_depth_stamped_like_the_image(feature_node):
    proc, graph, outputs, _, _ = feature_node
    outputs.wait_for(lambda s: len(s.depth) >= 3, 90, 'depth from compressed images')
    assert_alive(proc)
    with outputs.lock:
        msg = outputs.depth[-1]
    assert stamp_ns(msg.header) in graph.feeder.sent_images and msg.header.frame_id == FRAME_ID
    assert (msg.height, msg.width) == (96, 160)
    depth = image_to_numpy(msg)
    estimated = ~np.isnan(depth)  # REP 118: NaN = no estimate
    assert estimated.any() and np.isfinite(depth[estimated]).all()


def test_point_cloud_is_the_depth_image_through_the_intrinsics(feature_node):
    proc, graph, outputs, _, _ = feature_node
    outputs.wait_for(lambda s: len(graph.points) >= 3, 30, 'point clouds')
    with outputs.lock:
        depth_by_stamp = {stamp_ns(m.header): m for m in outputs.depth}
        cloud = next(c for c in reversed(graph.points) if stamp_ns(c.header) in depth_by_stamp)
    assert cloud.header.frame_id == FRAME_ID  # the camera optical frame, the image's stamp
    assert [f.name for f in cloud.fields] == ['x', 'y', 'z', 'rgb']
    stamp = stamp_ns(cloud.header)
    depth = image_to_numpy(depth_by_stamp[stamp])
    camera = camera_info_to_model(make_camera_info(make_header(0, FRAME_ID)))
    sent_rgb = graph.feeder.sent_images[stamp]
    expected_xyz, expected_rgb = depth_to_points(depth, camera, decimation=2, rgb=sent_rgb)
    xyz, extras = pointcloud2_to_xyz(cloud, ('rgb',))
    assert len(xyz) == len(expected_xyz) > 1000
    np.testing.assert_array_equal(xyz, expected_xyz)
    packed = extras['rgb'].astype(np.float32).view(np.uint32)
    got_rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
    np.testing.assert_array_equal(got_rgb, expected_rgb)  # png: the colours as sent


def test_live_parameters_accept_valid_values_and_apply_them(feature_node):
    proc, graph, outputs, _, _ = feature_node
    results = graph.set_parameters(NODE, points_decimation=4, max_range=60,
                                   publish_colorized=True)
    assert [r.successful for r in results] == [True, True, True], [r.reason for r in results]
    request = GetParameters.Request(names=['points_decimation', 'max_range'])
    values = graph.call(GetParameters, f'/{NODE}/get_parameters', request).values
    # `ros2 param set ... max_range 60` sends an integer: accepted (the node widens it)
    assert (values[0].integer_value, values[1].integer_value) == (4, 60)
    graph.points.clear()
    outputs.clear()
    outputs.wait_for(lambda s: len(s.colorized) >= 2 and len(graph.points) >= 3, 30,
                     'colorized output switched on, and clouds')
    with outputs.lock:
        sizes = [c.width for c in graph.points[-2:]]
    assert all(size <= 24 * 40 for size in sizes), 'every 4th row and column'
    assert 'parameters changed: points_decimation=4' in proc.log_path.read_text()
    results = graph.set_parameters(NODE, publish_colorized=False)
    assert results[0].successful
    deadline = time.monotonic() + 10
    while graph.node.get_publishers_info_by_topic('/feat/depth/colorized'):
        assert time.monotonic() < deadline, 'colorized publisher still advertised'
        time.sleep(0.1)


@pytest.mark.parametrize('values, reason', [
    ({'min_range': 500.0}, "parameter 'max_range' must be a finite number > 500.0"),
    ({'points_decimation': 0}, "parameter 'points_decimation' must be an integer >= 1"),
    ({'sync_max_offset': -1.0}, "parameter 'sync_max_offset' must be a finite number > 0.0"),
    ({'max_range': 'far'}, "parameter 'max_range' must be a finite number"),
    ({'weights': '/other.pt'}, 'read-only'),
    ({'publish_points': 'yes'}, 'Wrong parameter type'),
])
def test_live_parameters_reject_bad_values_with_the_reason(feature_node, values, reason):
    proc, graph, outputs, _, _ = feature_node
    request = GetParameters.Request(names=list(values))
    before = graph.call(GetParameters, f'/{NODE}/get_parameters', request).values
    (result,) = graph.set_parameters(NODE, **values)
    assert not result.successful
    assert reason in result.reason
    after = graph.call(GetParameters, f'/{NODE}/get_parameters', request).values
    assert after == before, 'a refused value must not be kept'
    assert_alive(proc)


def test_read_only_parameters_say_why_in_their_descriptor(feature_node):
    _, graph, _, _, _ = feature_node
    request = DescribeParameters.Request(names=['weights', 'image_topic', 'max_range'])
    weights, topic, max_range = graph.call(DescribeParameters, f'/{NODE}/describe_parameters',
                                           request).descriptors
    assert weights.read_only and 'read-only: it loads or shapes the network' in weights.description
    assert topic.read_only and 'restart the node' in topic.description
    assert not max_range.read_only


def test_lazy_mode_skips_inference_without_subscribers_and_says_so(feature_node):
    proc, graph, outputs, diagnostics, watcher = feature_node
    (result,) = graph.set_parameters(NODE, lazy=True)
    assert result.successful
    outputs.wait_for(lambda s: len(s.depth) >= 1, 30, 'depth while subscribed, lazy on')
    graph.executor.remove_node(watcher)
    watcher.destroy_node()  # nobody subscribes to any output now
    latest = diagnostics.wait_for(
        lambda s: s.diagnostics and s.diagnostics[-1]['lazy'].startswith('idle') and
        int(s.diagnostics[-1]['pairs_skipped_lazy']) >= 5 and s.diagnostics[-1], 30,
        'lazy idle in diagnostics')
    processed = int(latest['pairs_processed'])
    assert latest['_level'] == '0', 'idle is not a fault'
    time.sleep(1.5)
    later = diagnostics.latest_diagnostics()
    assert int(later['pairs_processed']) <= processed + 1  # one pair may have been in the network
    assert int(later['pairs_skipped_lazy']) > int(latest['pairs_skipped_lazy'])
    # A subscriber comes back: inference resumes.
    depth: list[Image] = []
    graph.node.create_subscription(Image, '/feat/depth', depth.append, 10)
    deadline = time.monotonic() + 30
    while len(depth) < 2:
        assert time.monotonic() < deadline, 'no depth after a subscriber came back'
        time.sleep(0.1)
    assert_alive(proc)


def test_replayed_stamps_do_not_make_latency_absurd(feature_node):
    proc, graph, _, diagnostics, _ = feature_node
    with graph.feeder.lock:  # a bag from three years ago, played without use_sim_time
        graph.feeder.stamp_offset_ns = -3 * 365 * 86400 * 1_000_000_000
    latest = diagnostics.wait_for(
        lambda s: s.diagnostics and 'in the past' in s.diagnostics[-1]['stamps'] and
        s.diagnostics[-1], 60, 'diagnostics noticing stamps in the past')
    assert latest['clock'] == 'system'
    assert 'stamp_to_publish not measured' in latest['stamps']
    assert float(latest['stamp_to_publish_ms_max']) < 10_000  # only the live ones were kept
    assert float(latest['total_ms_p50']) > 0
    assert_alive(proc)


# --- use_sim_time with /clock ------------------------------------------------------------------

SIM_TOPICS = {'image': '/sim/cam/image', 'camera_info': '/sim/cam/info', 'points': '/sim/lidar'}
SIM_NODE = 'depth_node_sim'
SIM_START_NS = 1_000_000 * 1_000_000_000  # a bag recorded at t = 1e6 s


def test_sim_time_follows_clock_and_latency_is_measured_on_it(repo_root, checkpoint, tmp_path):
    from rosgraph_msgs.msg import Clock

    graph = Graph('g2mono_test_sim', SIM_TOPICS, compressed=False)
    offset = SIM_START_NS - time.time_ns()
    graph.feeder.stamp_offset_ns = offset  # stamps on the bag's timeline
    diagnostics = Sink(graph.node, prefix='/sim', node_name=SIM_NODE)
    clock_pub = graph.node.create_publisher(Clock, '/clock', 10)
    stop = threading.Event()

    def run_clock() -> None:
        while not stop.is_set():
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(time.time_ns() + offset, 1_000_000_000)
            clock_pub.publish(msg)
            time.sleep(0.01)

    clock_thread = threading.Thread(target=run_clock, daemon=True)
    clock_thread.start()
    graph.start()
    command = node_command(repo_root, checkpoint, '-p', 'depth_topic:=/sim/depth',
                           '-p', 'use_sim_time:=true', '-r', f'__node:={SIM_NODE}',
                           topics=SIM_TOPICS)
    proc = start_node_process(command, tmp_path / 'sim.log')
    stamps: list[int] = []

    def on_diag(msg) -> None:
        if any(s.name.startswith(f'{SIM_NODE}: ') for s in msg.status):
            stamps.append(stamp_ns(msg.header))

    from diagnostic_msgs.msg import DiagnosticArray

    graph.node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    try:
        latest = diagnostics.wait_for(
            lambda s: s.diagnostics and int(s.diagnostics[-1]['pairs_processed']) >= 5 and
            s.diagnostics[-1], 90, 'sim-time node processing pairs')
        assert latest['clock'] == 'sim (/clock)'
        assert latest['stamps'].startswith('live')
        assert 0 < float(latest['stamp_to_publish_ms_p50']) < 10_000
        # diagnostics are stamped on the sim clock, not the wall clock
        assert stamps and abs(stamps[-1] - (time.time_ns() + offset)) < 5_000_000_000
        assert_alive(proc)
    finally:
        stop.set()
        stop_node_process(proc)
        clock_thread.join(2.0)
        graph.close()
