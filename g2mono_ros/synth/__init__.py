"""Synthetic camera + LiDAR sequences with exact ground truth, and writing them as rosbags.

``SyntheticSequence`` is ROS-free (numpy ray casting); ``write_synthetic_bag`` needs ``rosbags``.
"""

from __future__ import annotations

from typing import Any

from g2mono_ros.synth.lidar import LIDAR_MODELS, LidarModel, lidar_model_for_beams
from g2mono_ros.synth.sequence import (
    ImageFrame,
    LidarScan,
    SyntheticFrame,
    SyntheticSequence,
    default_T_cam_lidar,
)

__all__ = [
    'LIDAR_MODELS',
    'ImageFrame',
    'LidarModel',
    'LidarScan',
    'SyntheticFrame',
    'SyntheticSequence',
    'default_T_cam_lidar',
    'lidar_model_for_beams',
    'write_synthetic_bag',
]


def __getattr__(name: str) -> Any:
    # The bag writer pulls in rosbags; the trainer only needs the sequence.
    if name == 'write_synthetic_bag':
        from g2mono_ros.synth.bag import write_synthetic_bag
        return write_synthetic_bag
    msg = f'module {__name__!r} has no attribute {name!r}'
    raise AttributeError(msg)
