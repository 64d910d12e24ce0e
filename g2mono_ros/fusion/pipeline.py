"""The depth node's ROS-free machinery: fault/drop bookkeeping, rates, stage timings, and the
per-pair work (project, infer, convert) that the worker thread runs (its queue: ``pair_queue``).

Nothing here imports rclpy; the node wires these to subscriptions, timers and publishers, so the
policies (what is dropped, what is counted, when a fault is logged) are testable without a graph.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from g2mono_ros.errors import MessageError, ShapeError

__all__ = [
    'FaultLog',
    'LatestSlot',
    'PairInputs',
    'PairWork',
    'RateMeter',
    'StageStats',
    'classify_image_error',
    'process_pair',
    'sparse_at_network_size',
]

T = TypeVar('T')


class LatestSlot(Generic[T]):
    """A one-item mailbox between the executor thread and the worker: the newest item wins.

    The node used it before ``fusion.pair_queue.PairQueue`` (which runs every pair while the
    worker keeps up); ``benchmarks/bench_pairing.py`` still measures it as the old policy.

    ``put`` replaces an item the worker has not taken yet; the replaced one is counted in
    ``superseded``. Memory stays flat whatever the input rate, and the worker always starts on the
    freshest pair, which bounds latency to about one processing period.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.superseded = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; returns True when it replaced an item nobody had taken."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.superseded += 1
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Wait up to ``timeout`` seconds for an item; None on timeout or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def clear(self) -> bool:
        """Discard a waiting item (e.g. after time jumped back); True when one was discarded."""
        with self._cond:
            had, self._item = self._item is not None, None
            return had

    def close(self) -> None:
        """Wake the worker and make every later ``take`` return None."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class FaultLog:
    """Counts faults and drops by kind and decides when each kind is worth a log line.

    The first occurrence of a kind is logged at once; later ones at most every
    ``throttle_s`` seconds, with the count since the last line, so a bad driver flooding the node
    does not flood the log.

    Args:
        throttle_s: seconds between two log lines of the same kind.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, throttle_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._throttle_s = throttle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def record(self, kind: str, detail: str = '', count: int = 1) -> str | None:
        """Count ``count`` events of ``kind``; returns the line to log now, or None (throttled)."""
        if count <= 0:
            return None
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + count
            self._unlogged[kind] = self._unlogged.get(kind, 0) + count
            now = self._clock()
            last = self._last_log.get(kind)
            if last is not None and now - last < self._throttle_s:
                return None
            self._last_log[kind] = now
            pending, self._unlogged[kind] = self._unlogged[kind], 0
        suffix = '' if last is None else f' ({pending} since the last report)'
        sep = ': ' if detail else ''
        return f'{kind}{sep}{detail}{suffix}; total {self._counts[kind]}'

    def sync_counts(self, kind_prefix: str, counts: dict[str, int]) -> list[str]:
        """Fold in absolute counters kept elsewhere (e.g. the synchroniser's drops).

        Each ``counts[name]`` is a running total; the increase since the last call is recorded
        as kind ``kind_prefix + name``. Returns the lines to log.
        """
        lines = []
        for name, total in counts.items():
            kind = f'{kind_prefix}{name}'
            with self._lock:
                delta = int(total) - self._counts.get(kind, 0)
            line = self.record(kind, 'dropped by the camera/LiDAR synchroniser', delta)
            if line:
                lines.append(line)
        return lines

    def counts(self) -> dict[str, int]:
        """A copy of the totals by kind."""
        with self._lock:
            return dict(self._counts)


