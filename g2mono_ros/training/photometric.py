"""Real-photo statistics for synthetic training images, and the LiDAR dropouts that go with them.

Exposure, white balance, vignetting, specular spots, blur, sensor noise and JPEG; points vanish
on very dark or shiny pixels and outside a partial vertical field of view, as real scans do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from g2mono_ros.errors import ConfigError, ShapeError

__all__ = ['PhotometricConfig', 'PhotometricResult', 'photometric_augment', 'sensor_dropouts']


@dataclass(frozen=True)
class PhotometricConfig:
    """Chances of each degradation (0 disables it).

    Attributes:
        p_exposure: gain 0.35-1.8 and gamma 0.7-1.4 (under/over-exposure).
        p_white_balance: per-channel gains 0.85-1.15.
        p_vignetting: radial fall-off to 0.45-0.9 at the corners.
        p_specular: 1-4 bright saturated blobs (glare, reflections).
        p_blur: Gaussian blur sigma 0.5-1.5 px (defocus, motion).
        p_noise: shot + read noise, sigma 1-8 grey levels.
        p_jpeg: JPEG re-encoding at quality 35-90.
        p_dark_dropout: points on pixels darker than ``dark_level`` vanish (with chance 0.3-1).
        dark_level: luminance threshold in [0, 1].
        p_specular_dropout: points inside the specular blobs vanish.
        p_partial_fov: the top (0-40 %) or bottom (0-35 %) rows lose their points (a scanner
            whose vertical field of view does not cover the image).
    """

    p_exposure: float = 0.6
    p_white_balance: float = 0.5
    p_vignetting: float = 0.4
    p_specular: float = 0.3
    p_blur: float = 0.3
    p_noise: float = 0.6
    p_jpeg: float = 0.5
    p_dark_dropout: float = 0.5
    dark_level: float = 0.06
    p_specular_dropout: float = 0.8
    p_partial_fov: float = 0.2

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                msg = f"parameter 'simulation.photometric.{name}' must be in [0, 1]; got {value!r}"
                raise ConfigError(msg)


@dataclass(frozen=True)
class PhotometricResult:
    """The degraded image and where its specular blobs are.

    Attributes:
        rgb: (H, W, 3) uint8.
        specular: (H, W) bool, inside an added specular blob.
    """

    rgb: np.ndarray
    specular: np.ndarray


def photometric_augment(rgb: np.ndarray, rng: np.random.Generator,
                        config: PhotometricConfig | None = None) -> PhotometricResult:
    """Degrade a clean rendered image the way a real camera would.

    Args:
        rgb: (H, W, 3) uint8.
        rng: every draw comes from it.
        config: chances; defaults when ``None``.

    Raises:
        ShapeError: rgb is not (H, W, 3) uint8.
    """
    cfg = config or PhotometricConfig()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        msg = f'rgb must be (H, W, 3) uint8; got {rgb.shape} {rgb.dtype}'
        raise ShapeError(msg)
    height, width = rgb.shape[:2]
    image = rgb.astype(np.float32) / 255.0
    if rng.random() < cfg.p_exposure:
        image = np.clip(image * rng.uniform(0.35, 1.8), 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < cfg.p_white_balance:
        image = image * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < cfg.p_vignetting:
        r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
        corner = rng.uniform(0.45, 0.9)
        image = image * (1.0 - (1.0 - corner) * r2 / 2.0)[..., None]
    specular = np.zeros((height, width), bool)
    if rng.random() < cfg.p_specular:
        for _ in range(int(rng.integers(1, 5))):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            radius = rng.uniform(0.01, 0.06) * max(height, width)
            d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / radius ** 2
            blob = np.exp(-d2 * 2.0)
            image = image + 1.5 * blob[..., None]
            specular |= d2 < 0.35
    if rng.random() < cfg.p_blur:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.5)))
    if rng.random() < cfg.p_noise:
        sigma = rng.uniform(1.0, 8.0) / 255.0
        shot = np.sqrt(np.clip(image, 0.0, 1.0)) * sigma
        image = image + rng.standard_normal(image.shape).astype(np.float32) * (shot + 0.3 * sigma)
    out = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        ok, data = cv2.imencode('.jpg', out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 91))])
        if ok:
            out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return PhotometricResult(out, specular)


def sensor_dropouts(sparse: np.ndarray, rgb_clean: np.ndarray, specular: np.ndarray,
                    rng: np.random.Generator, config: PhotometricConfig | None = None) -> np.ndarray:
    """Remove points a real LiDAR would miss: dark and shiny surfaces, a partial vertical FOV.

    Args:
        sparse: (H, W) sparse depth (any unit, 0 = none).
        rgb_clean: (H, W, 3) uint8 image before the photometric degradation (surface albedo
            proxy: darkness is the surface's, not the exposure's).
        specular: (H, W) bool specular blobs.
        rng: draws.

    Returns:
        (H, W) float32 with some points set to 0.
    """
    cfg = config or PhotometricConfig()
    out = np.array(sparse, dtype=np.float32, copy=True)
    height = out.shape[0]
    if rng.random() < cfg.p_dark_dropout:
        luminance = rgb_clean.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        dark = luminance < 255.0 * cfg.dark_level
        out[dark & (rng.random(out.shape) < rng.uniform(0.3, 1.0))] = 0.0
    if specular.any() and rng.random() < cfg.p_specular_dropout:
        out[specular] = 0.0
    if rng.random() < cfg.p_partial_fov:
        if rng.random() < 0.5:
            out[:int(rng.uniform(0.0, 0.4) * height)] = 0.0
        else:
            out[height - int(rng.uniform(0.0, 0.35) * height):] = 0.0
    return out
