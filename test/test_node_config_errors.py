"""A bad setting stops depth_node at start-up: non-zero exit, the parameter named in stderr."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPTH_NODE = shutil.which('depth_node') or str(Path(sys.executable).parent / 'depth_node')

pytestmark = [pytest.mark.timeout(120), pytest.mark.dds]
# The shipped YAML leaves the extrinsic to TF; where tf2_ros is missing a test must set it.
EXPLICIT_EXTRINSIC = ('extrinsic.translation:=[0.0, 0.0, 0.0]',
                      'extrinsic.rotation:=[0.5, -0.5, 0.5, 0.5]')


@pytest.fixture(scope='module')
def fake_weights(tmp_path_factory) -> Path:
    """A file that exists, so only the parameter under test is wrong (never loaded)."""
    path = tmp_path_factory.mktemp('weights') / 'present.pt'
    path.write_bytes(b'not reached: validation fails first')
    return path


def run_node(repo_root: Path, *params: str, command: list[str] | None = None):
    args = ['--ros-args', '--params-file', str(repo_root / 'config' / 'depth.yaml')]
    for param in params:
        args += ['-p', param]
    return subprocess.run((command or [DEPTH_NODE]) + args, capture_output=True, text=True,
                          timeout=90)


def test_missing_weights_parameter(repo_root):
    result = run_node(repo_root)
    assert result.returncode == 2
    assert "depth_node: error: parameter 'weights' is empty" in result.stderr


def test_weights_file_not_found(repo_root, tmp_path):
    result = run_node(repo_root, f'weights:={tmp_path / "nope.pt"}')
    assert result.returncode == 2
    assert "parameter 'weights': no checkpoint file at" in result.stderr
    assert 'nope.pt' in result.stderr


@pytest.mark.parametrize(('param', 'expected'), [
    ('variant:=resnet', "parameter 'variant' must be one of auto, seed, official; got 'resnet'"),
    ('device:=tpu', "parameter 'device' must be one of auto, cuda, cpu; got 'tpu'"),
    ('input_height:=100', "parameter 'input_height' must be a positive multiple of 64 (or 0 = "
                          "the checkpoint's); got 100"),
    ('output_encoding:=mono8', "parameter 'output_encoding' must be one of 32FC1, 16UC1"),
    ('input_qos:=fast', "parameter 'input_qos' must be one of sensor_data, reliable, best_effort"),
    ('extrinsic.rotation:=[0.0, 0.0, 0.0, 2.0]',
     "parameter 'extrinsic.rotation' must be a unit quaternion"),
    ('extrinsic.translation:=[1.0, 2.0]',
     "parameter 'extrinsic.translation' must be 3 finite numbers"),
    ('max_range:=0.1', "parameter 'max_range' must be a finite number > 0.5"),
    # Not 'tall': with the YAML keyed `/**`, rcl stores `-p` in the same entry as the file's
    # 320, and rclpy reads the integer before the string, so a string override is shadowed.
    ('input_height:=true', "parameter 'input_height' must be of type int"),
])
def test_bad_value_names_parameter_and_allowed_values(repo_root, fake_weights, param, expected):
    result = run_node(repo_root, f'weights:={fake_weights}', param)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr


def test_g2mono_node_subcommand_reports_the_same_error(repo_root, fake_weights):
    result = run_node(repo_root, f'weights:={fake_weights}', 'variant:=resnet',
                      command=[sys.executable, '-m', 'g2mono_ros', 'node'])
    assert result.returncode == 2
    assert "g2mono node: error: parameter 'variant' must be one of" in result.stderr


def test_weights_of_another_variant(repo_root, tmp_path):
    from g2mono_ros.models.checkpoint import save_checkpoint
    from g2mono_ros.models import create_model

    weights = save_checkpoint(tmp_path / 'small.pt', create_model('seed_small'),
                              variant='seed_small', model_kwargs={}, max_depth=20.0,
                              input_height=64, input_width=0)
    result = run_node(repo_root, f'weights:={weights}', 'variant:=official', 'device:=cpu',
                      *EXPLICIT_EXTRINSIC)
    assert result.returncode == 2
    assert "holds variant 'seed_small', but variant 'official' was asked for" in result.stderr
    assert 'Traceback' not in result.stderr


def test_not_a_checkpoint(repo_root, fake_weights):
    result = run_node(repo_root, f'weights:={fake_weights}', 'device:=cpu', *EXPLICIT_EXTRINSIC)
    assert result.returncode == 2
    assert 'depth_node: error:' in result.stderr and 'present.pt' in result.stderr
    assert 'Traceback' not in result.stderr


def test_unset_extrinsic_without_tf2_names_both_ways(repo_root, fake_weights):
    """No extrinsic parameters and no tf2_ros (this venv): no silent identity, exit 2."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip('tf2_ros imports here: the node would use TF')
    result = run_node(repo_root, f'weights:={fake_weights}', 'device:=cpu')
    assert result.returncode == 2, result.stderr
    assert "'extrinsic.translation' and 'extrinsic.rotation' are unset" in result.stderr
    assert 'install tf2_ros' in result.stderr and 'publish TF' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize(('param', 'missing'), [
    ('extrinsic.translation:=[0.0, 0.0, 0.0]', 'rotation'),
    ('extrinsic.rotation:=[0.0, 0.0, 0.0, 1.0]', 'translation'),
])
def test_half_an_extrinsic_is_refused(repo_root, fake_weights, param, missing):
    result = run_node(repo_root, f'weights:={fake_weights}', param)
    assert result.returncode == 2
    assert f"parameter 'extrinsic.{missing}' is unset" in result.stderr


def test_empty_extrinsic_lists_in_a_params_file_mean_unset(repo_root, fake_weights, tmp_path):
    """`translation: []` reaches rclpy as an unset value: the same as leaving it out."""
    extra = tmp_path / 'empty_extrinsic.yaml'
    extra.write_text('/**:\n  ros__parameters:\n    extrinsic:\n      translation: []\n'
                     '      rotation: []\n')
    result = subprocess.run([DEPTH_NODE, '--ros-args', '--params-file',
                             str(repo_root / 'config' / 'depth.yaml'), '--params-file', str(extra),
                             '-p', f'weights:={fake_weights}'],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr, result.stderr
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        assert "'extrinsic.translation' and 'extrinsic.rotation' are unset" in result.stderr
