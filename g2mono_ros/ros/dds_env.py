"""Environment for keeping DDS traffic on this host, in a private domain, fast for big images.

Used by the tests, the benchmarks and the demo; a robot's own launch setup does not need it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ['fastdds_profile_path', 'localhost_dds_env']

_PROFILE_NAME = 'fastdds_localhost.xml'
_SOURCE_CONFIG = Path(__file__).resolve().parents[2] / 'config'


def fastdds_profile_path() -> Path:
    """Path of the shared-memory + loopback-UDP Fast DDS profile: the source tree's, else the
    installed package share (ament index: a colcon or apt install), else this Python prefix's."""
    for folder in _config_folders():
        if (folder / _PROFILE_NAME).is_file():
            return folder / _PROFILE_NAME
    return Path(sys.prefix) / 'share' / 'g2mono_ros' / 'config' / _PROFILE_NAME


def _config_folders() -> Iterator[Path]:
    yield _SOURCE_CONFIG
    try:
        from ament_index_python.packages import get_package_share_directory
        # On a ROS install sys.prefix is /usr, not the package's prefix.
        yield Path(get_package_share_directory('g2mono_ros')) / 'config'
    except (ImportError, LookupError):  # no ament index, or the package is not in it
        pass


def localhost_dds_env(domain_id: int | None = None) -> dict[str, str]:
    """Variables that confine DDS to this machine, in ``domain_id`` (default: from the PID).

    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` keeps discovery local but cancels
    ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``; the XML profile restores fast large messages
    (big shared-memory segment) with UDP bound to 127.0.0.1. Humble predates that variable:
    there (``ROS_DISTRO=humble``) ``ROS_LOCALHOST_ONLY=1`` is set too; later distributions
    warn that it is deprecated, so it is left out there.
    """
    if domain_id is None:
        domain_id = 100 + os.getpid() % 100
    if not 0 <= domain_id <= 232:
        msg = f'ROS_DOMAIN_ID must be in 0..232; got {domain_id}'
        raise ValueError(msg)
    prefix_paths = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if sys.prefix not in prefix_paths:
        prefix_paths.append(sys.prefix)
    env = {
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'FASTDDS_DEFAULT_PROFILES_FILE': str(fastdds_profile_path()),
        'AMENT_PREFIX_PATH': os.pathsep.join(prefix_paths),
    }
    if os.environ.get('ROS_DISTRO', '').lower() == 'humble':
        env['ROS_LOCALHOST_ONLY'] = '1'
    return env
