"""The real frames of the quality benchmark: stereo disparity to depth, the 3:2 crop, and the
two Middlebury frames as registry packages ship them (each test skips where its package is
missing: scikit-image for Motorcycle, ``scripts/fetch_real_frames.sh`` for Aloe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from g2mono_ros.errors import ShapeError
from g2mono_ros.evaluation import real_frames
from g2mono_ros.evaluation.real_frames import (
    aloe_frames,
    crop_3_2,
    disparity_to_depth,
    motorcycle_frames,
    real_frames_dir,
)


def test_disparity_to_depth_by_hand() -> None:
    disparity = np.array([[100.0, 0.0], [np.nan, 30.0]], np.float32)
    depth = disparity_to_depth(disparity, focal_px=1000.0, baseline_m=0.2, offset_px=100.0)
    # 1000 px * 0.2 m / (100 + 100) px = 1 m; / (30 + 100) = 1.53846 m; unknown -> 0.
    np.testing.assert_allclose(depth, [[1.0, 0.0], [0.0, 200.0 / 130.0]], rtol=1e-6)
    assert depth.dtype == np.float32
    with pytest.raises(ShapeError, match=r'\(H, W\)'):
        disparity_to_depth(np.ones((2, 2, 1)), 1.0, 1.0, 0.0)


def test_crop_3_2_is_centred_and_shared() -> None:
    image = np.arange(10 * 30).reshape(10, 30)
    colour = np.dstack([image] * 3)
    cropped, cropped_colour = crop_3_2(image, colour)
    assert cropped.shape == (10, 15) and cropped_colour.shape == (10, 15, 3)
    np.testing.assert_array_equal(cropped, image[:, 7:22])  # (30 - 15) // 2 = 7 columns off
    tall = np.zeros((40, 30))
    assert crop_3_2(tall)[0].shape == (20, 30)  # rows 10..29: height limited by the width


def test_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv('G2MONO_DATA_DIR', str(tmp_path / 'data'))
    assert real_frames_dir() == tmp_path / 'data' / 'real'
    monkeypatch.delenv('G2MONO_DATA_DIR')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert real_frames_dir() == tmp_path / 'cache' / 'g2mono_ros' / 'real'


def test_aloe_is_none_until_fetched_and_rejects_mismatched_files(tmp_path: Path) -> None:
    import cv2

    assert aloe_frames((16,), tmp_path) is None
    cv2.imwrite(str(tmp_path / 'aloeL.jpg'), np.zeros((30, 45, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'aloeGT.png'), np.zeros((20, 45), np.uint8))
    with pytest.raises(ShapeError, match='one size'):
        aloe_frames((16,), tmp_path)


def _check_frames(frames: list, beams: tuple[int, ...], depth_range: tuple[float, float]) -> None:
    for (name, frame), count in zip(frames, beams):
        assert name.endswith(f'-{count}')
        h, w = frame.gt_m.shape
        assert frame.rgb.shape == (h, w, 3) and frame.rgb.dtype == np.uint8
        assert abs(w / h - 1.5) < 0.01
        known = frame.gt_m[frame.gt_m > 0]
        assert depth_range[0] < known.min() and known.max() < depth_range[1]
        lines = np.flatnonzero((frame.sparse_m > 0).any(axis=1))
        assert len(lines) == count  # one image row per beam
        # the input samples the ground truth exactly where it has points
        hit = frame.sparse_m > 0
        np.testing.assert_array_equal(frame.sparse_m[hit], frame.gt_m[hit])


def test_motorcycle_frame_from_scikit_image() -> None:
    pytest.importorskip('skimage')
    frames = motorcycle_frames((16, 64))
    # Middlebury 2014 Motorcycle: the scene spans about 2-6 m from the rig.
    _check_frames(frames, (16, 64), (1.5, 8.0))


def test_aloe_frame_from_opencv_doc() -> None:
    """Needs ``bash scripts/fetch_real_frames.sh`` to have run (Debian's opencv-doc)."""
    directory = real_frames_dir()
    if not all((directory / name).is_file() for name in real_frames.ALOE_FILES):
        pytest.skip(f'Aloe not fetched into {directory} (bash scripts/fetch_real_frames.sh)')
    frames = aloe_frames((16, 32))
    assert frames[0][1].gt_m.shape == (427, 640)  # 1282 x 1110 cropped to 3:2, halved
    # f B / (d + dmin): disparities 43-211 px at full size -> 1.24-1.90 m
    _check_frames(frames, (16, 32), (1.2, 1.95))
