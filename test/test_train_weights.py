"""The shipped weights: loadable, within the size budget, and better than both classical fills
on fresh synthetic frames (seeds never trained on), indoors and outdoors, and on a real
photograph with ground-truth depth, reproducing their input points; the first demo weights
still load."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.config import EngineConfig
from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill
from g2mono_ros.evaluation.quality import QUALITY_REGIMES, regime_frames, score_methods
from g2mono_ros.models.checkpoint import load_checkpoint
from g2mono_ros.models.engine import DepthEngine
from g2mono_ros.weights import DEMO_WEIGHTS, V1_WEIGHTS, V3_WEIGHTS, V4_WEIGHTS


def test_demo_weights_load_with_their_record():
    assert DEMO_WEIGHTS.is_file()
    assert DEMO_WEIGHTS.stat().st_size <= 25 * 2**20
    loaded = load_checkpoint(DEMO_WEIGHTS)
    assert loaded.variant == 'seed_small'
    assert (loaded.input_height, loaded.input_width, loaded.max_depth) == (128, 192, 200.0)
    assert loaded.model_kwargs['depth_norm'] == 'log'
    assert loaded.model.pin_points and loaded.model.residual and loaded.model.prefill_input
    assert loaded.model_kwargs['prefill_kind'] == 'guided'
    # Chosen by choose_shrink.py --real-frames: synthetic validation seeds, then the real frames.
    assert loaded.model.residual_shrink == pytest.approx(0.1)
    assert 'seeds [7101, 7102]' in loaded.extra['residual_shrink_chosen_on']
    assert 'real frames' in loaded.extra['residual_shrink_chosen_on']
    assert loaded.extra['trainer'] == 'g2mono_ros.training'


def test_first_demo_weights_still_load():
    loaded = load_checkpoint(V1_WEIGHTS)
    assert (loaded.input_height, loaded.max_depth) == (128, 80.0) and loaded.model.plain


@pytest.mark.parametrize('regime', ['indoor-16', 'outdoor-16'])
def test_demo_weights_beat_both_fills_and_keep_their_points(regime: str):
    engine = DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu',
                                      input_height=128, input_width=192))
    frames = list(regime_frames(QUALITY_REGIMES[regime], (777,), frames_per_seed=2))
    result = score_methods(frames, {
        'model': lambda f: engine.infer(f.rgb, f.sparse_m),
        'nearest': lambda f: nearest_fill(f.sparse_m),
        'morph': lambda f: morphological_fill(f.sparse_m, 100.0)})
    for metric in ('rmse', 'mae'):
        assert np.isfinite(result['model'][metric])
        assert result['model'][metric] < result['nearest'][metric], (metric, result)
        assert result['model'][metric] < result['morph'][metric], (metric, result)
    assert result['model']['input_rel'] < 0.01


def test_previous_demo_weights_still_load():
    loaded = load_checkpoint(V3_WEIGHTS)
    assert loaded.model_kwargs['prefill_kind'] == 'scanline'
    loaded = load_checkpoint(V4_WEIGHTS)
    assert loaded.model_kwargs['prefill_kind'] == 'guided' and loaded.model.residual_shrink == 0.0


@pytest.mark.parametrize('beams', [16, 32])
def test_demo_weights_beat_both_fills_on_a_real_photograph(beams: int):
    """Middlebury 2014 Motorcycle (shipped in scikit-image, with its structured-light ground
    truth), LiDAR-like scan lines as input, at the frame's own size (741 x 494)."""
    pytest.importorskip('skimage')
    from g2mono_ros.evaluation.real_frames import motorcycle_frames

    engine = DepthEngine(EngineConfig(weights=str(DEMO_WEIGHTS), device='cpu',
                                      input_height=128, input_width=192))
    (_, frame), = motorcycle_frames((beams,))
    result = score_methods([frame], {
        'model': lambda f: engine.infer(f.rgb, f.sparse_m),
        'nearest': lambda f: nearest_fill(f.sparse_m),
        'morph': lambda f: morphological_fill(f.sparse_m, 100.0)})
    for metric in ('rmse', 'mae'):
        assert result['model'][metric] < result['nearest'][metric], (metric, result)
        assert result['model'][metric] < result['morph'][metric], (metric, result)
    assert result['model']['input_rel'] < 0.01
