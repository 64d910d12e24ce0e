"""Pinhole camera model with ROS distortion models, and its rescaling for resized images.

Pixel convention (OpenCV's and ROS's): integer pixel coordinates are pixel centres, so pixel
(0, 0) covers [-0.5, 0.5) x [-0.5, 0.5) and an image of width W spans u in [-0.5, W - 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from g2mono_ros.errors import ShapeError

__all__ = ['DISTORTION_MODELS', 'CameraModel', 'DistortionModel']

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

    Raises:
        ShapeError: non-positive size, K not 3x3 / non-finite / zero focal length, unknown
            distortion model, or coefficients that model cannot take.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: DistortionModel = 'plumb_bob'

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
        return CameraModel(width=int(width), height=int(height), K=k, D=self.D.copy(),
                           distortion_model=self.distortion_model)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return (self.width == other.width and self.height == other.height
                and self.distortion_model == other.distortion_model
                and np.array_equal(self.K, other.K) and np.array_equal(self.D, other.D))

    def __hash__(self) -> int:
        # K and D are read-only copies, so hashing by value is stable.
        return hash((self.width, self.height, self.distortion_model, self.K.tobytes(),
                     self.D.tobytes()))

    def __repr__(self) -> str:
        return (f'CameraModel(width={self.width}, height={self.height}, fx={self.fx:.6g}, '
                f'fy={self.fy:.6g}, cx={self.cx:.6g}, cy={self.cy:.6g}, '
                f'distortion_model={self.distortion_model!r}, D={self.D.tolist()})')
