"""The package builds as a ROS 2 ament_python package with colcon and installs its share files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from g2mono_ros.config import NodeConfig, load_node_params_yaml

COLCON = shutil.which('colcon') or str(Path(sys.executable).parent / 'colcon')


def _colcon_workspace(tmp_path: Path, repo_root: Path) -> Path:
    ws = tmp_path / 'ws'
    (ws / 'src').mkdir(parents=True)
    (ws / 'src' / 'g2mono_ros').symlink_to(repo_root, target_is_directory=True)
    return ws


def test_colcon_lists_ament_python_package(tmp_path, repo_root):
    ws = _colcon_workspace(tmp_path, repo_root)
    out = subprocess.run([COLCON, 'list', '--base-paths', 'src'], cwd=ws, check=True,
                         capture_output=True, text=True).stdout
    assert 'g2mono_ros' in out
    assert '(ros.ament_python)' in out


@pytest.mark.timeout(300)
def test_colcon_build_installs_launch_config_and_scripts(tmp_path, repo_root):
    ws = _colcon_workspace(tmp_path, repo_root)
    result = subprocess.run([COLCON, 'build', '--base-paths', 'src', '--build-base', 'build',
                             '--install-base', 'install', '--event-handlers', 'console_direct-'],
                            cwd=ws, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    share = ws / 'install' / 'g2mono_ros' / 'share' / 'g2mono_ros'
    assert (share / 'package.xml').is_file()
    assert (share / 'launch' / 'depth.launch.py').is_file()
    assert (share / 'config' / 'depth.yaml').is_file()
    marker = ws / 'install' / 'g2mono_ros' / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (marker / 'g2mono_ros').is_file()
    scripts = ws / 'install' / 'g2mono_ros' / 'lib' / 'g2mono_ros'
    assert (scripts / 'depth_node').is_file(), 'ros2 run looks for executables in lib/<package>'
    assert (scripts / 'g2mono').is_file()
    assert (scripts / 'depth_lifecycle_node').is_file(), 'launch lifecycle:=true runs it'
    # After `source install/setup.bash`, the tests that start depth_node by name find it there.
    from ros_install import put_installed_scripts_on_path

    prefix = ws / 'install' / 'g2mono_ros'
    environ = {'PATH': '/usr/bin:/bin', 'AMENT_PREFIX_PATH': f'/opt/nothing:{prefix}'}
    assert put_installed_scripts_on_path(environ) == scripts
    assert shutil.which('depth_node', path=environ['PATH']) == str(scripts / 'depth_node')
    assert put_installed_scripts_on_path(environ) is None  # already found: PATH kept as is
    assert put_installed_scripts_on_path({'PATH': '/usr/bin', 'AMENT_PREFIX_PATH': ''}) is None


def test_shipped_yaml_builds_a_valid_node_config(repo_root):
    params = load_node_params_yaml(repo_root / 'config' / 'depth.yaml')
    params.setdefault('weights', 'some.pt')
    if not params['weights']:
        params['weights'] = 'some.pt'
    config = NodeConfig.from_flat(params)
    assert config.depth_topic == 'g2mono/depth'  # relative: moves with the namespace
    assert not config.extrinsic.is_set, 'the shipped file leaves the extrinsic to TF'
