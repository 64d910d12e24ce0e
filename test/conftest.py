"""Shared test set-up: every DDS packet stays on this host, in a private ROS domain per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from g2mono_ros.dds_env import localhost_dds_env

# Set before any test imports rclpy: rcl reads these at init.
os.environ.update(localhost_dds_env())
# One intra-op thread for torch here and in the node processes the tests start: on 2 cores a
# test process and a node process each spinning 2 OpenMP threads slowed a 15 s test to 500 s.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.pop('FASTDDS_BUILTIN_TRANSPORTS', None)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT
