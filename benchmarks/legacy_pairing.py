"""The pairing policy before issue 10, kept only so ``bench_pairing.py`` can measure it beside
the current one in the same run: waits counted in stamp time, one global time-jump check.

A verbatim copy of ``g2mono_ros/fusion/sync.py`` at commit eea9f41 (only this docstring
differs); not part of the package, not for new code. Run it with that commit's defaults:
``SyncConfig(sync_max_wait=0.15, sync_queue_size=10)``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any, NamedTuple

from g2mono_ros.config import SyncConfig
from g2mono_ros.errors import ConfigError

__all__ = ['DROP_REASONS', 'Pair', 'PairSynchronizer', 'TimeJump']

#: Why a message was dropped (keys of ``PairSynchronizer.drops``).
DROP_REASONS = {
    'no_partner': 'image with no scan within sync_max_offset; or scan no image could use',
    'superseded': 'scan never used: a newer scan is nearer to every image that can still come',
    'late': 'arrived after its slot was decided (older than an image already decided)',
    'duplicate': 'same stamp as a buffered or already decided message of the same stream',
    'queue_full': 'evicted from a full buffer (sync_queue_size) before it was decided',
    'time_jump': 'buffered when time went backwards (bag looped, simulator restarted)',
    'malformed': 'counted by the caller through record_drop (could not be decoded)',
}


class Pair(NamedTuple):
    """One synchronised camera/LiDAR pair; ``image`` and ``scan`` are the caller's objects."""

    image_stamp_ns: int
    image: Any
    scan_stamp_ns: int
    scan: Any


class TimeJump(NamedTuple):
    """Stamps of a detected backwards jump: the newest stamp before it and the one after."""

    from_ns: int
    to_ns: int


class _Scan:
    __slots__ = ('stamp', 'item', 'used')

    def __init__(self, stamp: int, item: Any) -> None:
        self.stamp = stamp
        self.item = item
        self.used = False


