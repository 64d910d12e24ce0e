"""The one input-size rule (``models.checkpoint.resolve_input_size``) and that the engine, the
evaluator's options, ``g2mono infer`` and the shipped weights all follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from g2mono_ros.config import EngineConfig
from g2mono_ros.models import create_model
from g2mono_ros.models.checkpoint import (DEFAULT_INPUT_HEIGHT, LoadedModel, load_checkpoint,
                                          resolve_input_size, save_checkpoint)
from g2mono_ros.models.engine import DepthEngine


def _loaded(height: int, width: int) -> LoadedModel:
    return LoadedModel(model=create_model('seed_small'), variant='seed_small', model_kwargs={},
                       max_depth=10.0, input_height=height, input_width=width)


@pytest.mark.parametrize(('asked', 'recorded', 'expected'), [
    ((0, 0), (128, 192), (128, 192)),      # defaults: the checkpoint's size
    ((0, 256), (128, 192), (128, 256)),    # width given, height from the checkpoint
    ((0, 0), (256, 0), (256, 0)),          # the checkpoint keeps the aspect
    ((320, 0), (128, 192), (320, 0)),      # explicit height: width 0 keeps the aspect
    ((320, 448), (128, 192), (320, 448)),  # both explicit
    ((0, 0), (0, 0), (DEFAULT_INPUT_HEIGHT, 0)),  # records nothing (a bare network)
])
def test_resolve_input_size(asked, recorded, expected) -> None:
    assert resolve_input_size(*asked, _loaded(*recorded)) == expected
    assert DEFAULT_INPUT_HEIGHT == 320


def test_no_weights_falls_back_to_320() -> None:
    assert resolve_input_size(0, 0, None) == (320, 0)


def test_engine_runs_a_checkpoint_at_its_recorded_size(tmp_path: Path) -> None:
    path = tmp_path / 'w.pt'
    save_checkpoint(path, create_model('seed_small'), variant='seed_small', model_kwargs={},
                    max_depth=10.0, input_height=64, input_width=128)
    engine = DepthEngine(EngineConfig(weights=str(path), device='cpu'))
    assert (engine.input_height, engine.input_width) == (64, 128)
    assert engine.network_input_size(480, 640) == (64, 128)
    override = DepthEngine(EngineConfig(weights=str(path), device='cpu', input_height=128),
                           model=load_checkpoint(path))
    assert override.network_input_size(480, 640) == (128, 192)  # aspect kept: 170.7 -> 192


def test_shipped_weights_run_at_their_own_size_by_default() -> None:
    from g2mono_ros.evaluation.demo import shipped_weights

    weights = shipped_weights()
    if weights is None or not weights.is_file():
        pytest.skip('no shipped weights in this checkout')
    engine = DepthEngine(EngineConfig(weights=str(weights), device='cpu'))
    assert (engine.input_height, engine.input_width) == (128, 192)
