"""tf2_ros behind ``fusion.extrinsic.TransformSource``: a Buffer + TransformListener on the node.

Imported only when the extrinsic comes from TF; tf2_ros is not pip-installable, so in the venv
the node needs the ``extrinsic.*`` parameters instead (``tf2_available`` says which).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from g2mono_ros.errors import TransformError
from g2mono_ros.fusion.extrinsic import StaticFrameTree
from g2mono_ros.fusion.transforms import transform_from_translation_quaternion

__all__ = ['TfTransformSource', 'release_buffer', 'tf2_available']


def tf2_available() -> str | None:
    """None when tf2_ros imports; else the import error's text (for the start-up message)."""
    try:
        import tf2_ros  # noqa: F401
        from tf2_msgs.msg import TFMessage  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def release_buffer(node: Any, buffer: Any) -> None:
    """Undo what ``tf2_ros.Buffer(node=node)`` registered on ``node`` (lifecycle cleanup).

    The Buffer serves ``tf2_frames`` on the node and (releases since 2023) registers a jump
    callback on the node's clock; both outlive it, so each configure after a cleanup would add
    another ``tf2_frames`` service. Attributes a release lacks are skipped.
    """
    service = getattr(buffer, 'srv', None)
    if service is not None:
        node.destroy_service(service)
        buffer.srv = None
    jump = getattr(buffer, 'jump_handle', None)
    if jump is not None:
        jump.unregister()
        buffer.jump_handle = None


def forget_dynamic_transforms(*buffers: Any) -> int:
    """Clear the dynamic transforms of each distinct tf2_ros Buffer (None skipped); returns how
    many were cleared.

    For a clock that went back (a bag restarting): tf2 would otherwise keep the earlier pass's
    transforms until they age out of its cache and interpolate between the two passes. Humble's
    Buffer has no clock-jump callback to do it. ``clear()`` keeps ``/tf_static``.
    """
    distinct = {id(buffer): buffer for buffer in buffers if buffer is not None}
    for buffer in distinct.values():
        buffer.clear()
    return len(distinct)


class TfTransformSource:
    """Transforms from TF (``/tf`` and ``/tf_static``, as remapped on the node).

    The listener's subscriptions live on ``node`` and are served by the node's executor
    (Humble API: ``TransformListener(buffer, node, spin_thread=False)``); ``lookup`` blocks
    for at most its timeout and is meant for the worker thread, never a callback. A separate
    transient-local ``/tf_static`` subscription records which frames are rigidly linked, so the
    resolver caches those transforms.

    Args:
        node: the rclpy node that owns the subscriptions.
        cache_time_s: seconds of dynamic transforms the buffer keeps.
    """

    def __init__(self, node: Any, *, cache_time_s: float = 10.0) -> None:
        from rclpy.duration import Duration
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage
        from tf2_ros.buffer import Buffer
        from tf2_ros.transform_listener import TransformListener

        self._node = node
        self._buffer = Buffer(cache_time=Duration(seconds=cache_time_s), node=node)
        self._listener = TransformListener(self._buffer, node, spin_thread=False)
        self.static_tree = StaticFrameTree()
        static_qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                                reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._static_sub = node.create_subscription(TFMessage, '/tf_static', self._on_static,
                                                    static_qos)

    def _on_static(self, msg: Any) -> None:
        for transform in msg.transforms:
            self.static_tree.add(transform.header.frame_id, transform.child_frame_id)

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int,
               timeout_s: float) -> np.ndarray:
        """``T_target_source`` (4, 4) float64 at ``stamp_ns``; waits up to ``timeout_s``.

        Raises:
            TransformError: tf2 has no path between the frames, or none at that time.
        """
        from rclpy.duration import Duration
        from rclpy.time import Time
        from tf2_ros import TransformException

        try:
            stamped = self._buffer.lookup_transform(
                target_frame, source_frame, Time(nanoseconds=int(stamp_ns)),
                timeout=Duration(nanoseconds=int(timeout_s * 1e9)))
        except TransformException as exc:
            msg = f'{type(exc).__name__}: {exc}'
            raise TransformError(msg) from exc
        t, q = stamped.transform.translation, stamped.transform.rotation
        return transform_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    @property
    def buffer(self) -> Any:
        """The tf2_ros Buffer (shared with the motion source, one listener per node)."""
        return self._buffer

    def is_static(self, target_frame: str, source_frame: str) -> bool:
        return self.static_tree.connects(target_frame, source_frame)

    @property
    def static_version(self) -> int:
        """Changes with every ``/tf_static`` transform received (the resolver's cache key)."""
        return self.static_tree.version

    def close(self) -> None:
        """Destroy the listener's and the static tree's subscriptions and the Buffer's service
        (lifecycle cleanup)."""
        self._listener.unregister()
        self._node.destroy_subscription(self._static_sub)
        release_buffer(self._node, self._buffer)
