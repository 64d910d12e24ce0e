"""Live evaluation over real DDS: the depth_node process, a replayed bag, its outputs scored.

Uses the private localhost domain that conftest sets; the node is the real console script.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import NodeError
from g2mono_ros.evaluation.evaluator import METHODS, EvaluationOptions, evaluate_offline
from g2mono_ros.evaluation.evaluator import open_sequence
from g2mono_ros.evaluation.live import evaluate_live, score_recording
from g2mono_ros.ros.live_replay import replay

pytestmark = [pytest.mark.dds, pytest.mark.timeout(240)]


def _options(weights: Path, **kwargs: Any) -> EvaluationOptions:
    engine = EngineConfig(weights=str(weights), device='cpu', input_height=64)
    return EvaluationOptions(engine=engine, mode='live', progress=False, **kwargs)


class RecordingEngine:
    """Wraps the real DepthEngine and keeps each output (the offline reference)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.max_depth = engine.max_depth
        self.outputs: list[np.ndarray] = []

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.engine.network_input_size(height, width)

    def infer(self, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        self.outputs.append(self.engine.infer(rgb, sparse))
        return self.outputs[-1]


def test_live_scores_the_real_node_like_the_offline_pipeline(tiny_bag: Path,
                                                             tiny_weights: Path) -> None:
    from g2mono_ros.models.engine import DepthEngine

    options = _options(tiny_weights, rate=1.0)
    sequence = open_sequence(tiny_bag, options)
    recording = replay(sequence, options)
    live = score_recording(sequence, options, recording)
    counts = live.counts
    assert live.mode == 'live' and counts['images'] == 6
    assert 1 <= counts['scored_frames'] == counts['depth_received'] <= 6
    assert live.drops.get('not_published', 0) == 6 - counts['scored_frames']
    latency = live.latency_summary_ms()
    assert latency['count'] == counts['scored_frames'] and 0 < latency['p50'] < 60_000
    assert 'publish -> receive' in live.latency_kind
    for record in live.book.frames:
        assert all(math.isfinite(record.metrics[m]['mae']) for m in METHODS)
    # The node runs the same pairing, projection and engine: its depth equals the offline
    # pipeline's for the same image (unless a loaded machine delayed a scan past the node's
    # pairing wait, so at least one frame, not all, must match).
    engine = RecordingEngine(DepthEngine(options.engine))
    offline = evaluate_offline(tiny_bag, EvaluationOptions(engine=options.engine,
                                                           progress=False), engine=engine)
    reference = {r.image_stamp_ns: out for r, out in zip(offline.book.frames, engine.outputs)}
    same = [np.allclose(depth, reference[stamp], atol=1e-3)
            for stamp, depth in recording.depth.items()]
    assert any(same), 'no live depth image matched the offline pipeline'
    assert all(depth.shape == (64, 128) for depth in recording.depth.values())


def test_live_holdout_never_sends_withheld_points(tiny_bag: Path, tiny_weights: Path,
                                                  tmp_path: Path) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    from g2mono_ros.bagio import BagReader, BagWriter, read_extrinsic
    from g2mono_ros.ros.codecs import pointcloud2_to_xyz
    from g2mono_ros.evaluation.holdout import choose_holdout_rows, cloud_rows

    bag = tmp_path / 'no_gt'
    with BagReader(tiny_bag) as reader, BagWriter(bag) as writer:
        for message in reader.messages([t for t in reader.topics if t != '/ground_truth/depth']):
            writer.write(message.topic, message.msg, message.log_time_ns)
        camera = reader.camera_model()
        T = read_extrinsic(reader)
        clouds = {m.stamp_ns: m.msg for m in reader.messages('/lidar/points')}

    # A bystander on the graph records every cloud the node is sent.
    received: dict[int, np.ndarray] = {}
    context = Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node('holdout_witness', context=context)

    def on_cloud(msg: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        received[stamp] = pointcloud2_to_xyz(msg)[0]

    node.create_subscription(PointCloud2, '/lidar/points', on_cloud, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        result = evaluate_live(bag, _options(tiny_weights, holdout_fraction=0.3, seed=9))
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5.0)

    assert result.ground_truth == 'holdout' and result.counts['scored_frames'] >= 1
    assert received, 'the witness saw no cloud'
    for stamp, xyz in received.items():
        _, all_xyz = cloud_rows(clouds[stamp])
        held = choose_holdout_rows(all_xyz, T, camera, fraction=0.3, seed=9, stamp_ns=stamp,
                                   min_range=0.5, max_range=100.0)
        assert held.sum() > 0
        finite = np.isfinite(all_xyz).all(axis=1)
        np.testing.assert_array_equal(xyz, all_xyz[finite & ~held].astype(np.float32))


def test_node_that_cannot_load_its_weights_raises_node_error(tiny_bag: Path,
                                                             tmp_path: Path) -> None:
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint at all')
    with pytest.raises(NodeError, match=r'depth_node exited with status 2 before it was ready'):
        evaluate_live(tiny_bag, _options(junk), startup_timeout_s=120.0)
