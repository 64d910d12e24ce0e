"""The offline evaluator on a tiny generated bag: scoring, pairing, report files, error paths."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from g2mono_ros.bagio import BagReader, BagWriter
from g2mono_ros.cli import main as cli_main
from g2mono_ros.config import EngineConfig, ExtrinsicConfig
from g2mono_ros.errors import BagError, ConfigError
from g2mono_ros.evaluation import report as report_module
from g2mono_ros.evaluation.evaluator import METHODS, EvaluationOptions, evaluate_offline
from g2mono_ros.evaluation.metrics import METRIC_NAMES, compute_depth_metrics
from g2mono_ros.evaluation.report import write_report


def _options(weights: str = 'unused.pt', **kwargs: Any) -> EvaluationOptions:
    engine = EngineConfig(weights=weights, device='cpu', input_height=64)
    return EvaluationOptions(engine=engine, progress=False, **kwargs)


class ConstantEngine:
    """A stand-in engine whose output is known (10 m everywhere), so the expected metrics can be
    computed straight from the bag's ground truth, independently of the evaluator."""

    max_depth = 80.0

    def __init__(self) -> None:
        self.calls = 0

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        return (64, 128)

    def infer(self, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full(rgb.shape[:2], 10.0, np.float32)


def _copy_bag(src: Path, dst: Path, drop: tuple[str, ...]) -> Path:
    with BagReader(src) as reader, BagWriter(dst) as writer:
        for message in reader.messages([t for t in reader.topics if t not in drop]):
            writer.write(message.topic, message.msg, message.log_time_ns)
    return dst


def test_scores_known_output_against_the_bags_ground_truth(tiny_bag: Path) -> None:
    engine = ConstantEngine()
    result = evaluate_offline(tiny_bag, _options(), engine=engine)
    with BagReader(tiny_bag) as reader:
        gt = dict(reader.depth_images('/ground_truth/depth'))
        scans = sorted(m.stamp_ns for m in reader.messages('/lidar/points'))
    frames = result.book.frames
    assert result.ground_truth == 'topic' and engine.calls == len(frames) == 6
    for record in frames:
        expected = compute_depth_metrics(np.full((64, 128), 10.0), gt[record.image_stamp_ns])
        for name in METRIC_NAMES:
            assert record.metrics['model'][name] == pytest.approx(expected[name]), name
        # every method is scored on the same pixels
        assert {record.metrics[m]['count'] for m in METHODS} == {expected['count']}
        # the scan is the one nearest in stamp (the synchroniser's policy; all within 60 ms)
        nearest = min(scans, key=lambda s: (abs(s - record.image_stamp_ns), -s))
        assert record.scan_stamp_ns == nearest
        assert record.latency_ms > 0
    # the pairing summary: every image got depth; gaps are those of the scored pairs
    pairing = result.pairing
    assert (pairing['images'], pairing['images_with_depth'], pairing['depth_fraction']) == (6, 6, 1.0)
    gaps_ms = [abs(r.scan_stamp_ns - r.image_stamp_ns) * 1e-6 for r in frames]
    assert pairing['gap_ms_max'] == pytest.approx(max(gaps_ms))
    assert pairing['gap_ms_p50'] == pytest.approx(np.percentile(gaps_ms, 50))
    summary = result.book.method_summary('model')
    mean_rmse = np.mean([r.metrics['model']['rmse'] for r in frames])
    assert summary['rmse'] == pytest.approx(mean_rmse)
    assert summary['pooled']['count'] == sum(r.target_pixels for r in frames)
    # the baselines use the LiDAR and beat a constant guess by far on this scene
    assert result.book.method_summary('nearest')['mae'] < 0.5 * summary['mae']


def test_max_frames_stops_early(tiny_bag: Path) -> None:
    result = evaluate_offline(tiny_bag, _options(max_frames=2), engine=ConstantEngine())
    assert [r.index for r in result.book.frames] == [0, 1]


def test_cli_offline_with_a_real_checkpoint_writes_a_parseable_report(
        tiny_bag: Path, tiny_weights: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    report = tmp_path / 'reports' / 'run'
    status = cli_main(['evaluate', str(tiny_bag), '--weights', str(tiny_weights),
                       '--input-height', '64', '--device', 'cpu', '--no-progress',
                       '--report', str(report)])
    out = capsys.readouterr().out
    assert status == 0
    assert f'report: {report.resolve()}' in out and str(tiny_weights) in out
    assert 'nearest-point fill' in out and 'latency p50' in out
    assert 'pairing: 6 of 6 images got depth (100.0 %); pair gap |scan - image| p50' in out
    summary = json.loads((report / 'summary.json').read_text())
    assert summary['mode'] == 'offline' and summary['weights'] == str(tiny_weights)
    for method in METHODS:
        entry = summary['methods'][method]
        assert all(name in entry for name in METRIC_NAMES)
        assert entry['frames'] == summary['counts']['scored_frames'] == 6
        assert set(entry['by_range']) == {'0-5m', '5-10m', '10-20m', '20-40m', '40m+'}
    latency = summary['methods']['model']['latency_ms']
    assert 0 < latency['p50'] <= latency['p95']
    assert 'drops' in summary['methods']['model']
    with (report / 'frames.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and math.isfinite(float(rows[0]['model_rmse']))
    assert float(rows[0]['nearest_count']) == float(rows[0]['target_pixels']) > 0
    markdown = (report / 'report.md').read_text()
    assert '| model (G2 network) |' in markdown and 'error_vs_range.png' in markdown
    plots = sorted(p.name for p in report.glob('*.png'))
    assert 'error_vs_range.png' in plots and len(plots) == 4  # + panels of frames 0, 3, 5
    for name in plots:
        with Image.open(report / name) as image:
            assert image.size[0] > 100
    assert [p.name for p in report.parent.iterdir()] == ['run']  # no partial folder left


def test_report_replaces_an_earlier_report_but_never_other_folders(tiny_bag: Path,
                                                                   tmp_path: Path) -> None:
    options = _options(max_frames=1)
    result = evaluate_offline(tiny_bag, options, engine=ConstantEngine())
    target = tmp_path / 'rep'
    write_report(result, options, target)
    (target / 'stale.txt').write_text('from the earlier run')
    write_report(result, options, target)
    assert not (target / 'stale.txt').exists() and (target / 'summary.json').is_file()
    other = tmp_path / 'mine'
    other.mkdir()
    (other / 'notes.txt').write_text('keep me')
    with pytest.raises(ConfigError, match='exists and is not an earlier g2mono report'):
        write_report(result, options, other)
    assert (other / 'notes.txt').read_text() == 'keep me'


def test_report_failure_leaves_nothing_half_written(tiny_bag: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    options = _options(max_frames=1)
    result = evaluate_offline(tiny_bag, options, engine=ConstantEngine())

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError('disk full while plotting')

    monkeypatch.setattr(report_module, '_plot_panels', broken)
    with pytest.raises(RuntimeError, match='disk full'):
        write_report(result, options, tmp_path / 'rep')
    assert list(tmp_path.iterdir()) == []


def test_holdout_when_the_bag_has_no_ground_truth(tiny_bag: Path, tmp_path: Path) -> None:
    bag = _copy_bag(tiny_bag, tmp_path / 'no_gt', ('/ground_truth/depth',))
    result = evaluate_offline(bag, _options(seed=3), engine=ConstantEngine())
    assert result.ground_truth == 'holdout' and len(result.book.frames) == 6
    summary = report_module.build_summary(result, _options(seed=3))
    assert 'hold-out' in summary['ground_truth'] and 'seed 3' in summary['ground_truth']


def test_given_extrinsic_replaces_a_missing_tf_static(tiny_bag: Path, tmp_path: Path) -> None:
    from g2mono_ros.synth import default_T_cam_lidar
    from g2mono_ros.fusion.transforms import quaternion_from_rotation

    bag = _copy_bag(tiny_bag, tmp_path / 'no_tf', ('/tf_static',))
    T = default_T_cam_lidar()
    extrinsic = ExtrinsicConfig(tuple(T[:3, 3]), tuple(quaternion_from_rotation(T[:3, :3])))
    with_tf = evaluate_offline(tiny_bag, _options(), engine=ConstantEngine())
    given = evaluate_offline(bag, _options(extrinsic=extrinsic), engine=ConstantEngine())
    for a, b in zip(with_tf.book.frames, given.book.frames):
        assert a.input_pixels == b.input_pixels


def test_unpaired_frames_are_counted_and_the_cli_exits_1(tiny_bag: Path, tiny_weights: Path,
                                                         tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from g2mono_ros.config import SyncConfig

    # A 1 ms pairing window: no image has a scan that close (the synthetic stamps never align).
    options = _options(sync=SyncConfig(sync_max_offset=0.001))
    result = evaluate_offline(tiny_bag, options, engine=ConstantEngine())
    assert result.book.frames == [] and result.drops['sync_image_no_partner'] == 6
    _, summary = write_report(result, options, tmp_path / 'empty')
    assert summary['methods']['model']['rmse'] is None
    assert not list((tmp_path / 'empty').glob('*.png'))
    status = cli_main(['evaluate', str(tiny_bag), '--weights', str(tiny_weights),
                       '--input-height', '64', '--no-progress', '--sync-max-offset', '0.001',
                       '--report', str(tmp_path / 'cli')])
    assert status == 1
    assert 'no frame could be scored (drops: sync_image_no_partner 6' in capsys.readouterr().err


# --- error paths ---------------------------------------------------------------------------

def test_missing_bag_exits_2_naming_it(tmp_path: Path, tiny_weights: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / 'nowhere'
    status = cli_main(['evaluate', str(missing), '--weights', str(tiny_weights),
                       '--no-progress', '--report', str(tmp_path / 'rep')])
    assert status == 2
    assert 'does not exist' in capsys.readouterr().err
    assert not (tmp_path / 'rep').exists()


def test_missing_weights_exits_2(tiny_bag: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    status = cli_main(['evaluate', str(tiny_bag), '--weights', str(tmp_path / 'no.pt')])
    assert status == 2 and '--weights: no checkpoint file' in capsys.readouterr().err


def test_corrupt_bag_raises(tiny_bag: Path, tmp_path: Path) -> None:
    import shutil

    bag = tmp_path / 'corrupt'
    shutil.copytree(tiny_bag, bag)
    storage = next(bag.glob('*.mcap'))
    data = storage.read_bytes()
    storage.write_bytes(data[:len(data) // 3])
    with pytest.raises(BagError, match='corrupt|cannot open'):
        evaluate_offline(bag, _options(), engine=ConstantEngine())


@pytest.mark.parametrize(('topic', 'message'), [
    ('/lidar/points', 'point cloud topic /lidar/points'),
    ('/camera/image_raw', 'image topic /camera/image_raw'),
    ('/camera/camera_info', 'CameraInfo topic /camera/camera_info'),
])
def test_missing_topic_raises_naming_it(tiny_bag: Path, tmp_path: Path, topic: str,
                                        message: str) -> None:
    bag = _copy_bag(tiny_bag, tmp_path / 'partial', (topic,))
    with pytest.raises(BagError, match=message):
        evaluate_offline(bag, _options(), engine=ConstantEngine())


def test_no_extrinsic_raises(tiny_bag: Path, tmp_path: Path) -> None:
    bag = _copy_bag(tiny_bag, tmp_path / 'no_tf', ('/tf_static',))
    with pytest.raises(BagError, match=r'no /tf_static.*--extrinsic'):
        evaluate_offline(bag, _options(), engine=ConstantEngine())


def test_required_ground_truth_topic_missing_raises(tiny_bag: Path) -> None:
    options = _options(ground_truth='topic', gt_topic='/other/depth')
    with pytest.raises(BagError, match='no ground-truth topic /other/depth'):
        evaluate_offline(tiny_bag, options, engine=ConstantEngine())


def test_bad_holdout_fraction_raises() -> None:
    with pytest.raises(ConfigError, match=r'holdout fraction must be in \(0, 1\)'):
        _options(holdout_fraction=1.0)


def test_bad_rate_raises() -> None:
    with pytest.raises(ConfigError, match='rate must be a positive factor'):
        _options(rate=0.0)


def test_ground_truth_of_another_size_raises(tiny_bag: Path, tmp_path: Path) -> None:
    from g2mono_ros.bagio import image_message

    bag = tmp_path / 'bad_gt'
    with BagReader(tiny_bag) as reader, BagWriter(bag) as writer:
        for message in reader.messages(list(reader.topics)):
            msg = message.msg
            if message.topic == '/ground_truth/depth':
                msg = image_message(writer.store, np.ones((32, 64), np.float32), '32FC1',
                                    message.stamp_ns, 'camera_optical_frame')
            writer.write(message.topic, msg, message.log_time_ns)
    with pytest.raises(BagError, match='ground truth on .* is 64x32 but the camera is 128x64'):
        evaluate_offline(bag, _options(), engine=ConstantEngine())
