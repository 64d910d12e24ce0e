"""PairSynchronizer: 10 Hz LiDAR / 30 Hz camera interleavings, jitter, disorder, gaps, jumps,
arrival-time waits, per-sensor offsets, per-stream jumps and the low-latency policy."""

from __future__ import annotations

import numpy as np
import pytest

from g2mono_ros.config import SyncConfig
from g2mono_ros.errors import ConfigError
from g2mono_ros.fusion.sync import DROP_REASONS, Pair, PairSynchronizer

MS = 1_000_000
S = 1_000_000_000


def _oracle(image_stamps, scan_stamps, max_offset_ns):
    """Offline answer: each image's nearest scan among all scans (ties: later), if in window."""
    scans = np.sort(np.asarray(scan_stamps, dtype=np.int64))
    out = {}
    for t in image_stamps:
        gaps = np.abs(scans - t)
        best = np.flatnonzero(gaps == gaps.min())[-1] if len(scans) else None
        if best is not None and gaps[best] <= max_offset_ns:
            out[t] = int(scans[best])
    return out


def _events(image_stamps, scan_stamps, *, image_latency=20 * MS, scan_latency=50 * MS,
            rng=None, arrival_jitter=0):
    """(arrival_ns, kind, stamp) in arrival order; latency is the transport delay."""
    ev = [(t + image_latency, 'image', t) for t in image_stamps]
    ev += [(t + scan_latency, 'scan', t) for t in scan_stamps]
    if rng is not None and arrival_jitter:
        ev = [(a + int(rng.integers(0, arrival_jitter)), k, t) for a, k, t in ev]
    ev.sort(key=lambda e: (e[0], e[1]))
    return ev


def _run(sync, events, flush_every_ns=None):
    pairs: list[Pair] = []
    last_flush = None
    for arrival, kind, stamp in events:
        add = sync.add_image if kind == 'image' else sync.add_scan
        pairs += add(stamp, f'{kind}@{stamp}', arrival_ns=arrival)
        if flush_every_ns and (last_flush is None or arrival - last_flush >= flush_every_ns):
            pairs += sync.flush(arrival)
            last_flush = arrival
    return pairs


def _check_accounting(sync, pairs, n_images, n_scans):
    assert n_images == len(pairs) + sum(sync.image_drops.values()) + sync.pending_images
    assert n_scans == (sync.scans_used + sum(sync.scan_drops.values())
                       + sync.pending_unused_scans)
    assert sync.pairs_emitted == len(pairs)
    assert set(sync.drops) <= set(DROP_REASONS)


def _check_order_once(pairs):
    stamps = [p.image_stamp_ns for p in pairs]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_smoke_pair_fields() -> None:
    sync = PairSynchronizer(SyncConfig())
    assert sync.add_image(100 * MS, 'img') == []
    pairs = sync.add_scan(110 * MS, 'scan')
    assert pairs == [Pair(100 * MS, 'img', 110 * MS, 'scan', 100 * MS, 110 * MS)]
    assert pairs[0].image == 'img' and pairs[0].scan_stamp_ns == 110 * MS
    assert pairs[0].gap_ns == 10 * MS


@pytest.mark.parametrize('phase_ms', [0, 5, 11, 17, 30])
def test_10hz_lidar_30hz_camera_matches_oracle(phase_ms: int) -> None:
    images = [k * 33_333_333 for k in range(90)]
    scans = [k * 100 * MS + phase_ms * MS for k in range(30)]
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05, sync_max_wait=0.15))
    pairs = _run(sync, _events(images, scans))
    pairs += sync.flush(images[-1] + S)
    expected = _oracle(images, scans, 50 * MS)
    assert {p.image_stamp_ns: p.scan_stamp_ns for p in pairs} == expected
    assert all(p.image == f'image@{p.image_stamp_ns}' and p.scan == f'scan@{p.scan_stamp_ns}'
               for p in pairs)
    _check_order_once(pairs)
    # one scan serves several images at 30 Hz / 10 Hz
    assert max(np.unique([p.scan_stamp_ns for p in pairs], return_counts=True)[1]) >= 2
    assert sync.image_drops['no_partner'] == len(images) - len(expected)
    _check_accounting(sync, pairs, len(images), len(scans))
    assert sync.pending_images == 0


