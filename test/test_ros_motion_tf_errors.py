"""``TfMotion`` against tf2's error rules: every tf2 exception is a missing pose (never an error
out of the worker), and ROS 1 style frame ids (``/velodyne``, ``/odom``) are looked up without
the slash that tf2 rejects.

tf2_ros cannot be installed in the pip venv, so this uses a FAKE ``tf2_ros`` module (put in
``sys.modules`` for the test only). It copies what the real one does that matters here:
tf2_py's exception hierarchy (every exception derives from ``TransformException``) and
``BufferCore::validateFrameId``, which raises ``InvalidArgumentException`` for an empty frame id
or one that starts with ``/``. ``test_motion_tf.py`` checks the same against the real tf2_ros.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip('rclpy')  # TfMotion.lookup builds rclpy Time and Duration

from g2mono_ros.ros.motion import TfMotion  # noqa: E402


def _fake_tf2_ros(frames: set[str]) -> types.ModuleType:
    module = types.ModuleType('tf2_ros')

    class TransformException(Exception):
        pass

    names = ('LookupException', 'ConnectivityException', 'ExtrapolationException',
             'InvalidArgumentException', 'TimeoutException')
    for name in names:
        setattr(module, name, type(name, (TransformException,), {}))
    module.TransformException = TransformException

    class Buffer:
        def __init__(self, cache_time=None, node=None):
            self.calls: list[tuple] = []
            # As tf2_ros: a tf2_frames service on the node and a jump callback on its clock.
            self.srv = None if node is None else node.create_service('tf2_frames')
            self.jump_handle = None if node is None else node.create_jump_callback()

        def _validate(self, argument: str, frame_id: str) -> None:
            if not frame_id:
                msg = (f'Invalid argument passed to lookupTransform argument {argument} in tf2 '
                       'frame_ids cannot be empty')
                raise module.InvalidArgumentException(msg)
            if frame_id.startswith('/'):
                msg = (f'Invalid argument "{frame_id}" passed to lookupTransform argument '
                       f"{argument} in tf2 frame_ids cannot start with a '/' like: ")
                raise module.InvalidArgumentException(msg)
            if frame_id not in frames:
                msg = f'"{frame_id}" passed to lookupTransform argument {argument} does not exist.'
                raise module.LookupException(msg)

        def lookup_transform_full(self, target_frame, target_time, source_frame, source_time,
                                  fixed_frame, timeout=None):
            self.calls.append((target_frame, source_frame, fixed_frame))
            self._validate('target_frame', target_frame)
            self._validate('source_frame', source_frame)
            self._validate('fixed_frame', fixed_frame)
            transform = SimpleNamespace(
                translation=SimpleNamespace(x=1.0, y=2.0, z=3.0),
                rotation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0))
            return SimpleNamespace(transform=transform)

    class TransformListener:
        def __init__(self, buffer, node, *, spin_thread=False, qos=None, static_qos=None):
            self.unregistered = False

        def unregister(self) -> None:
            self.unregistered = True

    module.Buffer = Buffer
    module.TransformListener = TransformListener
    return module


class FakeNode:
    """Records what a tf2_ros Buffer registers on an rclpy node and what is destroyed."""

    def __init__(self) -> None:
        self.services: list[str] = []
        self.jump_callbacks = 0

    def create_service(self, name: str) -> str:
        self.services.append(name)
        return name

    def destroy_service(self, service: str) -> bool:
        self.services.remove(service)
        return True

    def create_jump_callback(self) -> SimpleNamespace:
        self.jump_callbacks += 1

        def unregister() -> None:
            self.jump_callbacks -= 1

        return SimpleNamespace(unregister=unregister)


@pytest.fixture
def fake_tf2(monkeypatch):
    module = _fake_tf2_ros({'lidar', 'odom'})
    monkeypatch.setitem(sys.modules, 'tf2_ros', module)
    return module


def test_leading_slashes_are_dropped_before_tf2_sees_them(fake_tf2):
    motion = TfMotion(FakeNode(), '/odom', timeout_s=0.0)
    assert motion.fixed_frame == 'odom'
    lookup = motion.for_frame('/lidar').sensor_motion(np.array([0, 1_000_000]), 2_000_000)
    assert lookup.ok.all()
    np.testing.assert_allclose(lookup.T[:, :3, 3], [[1.0, 2.0, 3.0]] * 2)
    assert motion.buffer.calls and all(call == ('lidar', 'lidar', 'odom')
                                       for call in motion.buffer.calls)


@pytest.mark.parametrize('frame, exception', [('', 'InvalidArgumentException'),
                                              ('camera', 'LookupException')])
def test_every_tf2_exception_is_a_missing_pose(fake_tf2, frame, exception):
    motion = TfMotion(FakeNode(), 'odom', timeout_s=0.0)
    assert motion.lookup(frame, 0, 1_000_000, wait=False) is None
    assert motion.last_error.startswith(f'{exception}: ')
    lookup = motion.for_frame(frame).sensor_motion(np.array([0, 5_000_000]), 9_000_000)
    assert not lookup.ok.any()


def test_close_releases_only_what_tf_motion_created(fake_tf2):
    node = FakeNode()
    motion = TfMotion(node, 'odom')
    listener = motion.listener
    assert node.services == ['tf2_frames'] and node.jump_callbacks == 1
    motion.close()
    assert listener.unregistered and motion.listener is None
    assert node.services == [] and node.jump_callbacks == 0
    motion.close()  # a second cleanup is harmless
    # The extrinsic's listener fills a shared buffer: its owner releases it, not TfMotion.
    shared_buffer = fake_tf2.Buffer(node=node)
    shared = TfMotion(node, 'odom', buffer=shared_buffer)
    assert shared.listener is None
    shared.close()
    assert node.services == ['tf2_frames'] and node.jump_callbacks == 1
