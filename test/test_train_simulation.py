"""Input simulation: regime statistics of the G2 recipe and LiDAR-shaped scan degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.training.simulation import (
    G2SimConfig,
    LidarSimConfig,
    beam_index,
    nearest_blur,
    random_hole_mask,
    simulate_g2_input,
    simulate_lidar_image,
    simulate_lidar_scan,
)


def test_g2_regime_frequencies_match_the_recipe():
    gen = torch.Generator().manual_seed(123)
    target = torch.full((1, 16, 16), 0.5)
    counts = {'dense': 0, 'sparse': 0, 'very_sparse': 0, 'empty': 0}
    n = 2000
    for _ in range(n):
        sim = simulate_g2_input(target, gen)
        counts[sim.regime] += 1
        if sim.regime == 'empty':
            assert sim.drop_rate == 1.0 and not sim.raw.any()
        elif sim.regime == 'dense':
            assert sim.drop_rate == 0.0
        elif sim.regime == 'sparse':
            assert 0.0 <= sim.drop_rate <= 0.9
        else:
            assert 0.9 <= sim.drop_rate <= 1.0
        assert sim.raw.min() >= 0 and sim.raw.max() <= 1
    freq = {k: v / n for k, v in counts.items()}
    # binomial sd at n=2000 is ~0.009-0.011; 0.035 is > 3 sd
    assert freq['dense'] == pytest.approx(0.2, abs=0.035)
    assert freq['sparse'] == pytest.approx(0.2, abs=0.035)
    assert freq['very_sparse'] == pytest.approx(0.2, abs=0.035)
    assert freq['empty'] == pytest.approx(0.4, abs=0.035)


def test_g2_observed_drop_fraction_follows_the_drawn_rate():
    # With noise, blur and holes off, the surviving share is 1 - drop rate.
    cfg = G2SimConfig(p_noise=0.0, p_blur=0.0, p_holes=0.0, p_dense=0.0, p_sparse=0.5,
                      p_very_sparse=0.5)
    gen = torch.Generator().manual_seed(7)
    target = torch.full((1, 64, 64), 0.25)
    rates = {'sparse': [], 'very_sparse': []}
    for _ in range(300):
        sim = simulate_g2_input(target, gen, cfg)
        kept = float((sim.raw > 0).float().mean())
        assert kept == pytest.approx(1.0 - sim.drop_rate, abs=0.03)
        rates[sim.regime].append(sim.drop_rate)
    # Drop rates spread over each regime's range (uniform): means near the centres.
    assert np.mean(rates['sparse']) == pytest.approx(0.45, abs=0.06)
    assert np.mean(rates['very_sparse']) == pytest.approx(0.95, abs=0.01)
    assert min(rates['sparse']) < 0.1 and max(rates['sparse']) > 0.8


def test_g2_dense_regime_is_always_blurred_and_keeps_values():
    cfg = G2SimConfig(p_dense=1.0, p_sparse=0.0, p_very_sparse=0.0, p_noise=0.0, p_holes=0.0)
    gen = torch.Generator().manual_seed(3)
    target = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.9 + 0.05
    for _ in range(20):
        sim = simulate_g2_input(target, gen, cfg)
        assert sim.regime == 'dense'
        assert not torch.equal(sim.raw, target)  # blurred
        # nearest blur only copies existing values
        assert torch.isin(sim.raw.flatten(), target.flatten()).all()


def test_g2_same_seed_same_sample_and_shape_error():
    target = torch.rand(1, 16, 16)
    a = simulate_g2_input(target, torch.Generator().manual_seed(5))
    b = simulate_g2_input(target, torch.Generator().manual_seed(5))
    assert torch.equal(a.raw, b.raw) and a.regime == b.regime
    with pytest.raises(ShapeError, match=r'target must be \(1, H, W\)'):
        simulate_g2_input(torch.rand(16, 16), torch.Generator())


def test_g2_config_errors_name_the_key():
    with pytest.raises(ConfigError, match='simulation.g2.p_noise'):
        G2SimConfig(p_noise=1.5)
    with pytest.raises(ConfigError, match='must sum to <= 1'):
        G2SimConfig(p_dense=0.5, p_sparse=0.5, p_very_sparse=0.5)
    with pytest.raises(ConfigError, match='simulation.g2.sparse_drop'):
        G2SimConfig(sparse_drop=(0.5, 0.2))


def test_nearest_blur_and_hole_mask():
    x = torch.arange(16.0).view(1, 4, 4)
    blurred = nearest_blur(x, 2)
    assert torch.equal(blurred[0, :2, :2], torch.full((2, 2), x[0, 0, 0].item()))
    mask = random_hole_mask(32, 48, torch.Generator().manual_seed(0))
    assert mask.shape == (1, 32, 48)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    shares = [float(random_hole_mask(32, 48, torch.Generator().manual_seed(s)).mean())
              for s in range(40)]
    # holes exist in some masks, and masks are not all holes
    assert min(shares) < 0.95 and np.mean(shares) > 0.3


def _ring_scan(beams: int = 64, per_beam: int = 360) -> tuple[np.ndarray, np.ndarray]:
    elev = np.radians(np.linspace(-15, 15, beams))
    azim = np.radians(np.linspace(-180, 180, per_beam, endpoint=False))
    e, a = np.meshgrid(elev, azim, indexing='ij')
    r = np.full_like(e, 20.0)
    r[:, ::2] = 40.0
    pts = np.stack([r * np.cos(e) * np.cos(a), r * np.cos(e) * np.sin(a), r * np.sin(e)], -1)
    ring = np.repeat(np.arange(beams), per_beam)
    return pts.reshape(-1, 3).astype(np.float32), ring


def test_beam_subsampling_keeps_every_kth_ring_and_elevation_fallback():
    pts, ring = _ring_scan()
    cfg = LidarSimConfig(p_beam_subsample=1.0, beam_steps=(4,), p_missing_sector=0.0,
                         p_range_limit=0.0, p_point_dropout=0.0)
    res = simulate_lidar_scan(pts, np.random.default_rng(0), ring=ring, config=cfg)
    assert res.beam_step == 4
    assert len(np.unique(ring[res.keep])) == 16
    assert np.all(np.diff(np.unique(ring[res.keep])) == 4)
    # Without the ring field, binned elevation recovers the same 64 beams.
    assert np.array_equal(beam_index(pts, None, 64), ring)
    res2 = simulate_lidar_scan(pts, np.random.default_rng(0), config=cfg)
    assert len(np.unique(ring[res2.keep])) == 16


def test_missing_sector_and_range_limit():
    pts, ring = _ring_scan()
    cfg = LidarSimConfig(p_beam_subsample=0.0, p_missing_sector=1.0, max_sectors=1,
                         sector_width_deg=(90.0, 90.0), p_range_limit=1.0,
                         max_range_m=(30.0, 30.0), p_point_dropout=0.0)
    in_view = pts[:, 0] > 0
    res = simulate_lidar_scan(pts, np.random.default_rng(1), ring=ring, in_view=in_view, config=cfg)
    assert res.max_range_m == 30.0
    assert np.linalg.norm(pts[res.keep], axis=1).max() <= 30.0
    (centre, width), = res.sectors_deg
    assert width == 90.0 and -90.0 <= centre <= 90.0  # centred on a point the camera sees
    az = np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))
    off = np.abs((az - centre + 180) % 360 - 180)
    assert not res.keep[off < 45].any()
    # the 20 m half of the points outside the sector survives
    assert res.keep.sum() == pytest.approx(0.5 * (off > 45).sum(), rel=0.02)


def test_lidar_sim_statistics_and_errors():
    pts, ring = _ring_scan(16, 90)
    cfg = LidarSimConfig(p_beam_subsample=0.5, p_missing_sector=0.3, p_range_limit=0.3)
    rng = np.random.default_rng(11)
    results = [simulate_lidar_scan(pts, rng, ring=ring, config=cfg) for _ in range(600)]
    assert np.mean([r.beam_step > 1 for r in results]) == pytest.approx(0.5, abs=0.06)
    assert np.mean([bool(r.sectors_deg) for r in results]) == pytest.approx(0.3, abs=0.06)
    assert np.mean([np.isfinite(r.max_range_m) for r in results]) == pytest.approx(0.3, abs=0.06)
    with pytest.raises(ShapeError, match=r'points must be \(N, 3\)'):
        simulate_lidar_scan(pts[:, :2], rng)
    with pytest.raises(ShapeError, match='ring must be'):
        simulate_lidar_scan(pts, rng, ring=ring[:5])
    with pytest.raises(ConfigError, match='simulation.lidar.beam_steps'):
        LidarSimConfig(beam_steps=(0,))


def test_lidar_image_sector_band_and_range_limit():
    sparse = torch.full((1, 8, 90), 0.5)
    cfg = LidarSimConfig(p_missing_sector=1.0, max_sectors=1, sector_width_deg=(30.0, 30.0),
                         p_range_limit=0.0, p_point_dropout=0.0)
    out = simulate_lidar_image(sparse, torch.Generator().manual_seed(0), max_depth=100.0, config=cfg)
    empty_cols = (out[0] == 0).all(dim=0)
    assert int(empty_cols.sum()) == 30
    cols = torch.nonzero(empty_cols).flatten()
    assert int(cols.max() - cols.min()) == 29  # one contiguous band
    cfg = LidarSimConfig(p_missing_sector=0.0, p_range_limit=1.0, max_range_m=(40.0, 40.0),
                         p_point_dropout=0.0)
    out = simulate_lidar_image(sparse, torch.Generator().manual_seed(0), max_depth=100.0, config=cfg)
    assert not out.any()  # 50 m > 40 m limit