@pytest.mark.parametrize('seed', range(5))
def test_jitter_and_arrival_disorder(seed: int) -> None:
    """Stamp jitter of +-8 ms and up to 15 ms of arrival jitter (which reorders messages)."""
    rng = np.random.default_rng(seed)
    images = sorted({k * 33_333_333 + int(rng.integers(-8, 8)) * MS for k in range(120)})
    scans = sorted({k * 100 * MS + 40 * MS + int(rng.integers(-8, 8)) * MS for k in range(40)})
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.06, sync_max_wait=0.2))
    events = _events(images, scans, rng=rng, arrival_jitter=15 * MS)
    pairs = _run(sync, events, flush_every_ns=10 * MS)
    pairs += sync.flush(images[-1] + S)
    expected = _oracle(images, scans, 60 * MS)
    got = {p.image_stamp_ns: p.scan_stamp_ns for p in pairs}
    _check_order_once(pairs)
    _check_accounting(sync, pairs, len(images), len(scans))
    # Disorder may make an image late (a newer one was already decided); nothing else differs.
    late = sync.image_drops['late']
    assert got.items() <= expected.items()
    assert len(expected) - len(got) <= late


def test_image_waits_for_a_later_scan_and_takes_the_nearer() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.06, sync_max_wait=0.15))
    assert sync.add_scan(60 * MS, 'early') == []
    assert sync.add_image(100 * MS, 'img') == []  # 40 ms from 'early': in window, but waits
    assert sync.flush(200 * MS) == []  # deadline is 250 ms
    pairs = sync.add_scan(110 * MS, 'late_but_nearer')
    assert [(p.image_stamp_ns, p.scan) for p in pairs] == [(100 * MS, 'late_but_nearer')]


def test_wait_deadline_by_flush_and_by_stream_time() -> None:
    cfg = SyncConfig(sync_max_offset=0.06, sync_max_wait=0.15)
    sync = PairSynchronizer(cfg)
    sync.add_scan(60 * MS, 'early')
    sync.add_image(100 * MS, 'img')
    assert sync.flush(249 * MS) == []
    pairs = sync.flush(250 * MS)
    assert [(p.image, p.scan) for p in pairs] == [('img', 'early')]
    # stream time: newer images end the wait of older ones without flush
    sync = PairSynchronizer(cfg)
    sync.add_scan(60 * MS, 'early')
    sync.add_image(100 * MS, 'a')
    assert sync.add_image(200 * MS, 'b') == []
    pairs = sync.add_image(250 * MS, 'c')
    assert [(p.image, p.scan) for p in pairs] == [('a', 'early')]
    assert sync.pending_images == 2


def test_flush_with_no_scans_counts_no_partner() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05, sync_max_wait=0.1))
    for k in range(5):
        sync.add_image(k * 10 * MS, k)
    assert sync.flush(10 * S) == []
    assert sync.image_drops['no_partner'] == 5 and sync.pending_images == 0


def test_ties_go_to_the_later_scan() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05))
    sync.add_scan(100 * MS, 'before')
    sync.add_image(130 * MS, 'img')
    pairs = sync.add_scan(160 * MS, 'after')
    assert pairs[0].scan == 'after'


def test_window_is_inclusive() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05))
    sync.add_image(100 * MS, 'in')
    assert sync.add_scan(150 * MS, 's')[0].image == 'in'
    sync.add_image(201 * MS, 'out')
    assert sync.add_scan(251 * MS + 1, 's2') == []
    assert sync.image_drops['no_partner'] == 1


def test_lidar_gap_does_not_stall() -> None:
    """LiDAR silent for 1.5 s: camera frames in the gap are dropped as no_partner as time
    moves on, buffers stay bounded, pairing resumes afterwards."""
    images = [k * 33_333_333 for k in range(150)]
    scans = [k * 100 * MS for k in range(50) if not 10 <= k < 25]
    cfg = SyncConfig(sync_max_offset=0.05, sync_max_wait=0.15, sync_queue_size=5)
    sync = PairSynchronizer(cfg)
    pairs = []
    for arrival, kind, stamp in _events(images, scans):
        pairs += (sync.add_image if kind == 'image' else sync.add_scan)(stamp, stamp)
        assert sync.pending_images <= 5 and sync.pending_scans <= 5
    pairs += sync.flush(10 * S)
    assert {p.image_stamp_ns: p.scan_stamp_ns for p in pairs} == _oracle(images, scans, 50 * MS)
    assert any(p.image_stamp_ns > 2600 * MS for p in pairs)
    _check_accounting(sync, pairs, len(images), len(scans))