class PairSynchronizer:
    """Pairs each image with the LiDAR scan nearest in stamp, within a window.

    Policy:
        - An image pairs with the buffered scan nearest to its stamp if that is within
          ``sync_max_offset`` (ties go to the later scan). A scan may serve several images.
        - An image is decided once a scan stamped at or after it has arrived (scans are
          assumed to arrive roughly in stamp order, so no later scan can be nearer), or when
          its wait ends: stream time (the newest stamp seen on either input, or ``now_ns``
          given to ``flush``) reaches ``stamp + sync_max_wait``.
        - Pairs are returned once, in image stamp order. Images that arrive out of order are
          fine until a newer image has been decided; after that they are ``late``.
        - Buffers hold at most ``sync_queue_size`` images and scans each; scans that no image
          can still use are pruned as soon as that is known.
        - A stamp more than ``backwards_jump_ns`` older than the newest seen means time went
          backwards: everything buffered is dropped (``time_jump``), ``time_jumps`` is
          incremented, ``last_time_jump`` is set, and the new message starts a fresh stream.

    Counters: ``drops`` (reason -> count, all inputs), ``image_drops`` and ``scan_drops`` per
    input, ``pairs_emitted``, ``scans_used`` (distinct scans paired), ``time_jumps``. Every
    message is accounted for: images in = pairs + image drops + pending images; scans in =
    scans used + scan drops + pending unused scans.

    Not thread-safe: call from one thread (one callback group / executor thread).

    Args:
        config: ``SyncConfig`` (``sync_max_offset``, ``sync_max_wait``, ``sync_queue_size``).
        backwards_jump_ns: how far back a stamp must be to count as a time jump.

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
        self._jump = backwards_jump_ns
        self.image_drops: Counter[str] = Counter()
        self.scan_drops: Counter[str] = Counter()
        self._caller_drops: Counter[str] = Counter()
        self.pairs_emitted = 0
        self.scans_used = 0
        self.time_jumps = 0
        self.last_time_jump: TimeJump | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._image_stamps: list[int] = []
        self._images: list[Any] = []
        self._scan_stamps: list[int] = []
        self._scans: list[_Scan] = []
        self._newest: int | None = None
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

    def record_drop(self, reason: str, count: int = 1) -> None:
        """Count a drop decided by the caller (e.g. ``malformed`` for undecodable messages)."""
        self._caller_drops[reason] += count

    def add_image(self, stamp_ns: int, item: Any) -> list[Pair]:
        """Buffer an image; returns the pairs completed by it (in stamp order, maybe empty)."""
        stamp = int(stamp_ns)
        self._check_jump(stamp)
        if self._last_decided is not None and stamp <= self._last_decided:
            self.image_drops['duplicate' if stamp == self._last_decided else 'late'] += 1
            return []
        pos = bisect.bisect_left(self._image_stamps, stamp)
        if pos < len(self._image_stamps) and self._image_stamps[pos] == stamp:
            self.image_drops['duplicate'] += 1
            return []
        self._image_stamps.insert(pos, stamp)
        self._images.insert(pos, item)
        self._advance(stamp)
        pairs = self._decide(self._newest)
        while len(self._images) > self._size:
            # Keep the newest: the oldest image has waited longest and is least useful.
            self._image_stamps.pop(0)
            self._images.pop(0)
            self.image_drops['queue_full'] += 1
        return pairs

    def add_scan(self, stamp_ns: int, item: Any) -> list[Pair]:
        """Buffer a LiDAR scan; returns the pairs completed by it (in stamp order, maybe empty)."""
        stamp = int(stamp_ns)
        self._check_jump(stamp)
        floor = self._usable_floor()
        if floor is not None and stamp < floor - self._offset:
            self.scan_drops['late'] += 1
            return []
        pos = bisect.bisect_left(self._scan_stamps, stamp)
        if pos < len(self._scan_stamps) and self._scan_stamps[pos] == stamp:
            self.scan_drops['duplicate'] += 1
            return []
        self._scan_stamps.insert(pos, stamp)
        self._scans.insert(pos, _Scan(stamp, item))
        if self._newest_scan is None or stamp > self._newest_scan:
            self._newest_scan = stamp
        self._advance(stamp)
        pairs = self._decide(self._newest)
        self._prune_scans()
        while len(self._scans) > self._size:
            self._drop_scan(0, 'queue_full')
        return pairs

    def flush(self, now_ns: int) -> list[Pair]:
        """Decide every image whose wait has ended by ``now_ns`` (same clock as the stamps).

        Call it from a timer so images are not held forever when scans stop arriving.
        """
        return self._decide(int(now_ns))

    def clear(self) -> None:
        """Forget everything buffered (counted as ``time_jump`` drops) and start afresh."""
        self.image_drops['time_jump'] += len(self._images)
        self.scan_drops['time_jump'] += sum(not s.used for s in self._scans)
        self._reset_stream()

    # -- internals ---------------------------------------------------------------------------

    def _check_jump(self, stamp: int) -> None:
        if self._newest is not None and stamp < self._newest - self._jump:
            self.time_jumps += 1
            self.last_time_jump = TimeJump(self._newest, stamp)
            self.clear()

    def _advance(self, stamp: int) -> None:
        if self._newest is None or stamp > self._newest:
            self._newest = stamp

    def _usable_floor(self) -> int | None:
        """Lowest image stamp that can still be paired: images may arrive out of order until
        a newer one is decided, so only decisions raise it."""
        if self._last_decided is not None:
            return self._last_decided + 1
        return None

    def _decide(self, clock_ns: int | None) -> list[Pair]:
        pairs: list[Pair] = []
        decided = 0
        while self._image_stamps:
            stamp = self._image_stamps[0]
            scan_after = self._newest_scan is not None and self._newest_scan >= stamp
            waited = clock_ns is not None and clock_ns >= stamp + self._wait
            if not (scan_after or waited):
                break  # conditions are monotonic in the stamp: later images wait too
            self._image_stamps.pop(0)
            image = self._images.pop(0)
            self._last_decided = stamp
            decided += 1
            scan = self._nearest_scan(stamp)
            if scan is None:
                self.image_drops['no_partner'] += 1
                continue
            if not scan.used:
                scan.used = True
                self.scans_used += 1
            pairs.append(Pair(stamp, image, scan.stamp, scan.item))
        self.pairs_emitted += len(pairs)
        if decided:
            self._prune_scans()
        return pairs

    def _nearest_scan(self, stamp: int) -> _Scan | None:
        pos = bisect.bisect_left(self._scan_stamps, stamp)
        best: _Scan | None = None
        best_gap = self._offset + 1
        for i in (pos - 1, pos):  # the neighbours either side; ties go to the later scan
            if 0 <= i < len(self._scans):
                gap = abs(self._scan_stamps[i] - stamp)
                if gap <= best_gap and gap <= self._offset:
                    best, best_gap = self._scans[i], gap
        return best

    def _drop_scan(self, index: int, reason: str) -> None:
        self._scan_stamps.pop(index)
        scan = self._scans.pop(index)
        if not scan.used:
            self.scan_drops[reason] += 1

    def _prune_scans(self) -> None:
        floor = self._usable_floor()
        if floor is None:
            return
        while self._scans:
            oldest = self._scan_stamps[0]
            if oldest < floor - self._offset:
                self._drop_scan(0, 'no_partner')
            elif len(self._scans) > 1 and oldest + self._scan_stamps[1] <= 2 * floor:
                # The next scan is at least as near to every image stamped >= floor.
                self._drop_scan(0, 'superseded')
            else:
                break
