"""Shared test set-up: every DDS packet stays on this host, in a private ROS domain per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from g2mono_ros.ros.dds_env import localhost_dds_env

# Where launch_testing is installed, a module-level importorskip would skip the whole directory.
from collect_guard import pytest_pycollect_makemodule  # noqa: F401, E402
from ros_install import put_installed_scripts_on_path  # noqa: E402

# Set before any test imports rclpy: rcl reads these at init. A ROS_DOMAIN_ID already set is kept
# (parallel runs on one machine each pass their own); otherwise one is derived from the PID.
_domain = os.environ.get('ROS_DOMAIN_ID', '')
os.environ.update(localhost_dds_env(int(_domain) if _domain.isdigit() else None))
# One intra-op thread for torch here and in the node processes the tests start: on 2 cores a
# test process and a node process each spinning 2 OpenMP threads slowed a 15 s test to 500 s.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
# Before the test modules look for `depth_node` on PATH (a colcon install keeps it elsewhere).
put_installed_scripts_on_path()

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def tiny_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-frame 128x64 synthetic rosbag (seed 11) with ground truth and /tf_static; read-only."""
    from g2mono_ros.synth import write_synthetic_bag

    path = tmp_path_factory.mktemp('tiny_bag') / 'bag'
    write_synthetic_bag(path, seed=11, frames=6, width=128, height=64)
    return path


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real seed_small checkpoint in our format (seeded random weights, input 64 px high)."""
    import torch

    from g2mono_ros.models.checkpoint import save_checkpoint
    from g2mono_ros.models import create_model, default_model_kwargs

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'tiny.pt'
    save_checkpoint(path, create_model('seed_small'), variant='seed_small',
                    model_kwargs=default_model_kwargs('seed_small'), max_depth=80.0,
                    input_height=64, input_width=0)
    return path


@pytest.fixture(scope='session')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real seed_small checkpoint for the DDS node tests (random weights, input 64 x 128,
    max depth 20 m)."""
    from g2mono_ros.models import create_model
    from g2mono_ros.models.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp('weights') / 'seed_small.pt'
    save_checkpoint(path, create_model('seed_small'), variant='seed_small', model_kwargs={},
                    max_depth=20.0, input_height=64, input_width=128)
    return path
