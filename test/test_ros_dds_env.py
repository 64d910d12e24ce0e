"""The DDS environment of the tests, benchmarks and demo: local discovery on every distribution
(Humble's variable too), and the Fast DDS profile found in a ROS install's package share."""

from __future__ import annotations

from pathlib import Path

import pytest

from g2mono_ros.ros import dds_env


@pytest.mark.parametrize(('distro', 'localhost_only'), [('humble', '1'), ('jazzy', None),
                                                        ('kilted', None), ('', None)])
def test_localhost_env_per_distribution(monkeypatch, distro: str, localhost_only) -> None:
    monkeypatch.setenv('ROS_DISTRO', distro)
    env = dds_env.localhost_dds_env(77)
    assert env['ROS_DOMAIN_ID'] == '77' and env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env.get('ROS_LOCALHOST_ONLY') == localhost_only


def test_profile_from_the_source_tree() -> None:
    path = dds_env.fastdds_profile_path()
    assert path == Path(__file__).resolve().parents[1] / 'config' / 'fastdds_localhost.xml'
    assert path.is_file()


def test_profile_from_an_installed_package_share(monkeypatch, tmp_path: Path) -> None:
    """No source tree: the package share found through the real ament index (a prefix laid
    out as colcon or apt installs it), not sys.prefix (/usr on a ROS install)."""
    pytest.importorskip('ament_index_python')
    prefix = tmp_path / 'install'
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'g2mono_ros'
    marker.parent.mkdir(parents=True)
    marker.write_text('')
    profile = prefix / 'share' / 'g2mono_ros' / 'config' / 'fastdds_localhost.xml'
    profile.parent.mkdir(parents=True)
    profile.write_text('<profiles/>')
    monkeypatch.setattr(dds_env, '_SOURCE_CONFIG', tmp_path / 'no_source' / 'config')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert dds_env.fastdds_profile_path() == profile
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'elsewhere'))
    fallback = dds_env.fastdds_profile_path()
    assert fallback.parts[-4:] == ('share', 'g2mono_ros', 'config', 'fastdds_localhost.xml')
