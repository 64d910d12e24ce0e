"""Scoring depth: metrics, classical baselines, the LiDAR hold-out protocol and bag evaluation.

The metrics and baselines are ROS-free numpy code; only ``live`` (replay into DDS) uses rclpy.
"""

from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill
from g2mono_ros.evaluation.metrics import (
    METRIC_NAMES,
    compute_depth_metrics,
    compute_depth_metrics_by_range,
)

__all__ = [
    'METRIC_NAMES',
    'compute_depth_metrics',
    'compute_depth_metrics_by_range',
    'morphological_fill',
    'nearest_fill',
]
