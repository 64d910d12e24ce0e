"""The node's declared parameters, config/depth.yaml and NodeConfig agree, name for name."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from g2mono_ros.config import (EngineConfig, MotionConfig, NodeConfig, ProjectionConfig,
                               SyncConfig, load_node_params_yaml)
from g2mono_ros.errors import ConfigError
from g2mono_ros.ros.node import PARAMETERS, output_topics


def _config_field_names() -> set[str]:
    names = {f.name for f in fields(NodeConfig)} - {'engine', 'projection', 'sync', 'extrinsic',
                                                    'motion'}
    for record in (EngineConfig, ProjectionConfig, SyncConfig, MotionConfig):
        names |= {f.name.replace('lidar_to_base_', 'lidar_to_base.') for f in fields(record)}
    return names | {'extrinsic.translation', 'extrinsic.rotation', 'extrinsic.tf_timeout'}


# Unset by default (the transform comes from TF): the YAML shows them as commented examples.
COMMENTED_OUT = {'extrinsic.translation', 'extrinsic.rotation'}


def test_declared_parameters_are_exactly_the_config_fields():
    assert set(PARAMETERS) == _config_field_names()


def test_every_parameter_has_a_description():
    for name, spec in PARAMETERS.items():
        assert len(spec.description) > 15, name


def test_declared_defaults_build_a_config_once_weights_are_set():
    params = {name: spec.default for name, spec in PARAMETERS.items()}
    with pytest.raises(ConfigError, match="parameter 'weights' is empty"):
        NodeConfig.from_flat(params)
    params['weights'] = 'model.pt'
    config = NodeConfig.from_flat(params)
    assert config.input_qos == 'sensor_data'
    assert not config.extrinsic.is_set, 'no silent identity: unset means TF'
    assert config.image_topic == 'camera/image_raw' and config.depth_topic == 'g2mono/depth'


def test_yaml_sets_every_parameter_with_the_declared_default(repo_root):
    params = load_node_params_yaml(repo_root / 'config' / 'depth.yaml')
    assert set(params) == set(PARAMETERS) - COMMENTED_OUT
    for name in params:
        assert params[name] == PARAMETERS[name].default, name
    text = (repo_root / 'config' / 'depth.yaml').read_text()
    assert text.startswith('#') and '\n/**:\n  ros__parameters:\n' in text, 'keyed /** (any ns)'
    for name in COMMENTED_OUT:
        assert re.search(rf'^\s+# {name.split(".")[1]}: \[', text, re.MULTILINE), name


def test_yaml_comments_every_parameter(repo_root):
    lines = (repo_root / 'config' / 'depth.yaml').read_text().splitlines()
    keys = 0
    for index, line in enumerate(lines):
        match = re.match(r'^\s+([a-z_]+):', line)
        if not match or match.group(1) in ('ros__parameters', 'extrinsic', 'lidar_to_base'):
            continue
        keys += 1
        assert lines[index - 1].strip().startswith('#'), f'{match.group(1)} has no comment above'
    assert keys == len(PARAMETERS) - len(COMMENTED_OUT)


def test_output_topics_sit_beside_the_depth_topic():
    assert output_topics('/g2mono/depth') == {
        'depth': '/g2mono/depth', 'camera_info': '/g2mono/camera_info',
        'sparse_depth': '/g2mono/sparse_depth', 'colorized': '/g2mono/depth/colorized',
        'timing': '/g2mono/depth/timing', 'points': '/g2mono/depth/points'}
    assert output_topics('g2mono/depth') == {
        'depth': 'g2mono/depth', 'camera_info': 'g2mono/camera_info',
        'sparse_depth': 'g2mono/sparse_depth', 'colorized': 'g2mono/depth/colorized',
        'timing': 'g2mono/depth/timing', 'points': 'g2mono/depth/points'}
    assert output_topics('depth')['camera_info'] == 'camera_info'
    assert output_topics('/depth')['sparse_depth'] == '/sparse_depth'


def test_live_parameters_are_declared_and_the_rest_say_why_they_are_read_only():
    from g2mono_ros.ros.node import LIVE_PARAMETERS, read_only_reason

    assert LIVE_PARAMETERS <= set(PARAMETERS)
    assert {'max_range', 'sync_max_offset', 'publish_points', 'diagnostics_period',
            'colorized_max_depth', 'lazy'} <= LIVE_PARAMETERS
    for name in PARAMETERS:
        reason = read_only_reason(name)
        assert (reason == '') == (name in LIVE_PARAMETERS), name
        if reason:
            assert reason.startswith('read-only: ') and 'restart' in reason, name
    assert 'network' in read_only_reason('weights')
    assert 'subscriptions' in read_only_reason('image_topic')
