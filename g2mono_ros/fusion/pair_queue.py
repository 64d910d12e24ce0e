"""The bounded hand-over of camera/LiDAR pairs from the executor thread to the network worker.

Owns which pair the worker runs next: every pair, oldest first, while the worker keeps up; the
best-aligned recent pair, never an older one, when it cannot (bounded latency).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from g2mono_ros.errors import ConfigError
from g2mono_ros.fusion.sync import Pair

__all__ = ['QUEUE_DROP_REASONS', 'PairQueue', 'QueuedPair']

#: Why a pair was not run (keys of ``PairQueue.drops``).
QUEUE_DROP_REASONS = {
    'superseded': 'overloaded: a newer, better-aligned pair was run instead',
    'stale': 'waited longer than the latency window: it could no longer start in time',
    'queue_full': 'evicted from a full queue (sync_queue_size) while the worker was busy',
    'time_jump': 'discarded by clear() (time went backwards)',
}


class QueuedPair(NamedTuple):
    """A pair in the queue: ``ready_ns`` when it was put (queue clock); ``tag`` the caller's."""

    pair: Pair
    ready_ns: int
    tag: Any


class PairQueue:
    """Bounded, thread-safe queue of pairs for one worker, with a latency-aware choice.

    Policy of ``take``:
        - The latency window ``W`` is the interval between batches of pairs (median of the
          recent intervals between non-empty ``put`` calls: one LiDAR period when each scan
          completes a burst of images, one camera period when images pair on arrival); the
          worker's period (median of its ``done`` durations) until two batches were seen.
        - Pairs that waited longer than ``W`` are dropped (``stale``): when the worker is slower
          than the batches come, it chooses within the newest batch, so a pair waits at most one
          batch interval and latency stays about the pairing wait plus one model period (plus
          at most one batch interval). A worker that keeps up never waits that long.
        - If every waiting pair can still start within ``W`` when run oldest first (at one
          worker period each), the oldest is taken: when the worker keeps up, every pair runs.
        - Otherwise the worker is behind: the pair with the smallest time gap is taken (ties:
          the newer), and the older ones are dropped (``superseded``). Newer ones stay and
          compete at the next ``take``. Output stays in image time order.
        - ``put`` keeps at most ``capacity`` pairs; the oldest goes (``queue_full``).

    Accounting: pairs put = taken + sum(drops) + pending.

    Args:
        capacity: most pairs held (>= 1).
        clock: monotonic nanosecond clock (the node's arrival clock; injectable for tests).
        window: how many recent durations / scan intervals the medians use.

    Raises:
        ConfigError: ``capacity`` < 1.
    """

    def __init__(self, capacity: int, *, clock: Callable[[], int] = time.monotonic_ns,
                 window: int = 8) -> None:
        if not (isinstance(capacity, int) and capacity >= 1):
            msg = f'PairQueue capacity must be an integer >= 1; got {capacity!r}'
            raise ConfigError(msg)
        self._capacity = capacity
        self._clock = clock
        self._cond = threading.Condition()
        self._items: deque[QueuedPair] = deque()
        self._durations: deque[int] = deque(maxlen=window)
        self._put_intervals: deque[int] = deque(maxlen=window)
        self._last_put: int | None = None
        self._closed = False
        self.drops: Counter[str] = Counter()
        self.put_count = 0
        self.taken = 0

    # -- executor thread -----------------------------------------------------------------------

    def put(self, pairs: Iterable[Pair], tag: Any = None) -> None:
        """Queue ``pairs`` (in image time order, e.g. one synchroniser result) with ``tag``."""
        pairs = list(pairs)
        if not pairs:
            return
        with self._cond:
            now = self._clock()
            if self._last_put is not None and now > self._last_put:
                self._put_intervals.append(now - self._last_put)
            self._last_put = now
            for pair in pairs:
                self._items.append(QueuedPair(pair, now, tag))
                self.put_count += 1
            while len(self._items) > self._capacity:
                self._items.popleft()
                self.drops['queue_full'] += 1
            self._cond.notify()

    def clear(self) -> int:
        """Discard every waiting pair (counted ``time_jump``); returns how many."""
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self.drops['time_jump'] += count
            return count

    def close(self) -> None:
        """Wake the worker and make every later ``take`` return None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- worker thread -------------------------------------------------------------------------

    def take(self, timeout: float | None = None) -> QueuedPair | None:
        """Wait up to ``timeout`` seconds for a pair and choose one (see the class policy).

        Returns None on timeout or once closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                chosen = self._choose()
                if chosen is not None:
                    self.taken += 1
                    return chosen
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            return None

    def done(self, duration_ns: int) -> None:
        """The worker finished a pair after ``duration_ns`` (queue clock): its period."""
        with self._cond:
            self._durations.append(max(0, int(duration_ns)))

    # -- state ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def worker_period_ns(self) -> int:
        """Median of the recent worker durations; 0 before the first."""
        with self._cond:
            return _median(self._durations)

    @property
    def window_ns(self) -> int | None:
        """The latency window ``W`` (ns), None while unknown."""
        with self._cond:
            return self._window()

    def _window(self) -> int | None:
        window = _median(self._put_intervals) or _median(self._durations)
        return window or None

    def _choose(self) -> QueuedPair | None:
        if not self._items:
            return None
        now = self._clock()
        window = self._window()
        if window is not None:
            while self._items and now - self._items[0].ready_ns > window:
                self._items.popleft()
                self.drops['stale'] += 1
            if not self._items:
                return None
        period = _median(self._durations)
        keeps_up = window is None or all(
            now + k * period - item.ready_ns <= window for k, item in enumerate(self._items))
        if keeps_up:
            return self._items.popleft()
        best = 0
        for k, item in enumerate(self._items):
            if abs(item.pair.gap_ns) <= abs(self._items[best].pair.gap_ns):
                best = k
        for _ in range(best):
            self._items.popleft()
            self.drops['superseded'] += 1
        return self._items.popleft()


def _median(values: Iterable[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0
