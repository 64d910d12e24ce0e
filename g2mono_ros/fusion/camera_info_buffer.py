"""Which CameraInfo belongs to an image: a small buffer keyed by stamp (exact match first, else
the newest that fits the image, counted as a fallback by the caller).

A camera driver stamps each CameraInfo with its image's stamp; using whichever arrived last
pairs an image with the wrong calibration around a resolution or calibration change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

from g2mono_ros.errors import ConfigError

__all__ = ['CameraInfoBuffer', 'CameraInfoMatch']

T = TypeVar('T')


class CameraInfoMatch(NamedTuple):
    """The item chosen for an image stamp.

    Attributes:
        item: what was stored with ``add`` (e.g. the CameraModel and the message).
        stamp_ns: its stamp, integer nanoseconds.
        exact: True when its stamp equals the image's; False for a fallback.
    """

    item: Any  # not Generic: a generic NamedTuple needs Python 3.11 (Humble has 3.10)
    stamp_ns: int
    exact: bool


class CameraInfoBuffer(Generic[T]):
    """The last ``capacity`` CameraInfos by stamp; thread-safe (callbacks add, a worker looks up).

    Args:
        capacity: items kept (>= 1); the oldest received is dropped first. Enough to cover the
            images waiting for a LiDAR scan plus the one being processed (a few seconds of
            camera at 30 Hz by default).

    Raises:
        ConfigError: capacity < 1.
    """

    def __init__(self, capacity: int = 64) -> None:
        if not (isinstance(capacity, int) and capacity >= 1):
            msg = f'CameraInfo buffer capacity must be an integer >= 1; got {capacity!r}'
            raise ConfigError(msg)
        self._capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, stamp_ns: int, item: T) -> None:
        """Store ``item`` under ``stamp_ns`` (a repeated stamp replaces, and becomes newest)."""
        with self._lock:
            self._items.pop(int(stamp_ns), None)
            self._items[int(stamp_ns)] = item
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def lookup(self, stamp_ns: int,
               fits: Callable[[T], bool] | None = None) -> CameraInfoMatch | None:
        """The CameraInfo for an image stamped ``stamp_ns``.

        Args:
            stamp_ns: the image's stamp, integer nanoseconds.
            fits: for the fallback, prefer the newest item for which this is True (e.g. the
                image size matches); None accepts any.

        Returns:
            The item with exactly this stamp; else the most recently received that ``fits``;
            else the most recently received; ``exact`` tells which. None when empty.
            "Most recent" is arrival order, not stamp: after a bag loop or clock reset the
            newest stamp is stale.
        """
        with self._lock:
            exact = self._items.get(int(stamp_ns))
            if exact is not None:
                return CameraInfoMatch(exact, int(stamp_ns), True)
            if not self._items:
                return None
            newest = next(reversed(self._items.items()))
            if fits is not None:
                for stamp, item in reversed(self._items.items()):
                    if fits(item):
                        return CameraInfoMatch(item, stamp, False)
            return CameraInfoMatch(newest[1], newest[0], False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
