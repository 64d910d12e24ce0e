"""``camera_model`` beyond the node: the evaluator (offline and the live node's parameters) and
the rosbag training data read a rectified camera from P, a raw one from K + D."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from g2mono_ros.bagio import BagReader
from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import ConfigError
from g2mono_ros.evaluation import cli as eval_cli
from g2mono_ros.evaluation.evaluator import EvaluationOptions, open_sequence
from g2mono_ros.training.config import DataConfig


@pytest.fixture(scope='module')
def distorted_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from g2mono_ros.synth.bag import write_synthetic_bag

    path = tmp_path_factory.mktemp('bags') / 'distorted'
    write_synthetic_bag(path, seed=3, frames=2, width=128, height=64, distortion=True)
    return path


def _options(**kwargs) -> EvaluationOptions:
    return EvaluationOptions(engine=EngineConfig(weights='unused.pt', device='cpu'),
                             progress=False, **kwargs)


def test_evaluator_reads_the_camera_the_option_names(distorted_bag: Path) -> None:
    raw = open_sequence(distorted_bag, _options()).camera
    rect = open_sequence(distorted_bag, _options(camera_model='rectified')).camera
    with BagReader(distorted_bag) as reader:
        info = reader.first_message('/camera/camera_info').msg
    assert raw.is_distorted and raw.distortion_model != 'none'
    assert rect.distortion_model == 'none' and rect.D.size == 0
    np.testing.assert_array_equal(rect.K, np.reshape(info.p, (3, 4))[:, :3])


def test_evaluate_cli_option_reaches_the_options_and_the_live_node() -> None:
    from g2mono_ros.ros.live_replay import node_overrides

    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    args = parser.parse_args(['bag', '--weights', 'w.pt', '--camera-model', 'rectified',
                              '--extrinsic', '0', '0', '0', '0', '0', '0', '1'])
    options = eval_cli.options_from_args(args)
    assert options.camera_model == 'rectified'
    assert eval_cli.options_from_args(parser.parse_args(['b', '--weights', 'w.pt'])
                                      ).camera_model == 'raw'
    sequence = argparse.Namespace(extrinsic=options.extrinsic)
    assert node_overrides(sequence, options)['camera_model'] == 'rectified'
    with pytest.raises(ConfigError, match="camera model must be one of raw, rectified; got 'x'"):
        _options(camera_model='x')


def test_training_rosbag_data_validates_camera_model() -> None:
    DataConfig(kind='rosbag', path='bag', camera_model='rectified').validate()
    with pytest.raises(ConfigError, match="'data.camera_model' must be raw or rectified"):
        DataConfig(kind='rosbag', path='bag', camera_model='rect').validate()