class RateMeter:
    """Message rate over the last ``window`` arrivals (Hz; 0 when fewer than two, or stale)."""

    def __init__(self, window: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self._times: deque[float] = deque(maxlen=window)
        self._clock = clock
        self._lock = threading.Lock()
        self.total = 0

    def tick(self) -> None:
        with self._lock:
            self._times.append(self._clock())
            self.total += 1

    def rate_hz(self, stale_after_s: float = 2.0) -> float:
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            now = self._clock()
            span = self._times[-1] - self._times[0]
            if now - self._times[-1] > stale_after_s or span <= 0:
                return 0.0
            return (len(self._times) - 1) / span


class StageStats:
    """Recent durations (seconds) per named stage, summarised as percentiles in milliseconds."""

    def __init__(self, window: int = 100) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._values: dict[str, deque[float]] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._values.setdefault(stage, deque(maxlen=self._window)).append(seconds)

    def summary_ms(self) -> dict[str, tuple[float, float, float]]:
        """stage -> (p50, p95, max) in milliseconds over the window."""
        with self._lock:
            copies = {k: np.asarray(v, dtype=np.float64) for k, v in self._values.items() if v}
        return {k: (float(np.percentile(v, 50)) * 1e3, float(np.percentile(v, 95)) * 1e3,
                    float(v.max()) * 1e3) for k, v in copies.items()}


class PairWork(NamedTuple):
    """The result of one camera/LiDAR pair (arrays; the node turns them into messages).

    Attributes:
        depth_m: (H, W) float32 metres at the camera image size; 0 = no estimate.
        sparse_m: (H, W) float32 metres, the projected LiDAR input at image size, or None.
        colorized: (H, W, 3) uint8 rendering of ``depth_m``, or None.
        timings_s: stage -> seconds (``pre``, ``model``, ``post``).
        sparse_pixels: (M,) flat indices into ``sparse_m`` outside which it is 0 (for
            ``codecs.depth_to_image(..., pixels=)``), or None.
        depth_positive: ``depth_m`` is known to be > 0 everywhere (the engine's
            ``last_depth_positive``): its encoder need not look for zeros.
    """

    depth_m: np.ndarray
    sparse_m: np.ndarray | None
    colorized: np.ndarray | None
    timings_s: dict[str, float]
    sparse_pixels: np.ndarray | None = None
    depth_positive: bool = False


def sparse_at_network_size(points_lidar: np.ndarray, T_cam_lidar: np.ndarray, camera: Any,
                           net_hw: tuple[int, int], *, min_range: float,
                           max_range: float) -> np.ndarray:
    """The network-size sparse map of one scan, as ``process_pair`` feeds it to the network.

    Args:
        points_lidar: (N, 3) float32, LiDAR frame, metres.
        T_cam_lidar: (4, 4) float64, LiDAR -> camera optical.
        camera: the camera's ``CameraModel`` at the image size.
        net_hw: (h, w) of the network input.

    Returns:
        (h, w) float32 metres, 0 where no point landed; nearest point wins.
    """
    from g2mono_ros.fusion.sparse import SparseProjector

    return SparseProjector(reuse_buffers=False).project(
        points_lidar, T_cam_lidar, camera, net_hw, min_range=min_range, max_range=max_range,
        want_full=False).net


@dataclass
class PairInputs:
    """What the worker needs for one pair, decoded.

    Attributes:
        rgb: (H, W, 3) uint8 camera image, or (h, w, 3) already at the network input size
            (decoded and area-resized at once: ``codecs.rgb_from_image(msg, out_hw=(h, w))``).
        points_lidar: (N, 3) float32, LiDAR frame, metres.
        camera: ``CameraModel`` of the camera image (H, W).
        guide: (H, W, 3) uint8 camera-size image when ``rgb`` is at the network size and the
            engine's edge-aware upsampling needs it; None otherwise.
    """

    rgb: np.ndarray
    points_lidar: np.ndarray
    camera: Any
    guide: np.ndarray | None = None


def process_pair(engine: Any, inputs: PairInputs, T_cam_lidar: np.ndarray, *, min_range: float,
                 max_range: float, want_sparse: bool, want_colorized: bool,
                 clock: Callable[[], float] = time.perf_counter,
                 projector: Any = None, out: np.ndarray | None = None) -> PairWork:
    """Run one pair through projection, the network and the output conversions.

    The scan is projected once (``SparseProjector``): the network-size map feeds the network
    and, with ``want_sparse``, the image-size map of the same projection is returned. Where
    the engine ``wants_camera_size_points`` (``upsample: prefill_guided``), the image-size map
    is made and handed to it as well.

    Args:
        engine: a ``DepthEngine`` (``infer``, ``network_input_size``, ``max_depth``, ``device``).
        inputs: the decoded image, points and camera model.
        T_cam_lidar: (4, 4) float64 extrinsic, LiDAR -> camera optical.
        want_sparse: also return the image-size sparse map for ``/g2mono/sparse_depth``.
        want_colorized: also render the depth for ``/g2mono/depth/colorized``.
        projector: a ``SparseProjector`` kept between pairs (its buffers are reused; the
            returned ``sparse_m`` is then valid until the next pair); None = a fresh one.
        out: (H, W) float32 C-contiguous array for the depth (the depth message's buffer,
            ``codecs.DepthImageEncoder.target``): ``depth_m`` is then ``out``.

    Returns:
        The arrays and the ``pre``/``model``/``post`` stage times.

    Raises:
        ShapeError: the image is neither the camera model's size nor the network input size.
    """
    from g2mono_ros.fusion.sparse import SparseProjector

    camera = inputs.camera
    height, width = camera.height, camera.width
    net_hw = engine.network_input_size(height, width)
    if inputs.rgb.shape[:2] not in ((height, width), tuple(net_hw)):
        got_h, got_w = inputs.rgb.shape[:2]
        msg = (f'CameraInfo is {width}x{height} but the image is {got_w}x{got_h};'
               ' they must describe the same image')
        raise ShapeError(msg)
    if projector is None:
        device = getattr(engine, 'device', None)
        projector = SparseProjector(device if getattr(device, 'type', 'cpu') != 'cpu' else None,
                                    reuse_buffers=False)
    # upsample: prefill_guided needs the points at the camera size too.
    engine_full = bool(getattr(engine, 'wants_camera_size_points', False))
    t0 = clock()
    maps = projector.project(inputs.points_lidar, T_cam_lidar, camera, net_hw,
                             min_range=min_range, max_range=max_range,
                             want_full=want_sparse or engine_full)
    sparse_full = maps.full if want_sparse else None
    if sparse_full is not None and not isinstance(sparse_full, np.ndarray):
        sparse_full = engine.to_host_async(sparse_full, 'sparse_full')  # completes in infer
    t1 = clock()
    if inputs.rgb.shape[:2] == (height, width) and isinstance(maps.net, np.ndarray):
        # The documented two-argument contract (test doubles and wrappers implement only it);
        # the camera-size map where the engine wants it (it derives the same network-size one).
        depth = engine.infer(inputs.rgb, maps.full if engine_full else maps.net)
        if out is not None and depth is not out and depth.shape == out.shape:
            np.copyto(out, depth)
            depth = out
    else:
        extra: dict[str, Any] = {} if inputs.guide is None else {'guide': inputs.guide}
        if out is not None:
            extra['out'] = out
        if engine_full:  # projected with want_full
            extra['sparse_full'] = maps.full
        depth = engine.infer(inputs.rgb, maps.net, out_hw=(height, width), sparse_clean=True,
                             **extra)
    t2 = clock()
    if sparse_full is not None and not isinstance(sparse_full, np.ndarray):
        sparse_full = sparse_full.numpy()
    colorized = None
    if want_colorized:
        from g2mono_ros.visualize import colorize_depth, depth_colour_scale

        colorized = colorize_depth(depth, depth_colour_scale(depth))
    if depth.shape != (height, width) or depth.dtype != np.float32:
        msg = (f'engine returned depth of shape {depth.shape} {depth.dtype}; expected '
               f'{(height, width)} float32')
        raise ShapeError(msg)
    t3 = clock()
    return PairWork(depth, sparse_full, colorized,
                    {'pre': t1 - t0, 'model': t2 - t1, 'post': t3 - t2},
                    maps.full_pixels if want_sparse else None,
                    bool(getattr(engine, 'last_depth_positive', False)))


def classify_image_error(exc: Exception, encoding: str, supported: frozenset[str]) -> str:
    """Fault kind for an image that failed to decode: unsupported encoding or malformed."""
    if isinstance(exc, MessageError) and encoding not in supported:
        return 'unsupported_encoding'
    return 'malformed_image'
