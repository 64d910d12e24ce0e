"""Pinhole camera model with ROS distortion models, and its rescaling for resized images.

Pixel convention (OpenCV's and ROS's): integer pixel coordinates are pixel centres, so pixel
(0, 0) covers [-0.5, 0.5) x [-0.5, 0.5) and an image of width W spans u in [-0.5, W - 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from g2mono_ros.config import CAMERA_MODELS
from g2mono_ros.errors import ShapeError

__all__ = ['CAMERA_MODELS', 'DISTORTION_MODELS', 'CameraModel', 'DistortionModel',
           'camera_model_from_calibration']


DistortionModel = Literal['none', 'plumb_bob', 'rational_polynomial', 'equidistant']

#: model -> number of coefficients stored (OpenCV order).
#: plumb_bob: k1 k2 p1 p2 k3; rational_polynomial: k1 k2 p1 p2 k3 k4 k5 k6;
#: equidistant (OpenCV fisheye): k1 k2 k3 k4.
DISTORTION_MODELS: dict[str, int] = {
    'none': 0,
    'plumb_bob': 5,
    'rational_polynomial': 8,
    'equidistant': 4,
}


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics of one camera image.

    Attributes:
        width: image width in pixels (> 0).
        height: image height in pixels (> 0).
        K: (3, 3) float64 camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels
            (accepted as 9 values row-major too).
        D: (k,) float64 distortion coefficients, padded/trimmed to the model's count
            (``DISTORTION_MODELS``); trailing zeros beyond it are accepted and dropped.
        distortion_model: ``none`` | ``plumb_bob`` | ``rational_polynomial`` | ``equidistant``.
        offset_m: (3,) float64 metres added to camera-frame points before they are projected:
            ``K^-1 P[:, 3]`` of a rectified CameraInfo, i.e. ``(Tx/fx', Ty/fy', 0)`` for the
            second camera of a stereo pair (image_geometry's ``project3dToPixel``); zeros
            (the default, None) for every monocular camera.

    Raises:
        ShapeError: non-positive size, K not 3x3 / non-finite / zero focal length, unknown
            distortion model, or coefficients that model cannot take.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: DistortionModel = 'plumb_bob'
    offset_m: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (int(self.width) > 0 and int(self.height) > 0):
            msg = f'camera size must be positive; got width {self.width}, height {self.height}'
            raise ShapeError(msg)
        k = np.array(self.K, dtype=np.float64)
        if k.size != 9:
            msg = f'K must be (3, 3) or 9 values; got shape {k.shape}'
            raise ShapeError(msg)
        k = k.reshape(3, 3)
        if not np.isfinite(k).all():
            msg = f'K must be finite; got {k.tolist()}'
            raise ShapeError(msg)
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            msg = f'K must have positive focal lengths fx, fy; got fx={k[0, 0]}, fy={k[1, 1]}'
            raise ShapeError(msg)
        model = str(self.distortion_model)
        if model not in DISTORTION_MODELS:
            msg = (f'unknown distortion model {model!r}; expected one of '
                   f'{", ".join(DISTORTION_MODELS)}')
            raise ShapeError(msg)
        count = DISTORTION_MODELS[model]
        d = np.array(self.D if self.D is not None else (), dtype=np.float64).reshape(-1)
        if not np.isfinite(d).all():
            msg = f'distortion coefficients must be finite; got {d.tolist()}'
            raise ShapeError(msg)
        if d.size > count:
            if np.any(d[count:] != 0):
                msg = (f'distortion model {model!r} takes {count} coefficients; got {d.size} '
                       f'with non-zero extras {d[count:].tolist()}')
                raise ShapeError(msg)
            d = d[:count]
        elif d.size < count:
            d = np.concatenate([d, np.zeros(count - d.size)])
        offset = np.zeros(3) if self.offset_m is None else np.array(self.offset_m, np.float64)
        if offset.shape != (3,) or not np.isfinite(offset).all():
            msg = f'offset_m must be 3 finite metres; got {np.asarray(self.offset_m).tolist()}'
            raise ShapeError(msg)
        object.__setattr__(self, 'offset_m', _readonly(offset))
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))
        object.__setattr__(self, 'K', _readonly(k))
        object.__setattr__(self, 'D', _readonly(d))
        object.__setattr__(self, 'distortion_model', model)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def is_distorted(self) -> bool:
        """True when any distortion coefficient is non-zero."""
        return bool(np.any(self.D != 0))

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for the image resized to ``width`` x ``height``.

        Uses the pixel-centre convention of ``cv2.resize`` (centres map to centres):
        ``fx' = fx * sx``, ``cx' = (cx + 0.5) * sx - 0.5`` with ``sx = width / self.width``
        (likewise y). Distortion acts on normalised coordinates and is unchanged.

        Raises:
            ShapeError: non-positive size.
        """
        if not (int(width) > 0 and int(height) > 0):
            msg = f'scaled size must be positive; got width {width}, height {height}'
            raise ShapeError(msg)
        if int(width) == self.width and int(height) == self.height:
            return self
        sx = int(width) / self.width
        sy = int(height) / self.height
        k = self.K.copy()
        k[0, 0] *= sx
        k[0, 1] *= sx
        k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        k[1, 1] *= sy
        k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
        # offset_m = K^-1 P[:, 3] is metres: the same for the resized image.
        return CameraModel(width=int(width), height=int(height), K=k, D=self.D.copy(),
                           distortion_model=self.distortion_model, offset_m=self.offset_m)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return (self.width == other.width and self.height == other.height
                and self.distortion_model == other.distortion_model
                and np.array_equal(self.K, other.K) and np.array_equal(self.D, other.D)
                and np.array_equal(self.offset_m, other.offset_m))

    def __hash__(self) -> int:
        # K and D are read-only copies, so hashing by value is stable.
        return hash((self.width, self.height, self.distortion_model, self.K.tobytes(),
                     self.D.tobytes(), self.offset_m.tobytes()))

    def __repr__(self) -> str:
        return (f'CameraModel(width={self.width}, height={self.height}, fx={self.fx:.6g}, '
                f'fy={self.fy:.6g}, cx={self.cx:.6g}, cy={self.cy:.6g}, '
                f'distortion_model={self.distortion_model!r}, D={self.D.tolist()}'
                + (f', offset_m={self.offset_m.tolist()}' if self.offset_m.any() else '') + ')')


