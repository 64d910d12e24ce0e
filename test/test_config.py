"""Frozen config records: defaults, validation messages that name the parameter, YAML loading."""

from __future__ import annotations

import dataclasses

import pytest

from g2mono_ros.config import (
    EngineConfig,
    ExtrinsicConfig,
    NodeConfig,
    ProjectionConfig,
    SyncConfig,
    flatten_params,
    load_node_params_yaml,
)
from g2mono_ros.errors import ConfigError


def test_engine_config_defaults_and_frozen():
    config = EngineConfig(weights='w.pt')
    # input size 0 x 0: the size recorded in the checkpoint (models.checkpoint.resolve_input_size)
    assert (config.input_height, config.input_width, config.device) == (0, 0, 'auto')
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.device = 'cpu'  # type: ignore[misc]


def test_missing_weights_names_the_parameter():
    with pytest.raises(ConfigError, match="'weights' is empty"):
        EngineConfig(weights='')


@pytest.mark.parametrize(('kwargs', 'pattern'), [
    ({'variant': 'resnet'}, "'variant' must be one of auto, seed, official"),
    ({'device': 'tpu'}, "'device' must be one of auto, cuda, cpu"),
    ({'precision': 'int8'}, "'precision' must be one of fp32, fp16, bf16"),
    ({'input_height': 300}, "'input_height' must be a positive multiple of 64"),
    ({'input_width': 100}, "'input_width' must be 0"),
    ({'max_depth': -1.0}, "'max_depth' must be a finite number >= 0.0"),
    ({'max_depth': float('nan')}, "'max_depth' must be a finite number"),
    ({'num_threads': -1}, "'num_threads' must be an integer >= 0"),
    ({'num_threads': 1.5}, "'num_threads' must be an integer >= 0"),
])
def test_engine_config_rejects_bad_values(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        EngineConfig(weights='w.pt', **kwargs)


def test_projection_and_sync_ranges():
    with pytest.raises(ConfigError, match="'max_range' must be a finite number > 5"):
        ProjectionConfig(min_range=5.0, max_range=5.0)
    with pytest.raises(ConfigError, match="'sync_max_offset'"):
        SyncConfig(sync_max_offset=0.0)
    with pytest.raises(ConfigError, match="'sync_queue_size'"):
        SyncConfig(sync_queue_size=0)
    assert SyncConfig(sync_max_offset=0.05).max_offset_ns == 50_000_000


def test_extrinsic_normalises_and_rejects():
    extrinsic = ExtrinsicConfig(translation=[1, 2, 3], rotation=[0, 0, 0, 1.0000001])
    assert extrinsic.translation == (1.0, 2.0, 3.0)
    assert extrinsic.rotation[3] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ConfigError, match="'extrinsic.rotation' must be a unit quaternion"):
        ExtrinsicConfig(rotation=(0.0, 0.0, 0.0, 2.0))
    with pytest.raises(ConfigError, match="'extrinsic.translation' must be 3 finite numbers"):
        ExtrinsicConfig(translation=(0.0, 1.0))


def test_node_config_from_flat_routes_dotted_names():
    config = NodeConfig.from_flat({
        'weights': 'w.pt', 'device': 'cpu', 'min_range': 1.0, 'sync_max_offset': 0.03,
        'extrinsic.translation': [0.1, 0.0, -0.2], 'extrinsic.rotation': [0.5, -0.5, 0.5, -0.5],
        'publish_sparse': True, 'use_sim_time': False,
    })
    assert config.engine.device == 'cpu'
    assert config.projection.min_range == 1.0
    assert config.sync.sync_max_offset == 0.03
    assert config.extrinsic.translation == (0.1, 0.0, -0.2)
    assert config.publish_sparse is True
    with pytest.raises(ConfigError, match="unknown parameter 'wieghts'"):
        NodeConfig.from_flat({'wieghts': 'w.pt'})
    with pytest.raises(ConfigError, match="'input_qos' must be one of"):
        NodeConfig.from_flat({'weights': 'w.pt', 'input_qos': 'fast'})


def test_yaml_loading_flattens_and_reports(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('depth_node:\n  ros__parameters:\n    weights: a.pt\n'
                    '    extrinsic:\n      translation: [1.0, 2.0, 3.0]\n')
    assert load_node_params_yaml(path) == {'weights': 'a.pt',
                                           'extrinsic.translation': [1.0, 2.0, 3.0]}
    assert flatten_params({'a': {'b': {'c': 1}}}) == {'a.b.c': 1}
    other = tmp_path / 'other.yaml'
    other.write_text('someone_else:\n  ros__parameters:\n    x: 1\n')
    with pytest.raises(ConfigError, match='has no "depth_node: ros__parameters:" section'):
        load_node_params_yaml(other)
    with pytest.raises(ConfigError, match='cannot read parameters file'):
        load_node_params_yaml(tmp_path / 'missing.yaml')
