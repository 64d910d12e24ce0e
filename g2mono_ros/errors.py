"""The package's exception types: the one home for every error g2mono_ros raises.

Each error builds a message that says what was expected and what was found; foreign errors
(torch, rosbags, yaml, OS) are wrapped at the boundary into one of these.
"""

from __future__ import annotations

__all__ = [
    'BagError',
    'CheckpointError',
    'ConfigError',
    'DatasetError',
    'G2MonoError',
    'MessageError',
    'NodeError',
    'ShapeError',
    'TransformError',
]


class G2MonoError(Exception):
    """Base class of every error raised by g2mono_ros."""


class ConfigError(G2MonoError, ValueError):
    """A setting (ROS parameter, YAML key, CLI option) is missing or out of range.

    The message names the setting and the allowed values.
    """


class CheckpointError(G2MonoError):
    """A weights file cannot be loaded: missing, unsafe, wrong variant, or wrong keys/shapes."""


class MessageError(G2MonoError, ValueError):
    """A ROS message cannot be converted: unsupported encoding, wrong sizes, missing fields."""


class ShapeError(G2MonoError, ValueError):
    """An array or tensor has the wrong shape, dtype or unit range (expected vs got in message)."""


class DatasetError(G2MonoError):
    """A training/evaluation dataset is missing or malformed."""


class BagError(G2MonoError):
    """A rosbag cannot be read or written, or lacks a topic/message the caller needs."""


class NodeError(G2MonoError):
    """A depth node started for a live run (evaluation, demo) failed to start or to answer."""


class TransformError(G2MonoError):
    """A transform between two frames is not available (TF has no path, or not at that time)."""
