"""The lifecycle depth node over real DDS: transitions driven through its lifecycle services.

The node runs as ``python -m g2mono_ros node --lifecycle`` in a subprocess; a test node calls
``change_state`` / ``get_state`` like ``ros2 lifecycle set`` does and watches what flows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')
lifecycle_srv = pytest.importorskip('lifecycle_msgs.srv')

from lifecycle_msgs.msg import Transition  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_node_dds import (Feeder, Sink, assert_alive, node_command,  # noqa: E402
                           start_node_process, stop_node_process)

TOPICS = {'image': '/lc/cam/image', 'camera_info': '/lc/cam/info', 'points': '/lc/lidar'}
NODE = 'depth_node_lc'

pytestmark = [pytest.mark.timeout(240), pytest.mark.dds]


@pytest.fixture(scope='module')
def graph():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('g2mono_test_lifecycle', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    feeder = Feeder(node, TOPICS)
    feeder.send_camera_info = True
    sink = Sink(node, prefix='/lc', node_name=NODE)
    spinner.start()
    feeder.start()
    yield feeder, sink, node
    feeder.stop()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    spinner.join(5.0)


def _start(repo_root: Path, checkpoint: Path, log_path: Path, *extra: str) -> subprocess.Popen:
    command = node_command(repo_root, checkpoint, '-p', 'depth_topic:=/lc/depth',
                           '-r', f'__node:={NODE}', *extra, topics=TOPICS,
                           executable=(sys.executable, '-m', 'g2mono_ros', 'node', '--lifecycle'))
    return start_node_process(command, log_path)


@pytest.fixture(scope='module')
def lifecycle_node(repo_root, checkpoint, graph, tmp_path_factory):
    proc = _start(repo_root, checkpoint, tmp_path_factory.mktemp('lc') / 'node.log')
    yield proc
    stop_node_process(proc)


class Lifecycle:
    """Client side of ``/<node>/change_state`` and ``/<node>/get_state``."""

    def __init__(self, node: Node, name: str) -> None:
        self.change = node.create_client(lifecycle_srv.ChangeState, f'/{name}/change_state')
        self.get = node.create_client(lifecycle_srv.GetState, f'/{name}/get_state')

    @staticmethod
    def _call(client, request, timeout: float = 60.0):
        assert client.wait_for_service(timeout_sec=60.0), f'{client.srv_name} not available'
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            assert time.monotonic() < deadline, f'{client.srv_name} did not answer'
            time.sleep(0.05)
        return future.result()

    def state(self) -> str:
        return self._call(self.get, lifecycle_srv.GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = lifecycle_srv.ChangeState.Request()
        request.transition.id = transition_id
        return self._call(self.change, request).success




def _assert_quiet(sink: Sink, seconds: float) -> None:
    time.sleep(1.0)  # a pair already in the network may still come out
    sink.clear()
    time.sleep(seconds)
    with sink.lock:
        assert sink.depth == [], 'depth published while not active'


def test_walks_configure_activate_deactivate_activate_cleanup(lifecycle_node, graph):
    feeder, sink, test_node = graph
    lc = Lifecycle(test_node, NODE)
    assert lc.state() == 'unconfigured'
    _assert_quiet(sink, 1.0)
    assert test_node.get_publishers_info_by_topic('/lc/depth') == []

    assert lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == 'inactive'
    assert len(test_node.get_publishers_info_by_topic('/lc/depth')) == 1
    assert test_node.get_subscriptions_info_by_topic(TOPICS['image']) == []
    _assert_quiet(sink, 1.0)

    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    assert lc.state() == 'active'
    sink.wait_for(lambda s: len(s.depth) >= 3, 60, 'depth once active')
    assert len(test_node.get_subscriptions_info_by_topic(TOPICS['image'])) == 1

    assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    assert lc.state() == 'inactive'
    assert test_node.get_subscriptions_info_by_topic(TOPICS['image']) == []
    _assert_quiet(sink, 1.5)
    log = lifecycle_node.log_path.read_text()
    assert 'network kept loaded' in log

    # Re-activation reuses the loaded network: no second "configured" line.
    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    sink.wait_for(lambda s: len(s.depth) >= 3, 30, 'depth after re-activation')
    assert lifecycle_node.log_path.read_text().count('configured: network loaded') == 1

    assert not lc.transition(Transition.TRANSITION_CLEANUP), 'cleanup is not allowed from active'
    assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    assert lc.transition(Transition.TRANSITION_CLEANUP)
    assert lc.state() == 'unconfigured'
    deadline = time.monotonic() + 10
    while test_node.get_publishers_info_by_topic('/lc/depth'):
        assert time.monotonic() < deadline, 'depth publisher still there after cleanup'
        time.sleep(0.1)
    assert_alive(lifecycle_node)

    # A live parameter set while unconfigured is used by the next configure.
    request = SetParameters.Request()
    request.parameters = [Parameter('publish_points', value=True).to_parameter_msg()]
    (result,) = Lifecycle._call(test_node.create_client(SetParameters,
                                                        f'/{NODE}/set_parameters'),
                                request).results
    assert result.successful
    assert test_node.get_publishers_info_by_topic('/lc/depth/points') == []

    # And back up again from scratch.
    assert lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    sink.wait_for(lambda s: len(s.depth) >= 2, 60, 'depth after cleanup and a new configure')
    assert len(test_node.get_publishers_info_by_topic('/lc/depth/points')) == 1


def test_shutdown_transition_and_sigint_exit_cleanly(lifecycle_node, graph):
    _, _, test_node = graph
    lc = Lifecycle(test_node, NODE)
    assert lc.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert lc.state() == 'finalized'
    lifecycle_node.send_signal(signal.SIGINT)
    assert lifecycle_node.wait(15) == 0, lifecycle_node.log_path.read_text()[-4000:]
    assert 'Traceback' not in lifecycle_node.log_path.read_text()


def test_a_missing_checkpoint_fails_configure_and_the_node_stays_unconfigured(
        repo_root, checkpoint, graph, tmp_path):
    _, _, test_node = graph
    proc = _start(repo_root, checkpoint, tmp_path / 'bad.log', '-p',
                  f'weights:={tmp_path / "missing.pt"}')
    try:
        lc = Lifecycle(test_node, NODE)
        assert lc.state() == 'unconfigured'
        assert not lc.transition(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == 'unconfigured'
        assert_alive(proc)
        assert "parameter 'weights': no checkpoint file" in proc.log_path.read_text()
    finally:
        stop_node_process(proc)
