"""The shipped demo weights: loadable, within the size budget, and better than the baselines on
a fresh synthetic 16-beam frame (seed never trained on)."""

from __future__ import annotations

import numpy as np
import torch

from g2mono_ros.models.checkpoint import load_checkpoint
from g2mono_ros.evaluation.baselines import morphological_fill, nearest_fill
from g2mono_ros.evaluation.metrics import MetricSums
from g2mono_ros.fusion.projection import project_points_to_depth
from g2mono_ros.synth.sequence import SyntheticSequence
from g2mono_ros.weights import DEMO_WEIGHTS


def test_demo_weights_load_with_their_record():
    assert DEMO_WEIGHTS.is_file()
    assert DEMO_WEIGHTS.stat().st_size <= 25 * 2**20
    loaded = load_checkpoint(DEMO_WEIGHTS)
    assert loaded.variant == 'seed_small'
    assert (loaded.input_height, loaded.input_width, loaded.max_depth) == (128, 192, 80.0)
    assert loaded.extra['trainer'] == 'g2mono_ros.training'


def test_demo_weights_beat_both_baselines_on_a_fresh_sparse_scan():
    loaded = load_checkpoint(DEMO_WEIGHTS)
    seq = SyntheticSequence(777, width=192, height=128, beams=16)
    sums = {'model': MetricSums(), 'nearest': MetricSums(), 'morph': MetricSums()}
    for index in (0, 40):
        frame = seq.render(index)
        sparse, _ = project_points_to_depth(frame.points_lidar, frame.T_cam_lidar, frame.camera,
                                            max_range=80.0)
        rgb = torch.from_numpy(frame.rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
        point = torch.from_numpy(sparse)[None, None] / 80.0
        with torch.no_grad():
            pred = loaded.model(rgb, point, (point > 0).float())[0, 0].numpy() * 80.0
        sums['model'].add(pred, frame.depth_gt)
        sums['nearest'].add(nearest_fill(sparse), frame.depth_gt)
        sums['morph'].add(morphological_fill(sparse, 80.0), frame.depth_gt)
    result = {name: acc.finalize() for name, acc in sums.items()}
    for metric in ('rmse', 'mae'):
        assert np.isfinite(result['model'][metric])
        assert result['model'][metric] < result['nearest'][metric], (metric, result)
        assert result['model'][metric] < result['morph'][metric], (metric, result)
