"""Compressed images: the jpeg/png and compressedDepth codecs against OpenCV and hand values, and
real compressed bags through bagio, the offline evaluator and the trainer's rosbag dataset."""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from g2mono_ros.bagio import BagReader
from g2mono_ros.errors import ConfigError, MessageError
from g2mono_ros.ros.compressed import (compressed_depth_payload, compressed_image_payload,
                                       compressed_topic, depth_from_any_image,
                                       depth_from_compressed_depth, is_compressed,
                                       rgb_from_any_image, rgb_from_compressed)
from g2mono_ros.synth.bag import write_synthetic_bag

RNG = np.random.default_rng(5)


def _rgb(h: int = 24, w: int = 40) -> np.ndarray:
    """A smooth gradient plus a little noise: jpeg keeps it within a few grey levels."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=2)
    return np.clip(img + RNG.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)


def _compressed(fmt: str, data: bytes) -> SimpleNamespace:
    """A duck-typed CompressedImage, as rosbags deserialises one (no rclpy needed)."""
    return SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8), header=None)


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_colour_round_trip_matches_opencv(fmt):
    rgb = _rgb()
    format_, data = compressed_image_payload(rgb, fmt)
    assert format_ == f'rgb8; {fmt} compressed bgr8'  # image_transport's format string
    decoded = rgb_from_compressed(_compressed(format_, data))
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, reference)
    if fmt == 'png':
        np.testing.assert_array_equal(decoded, rgb)
    else:
        assert np.abs(decoded.astype(int) - rgb).mean() < 3.0


def test_mono_and_16_bit_png_become_rgb():
    mono = _rgb()[..., 0]
    ok, data = cv2.imencode('.png', mono)
    rgb = rgb_from_compressed(_compressed('mono8; png compressed mono8', data.tobytes()))
    assert rgb.shape == mono.shape + (3,)
    np.testing.assert_array_equal(rgb[..., 1], mono)
    ok, data16 = cv2.imencode('.png', mono.astype(np.uint16) << 8)
    np.testing.assert_array_equal(
        rgb_from_compressed(_compressed('mono16; png compressed mono16', data16.tobytes()))[..., 0],
        mono)


def test_compressed_depth_16uc1_is_lossless_millimetres():
    depth = np.array([[0.0, 1.234, 65.535], [70.0, np.nan, 2.0]], np.float32)
    format_, data = compressed_depth_payload(depth, '16UC1')
    assert format_ == '16UC1; compressedDepth png'
    assert len(data) > 12 and struct.unpack('<iff', data[:12])[0] == 0
    got = depth_from_compressed_depth(_compressed(format_, data))
    np.testing.assert_allclose(got, [[0.0, 1.234, 65.535], [0.0, 0.0, 2.0]], atol=1e-6)


def test_compressed_depth_32fc1_inverse_quantisation_by_hand():
    # image_transport's defaults: quantization 100, depth_max 10 m -> A = 100 * 101 = 10100,
    # B = 1 - A / 10 = -1009. 2 m -> q = 10100 / 2 - 1009 = 4041 -> 10100 / (4041 + 1009) = 2.
    depth = np.array([[2.0, 0.0, 12.0, 5.55]], np.float32)
    format_, data = compressed_depth_payload(depth, '32FC1', depth_max_m=10.0, quantization=100)
    assert format_ == '32FC1; compressedDepth png'
    _, a, b = struct.unpack('<iff', data[:12])
    assert (a, b) == (10100.0, -1009.0)
    q = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    assert q.tolist() == [[4041, 0, 0, int(10100 / 5.55 - 1009)]]
    got = depth_from_compressed_depth(_compressed(format_, data))
    assert got[0, 0] == pytest.approx(2.0)
    assert got[0, 1] == 0.0 and got[0, 2] == 0.0  # none, and beyond depth_max
    # one quantisation step at d is about d^2 / A
    assert abs(got[0, 3] - 5.55) <= 5.55 ** 2 / 10100 + 1e-6


def test_dispatch_on_message_kind():
    format_, data = compressed_image_payload(_rgb(), 'png')
    msg = _compressed(format_, data)
    assert is_compressed(msg)
    np.testing.assert_array_equal(rgb_from_any_image(msg), rgb_from_compressed(msg))
    dformat, ddata = compressed_depth_payload(np.full((4, 4), 3.0, np.float32))
    np.testing.assert_allclose(depth_from_any_image(_compressed(dformat, ddata)), 3.0)
    assert compressed_topic('/camera/image_raw') == '/camera/image_raw/compressed'
    assert compressed_topic('image/', 'compressedDepth') == 'image/compressedDepth'


@pytest.mark.parametrize('fmt, data, match', [
    ('rgb8; jpeg compressed bgr8', b'not a jpeg', 'not a valid jpeg/png'),
    ('rgb8; jpeg compressed bgr8', b'', 'empty data'),
    ('32FC1; compressedDepth png', b'\x00' * 8, 'shorter than its 12-byte header'),
    ('16UC1; compressedDepth rvl', b'\x00' * 40, 'expected "16UC1; compressedDepth png"'),
])
def test_bad_payloads_raise_message_errors(fmt, data, match):
    decode = depth_from_compressed_depth if 'Depth' in fmt else rgb_from_compressed
    with pytest.raises(MessageError, match=match):
        decode(SimpleNamespace(format=fmt, data=data))


def test_colour_decoder_refuses_depth_and_encoder_checks_input():
    with pytest.raises(MessageError, match='is depth, not a colour image'):
        rgb_from_compressed(_compressed('16UC1; compressedDepth png', b'\x00' * 20))
    with pytest.raises(MessageError, match='must be one of jpeg, png'):
        compressed_image_payload(_rgb(), 'tiff')  # type: ignore[arg-type]
    with pytest.raises(MessageError, match=r'expected \(H, W, 3\) uint8'):
        compressed_image_payload(np.zeros((4, 4), np.uint8))


# --- real compressed bags -----------------------------------------------------------------------

@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict[str, Path]:
    """The same 5-frame synthetic sequence written raw, as png + compressedDepth, and as jpeg."""
    root = tmp_path_factory.mktemp('compressed_bags')
    options = dict(width=128, height=64, beams=16)
    write_synthetic_bag(root / 'raw', 11, 5, **options)
    write_synthetic_bag(root / 'png', 11, 5, image_format='png', depth_format='compressedDepth',
                        **options)
    write_synthetic_bag(root / 'jpeg', 11, 5, image_format='jpeg', **options)
    return {name: root / name for name in ('raw', 'png', 'jpeg')}


def test_synthetic_bag_writes_image_transport_topics(bags):
    with BagReader(bags['png']) as reader:
        topics = reader.topics
    assert topics['/camera/image_raw/compressed'].msgtype == 'sensor_msgs/msg/CompressedImage'
    assert topics['/ground_truth/depth/compressedDepth'].count == 5
    assert '/camera/image_raw' not in topics
    with pytest.raises(ConfigError, match="image_format must be one of raw, jpeg, png; got 'gif'"):
        write_synthetic_bag(bags['png'].parent / 'bad', 1, 1, image_format='gif')


def test_bagio_decodes_compressed_images_and_depth_like_raw(bags):
    with BagReader(bags['raw']) as raw, BagReader(bags['png']) as png, \
            BagReader(bags['jpeg']) as jpeg:
        raw_images = list(raw.images('/camera/image_raw'))
        png_images = list(png.images('/camera/image_raw/compressed'))
        jpeg_images = list(jpeg.images('/camera/image_raw/compressed'))
        raw_depth = list(raw.depth_images('/ground_truth/depth'))
        png_depth = list(png.depth_images('/ground_truth/depth/compressedDepth'))
    assert [s for s, _ in raw_images] == [s for s, _ in png_images] == [s for s, _ in jpeg_images]
    for (_, a), (_, b), (_, c) in zip(raw_images, png_images, jpeg_images):
        np.testing.assert_array_equal(a, b)
        assert np.abs(a.astype(int) - c).mean() < 4.0
    for (sa, a), (sb, b) in zip(raw_depth, png_depth):
        assert sa == sb
        keep = a < 65.5
        np.testing.assert_allclose(b[keep], a[keep], atol=5e-4)  # millimetres, rounded


class RecordingEngine:
    """A stand-in engine (its output is known: 10 m everywhere) that keeps the images it got,
    so the evaluator's decoding of compressed bags is checked directly."""

    max_depth = 80.0

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        return (64, 128)

    def infer(self, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        self.images.append(rgb.copy())
        return np.full(rgb.shape[:2], 10.0, np.float32)


def test_offline_evaluator_reads_compressed_images_and_compressed_depth(bags):
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.evaluation.evaluator import EvaluationOptions, evaluate_offline

    engine_config = EngineConfig(weights='unused.pt', device='cpu', input_height=64)
    raw_engine, png_engine = RecordingEngine(), RecordingEngine()
    raw = evaluate_offline(bags['raw'], EvaluationOptions(engine=engine_config, progress=False),
                           engine=raw_engine)
    png = evaluate_offline(bags['png'], EvaluationOptions(
        engine=engine_config, progress=False, image_topic='/camera/image_raw/compressed',
        gt_topic='/ground_truth/depth/compressedDepth'), engine=png_engine)
    assert png.ground_truth == 'topic' and len(png_engine.images) == len(raw_engine.images) == 5
    for a, b in zip(raw_engine.images, png_engine.images):
        np.testing.assert_array_equal(a, b)
    # Ground truth: the raw bag's, less what 16UC1 millimetres cannot hold (>= 65.5 m).
    from g2mono_ros.evaluation.metrics import compute_depth_metrics

    with BagReader(bags['raw']) as reader:
        truth = dict(reader.depth_images('/ground_truth/depth'))
    assert [r.image_stamp_ns for r in png.book.frames] == [r.image_stamp_ns for r in
                                                            raw.book.frames]
    for record in png.book.frames:
        gt = truth[record.image_stamp_ns]
        expected = compute_depth_metrics(np.full(gt.shape, 10.0), np.where(gt < 65.5, gt, 0))
        assert record.metrics['model']['rmse'] == pytest.approx(expected['rmse'], abs=1e-3)
        assert record.metrics['model']['count'] == expected['count']


def test_evaluator_names_the_compressed_topic_when_the_raw_one_is_missing(bags):
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.errors import BagError
    from g2mono_ros.evaluation.evaluator import EvaluationOptions, evaluate_offline

    options = EvaluationOptions(engine=EngineConfig(weights='unused.pt'), progress=False)
    with pytest.raises(BagError, match='pass --image-topic /camera/image_raw/compressed'):
        evaluate_offline(bags['jpeg'], options, engine=RecordingEngine())


def test_trainer_rosbag_dataset_reads_compressed_images(bags):
    from g2mono_ros.training.config import DataConfig
    from g2mono_ros.training.datasets import build_source

    def source(path: Path, **kwargs):
        config = DataConfig(kind='rosbag', path=str(path), **kwargs)
        config.validate()
        return build_source(config, (64, 64), 80.0)

    raw = source(bags['raw'])
    png = source(bags['png'], image_topic='/camera/image_raw/compressed')
    assert len(raw) == len(png) == 5
    np.testing.assert_array_equal(raw.load(2, None).rgb, png.load(2, None).rgb)


@pytest.mark.dds
@pytest.mark.timeout(240)
def test_live_evaluation_replays_a_compressed_bag_through_the_node(bags, tiny_weights):
    """The node subscribes to ``/camera/image_raw/compressed`` (image_transport: compressed),
    decodes the png on its worker and gives the depth the offline pipeline gives."""
    pytest.importorskip('rclpy')
    from g2mono_ros.config import EngineConfig
    from g2mono_ros.evaluation.evaluator import (EvaluationOptions, evaluate_offline,
                                                 open_sequence)
    from g2mono_ros.models.engine import DepthEngine
    from g2mono_ros.ros.live_replay import replay

    engine_config = EngineConfig(weights=str(tiny_weights), device='cpu', input_height=64)
    options = EvaluationOptions(engine=engine_config, mode='live', progress=False,
                                image_topic='/camera/image_raw/compressed',
                                gt_topic='/ground_truth/depth/compressedDepth')
    recording = replay(open_sequence(bags['png'], options), options)
    assert recording.depth, 'no depth from the compressed replay'

    class Keep:
        def __init__(self, engine):
            self.engine, self.max_depth, self.outputs = engine, engine.max_depth, []

        def network_input_size(self, height, width):
            return self.engine.network_input_size(height, width)

        def infer(self, rgb, sparse):
            self.outputs.append(self.engine.infer(rgb, sparse))
            return self.outputs[-1]

    engine = Keep(DepthEngine(engine_config))
    offline = evaluate_offline(bags['raw'], EvaluationOptions(engine=engine_config,
                                                              progress=False), engine=engine)
    reference = {r.image_stamp_ns: out for r, out in zip(offline.book.frames, engine.outputs)}
    # As in test_eval_live: a loaded machine may pair a frame differently, so one must match.
    assert any(np.allclose(depth, reference[stamp], atol=1e-3)
               for stamp, depth in recording.depth.items() if stamp in reference)


def test_synth_cli_writes_a_compressed_bag(tmp_path, capsys):
    from g2mono_ros.cli import main as cli_main

    out = tmp_path / 'bag'
    assert cli_main(['synth', '--out', str(out), '--frames', '2', '--width', '64',
                     '--height', '32', '--image-format', 'jpeg', '--depth-format',
                     'compressedDepth', '--quiet']) == 0
    printed = capsys.readouterr().out
    assert '/camera/image_raw/compressed' in printed
    with BagReader(out) as reader:
        assert reader.topics['/camera/image_raw/compressed'].count == 2
        assert [rgb.shape for _, rgb in reader.images('/camera/image_raw/compressed')] == \
            [(32, 64, 3)] * 2
        assert reader.topics['/ground_truth/depth/compressedDepth'].count == 2
