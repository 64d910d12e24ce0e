"""Live evaluation: the real ``depth_node`` process, a bag replayed into DDS, its depth scored.

The replay itself (node process, rclpy publishers, recording) lives in ``ros.live_replay``; this
module scores what the node published, reusing the offline frame stream.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from g2mono_ros.errors import ConfigError, NodeError
from g2mono_ros.evaluation.evaluator import (
    BagSequence,
    EvaluationOptions,
    EvaluationResult,
    ScoreBook,
    expected_frames,
    iter_frames,
    open_sequence,
    progress_bar,
    sample_indices_for,
)
from g2mono_ros.ros.live_replay import LiveRecording, replay

__all__ = ['evaluate_live', 'score_recording']

_LATENCY_KIND = ('publish -> receive: wall time from the replayer publishing an image to the '
                 'evaluator receiving its depth (pairing wait, queue, network, DDS both ways)')


def evaluate_live(bag: str | Path, options: EvaluationOptions, *,
                  startup_timeout_s: float = 180.0, node_log: Path | None = None
                  ) -> EvaluationResult:
    """Replay ``bag`` through the real node over DDS and score what it publishes.

    Frames are paired for the targets and baselines with the node's synchroniser policy; a
    frame counts as ``not_published`` when the node sent no depth for its image (superseded
    while busy, dropped by pairing, ...). Under the hold-out protocol the withheld points are
    removed from the clouds before they are replayed, so the node never sees them.

    Raises:
        BagError: see ``open_sequence``.
        ConfigError: the weights file does not exist.
        NodeError: the node failed to start or died during the replay.
    """
    started = time.perf_counter()
    weights = Path(options.engine.weights).expanduser()
    if not weights.is_file():
        msg = f'--weights: no checkpoint file at {str(weights)!r}'
        raise ConfigError(msg)
    sequence = open_sequence(bag, options)
    recording = replay(sequence, options, startup_timeout_s=startup_timeout_s,
                       node_log=node_log)
    try:
        result = score_recording(sequence, options, recording)
    finally:
        recording.depth.close()
    result.wall_s = time.perf_counter() - started
    return result


def _live_pairing(recording: LiveRecording, gaps: Any) -> dict[str, Any]:
    """Images the node published depth for, and its pair gaps (its own diagnostics, which
    cover its last 100 pairs; the evaluator's pairing of the bag when it sent none)."""
    pairing: dict[str, Any] = gaps.summary(images=len(recording.published_wall_ns),
                                           with_depth=len(recording.depth))
    pairing['gap_source'] = 'the pairing of the bag (evaluator)'
    node = recording.diagnostics
    if 'pair_gap_ms_p50' in node:
        for key in ('p50', 'p95', 'max'):
            pairing[f'gap_ms_{key}'] = float(node[f'pair_gap_ms_{key}'])
        pairing.pop('gap_ms_mean', None)
        pairing['gap_source'] = "the node's processed pairs (its last 100, /diagnostics)"
    return pairing


def score_recording(sequence: BagSequence, options: EvaluationOptions,
                    recording: LiveRecording) -> EvaluationResult:
    """Score what the node published against the bag's targets (see ``evaluate_live``).

    Raises:
        NodeError: the node published depth of another size than the image.
    """
    expected = expected_frames(sequence, options)
    book = ScoreBook(options.range_bins_m, options.projection.max_range,
                     sample_indices_for(expected))
    from g2mono_ros.fusion.sync import PairGapStats

    drops: dict[str, int] = {}
    gaps = PairGapStats()
    scored_stamps = set()
    with progress_bar(expected, options.progress, 'score (live)') as bar:
        for frame in iter_frames(sequence, options, drops, gaps):
            depth = recording.depth.get(frame.image_stamp_ns)
            if depth is None:
                drops['not_published'] = drops.get('not_published', 0) + 1
                continue
            if depth.shape != frame.target_m.shape:
                msg = (f'the node published depth of shape {depth.shape} for an image of shape'
                       f' {frame.target_m.shape}')
                raise NodeError(msg)
            published = recording.published_wall_ns.get(frame.image_stamp_ns)
            latency_ms = ((recording.received_wall_ns[frame.image_stamp_ns] - published) * 1e-6
                          if published is not None else float('nan'))
            book.add(frame, depth, latency_ms)
            scored_stamps.add(frame.image_stamp_ns)
            bar.update(1)
    book.finish_samples()
    unscored = len(set(recording.depth) - scored_stamps)
    counts = {'images': len(recording.published_wall_ns),
              'scans': recording.scans_published,
              'depth_received': len(recording.depth),
              'scored_frames': len(book.frames)}
    if unscored:
        counts['outputs_not_scored'] = unscored
    for key, value in recording.diagnostics.items():
        if key.startswith('drops.'):
            drops[f'node_{key[len("drops."):]}'] = int(value) if value.isdigit() else value
    notes = [f'replayed at {options.rate:g}x the recorded rate']
    if sequence.ground_truth == 'holdout':
        notes.append('withheld points were removed from each cloud before it was replayed')
    return EvaluationResult(
        pairing=_live_pairing(recording, gaps),
        bag=str(sequence.path), mode='live', weights=options.engine.weights,
        ground_truth=sequence.ground_truth, book=book, latency_kind=_LATENCY_KIND,
        counts=counts, drops=drops, node_diagnostics=dict(recording.diagnostics), notes=notes,
        node_log=recording.node_log)
