"""Real photographs with ground-truth depth for the quality benchmark (Middlebury stereo frames).

Two frames, each from a package registry: "Motorcycle" (Middlebury 2014, inside scikit-image)
and "Aloe" (Middlebury 2006, inside Debian's ``opencv-doc``, fetched by
``scripts/fetch_real_frames.sh``). Ground truth is depth from the structured-light disparity;
the input is LiDAR-like scan lines sampled from it (``quality.scanline_input``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from g2mono_ros.errors import ShapeError
from g2mono_ros.evaluation.quality import QualityFrame, scanline_input

__all__ = [
    'ALOE_BASELINE_M',
    'ALOE_DMIN_PX',
    'ALOE_FILES',
    'ALOE_F_PX',
    'aloe_frames',
    'crop_3_2',
    'disparity_to_depth',
    'motorcycle_frames',
    'real_frames_dir',
]

#: Middlebury 2014 Motorcycle (imperfect calibration) at the quarter size scikit-image ships:
#: focal length and disparity offset / 4, baseline in metres.
MOTORCYCLE_F_PX = 3979.911 / 4
MOTORCYCLE_DOFFS_PX = 124.343 / 4
MOTORCYCLE_BASELINE_M = 0.193001
#: Middlebury 2006 rig (full size, as OpenCV's ``aloeL.jpg`` / ``aloeGT.png``, 1282 x 1110):
#: focal length 3740 px, baseline 160 mm. The disparity offset (``dmin.txt`` of the release)
#: is not in OpenCV's copy; 270 px is Aloe's value as we recall it, not checked here (offline).
#: It sets the metric scale (depth 1.24-1.90 m); the benchmark's verdicts were the same at
#: 200 and 340 px (weights README).
ALOE_F_PX = 3740.0
ALOE_BASELINE_M = 0.160
ALOE_DMIN_PX = 270.0
#: The files ``scripts/fetch_real_frames.sh`` copies out of ``opencv-doc``.
ALOE_FILES = ('aloeL.jpg', 'aloeGT.png')


def real_frames_dir() -> Path:
    """Where ``scripts/fetch_real_frames.sh`` puts the frames: ``$G2MONO_DATA_DIR`` or
    ``$XDG_CACHE_HOME/g2mono_ros`` (default ``~/.cache/g2mono_ros``), subfolder ``real``."""
    root = os.environ.get('G2MONO_DATA_DIR')
    if not root:
        root = str(Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'g2mono_ros')
    return Path(root) / 'real'


def disparity_to_depth(disparity_px: np.ndarray, focal_px: float, baseline_m: float,
                       offset_px: float) -> np.ndarray:
    """Depth from a stereo disparity map: ``f * B / (d + offset)``.

    Args:
        disparity_px: (H, W) disparity in pixels; 0, negative or non-finite = unknown.
        focal_px: focal length (px) at the disparity map's size.
        baseline_m: stereo baseline (m).
        offset_px: disparity offset of the two image crops (px, Middlebury ``doffs``/``dmin``).

    Returns:
        (H, W) float32 metres, 0 where the disparity is unknown.
    """
    disparity = np.asarray(disparity_px, dtype=np.float64)
    if disparity.ndim != 2:
        msg = f'disparity must be (H, W); got {disparity.shape}'
        raise ShapeError(msg)
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = focal_px * baseline_m / (np.where(valid, disparity, 1.0) + offset_px)
    return np.where(valid, depth, 0.0).astype(np.float32)


def crop_3_2(*images: np.ndarray) -> list[np.ndarray]:
    """The centred 3:2 (width:height) crop of each image (all of one size), as the engine maps
    3:2 frames to 128x192 / 256x384 without distortion."""
    h, w = images[0].shape[:2]
    crop_h = min(h, w * 2 // 3)
    crop_w = crop_h * 3 // 2
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return [np.ascontiguousarray(image[top:top + crop_h, left:left + crop_w]) for image in images]


def motorcycle_frames(beams_list: tuple[int, ...]) -> list[tuple[str, QualityFrame]] | None:
    """Middlebury 2014 Motorcycle (scikit-image) with scan-line inputs, or None without it."""
    try:
        from skimage.data import stereo_motorcycle
    except ImportError:
        return None
    left, _, disparity = stereo_motorcycle()
    gt = disparity_to_depth(disparity, MOTORCYCLE_F_PX, MOTORCYCLE_BASELINE_M, MOTORCYCLE_DOFFS_PX)
    rgb, gt = crop_3_2(left, gt)
    return [(f'real-motorcycle-{beams}', QualityFrame(rgb, scanline_input(gt, beams), gt))
            for beams in beams_list]


def aloe_frames(beams_list: tuple[int, ...], directory: Path | None = None,
                ) -> list[tuple[str, QualityFrame]] | None:
    """Middlebury 2006 Aloe (Debian ``opencv-doc``) with scan-line inputs, or None when the
    files are not in ``directory`` (default ``real_frames_dir()``).

    The full-size frame (1282 x 1110) is cropped to 3:2 and halved (640 x 427, near the
    Motorcycle frame's size): image by area, ground truth by nearest so that no depth is
    blended across the leaves' edges.
    """
    import cv2

    folder = real_frames_dir() if directory is None else Path(directory)
    image_path, disparity_path = (folder / name for name in ALOE_FILES)
    if not (image_path.is_file() and disparity_path.is_file()):
        return None
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    disparity = cv2.imread(str(disparity_path), cv2.IMREAD_UNCHANGED)
    if bgr is None or disparity is None or disparity.shape != bgr.shape[:2]:
        msg = (f'{folder}: expected a colour image and a disparity map of one size; got '
               f'{None if bgr is None else bgr.shape} and '
               f'{None if disparity is None else disparity.shape}')
        raise ShapeError(msg)
    gt = disparity_to_depth(disparity, ALOE_F_PX, ALOE_BASELINE_M, ALOE_DMIN_PX)
    rgb, gt = crop_3_2(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), gt)
    half = (rgb.shape[1] // 2, rgb.shape[0] // 2)
    rgb = cv2.resize(rgb, half, interpolation=cv2.INTER_AREA)
    gt = cv2.resize(gt, half, interpolation=cv2.INTER_NEAREST)
    return [(f'real-aloe-{beams}', QualityFrame(rgb, scanline_input(gt, beams), gt))
            for beams in beams_list]