def test_camera_gap_keeps_scans_bounded() -> None:
    """Camera silent: a late image may still need any recent scan, so scans are kept up to
    the queue bound and the oldest unused ones are dropped as queue_full."""
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05, sync_queue_size=10))
    sync.add_image(0, 'img')
    sync.add_scan(10 * MS, 's')
    for k in range(1, 40):
        sync.add_scan(k * 100 * MS, k)
        assert sync.pending_scans <= 10
    assert sync.scan_drops['queue_full'] >= 29
    # an image that arrives late (its stamp well behind the newest scan) still pairs
    pairs = sync.add_image(3210 * MS, 'late_camera')
    assert [p.scan for p in pairs] == [32]


def test_fast_lidar_slow_camera_counts_superseded() -> None:
    images = [k * 200 * MS for k in range(20)]
    scans = [k * 50 * MS + 7 * MS for k in range(80)]
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05))
    pairs = _run(sync, _events(images, scans))
    pairs += sync.flush(100 * S)
    assert {p.image_stamp_ns: p.scan_stamp_ns for p in pairs} == _oracle(images, scans, 50 * MS)
    assert sync.scans_used == 20
    assert sync.scan_drops['superseded'] + sync.scan_drops['no_partner'] >= 55
    _check_accounting(sync, pairs, len(images), len(scans))


def test_scans_before_first_image_are_bounded() -> None:
    sync = PairSynchronizer(SyncConfig(sync_queue_size=4))
    for k in range(10):
        sync.add_scan(k * 100 * MS, k)
    assert sync.pending_scans == 4 and sync.scan_drops['queue_full'] == 6
    assert sync.add_image(905 * MS, 'img') == []
    assert sync.add_scan(1000 * MS, 10)[0].scan == 9


def test_image_queue_full() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_wait=100.0, sync_queue_size=3))
    for k in range(8):
        sync.add_image(k * MS, k)
    assert sync.pending_images == 3 and sync.image_drops['queue_full'] == 5
    pairs = sync.add_scan(7 * MS, 's')
    assert [p.image for p in pairs] == [5, 6, 7]


def test_out_of_order_images_before_decision_are_fine() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05))
    sync.add_image(200 * MS, 'b')
    sync.add_image(100 * MS, 'a')
    pairs = sync.add_scan(210 * MS, 's')
    assert [p.image for p in pairs] == ['b'] and sync.image_drops['no_partner'] == 1
    sync.add_scan(110 * MS, 's_old')  # too late for 'a' (already decided): late
    assert sync.scan_drops['late'] == 1


def test_late_and_duplicate_images() -> None:
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05))
    sync.add_image(100 * MS, 'a')
    sync.add_image(100 * MS, 'a_again')
    assert sync.image_drops['duplicate'] == 1
    assert len(sync.add_scan(100 * MS, 's')) == 1
    assert sync.add_image(100 * MS, 'a_after') == []
    assert sync.add_image(90 * MS, 'older') == []
    assert sync.image_drops == {'duplicate': 2, 'late': 1}
    sync.add_image(150 * MS, 'b')
    sync.add_scan(150 * MS, 's2')
    sync.add_scan(150 * MS, 's2_again')
    assert sync.scan_drops['duplicate'] == 1


@pytest.mark.parametrize('jump_s', [5, 60, 3600])
def test_time_jump_backwards_clears_and_reports(jump_s: int) -> None:
    """A looping bag: the second pass restarts at earlier stamps."""
    sync = PairSynchronizer(SyncConfig(sync_max_offset=0.05))
    base = 1000 * S
    images = [base + k * 33_333_333 for k in range(60)]
    scans = [base + k * 100 * MS for k in range(20)]
    first = _run(sync, _events(images, scans))
    sync.add_image(images[-1] + 33 * MS, 'pending')  # buffered at the jump
    assert sync.time_jumps == 0 and sync.pending_images >= 1
    pending = sync.pending_images
    restart = [t - jump_s * S for t in images]
    restart_scans = [t - jump_s * S for t in scans]
    second = _run(sync, _events(restart, restart_scans))
    # Jumps are detected per stream: the camera's and then the LiDAR's.
    assert sync.time_jumps == 2 and sync.jumps_by_stream == {'image': 1, 'scan': 1}
    assert sync.last_time_jump is not None and sync.last_time_jump.stream == 'scan'
    assert sync.last_time_jump.to_ns == min(restart[0], restart_scans[0])
    assert sync.last_time_jump.from_ns > sync.last_time_jump.to_ns + S
    assert sync.image_drops['time_jump'] == pending
    expected = _oracle(restart, restart_scans, 50 * MS)
    second += sync.flush(restart[-1] + S)
    assert {p.image_stamp_ns: p.scan_stamp_ns for p in second} == expected
    assert len(first) > 0


