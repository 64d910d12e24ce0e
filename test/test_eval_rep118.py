"""REP 118 depth through the evaluator: ground truth written by the node's own encoder (NaN in
32FC1, 0 and no over-range clipping in 16UC1) scores exactly like the old 0.0 convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from g2mono_ros.bagio import BagReader, BagWriter, image_message
from g2mono_ros.config import EngineConfig
from g2mono_ros.evaluation.evaluator import EvaluationOptions, evaluate_offline
from g2mono_ros.ros.codecs import depth_to_image, image_to_numpy

GT_TOPIC = '/ground_truth/depth'


class ConstantEngine:
    """A stand-in engine with a known output (10 m everywhere): the metrics then depend on the
    ground truth alone, which is what this test varies."""

    max_depth = 80.0

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        return (64, 128)

    def infer(self, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        return np.full(rgb.shape[:2], 10.0, np.float32)


def _rewrite_ground_truth(src: Path, dst: Path, encoding: str, *, by_hand: bool = False) -> int:
    """Copy the bag, re-encoding every ground-truth image with ``codecs.depth_to_image``, or
    (``by_hand``) as 32FC1 0-for-no-data holding what 16UC1 should keep, computed here."""
    empty = 0
    with BagReader(src) as reader, BagWriter(dst) as writer:
        for message in reader.messages(list(reader.topics)):
            msg = message.msg
            if message.topic == GT_TOPIC:
                depth = image_to_numpy(msg).astype(np.float32)  # old bags: 0 = no data
                empty += int(np.count_nonzero(depth == 0))
                if by_hand:
                    millimetres = np.rint(depth.astype(np.float64) * 1000.0)
                    encoded = np.where(millimetres <= 65535, millimetres / 1000.0, 0.0)
                    encoded = encoded.astype(np.float32)
                else:
                    encoded = image_to_numpy(depth_to_image(depth, None, encoding))
                msg = image_message(writer.store, encoded, encoding, message.stamp_ns,
                                    msg.header.frame_id)
            writer.write(message.topic, msg, message.log_time_ns)
    return empty


def _evaluate(bag: Path) -> dict[str, float]:
    options = EvaluationOptions(engine=EngineConfig(weights='unused.pt', device='cpu',
                                                    input_height=64), progress=False)
    result = evaluate_offline(bag, options, engine=ConstantEngine())
    assert len(result.book.frames) == 6
    summary = result.book.method_summary('model')
    return {**{k: summary[k] for k in ('rmse', 'mae', 'absrel', 'delta1')},
            'pixels': summary['pixels']}


@pytest.mark.parametrize('encoding', ['32FC1', '16UC1'])
def test_rep118_ground_truth_scores_like_the_old_zero_convention(tiny_bag: Path, tmp_path: Path,
                                                                 encoding: str) -> None:
    bag = tmp_path / f'gt_{encoding}'
    empty = _rewrite_ground_truth(tiny_bag, bag, encoding)
    assert empty > 0, 'the synthetic ground truth has sky pixels (no data)'
    with BagReader(bag) as reader:
        raw = image_to_numpy(reader.first_message(GT_TOPIC).msg)
    if encoding == '32FC1':
        assert np.isnan(raw).any() and not np.any(raw == 0)
    else:
        assert np.any(raw == 0)
    if encoding == '32FC1':
        reference = tiny_bag
    else:
        # 16UC1 rounds to millimetres and marks depths beyond 65.535 m invalid (the synthetic
        # scene reaches 80 m): the reference is that, computed by hand, in the old convention.
        reference = tmp_path / 'gt_by_hand'
        _rewrite_ground_truth(tiny_bag, reference, '32FC1', by_hand=True)
    old, new = _evaluate(reference), _evaluate(bag)
    assert new['pixels'] == old['pixels'], 'the same pixels are ground truth'
    for name in ('rmse', 'mae', 'absrel', 'delta1'):
        assert new[name] == pytest.approx(old[name], rel=1e-6), name


def test_16uc1_ground_truth_beyond_65_m_is_invalid_not_clipped(tiny_bag: Path) -> None:
    with BagReader(tiny_bag) as reader:
        depth = np.concatenate([d for _, d in reader.depth_images(GT_TOPIC)])
    far = depth > 65.5355
    assert far.any(), 'the synthetic scene reaches beyond 65.535 m'
    encoded = image_to_numpy(depth_to_image(depth, None, '16UC1'))
    assert not np.any(encoded[far]), 'invalid (0), not clipped to 65535'
