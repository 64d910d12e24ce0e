"""The shipped weights: ``seed_small`` trained on the synthetic generator (see README.md).

``DEMO_WEIGHTS`` is the checkpoint ``g2mono demo`` uses by default; load it with
``g2mono_ros.models.checkpoint.load_checkpoint``. ``V1_WEIGHTS`` are the first demo weights,
kept for comparisons (``benchmarks/bench_quality.py``), as ``V2_WEIGHTS``, ``V3_WEIGHTS`` and
``V4_WEIGHTS``.
"""

from pathlib import Path

__all__ = ['DEMO_WEIGHTS', 'V1_WEIGHTS', 'V2_WEIGHTS', 'V3_WEIGHTS', 'V4_WEIGHTS']

_HERE = Path(__file__).resolve().parent
#: variant seed_small (log depth scale per image, colour-guided nearest pre-fill input, residual
#: head, pinning), network input 128 x 192, max_depth 200 m (the output clamp only): v3's
#: network on the colour-guided pre-fill, corrections under 10 % dropped (``residual_shrink``).
DEMO_WEIGHTS = _HERE / 'g2mono_seed_small_v5.pt'
#: the previous demo weights (the same network and pre-fill, no threshold), kept for comparisons.
V4_WEIGHTS = _HERE / 'g2mono_seed_small_v4.pt'
#: the previous demo weights (scan-line pre-fill, 3 % soft threshold), kept for comparisons.
V3_WEIGHTS = _HERE / 'g2mono_seed_small_v3.pt'
#: the previous demo weights (nearest-fill pre-fill, no threshold), kept for comparisons.
V2_WEIGHTS = _HERE / 'g2mono_seed_small_v2.pt'
#: the first demo weights: plain G2 formulation, depth / 80 m, 128 x 192.
V1_WEIGHTS = _HERE / 'g2mono_seed_small_synth.pt'
