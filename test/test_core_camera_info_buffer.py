"""CameraInfo chosen by the image's stamp: exact first, else the newest that fits, by arrival."""

from __future__ import annotations

import pytest

from g2mono_ros.errors import ConfigError
from g2mono_ros.fusion.camera_info_buffer import CameraInfoBuffer, CameraInfoMatch


def test_exact_stamp_wins_over_the_newest() -> None:
    buffer: CameraInfoBuffer[str] = CameraInfoBuffer(4)
    assert buffer.lookup(5) is None
    for stamp, item in ((10, 'a'), (20, 'b'), (30, 'c')):
        buffer.add(stamp, item)
    assert buffer.lookup(20) == CameraInfoMatch('b', 20, True)
    assert buffer.lookup(25) == CameraInfoMatch('c', 30, False)


def test_fallback_prefers_the_newest_that_fits_the_image() -> None:
    """A resolution change: the image at the old size takes the newest old-size CameraInfo."""
    buffer: CameraInfoBuffer[tuple[int, int]] = CameraInfoBuffer(8)
    buffer.add(10, (480, 640))
    buffer.add(20, (480, 640))
    buffer.add(30, (240, 320))
    assert buffer.lookup(25, fits=lambda hw: hw == (480, 640)) == CameraInfoMatch(
        (480, 640), 20, False)
    assert buffer.lookup(35, fits=lambda hw: hw == (240, 320)).stamp_ns == 30
    # Nothing fits: the newest, and the caller reports the size mismatch.
    assert buffer.lookup(35, fits=lambda hw: hw == (1, 1)) == CameraInfoMatch((240, 320), 30,
                                                                              False)


def test_newest_is_by_arrival_not_stamp_after_time_jumps_back() -> None:
    buffer: CameraInfoBuffer[str] = CameraInfoBuffer(8)
    buffer.add(1_000, 'before the loop')
    buffer.add(5, 'after the loop')
    assert buffer.lookup(6).item == 'after the loop'
    buffer.add(1_000, 'again')  # a repeated stamp replaces and becomes the newest
    assert buffer.lookup(7).item == 'again' and len(buffer) == 2


def test_capacity_drops_the_oldest_received() -> None:
    buffer: CameraInfoBuffer[int] = CameraInfoBuffer(2)
    for stamp in (1, 2, 3):
        buffer.add(stamp, stamp)
    assert len(buffer) == 2 and buffer.lookup(1) == CameraInfoMatch(3, 3, False)
    buffer.clear()
    assert buffer.lookup(3) is None


def test_bad_capacity_raises() -> None:
    with pytest.raises(ConfigError, match='capacity must be an integer >= 1; got 0'):
        CameraInfoBuffer(0)
