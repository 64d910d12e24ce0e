"""The ROS-free inference engine shared by the node, the evaluator and the trainer.

RGB uint8 + sparse metric depth in, dense metric depth out, following the release conventions
(RGB/255, depth/max_depth clipped to [0, 1], mask = depth > 0, output x max_depth).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.models.checkpoint import LoadedModel, load_checkpoint, resolve_input_size

__all__ = ['DepthEngine', 'resize_sparse_depth', 'resolve_device', 'tune_cpu_allocator']

_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_ALLOCATOR_TUNED: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed tensor memory in the heap for reuse instead of returning it to the OS.

    glibc serves large allocations with mmap and unmaps them on free, so every frame's
    activations are page-faulted in afresh (on the benchmark machine that was a quarter of
    the CPU time of a forward pass). Raising M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to 1 GiB
    makes them reused. Process-wide and idempotent; the price is that the process keeps its
    peak heap. Larger blocks, and non-glibc systems, keep the default behaviour.

    Returns:
        True when the setting is in effect (glibc), False otherwise.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is None:
        _ALLOCATOR_TUNED = False
        if sys.platform.startswith('linux'):
            try:
                mallopt = ctypes.CDLL('libc.so.6').mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _ALLOCATOR_TUNED = (mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
                                and mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1)
    return _ALLOCATOR_TUNED


def resize_sparse_depth(depth: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize a sparse depth map without inventing or blending values.

    Each input point goes to the target pixel that contains its pixel centre; where several
    land in one target pixel, the nearest (smallest positive depth) survives.

    Args:
        depth: (H, W) depth, 0 (or non-finite/negative) = no point.
        out_hw: (h, w) target size.

    Returns:
        (h, w) float32, every non-zero value one of the input values.

    Raises:
        ShapeError: depth is not 2-D or out_hw is not two positive ints.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        msg = f'sparse depth must be (H, W); got shape {depth.shape}'
        raise ShapeError(msg)
    out_h, out_w = (int(v) for v in out_hw)
    if out_h <= 0 or out_w <= 0:
        msg = f'out_hw must be two positive sizes; got {out_hw}'
        raise ShapeError(msg)
    in_h, in_w = depth.shape
    out = np.zeros((out_h, out_w), np.float32)
    if (in_h, in_w) == (out_h, out_w):
        valid = np.isfinite(depth) & (depth > 0)
        out[valid] = depth[valid]
        return out
    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    if rows.size == 0:
        return out
    values = depth[rows, cols].astype(np.float32)
    # Pixel centre (r + 0.5) scaled to the target grid, floored.
    target_rows = np.minimum(((2 * rows + 1) * out_h) // (2 * in_h), out_h - 1)
    target_cols = np.minimum(((2 * cols + 1) * out_w) // (2 * in_w), out_w - 1)
    linear = target_rows * out_w + target_cols
    order = np.lexsort((values, linear))  # by pixel, then nearest first
    linear, values = linear[order], values[order]
    first = np.ones(linear.size, bool)
    first[1:] = linear[1:] != linear[:-1]
    out.reshape(-1)[linear[first]] = values[first]
    return out


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` must be available.

    Raises:
        ConfigError: ``cuda`` asked for but not available, or an unknown name.
    """
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda':
        if not torch.cuda.is_available():
            msg = "parameter 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
            raise ConfigError(msg)
        return torch.device('cuda')
    if device == 'cpu':
        return torch.device('cpu')
    msg = f"parameter 'device' must be one of auto, cuda, cpu; got {device!r}"
    raise ConfigError(msg)


