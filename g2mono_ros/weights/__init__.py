"""The shipped demo weights: ``seed_small`` trained on the synthetic generator (see README.md).

``DEMO_WEIGHTS`` is the checkpoint ``g2mono demo`` uses by default; load it with
``g2mono_ros.models.checkpoint.load_checkpoint``.
"""

from pathlib import Path

__all__ = ['DEMO_WEIGHTS']

#: our checkpoint format; variant seed_small, network input 128 x 192, max_depth 80 m.
DEMO_WEIGHTS = Path(__file__).resolve().parent / 'g2mono_seed_small_synth.pt'
