"""Forgetting TF history when the clock goes back (a bag restarting): dynamic transforms of
each distinct buffer are cleared, static ones stay.

The first test uses stand-in buffers, because tf2_ros cannot be installed in the pip venv; the
second runs the real tf2_ros Buffer on a ROS install and skips here.
"""

from __future__ import annotations

import pytest

from g2mono_ros.ros.tf_lookup import forget_dynamic_transforms


class _CountingBuffer:
    """Stand-in for tf2_ros.Buffer: counts clear() calls (the real one is not importable here)."""

    def __init__(self) -> None:
        self.cleared = 0

    def clear(self) -> None:
        self.cleared += 1


def test_each_distinct_buffer_is_cleared_once() -> None:
    shared, own = _CountingBuffer(), _CountingBuffer()
    assert forget_dynamic_transforms(shared, shared, None) == 1  # extrinsic + motion share one
    assert (shared.cleared, own.cleared) == (1, 0)
    assert forget_dynamic_transforms(shared, own) == 2
    assert (shared.cleared, own.cleared) == (2, 1)
    assert forget_dynamic_transforms(None, None) == 0


def test_real_buffer_keeps_static_and_drops_dynamic() -> None:
    pytest.importorskip('tf2_ros')
    from geometry_msgs.msg import TransformStamped
    from rclpy.time import Time
    from tf2_ros import TransformException
    from tf2_ros.buffer import Buffer

    def transform(parent: str, child: str, sec: int) -> TransformStamped:
        msg = TransformStamped()
        msg.header.frame_id, msg.child_frame_id = parent, child
        msg.header.stamp.sec = sec
        msg.transform.rotation.w = 1.0
        return msg

    buffer = Buffer()
    buffer.set_transform_static(transform('base_link', 'lidar', 0), 'test')
    buffer.set_transform(transform('odom', 'base_link', 100), 'test')
    buffer.set_transform(transform('odom', 'base_link', 101), 'test')
    buffer.lookup_transform('odom', 'base_link', Time(seconds=100.5))
    assert forget_dynamic_transforms(buffer) == 1
    with pytest.raises(TransformException):
        buffer.lookup_transform('odom', 'base_link', Time(seconds=100.5))
    buffer.lookup_transform('base_link', 'lidar', Time(seconds=5))  # static survives