class DepthEngine:
    """Run a G2-MonoDepth network on numpy images: load, resize, normalise, infer, resize back.

    One engine serves one thread at a time (it reuses pinned host buffers on CUDA).

    Attributes:
        loaded: the loaded network and its checkpoint record.
        model: the network that runs (a fused copy when ``fused``).
        fused: True when the fused fp32 CPU copy of the network runs.

    Args:
        config: weights path, variant, device, precision, input size, max depth.
        model: use this instead of loading ``config.weights``: a :class:`LoadedModel` (its
            recorded max depth applies when ``config.max_depth`` is 0), or a bare network (the
            trainer's validation; then ``config.max_depth`` must be > 0). ``config.weights``
            then only labels it. The engine puts the network in eval mode, channels_last,
            on its device.
        tune_allocator: on CPU, call :func:`tune_cpu_allocator` (process-wide).
        fuse_cpu: on CPU at fp32, run the network's fused inference copy when it has one
            (``fused_for_cpu_inference``: the official variant), after checking it against the
            plain network once. None (default): only for weights the engine did not get as a
            bare module, since a fused copy does not follow later weight updates.

    Raises:
        CheckpointError: the weights file is missing, unsafe, or does not fit the variant.
        ConfigError: no max depth known (release weights need ``max_depth``), or CUDA missing.
    """

    def __init__(self, config: EngineConfig, *,
                 model: nn.Module | LoadedModel | None = None,
                 tune_allocator: bool = True, fuse_cpu: bool | None = None) -> None:
        self.config = config
        self._device = resolve_device(config.device)
        if tune_allocator and self._device.type == 'cpu':
            tune_cpu_allocator()
        if config.num_threads and self._device.type == 'cpu':
            torch.set_num_threads(config.num_threads)
        if model is None:
            loaded = load_checkpoint(config.weights, variant=config.variant)
        elif isinstance(model, LoadedModel):
            loaded = model
        else:
            loaded = LoadedModel(model=model, variant=config.variant, model_kwargs={},
                                 max_depth=0.0, input_height=config.input_height, input_width=0)
        self.loaded = loaded
        #: network input size after ``resolve_input_size`` (width 0 = keep the camera aspect).
        self.input_height, self.input_width = resolve_input_size(
            config.input_height, config.input_width, loaded)
        self._max_depth = float(config.max_depth or loaded.max_depth)
        if not self._max_depth > 0:
            msg = (f"parameter 'max_depth' must be > 0 for weights {config.weights!r}: they do "
                   'not record one (the release used 20 m indoor, 100 m outdoor)')
            raise ConfigError(msg)
        self._input_multiple = int(getattr(loaded.model, 'input_multiple', 64))
        self._autocast_dtype = _DTYPES.get(config.precision)
        self.model = loaded.model.eval().to(self._device, memory_format=torch.channels_last)
        if fuse_cpu is None:
            fuse_cpu = model is None or isinstance(model, LoadedModel)
        self.fused = False
        if fuse_cpu and self._device.type == 'cpu' and self._autocast_dtype is None:
            self._use_fused_copy()
        self._pinned: dict[tuple[str, tuple[int, ...], torch.dtype], Tensor] = {}

    def _use_fused_copy(self) -> None:
        """Swap in the network's fused CPU copy if it exists and agrees with the plain one."""
        make_fused = getattr(self.model, 'fused_for_cpu_inference', None)
        if make_fused is None:
            return
        size = self._input_multiple
        gen = torch.Generator().manual_seed(0)
        inputs = [torch.rand(1, c, size, size, generator=gen).contiguous(
            memory_format=torch.channels_last) for c in (3, 1, 1)]
        try:
            fused = make_fused().to(memory_format=torch.channels_last)
            with torch.inference_mode():
                expected = self.model(*inputs)
                got = fused(*inputs)
        except RuntimeError:
            return  # no oneDNN fusion in this PyTorch build: keep the plain network
        if float((got - expected).abs().max()) <= 1e-4 * (1.0 + float(expected.abs().max())):
            self.model = fused
            self.fused = True

    @property
    def max_depth(self) -> float:
        """Metres that map to 1.0 at the network input and output."""
        return self._max_depth

    @property
    def device(self) -> torch.device:
        return self._device

    def network_input_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network sees for a (height, width) image: ``input_height``, and
        ``input_width`` or the width that keeps the aspect ratio, both multiples of 64."""
        h = self.input_height
        if self.input_width:
            return h, self.input_width
        m = self._input_multiple
        w = max(m, int(round(width * h / height / m)) * m)
        return h, w

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self._autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self._device.type, dtype=self._autocast_dtype):
            yield

    def infer_tensors(self, rgb: Tensor, sparse: Tensor) -> Tensor:
        """Dense depth at the network input size, for tensors already on :attr:`device`.

        Args:
            rgb: (B, 3, h, w) uint8 0..255 or float 0..1; h, w multiples of 64.
            sparse: (B, 1, h, w) metres; 0, negative or non-finite = no point.

        Returns:
            (B, 1, h, w) float32 metres, in [0, max_depth].

        Raises:
            ShapeError: wrong shapes or sizes not multiples of 64 (from the network).
        """
        if sparse.ndim != 4 or sparse.shape[1] != 1:
            msg = f'sparse must be (B, 1, h, w); got {tuple(sparse.shape)}'
            raise ShapeError(msg)
        with torch.inference_mode():
            rgb_f = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
            sparse = sparse.float()
            valid = torch.isfinite(sparse) & (sparse > 0)
            point = torch.where(valid, sparse / self._max_depth, 0.0).clamp_(0.0, 1.0)
            hole = valid.float()
            memory = torch.channels_last
            with self._autocast():
                out = self.model(rgb_f.contiguous(memory_format=memory),
                                 point.contiguous(memory_format=memory),
                                 hole.contiguous(memory_format=memory))
            # The official head has no activation; both variants are trained on [0, 1].
            return out.float().clamp_(0.0, 1.0) * self._max_depth

    def _to_camera_size(self, depth: Tensor, rgb_net: Tensor, rgb_full: Tensor,
                        sparse_depth: np.ndarray) -> Tensor:
        """Upsample (``config.upsample``) and, for networks that pin their points, pin again at
        the camera size when the points came at that size."""
        from g2mono_ros.models.upsample import pin_to_points, upsample_depth

        size = tuple(rgb_full.shape[-2:])
        depth = upsample_depth(depth, size, mode=self.config.upsample, guide_lr=rgb_net,
                               guide_hr=rgb_full / 255.0)
        # Interpolation weights summing to 1 - ulp can overshoot max_depth by a rounding step.
        depth = depth.clamp_(0.0, self._max_depth)
        if getattr(self.loaded.model, 'pin_points', False) and sparse_depth.shape == size:
            sparse = self._to_device(np.asarray(sparse_depth, np.float32), 'sparse_full')
            depth = pin_to_points(depth, sparse[None, None].clamp(0.0, self._max_depth))
        return depth

    def _pinned_buffer(self, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        key = (role, shape, dtype)
        buffer = self._pinned.get(key)
        if buffer is None:
            buffer = self._pinned[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return buffer

    def _to_device(self, array: np.ndarray, role: str) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self._device.type != 'cuda':
            return tensor
        pinned = self._pinned_buffer(role, tuple(tensor.shape), tensor.dtype)
        # infer() synchronises on entry and before it returns, so no copy out of this buffer
        # is still in flight when it is refilled.
        pinned.copy_(tensor)
        return pinned.to(self._device, non_blocking=True)

    def infer(self, rgb: np.ndarray, sparse_depth: np.ndarray) -> np.ndarray:
        """Dense metric depth at the RGB's resolution.

        Args:
            rgb: (H, W, 3) uint8.
            sparse_depth: (H, W) metres at the RGB size, or (h, w) already at the network input
                size (then not resized); 0, negative or non-finite = no point.

        Returns:
            (H, W) float32 metres in [0, max_depth].

        Raises:
            ShapeError: rgb is not (H, W, 3) uint8 or sparse_depth has neither size.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            msg = f'rgb must be (H, W, 3) uint8; got shape {rgb.shape} dtype {rgb.dtype}'
            raise ShapeError(msg)
        height, width = rgb.shape[:2]
        h, w = self.network_input_size(height, width)
        sparse_depth = np.asarray(sparse_depth)
        if sparse_depth.shape not in ((h, w), (height, width)):
            msg = (f'sparse_depth must be {(height, width)} (the RGB size) or {(h, w)} (the '
                   f'network input size); got {sparse_depth.shape}')
            raise ShapeError(msg)
        sparse_in = resize_sparse_depth(sparse_depth, (h, w))  # same size: only cleans it

        if self._device.type == 'cuda':  # a call that raised may have left copies queued
            torch.cuda.current_stream(self._device).synchronize()
        with torch.inference_mode():
            rgb_full = self._to_device(rgb, 'rgb').permute(2, 0, 1).unsqueeze(0).float()
            rgb_t = rgb_full
            if (height, width) != (h, w):
                rgb_t = F.interpolate(rgb_t, size=(h, w), mode='bilinear', align_corners=False,
                                      antialias=h < height or w < width)
            rgb_t = rgb_t.clamp_(0.0, 255.0) / 255.0
            sparse_t = self._to_device(sparse_in, 'sparse')[None, None]
            depth = self.infer_tensors(rgb_t, sparse_t)
            if (height, width) != (h, w):
                depth = self._to_camera_size(depth, rgb_t, rgb_full, sparse_depth)
            depth = depth[0, 0]
            if self._device.type == 'cuda':
                host = self._pinned_buffer('depth', tuple(depth.shape), depth.dtype)
                host.copy_(depth, non_blocking=True)
                torch.cuda.current_stream(self._device).synchronize()
                return host.numpy().copy()
            return depth.numpy().copy()
