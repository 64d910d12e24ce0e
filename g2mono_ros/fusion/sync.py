"""Camera/LiDAR pairing policy on integer-nanosecond stamps, with no ROS graph.

Stamps are corrected by per-sensor offsets, waits are counted in arrival time (the node's clock),
time jumps are detected per stream, and every message that will never be paired is counted.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from g2mono_ros.config import SYNC_POLICIES, SyncConfig
from g2mono_ros.errors import ConfigError

__all__ = ['DROP_REASONS', 'SYNC_POLICIES', 'ArrivalClock', 'Pair', 'PairGapStats',
           'PairSynchronizer', 'TimeJump']

#: Why a message was dropped (keys of ``PairSynchronizer.drops``).
DROP_REASONS = {
    'no_partner': 'image with no scan within sync_max_offset; or scan no image could use',
    'superseded': 'scan never used: a newer scan suits every image that can still come better',
    'late': 'arrived after its slot was decided (older than an image already decided)',
    'duplicate': 'same stamp as a buffered or already decided message of the same stream',
    'queue_full': 'evicted from a full buffer (sync_queue_size) before it was decided',
    'time_jump': "buffered when its stream's time went backwards (bag looped, simulator "
                 "restarted), or still from before the other stream's jump",
    'malformed': 'counted by the caller through record_drop (could not be decoded)',
}

_STREAMS = ('image', 'scan')


class Pair(NamedTuple):
    """One synchronised camera/LiDAR pair; ``image`` and ``scan`` are the caller's objects.

    Attributes:
        image_stamp_ns, scan_stamp_ns: the messages' header stamps (the output keeps the image's).
        image_time_ns, scan_time_ns: those stamps plus their sensor's time offset: the times
            that were compared (and that motion compensation should use).
    """

    image_stamp_ns: int
    image: Any
    scan_stamp_ns: int
    scan: Any
    image_time_ns: int
    scan_time_ns: int

    @property
    def gap_ns(self) -> int:
        """Scan time minus image time (offsets applied); negative: the scan was earlier."""
        return self.scan_time_ns - self.image_time_ns


class TimeJump(NamedTuple):
    """A detected backwards jump on one stream: its newest stamp before it and the one after."""

    from_ns: int
    to_ns: int
    stream: str = 'image'


class _Msg:
    __slots__ = ('time', 'stamp', 'item', 'arrival', 'used')

    def __init__(self, time: int, stamp: int, item: Any, arrival: int) -> None:
        self.time = time
        self.stamp = stamp
        self.item = item
        self.arrival = arrival
        self.used = False


class PairSynchronizer:
    """Pairs each camera image with its best-aligned LiDAR scan.

    Times: each message's time is its header stamp plus its sensor's offset
    (``image_time_offset`` / ``points_time_offset``), e.g. a driver that stamps at sweep start
    and a camera that stamps at read-out. ``arrival_ns`` is when the message reached the caller,
    on a non-decreasing clock (the node's; ``ArrivalClock``); it defaults to the stamp (a bag
    without receive times).

    Policy (``sync_policy``):
        - ``nearest``: an image pairs with the scan nearest in time within ``sync_max_offset``
          (ties go to the later scan). It is decided once a scan timed at or after it has
          arrived (scans arrive in time order, so none later can be nearer), or when it has
          waited ``sync_max_wait`` of arrival time: clouds that arrive hundreds of ms after
          their stamp still pair, as long as the wait covers that delay.
        - ``newest_before`` (low latency, for motion-compensated scans): an image pairs at once
          with the newest buffered scan timed at or before it, within ``sync_max_offset``; only
          when there is none does it wait as under ``nearest``.
        - A scan may serve several images. Pairs are returned once, in image time order.
          Images that arrive out of order are fine until a newer image has been decided; after
          that they are ``late``.
        - Buffers hold at most ``sync_queue_size`` images and scans each; scans that no image
          can still use are pruned as soon as that is known.
        - Time jumps are per stream: a stamp more than ``backwards_jump_ns`` older than the
          newest of its own stream. That stream's buffer is dropped (``time_jump``), and so are
          the other stream's messages from the old epoch (more than ``backwards_jump_ns`` after
          the new time), until the other stream jumps too, its times meet the new ones, or
          ``backwards_jump_ns`` of arrival time has passed (only one sensor's clock was reset).
          A constant offset between the two clocks is therefore never a jump.

    Counters: ``drops`` (reason -> count, all inputs), ``image_drops`` and ``scan_drops`` per
    input, ``pairs_emitted``, ``scans_used`` (distinct scans paired), ``time_jumps`` (and
    ``jumps_by_stream``). Every message is accounted for: images in = pairs + image drops +
    pending images; scans in = scans used + scan drops + pending unused scans.

    Not thread-safe: call from one thread (one callback group / executor thread).

    Args:
        config: ``SyncConfig``.
        backwards_jump_ns: how far back a stamp must be, against its own stream, to be a jump.

    Raises:
        ConfigError: ``backwards_jump_ns`` not positive.
    """

    def __init__(self, config: SyncConfig, *, backwards_jump_ns: int = 1_000_000_000) -> None:
        if not (isinstance(backwards_jump_ns, int) and backwards_jump_ns > 0):
            msg = f'backwards_jump_ns must be a positive integer; got {backwards_jump_ns!r}'
            raise ConfigError(msg)
        self.config = config
        self._offset = config.max_offset_ns
        self._wait = config.max_wait_ns
        self._size = config.sync_queue_size
        self._before = config.sync_policy == 'newest_before'
        self._time_offset = {'image': config.image_time_offset_ns,
                             'scan': config.points_time_offset_ns}
        self._jump = backwards_jump_ns
        self.image_drops: Counter[str] = Counter()
        self.scan_drops: Counter[str] = Counter()
        self._caller_drops: Counter[str] = Counter()
        self.pairs_emitted = 0
        self.scans_used = 0
        self.time_jumps = 0
        self.jumps_by_stream: Counter[str] = Counter()
        self.last_time_jump: TimeJump | None = None
        self._lead_ns: dict[str, int] = {}  # stream -> time minus arrival of its last message
        self._clock: int | None = None
        self._arrival_shift = 0
        self._newest_stamp: dict[str, int | None] = {'image': None, 'scan': None}
        self._jumped: str | None = None  # stream that jumped while the other has not yet
        self._jumped_at = 0  # arrival clock at that jump
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._image_times: list[int] = []
        self._images: list[_Msg] = []
        self._scan_times: list[int] = []
        self._scans: list[_Msg] = []
        self._newest_scan: int | None = None
        self._last_decided: int | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def drops(self) -> Counter[str]:
        """reason -> count over images, scans and ``record_drop`` (a fresh Counter)."""
        return self.image_drops + self.scan_drops + self._caller_drops

    @property
    def pending_images(self) -> int:
        return len(self._images)

    @property
    def pending_scans(self) -> int:
        return len(self._scans)

    @property
    def pending_unused_scans(self) -> int:
        return sum(not scan.used for scan in self._scans)

    @property
    def stream_offset_ns(self) -> int | None:
        """How far scan times run ahead of image times for messages arriving together (ns):
        the LiDAR's delivery delay, negated, when the clocks agree; seconds when they do not
        (then ``points_time_offset`` should be about minus this). None before both streams."""
        if len(self._lead_ns) < 2:
            return None
        return self._lead_ns['scan'] - self._lead_ns['image']

    def record_drop(self, reason: str, count: int = 1) -> None:
        """Count a drop decided by the caller (e.g. ``malformed`` for undecodable messages)."""
        self._caller_drops[reason] += count

    def add_image(self, stamp_ns: int, item: Any, arrival_ns: int | None = None) -> list[Pair]:
        """Buffer an image; returns the pairs completed by it (in time order, maybe empty).

        Args:
            stamp_ns: header stamp, ns.
            item: anything; returned in the pair.
            arrival_ns: when it arrived (the caller's clock, ns); None = ``stamp_ns``.
        """
        stamp = int(stamp_ns)
        time = stamp + self._time_offset['image']
        arrival = self._admit('image', stamp, time, arrival_ns)
        if arrival is None:
            return []
        if self._last_decided is not None and time <= self._last_decided:
            self.image_drops['duplicate' if time == self._last_decided else 'late'] += 1
            return []
        pos = bisect.bisect_left(self._image_times, time)
        if pos < len(self._image_times) and self._image_times[pos] == time:
            self.image_drops['duplicate'] += 1
            return []
        self._image_times.insert(pos, time)
        self._images.insert(pos, _Msg(time, stamp, item, arrival))
        pairs = self._decide()
        while len(self._images) > self._size:
            # Keep the newest: the oldest image has waited longest and is least useful.
            self._image_times.pop(0)
            self._images.pop(0)
            self.image_drops['queue_full'] += 1
        return pairs

    def add_scan(self, stamp_ns: int, item: Any, arrival_ns: int | None = None) -> list[Pair]:
        """Buffer a LiDAR scan; returns the pairs completed by it (in time order, maybe empty).

        Args: as ``add_image``.
        """
        stamp = int(stamp_ns)
        time = stamp + self._time_offset['scan']
        arrival = self._admit('scan', stamp, time, arrival_ns)
        if arrival is None:
            return []
        floor = self._usable_floor()
        if floor is not None and time < floor - self._offset:
            self.scan_drops['late'] += 1
            return []
        pos = bisect.bisect_left(self._scan_times, time)
        if pos < len(self._scan_times) and self._scan_times[pos] == time:
            self.scan_drops['duplicate'] += 1
            return []
        self._scan_times.insert(pos, time)
        self._scans.insert(pos, _Msg(time, stamp, item, arrival))
        if self._newest_scan is None or time > self._newest_scan:
            self._newest_scan = time
        pairs = self._decide()
        self._prune_scans()
        while len(self._scans) > self._size:
            self._drop_scan(0, 'queue_full')
        return pairs

    def flush(self, now_ns: int) -> list[Pair]:
        """Decide every image whose wait has ended by ``now_ns`` (the arrival clock).

        Call it from a timer so images are not held forever when scans stop arriving.
        """
        self._tick(int(now_ns))
        return self._decide()

    def clear(self) -> None:
        """Forget everything buffered (counted as ``time_jump`` drops) and start afresh."""
        self.image_drops['time_jump'] += len(self._images)
        self.scan_drops['time_jump'] += sum(not s.used for s in self._scans)
        self._reset_stream()
        self._newest_stamp = {'image': None, 'scan': None}
        self._jumped = None

    # -- internals ---------------------------------------------------------------------------

    def _admit(self, stream: str, stamp: int, time: int, arrival_ns: int | None) -> int | None:
        """Jump detection and the arrival clock: the message's arrival on that clock, or None
        when the message is from an old epoch (dropped)."""
        self._check_jump(stream, stamp, time)
        arrival = self._tick(stamp if arrival_ns is None else int(arrival_ns))
        self._lead_ns[stream] = time - arrival
        other = self._jumped
        if other is not None and self._clock - self._jumped_at > self._jump:
            # Messages in flight at the jump have long arrived: the other stream's clock did not
            # jump (only one sensor's clock was reset); its times just do not meet ours now.
            self._jumped = other = None
        if other is not None and other != stream:
            newest_other = self._newest_stamp[other]
            reference = (newest_other or 0) + self._time_offset[other]
            if time > reference + self._jump:
                drops = self.image_drops if stream == 'image' else self.scan_drops
                drops['time_jump'] += 1
                return None
            self._jumped = None  # this stream's times meet the other's again
        return arrival

    def _tick(self, arrival: int) -> int:
        """Advance the arrival clock; returns ``arrival`` on it.

        Small steps back (readings from two threads) are clamped; a step back of more than
        ``backwards_jump_ns`` (a sim clock restarting with its bag) re-bases the clock so it
        continues, as ``ArrivalClock`` does, and waits still end.
        """
        arrival += self._arrival_shift
        if self._clock is not None and arrival < self._clock - self._jump:
            self._arrival_shift += self._clock - arrival
            arrival = self._clock
        if self._clock is None or arrival > self._clock:
            self._clock = arrival
        return arrival

    def _check_jump(self, stream: str, stamp: int, time: int) -> None:
        newest = self._newest_stamp[stream]
        if newest is not None and stamp < newest - self._jump:
            self.time_jumps += 1
            self.jumps_by_stream[stream] += 1
            self.last_time_jump = TimeJump(newest, stamp, stream)
            own, other = ((self._images, self._scans) if stream == 'image'
                          else (self._scans, self._images))
            own_drops, other_drops = ((self.image_drops, self.scan_drops) if stream == 'image'
                                      else (self.scan_drops, self.image_drops))
            own_drops['time_jump'] += sum(not m.used for m in own)
            own.clear()
            kept = [m for m in other if m.time <= time + self._jump]
            other_drops['time_jump'] += sum(not m.used for m in other if m not in kept)
            other[:] = kept
            self._image_times = [m.time for m in self._images]
            self._scan_times = [m.time for m in self._scans]
            self._newest_scan = max(self._scan_times) if self._scan_times else None
            self._last_decided = None
            # The other stream is waited for, unless it had jumped first (both have now).
            self._jumped = None if self._jumped not in (None, stream) else stream
            self._jumped_at = self._clock or 0
            self._newest_stamp[stream] = stamp
        elif newest is None or stamp > newest:
            self._newest_stamp[stream] = stamp

    def _usable_floor(self) -> int | None:
        """Lowest image time that can still be paired: images may arrive out of order until
        a newer one is decided, so only decisions raise it."""
        if self._last_decided is not None:
            return self._last_decided + 1
        return None

    def _decide(self) -> list[Pair]:
        pairs: list[Pair] = []
        decided = 0
        while self._images:
            image = self._images[0]
            ready, scan = self._choose(image)
            if not ready:
                break  # keep output in time order: later images wait for this one
            self._image_times.pop(0)
            self._images.pop(0)
            self._last_decided = image.time
            decided += 1
            if scan is None:
                self.image_drops['no_partner'] += 1
                continue
            if not scan.used:
                scan.used = True
                self.scans_used += 1
            pairs.append(Pair(image.stamp, image.item, scan.stamp, scan.item, image.time,
                              scan.time))
        self.pairs_emitted += len(pairs)
        if decided:
            self._prune_scans()
        return pairs

    def _choose(self, image: _Msg) -> tuple[bool, _Msg | None]:
        """(decided now?, the scan it pairs with or None)."""
        if self._before:
            pos = bisect.bisect_right(self._scan_times, image.time) - 1
            if pos >= 0 and image.time - self._scan_times[pos] <= self._offset:
                return True, self._scans[pos]
        scan_after = self._newest_scan is not None and self._newest_scan >= image.time
        waited = self._clock is not None and self._clock >= image.arrival + self._wait
        if scan_after or waited:
            return True, self._nearest_scan(image.time)
        return False, None

    def _nearest_scan(self, time: int) -> _Msg | None:
        pos = bisect.bisect_left(self._scan_times, time)
        best: _Msg | None = None
        best_gap = self._offset + 1
        for i in (pos - 1, pos):  # the neighbours either side; ties go to the later scan
            if 0 <= i < len(self._scans):
                gap = abs(self._scan_times[i] - time)
                if gap <= best_gap and gap <= self._offset:
                    best, best_gap = self._scans[i], gap
        return best

    def _drop_scan(self, index: int, reason: str) -> None:
        self._scan_times.pop(index)
        scan = self._scans.pop(index)
        if not scan.used:
            self.scan_drops[reason] += 1

    def _prune_scans(self) -> None:
        floor = self._usable_floor()
        if floor is None:
            return
        while self._scans:
            oldest = self._scan_times[0]
            if oldest < floor - self._offset:
                self._drop_scan(0, 'no_partner')
            elif len(self._scans) > 1 and (
                    self._scan_times[1] <= floor if self._before
                    else oldest + self._scan_times[1] <= 2 * floor):
                # The next scan suits every image timed >= floor at least as well.
                self._drop_scan(0, 'superseded')
            else:
                break


class ArrivalClock:
    """A non-decreasing nanosecond clock for arrival times, fed by any raw clock.

    The node's ROS clock follows sim time, which goes back when a bag loops or a simulator
    restarts; waits measured on it would then never end. A raw reading earlier than the last
    one re-bases the clock so it continues from where it was (thread-safe).

    Args:
        raw_ns: the raw clock, ns (e.g. the node's ROS clock).
    """

    def __init__(self, raw_ns: Callable[[], int]) -> None:
        self._raw = raw_ns
        self._lock = threading.Lock()
        self._shift = 0
        self._last: int | None = None

    def now_ns(self) -> int:
        with self._lock:
            value = int(self._raw()) + self._shift
            if self._last is not None and value < self._last:
                self._shift += self._last - value
                value = self._last
            self._last = value
            return value


class PairGapStats:
    """Pair time gaps and the share of images that got depth, for diagnostics and reports."""

    def __init__(self) -> None:
        self.gaps_ns: list[int] = []
        self.images_in = 0

    def add(self, pairs: Iterable[Pair]) -> None:
        self.gaps_ns.extend(int(p.gap_ns) for p in pairs)

    def summary(self, images: int | None = None,
                with_depth: int | None = None) -> dict[str, float]:
        """``images``: images in (default ``images_in``); ``with_depth``: images that got depth
        (default: the pairs added).

        Returns:
            ``images``, ``images_with_depth``, ``depth_fraction`` (0..1), and the absolute
            pair gap ``gap_ms_p50`` / ``gap_ms_p95`` / ``gap_ms_mean`` / ``gap_ms_max``
            (NaN without pairs).
        """
        images = self.images_in if images is None else int(images)
        done = len(self.gaps_ns) if with_depth is None else int(with_depth)
        gaps = np.abs(np.asarray(self.gaps_ns, dtype=np.float64)) * 1e-6
        nan = float('nan')
        return {
            'images': int(images),
            'images_with_depth': done,
            'depth_fraction': done / images if images else nan,
            'gap_ms_p50': float(np.percentile(gaps, 50)) if gaps.size else nan,
            'gap_ms_p95': float(np.percentile(gaps, 95)) if gaps.size else nan,
            'gap_ms_mean': float(gaps.mean()) if gaps.size else nan,
            'gap_ms_max': float(gaps.max()) if gaps.size else nan,
        }
