"""``g2mono infer``: dense depth from one RGB image and one sparse depth map, written to files.

Writes OUT.npy (float32 metres, 0 = none) and OUT.png (colorized) beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from g2mono_ros.config import DEVICES, PRECISIONS, UPSAMPLE_MODES, VARIANTS, EngineConfig
from g2mono_ros.errors import ConfigError, ShapeError

__all__ = ['add_arguments', 'read_rgb', 'read_sparse_depth', 'run']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``infer`` options to ``parser``."""
    parser.add_argument('--weights', required=True, help='checkpoint (ours or the release .pth)')
    parser.add_argument('--variant', default='auto', choices=VARIANTS,
                        help='network variant (auto: as recorded, or official for release keys)')
    parser.add_argument('--rgb', required=True, help='RGB image (PNG/JPEG...)')
    parser.add_argument('--sparse', required=True,
                        help='sparse depth: 16-bit PNG in millimetres or .npy in metres; 0 = none')
    parser.add_argument('--max-depth', type=float, default=0.0,
                        help='metres mapped to 1.0 (0: from the checkpoint)')
    parser.add_argument('--input-height', type=int, default=0,
                        help='network input height, a multiple of 64 (0: as recorded in the '
                             'checkpoint; 320 for release weights)')
    parser.add_argument('--input-width', type=int, default=0,
                        help='network input width, a multiple of 64 (0: as recorded with the '
                             'height, else keep the aspect ratio)')
    parser.add_argument('--device', default='auto', choices=DEVICES)
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS)
    parser.add_argument('--upsample', default='edge_aware', choices=UPSAMPLE_MODES,
                        help='network output -> image size. prefill_guided re-applies the '
                             "network's correction to the pre-fill of all the points at the "
                             'image size: the most accurate on real photographs with the '
                             'shipped (pre-fill residual) weights, and slower on large images '
                             '(bench_quality); other weights fall back to edge_aware')
    parser.add_argument('--out', required=True, help='output .npy (a .png is written beside it)')


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image file.

    Raises:
        ConfigError: the file is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        msg = f'cannot read --rgb image {str(path)!r}: {exc}'
        raise ConfigError(msg) from exc


def read_sparse_depth(path: str | Path) -> np.ndarray:
    """(H, W) float32 metres from a 16-bit PNG in millimetres or a .npy in metres (0 = none).

    Raises:
        ConfigError: the file is missing or unreadable, or not a 16-bit single-channel PNG.
        ShapeError: the .npy is not 2-D.
    """
    path = Path(path)
    if path.suffix.lower() == '.npy':
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            msg = f'cannot read --sparse {str(path)!r}: {exc}'
            raise ConfigError(msg) from exc
        if depth.ndim != 2:
            msg = f'--sparse .npy must be (H, W) metres; got shape {depth.shape}'
            raise ShapeError(msg)
        return depth.astype(np.float32)
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        msg = f'cannot read --sparse image {str(path)!r}'
        raise ConfigError(msg)
    if raw.ndim != 2 or raw.dtype != np.uint16:
        msg = (f'--sparse PNG must be single-channel 16-bit millimetres; got shape {raw.shape} '
               f'dtype {raw.dtype}')
        raise ConfigError(msg)
    return raw.astype(np.float32) / 1000.0


def run(args: argparse.Namespace) -> int:
    """Run one inference and write OUT.npy and OUT.png."""
    from PIL import Image

    from g2mono_ros.models.checkpoint import load_checkpoint
    from g2mono_ros.models.engine import DepthEngine
    from g2mono_ros.visualize import colorize_depth

    # Checked before the weights are read, so a bad option fails fast.
    config = EngineConfig(weights=args.weights, variant=args.variant, device=args.device,
                          precision=args.precision, input_height=args.input_height,
                          input_width=args.input_width, max_depth=args.max_depth,
                          upsample=args.upsample)
    rgb = read_rgb(args.rgb)
    sparse = read_sparse_depth(args.sparse)
    loaded = load_checkpoint(args.weights, variant=args.variant)
    # The engine applies the input-size rule (models.checkpoint.resolve_input_size).
    engine = DepthEngine(config, model=loaded)
    input_height, input_width = engine.input_height, engine.input_width
    depth = engine.infer(rgb, sparse)
    out = Path(args.out)
    if out.suffix.lower() != '.npy':
        out = out.with_suffix(out.suffix + '.npy') if out.suffix else out.with_suffix('.npy')
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, depth.astype(np.float32))
    png = out.with_suffix('.png')
    Image.fromarray(colorize_depth(depth, engine.max_depth)).save(png)
    points = int(np.count_nonzero(np.isfinite(sparse) & (sparse > 0)))
    print(f'{out}: {depth.shape[1]}x{depth.shape[0]} depth {float(depth.min()):.2f}..'
          f'{float(depth.max()):.2f} m from {points} points ({loaded.variant}, input '
          f'{input_height}x{input_width or "aspect"}, {engine.device}, {args.precision}, '
          f'{args.upsample}); '
          f'colorized: {png}')
    return 0
