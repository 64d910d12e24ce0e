"""Which LiDAR -> camera transform a pair uses: explicit parameters, or TF between the frames.

ROS-free: the TF lookup itself sits behind ``TransformSource`` (``ros/tf_lookup.py`` wraps
tf2_ros). Also a check that warns when a scan mostly misses the image (a wrong extrinsic).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

from g2mono_ros.errors import ShapeError, TransformError

__all__ = [
    'CoverageCheck',
    'ExtrinsicResolver',
    'Resolution',
    'StaticFrameTree',
    'TransformSource',
    'points_in_image_fraction',
]


class TransformSource(Protocol):
    """Where transforms between named frames come from (tf2_ros in the node)."""

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int,
               timeout_s: float) -> np.ndarray:
        """``T_target_source`` (4, 4) float64 at ``stamp_ns``, waiting up to ``timeout_s``.

        Raises:
            TransformError: no path between the frames, or none at that time.
        """
        ...

    def is_static(self, target_frame: str, source_frame: str) -> bool:
        """True when every link between the two frames is a static transform."""
        ...

    # Optional: ``static_version`` (int), changed whenever a static transform arrives; the
    # resolver then drops its cache (``StaticFrameTree.version``).


class StaticFrameTree:
    """The frame tree of static transforms (``/tf_static``): which frame pairs never move.

    Each static transform names a parent and a child; two frames are rigidly linked when both
    reach a common ancestor through static links only. Thread-safe (fed by the executor, read
    by the worker).
    """

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._lock = threading.Lock()
        self._version = 0

    @property
    def version(self) -> int:
        """Static transforms recorded so far: a change means cached static transforms may be
        stale (a calibration republished on ``/tf_static``)."""
        return self._version

    def add(self, parent_frame: str, child_frame: str) -> None:
        """Record a static transform ``parent_frame -> child_frame`` (a later one replaces it)."""
        with self._lock:
            self._parent[child_frame.lstrip('/')] = parent_frame.lstrip('/')
            self._version += 1

    def _ancestors(self, frame: str) -> list[str]:
        chain = [frame]
        seen = {frame}
        while chain[-1] in self._parent:
            parent = self._parent[chain[-1]]
            if parent in seen:  # a loop in a bad tree: stop rather than spin
                break
            chain.append(parent)
            seen.add(parent)
        return chain

    def connects(self, frame_a: str, frame_b: str) -> bool:
        """True when ``frame_a`` and ``frame_b`` are linked by static transforms only."""
        frame_a, frame_b = frame_a.lstrip('/'), frame_b.lstrip('/')
        if frame_a == frame_b:
            return True
        with self._lock:
            return bool(set(self._ancestors(frame_a)) & set(self._ancestors(frame_b)))


class Resolution(NamedTuple):
    """The transform for one pair, or why there is none.

    Attributes:
        T_cam_lidar: (4, 4) float64, cloud frame -> image (camera optical) frame; None when
            unavailable.
        source: ``parameters`` | ``tf`` | ``tf_cached`` | ``same_frame`` | ``none``.
        reason: why ``T_cam_lidar`` is None ('' otherwise).
    """

    T_cam_lidar: np.ndarray | None
    source: str
    reason: str = ''


class ExtrinsicResolver:
    """Chooses the LiDAR -> camera transform of each pair.

    With ``fixed`` (the ``extrinsic.*`` parameters) that transform is used whatever the frames
    say. Without it the transform is looked up from the cloud's ``frame_id`` to the image's at
    the image stamp (the time the depth is for; motion between the scan and the image is the
    motion compensation's business), waiting up to ``timeout_s``. A transform whose frames are
    linked by static transforms only is looked up once and cached; the cache is dropped when
    the source's ``static_version`` changes (a calibration republished on ``/tf_static``), and
    nothing is cached for ``static_settle_s`` after that, because tf2's own listener may take
    the new transform after ours has announced it. A missing transform is
    counted as ``no_transform`` through ``record`` (the node's throttled fault log), naming both
    frames; the pair is then skipped, never projected with a guess.

    Args:
        fixed: (4, 4) float64 ``T_cam_lidar`` from the parameters, or None to use ``source``.
        source: the transform source (tf2_ros in the node); required when ``fixed`` is None.
        timeout_s: seconds one lookup may wait.
        record: ``record(kind, detail)`` counts a fault and logs it throttled; default: count
            only (``counts``).
        static_settle_s: seconds after a static change during which lookups are not cached.
        clock: monotonic seconds (``time.monotonic``; injectable for tests).

    Raises:
        ShapeError: ``fixed`` is not (4, 4) finite.
        TransformError: neither ``fixed`` nor ``source`` given.
    """

    def __init__(self, *, fixed: np.ndarray | None = None, source: TransformSource | None = None,
                 timeout_s: float = 0.1,
                 record: Callable[[str, str], Any] | None = None,
                 static_settle_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if fixed is not None:
            fixed = np.asarray(fixed, dtype=np.float64)
            if fixed.shape != (4, 4) or not np.isfinite(fixed).all():
                msg = f'fixed extrinsic must be a finite (4, 4) transform; got shape {fixed.shape}'
                raise ShapeError(msg)
        elif source is None:
            msg = 'no extrinsic: give either the fixed transform or a transform source (TF)'
            raise TransformError(msg)
        self._fixed = fixed
        self._source = source
        self._timeout_s = float(timeout_s)
        self._record = record
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._static_version = getattr(source, 'static_version', 0)
        self._static_changed_at = -float('inf')
        self._static_settle_s = float(static_settle_s)
        self._clock = clock
        self.counts: dict[str, int] = {}
        self.last_source = 'parameters' if fixed is not None else 'none'

    @property
    def uses_tf(self) -> bool:
        return self._fixed is None

    def _fail(self, reason: str) -> Resolution:
        self.counts['no_transform'] = self.counts.get('no_transform', 0) + 1
        if self._record is not None:
            self._record('no_transform', reason)
        self.last_source = 'none'
        return Resolution(None, 'none', reason)

    def resolve(self, cloud_frame: str, image_frame: str, stamp_ns: int) -> Resolution:
        """The transform from ``cloud_frame`` to ``image_frame`` at ``stamp_ns`` (ns).

        Never raises for a missing transform: it is counted and reported in the result.
        """
        if self._fixed is not None:
            self.last_source = 'parameters'
            return Resolution(self._fixed, 'parameters')
        cloud, image = cloud_frame.lstrip('/'), image_frame.lstrip('/')
        if not cloud or not image:
            which = 'cloud' if not cloud else 'image'
            return self._fail(f'the {which} has an empty header.frame_id: no TF lookup from '
                              f'{cloud_frame!r} to {image_frame!r} possible; set frame_id in '
                              'the driver or set extrinsic.translation/rotation')
        if cloud == image:
            self.last_source = 'same_frame'
            return Resolution(np.eye(4), 'same_frame')
        key = (cloud, image)
        version = getattr(self._source, 'static_version', 0)
        if version != self._static_version:
            self._static_version = version
            self._static_changed_at = self._clock()
            self._cache.clear()
        cached = self._cache.get(key)
        if cached is not None:
            self.last_source = 'tf_cached'
            return Resolution(cached, 'tf_cached')
        if self._source is None:  # unreachable: __init__ requires fixed or source
            return self._fail('no transform source')
        try:
            T = np.asarray(self._source.lookup(image, cloud, int(stamp_ns), self._timeout_s),
                           dtype=np.float64)
        except TransformError as exc:
            return self._fail(f'no transform from the cloud frame {cloud!r} to the image frame '
                              f'{image!r} within {self._timeout_s:g} s: {exc}')
        settled = self._clock() - self._static_changed_at >= self._static_settle_s
        if settled and self._source.is_static(image, cloud):
            self._cache[key] = T
        self.last_source = 'tf'
        return Resolution(T, 'tf')


def points_in_image_fraction(points_lidar: np.ndarray, T_cam_lidar: np.ndarray, camera: Any, *,
                             min_range: float, max_range: float,
                             max_points: int = 4096) -> float | None:
    """Fraction of the points in front of the camera (depth within range) that land in the image.

    A 360 deg LiDAR puts most of its points outside any camera's view, so the reference is the
    points in front (depth in ``[min_range, max_range]``): with a right extrinsic a fair share of
    them land in the image (about the camera's horizontal field of view over 180 deg), with a
    wrong one (identity on a REP 103 LiDAR, a swapped quaternion) next to none.

    Args:
        points_lidar: (N, 3) float32, cloud frame, metres; at most ``max_points`` evenly strided
            rows are used (the check stays cheap).
        T_cam_lidar: (4, 4) cloud -> camera optical.
        camera: ``CameraModel`` of the image.

    Returns:
        The fraction in [0, 1]; None when no point is in front of the camera at all.
    """
    from g2mono_ros.fusion.projection import project_points

    pts = np.asarray(points_lidar)
    if pts.ndim != 2 or pts.shape[1] != 3:
        msg = f'points_lidar must have shape (N, 3); got {pts.shape}'
        raise ShapeError(msg)
    if pts.shape[0] > max_points:
        pts = pts[:: -(-pts.shape[0] // max_points)]
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        z = pts.astype(np.float64) @ T[2, :3] + T[2, 3]
    in_front = int(np.count_nonzero((z >= min_range) & (z <= max_range)))
    hits = project_points(pts, T, camera, min_range=min_range, max_range=max_range)
    if in_front == 0:
        return None
    return min(1.0, hits.index.shape[0] / in_front)


class CoverageCheck:
    """Warns when scans keep missing the image: the sign of a wrong extrinsic.

    Samples the first ``warmup`` pairs, then one pair in ``every``; keeps the last ``window``
    fractions (``points_in_image_fraction``, a scan with no point in front counts as 0). When
    ``warmup`` samples exist and their mean is below ``min_fraction``, ``observe`` returns a
    warning naming the frames.

    Args:
        min_fraction: below this mean fraction the extrinsic is suspect (default 2%: a 10 deg
            telephoto still sees ~5% of the points in front of it).
    """

    def __init__(self, *, min_fraction: float = 0.02, warmup: int = 5, every: int = 20,
                 window: int = 10) -> None:
        self._min_fraction = min_fraction
        self._warmup = warmup
        self._every = every
        self._fractions: deque[float] = deque(maxlen=window)
        self._pairs = 0

    @property
    def fraction(self) -> float | None:
        """Mean of the sampled fractions, None before the first sample."""
        return float(np.mean(self._fractions)) if self._fractions else None

    def observe(self, points_lidar: np.ndarray, T_cam_lidar: np.ndarray, camera: Any, *,
                min_range: float, max_range: float, cloud_frame: str = '?',
                image_frame: str = '?') -> str | None:
        """Sample this pair if due; returns a warning line when the extrinsic looks wrong."""
        self._pairs += 1
        if self._pairs > self._warmup and (self._pairs - self._warmup) % self._every:
            return None
        frac = points_in_image_fraction(points_lidar, T_cam_lidar, camera,
                                        min_range=min_range, max_range=max_range)
        self._fractions.append(0.0 if frac is None else frac)
        mean = self.fraction
        if len(self._fractions) < min(self._warmup, self._fractions.maxlen or 1) or mean is None \
                or mean >= self._min_fraction:
            return None
        return (f'only {100 * mean:.1f}% of the LiDAR points in front of the camera land in the '
                f'image (mean of the last {len(self._fractions)} sampled scans): the transform '
                f'from {cloud_frame!r} to {image_frame!r} is probably wrong (check the TF tree '
                'or extrinsic.translation/rotation)')