def camera_model_from_calibration(*, width: int, height: int, K: Any, D: Any,
                                  distortion_model: str, P: Any = None, binning_x: int = 0,
                                  binning_y: int = 0, roi: tuple[int, int, int, int] = (0, 0, 0, 0),
                                  camera_model: str = 'raw') -> CameraModel:
    """The CameraModel of a published image from the fields of its sensor_msgs/CameraInfo.

    ``raw`` images use K and D. ``rectified`` images (image_proc's ``image_rect``, stereo and
    RGB-D drivers) are already undistorted: they use P's left 3x3 as the camera matrix, no
    distortion, and P's fourth column as ``offset_m`` (Tx, Ty of a stereo pair's second camera);
    R is ignored, as image_geometry does for rectified images.

    Binning and ROI shrink the calibrated camera exactly as image_geometry's
    PinholeCameraModel (C++) does: the image is ``roi size / binning`` (the full size when the
    ROI is all zero; binning 0 means 1), ``fx' = fx / binning_x``, ``cx' = (cx - x_offset) /
    binning_x`` (likewise y; the skew scales with x). The same CameraInfo then means the same
    geometry here as in depth_image_proc and every other ROS consumer.

    Args:
        width, height: calibrated (full-sensor) image size, px.
        K: 9 values or (3, 3), the raw camera matrix.
        D: distortion coefficients of ``distortion_model`` (OpenCV order).
        distortion_model: ``none`` | ``plumb_bob`` | ``rational_polynomial`` | ``equidistant``.
        P: 12 values or (3, 4), the projection matrix of the rectified image; needed (non-zero
            focal lengths) for ``rectified``, unused for ``raw``.
        binning_x, binning_y: CameraInfo binning (0 or 1 = none).
        roi: (x_offset, y_offset, width, height) in full-resolution px; all zero = full image.
        camera_model: ``raw`` | ``rectified``.

    Raises:
        ShapeError: an unknown ``camera_model``; K, D or P that cannot describe a camera; a
            ROI outside the calibrated image.
    """
    if camera_model not in CAMERA_MODELS:
        msg = f'camera_model must be one of {", ".join(CAMERA_MODELS)}; got {camera_model!r}'
        raise ShapeError(msg)
    offset = np.zeros(3)
    if camera_model == 'rectified':
        p = np.array(P if P is not None else (), dtype=np.float64).reshape(-1)
        if p.size != 12 or not np.isfinite(p).all() or p[0] <= 0 or p[5] <= 0:
            msg = ('camera_model rectified needs CameraInfo P (3x4) with positive focal lengths;'
                   f' got {p.tolist()}')
            raise ShapeError(msg)
        p = p.reshape(3, 4)
        k = p[:, :3].copy()
        if not np.allclose(k[2], (0.0, 0.0, 1.0)):
            msg = f'P must have [0, 0, 1] as the last row of its 3x3 part; got {k[2].tolist()}'
            raise ShapeError(msg)
        offset = np.linalg.solve(k, p[:, 3])
        d: Any = ()
        distortion_model = 'none'
    else:
        k = np.array(K, dtype=np.float64).reshape(-1)
        if k.size != 9:
            msg = f'K must be (3, 3) or 9 values; got {k.size} values'
            raise ShapeError(msg)
        k = k.reshape(3, 3)
        d = D
    bin_x, bin_y = max(int(binning_x or 0), 1), max(int(binning_y or 0), 1)
    x_off, y_off, roi_w, roi_h = (int(v) for v in roi)
    if roi_w > 0 and roi_h > 0:
        if x_off < 0 or y_off < 0 or x_off + roi_w > width or y_off + roi_h > height:
            msg = (f'ROI x {x_off} y {y_off} {roi_w}x{roi_h} lies outside the calibrated '
                   f'{width}x{height} image')
            raise ShapeError(msg)
        width, height = roi_w, roi_h
    else:
        x_off = y_off = 0
    if bin_x > 1 or bin_y > 1 or x_off or y_off:
        k = k.copy()
        k[0, 2] = (k[0, 2] - x_off) / bin_x
        k[1, 2] = (k[1, 2] - y_off) / bin_y
        k[0, 0] /= bin_x
        k[0, 1] /= bin_x
        k[1, 1] /= bin_y
        width, height = width // bin_x, height // bin_y
    return CameraModel(width=width, height=height, K=k, D=d, distortion_model=distortion_model,
                       offset_m=offset)