def test_small_backwards_step_is_not_a_jump() -> None:
    sync = PairSynchronizer(SyncConfig(), backwards_jump_ns=S)
    sync.add_image(5 * S, 'a')
    sync.add_scan(5 * S - 890 * MS, 'scan')
    pairs = sync.add_image(5 * S - 900 * MS, 'older')  # past its wait: decided at once
    assert sync.time_jumps == 0 and sync.pending_images == 1
    assert [(p.image, p.scan) for p in pairs] == [('older', 'scan')]


def test_record_drop_and_reasons() -> None:
    sync = PairSynchronizer(SyncConfig())
    sync.record_drop('malformed')
    sync.record_drop('malformed', 2)
    assert sync.drops['malformed'] == 3


def test_bad_jump_threshold() -> None:
    with pytest.raises(ConfigError, match='backwards_jump_ns must be a positive integer; got 0'):
        PairSynchronizer(SyncConfig(), backwards_jump_ns=0)


def test_stamps_may_be_numpy_ints() -> None:
    sync = PairSynchronizer(SyncConfig())
    sync.add_image(np.int64(100 * MS), 'a')
    pairs = sync.add_scan(np.int64(100 * MS), 's')
    assert type(pairs[0].image_stamp_ns) is int


@pytest.mark.parametrize('seed', range(20))
def test_random_streams_keep_invariants(seed: int) -> None:
    """Fuzz: random rates, jitter, reordering, gaps, flushes and loops of the stream."""
    rng = np.random.default_rng(seed)
    cfg = SyncConfig(sync_max_offset=float(rng.uniform(0.01, 0.1)),
                     sync_max_wait=float(rng.uniform(0.0, 0.3)),
                     sync_queue_size=int(rng.integers(1, 12)))
    sync = PairSynchronizer(cfg)
    image_period = int(rng.uniform(10, 100) * MS)
    scan_period = int(rng.uniform(20, 200) * MS)
    events = []
    loops = int(rng.integers(1, 3))
    for loop in range(loops):
        images = np.arange(0, 3 * S, image_period) + int(rng.integers(0, 10 * MS))
        scans = np.arange(0, 3 * S, scan_period) + int(rng.integers(0, 10 * MS))
        images = images[rng.random(len(images)) > 0.1]  # lost frames
        scans = scans[rng.random(len(scans)) > 0.1]
        ev = _events(images.tolist(), scans.tolist(), image_latency=int(rng.integers(0, 80)) * MS,
                     scan_latency=int(rng.integers(0, 120)) * MS, rng=rng,
                     arrival_jitter=int(rng.integers(1, 30)) * MS)
        events += [(a + loop * 10 * S, k, t) for a, k, t in ev]  # second pass: same stamps
    n_images = sum(k == 'image' for _, k, _ in events)
    n_scans = len(events) - n_images
    pairs: list[Pair] = []
    segments: list[list[Pair]] = [[]]
    jumps = 0
    for arrival, kind, stamp in events:
        out = (sync.add_image if kind == 'image' else sync.add_scan)(stamp, (kind, stamp),
                                                                     arrival_ns=arrival)
        if sync.time_jumps != jumps:
            jumps = sync.time_jumps
            segments.append([])
        if rng.random() < 0.3:
            out += sync.flush(arrival + int(rng.integers(0, 200)) * MS)
        pairs += out
        segments[-1] += out
        assert sync.pending_images <= cfg.sync_queue_size
        assert sync.pending_scans <= cfg.sync_queue_size
    for segment in segments:
        _check_order_once(segment)
    for p in pairs:
        assert abs(p.image_stamp_ns - p.scan_stamp_ns) <= cfg.max_offset_ns
        assert p.image == ('image', p.image_stamp_ns) and p.scan == ('scan', p.scan_stamp_ns)
    _check_accounting(sync, pairs, n_images, n_scans)
    pairs += sync.flush(10**12 * S)
    assert sync.pending_images == 0
    _check_accounting(sync, pairs, n_images, n_scans)
    assert sync.time_jumps <= 2 * (loops - 1), 'at most one jump per stream and loop'
