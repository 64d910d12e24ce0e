"""The ROS-free inference engine shared by the node, the evaluator and the trainer.

RGB uint8 + sparse metric depth in, dense metric depth out, following the release conventions
(RGB/255, depth/max_depth clipped to [0, 1], mask = depth > 0, output x max_depth).
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2mono_ros.config import EngineConfig
from g2mono_ros.errors import ConfigError, ShapeError
from g2mono_ros.imaging import area_resize, network_pixel_index, zbuffer_nearest
from g2mono_ros.models.backends import (CudaGraphRunner, OnnxRuntimeBackend,
                                        check_against_module, onednn_graph_kernels)
from g2mono_ros.models.checkpoint import LoadedModel, load_checkpoint, resolve_input_size
from g2mono_ros.models.upsample import PREFILL_GUIDED_KINDS

__all__ = ['DepthEngine', 'reduced_precision_core', 'resize_sparse_depth', 'resolve_device',
           'tune_cpu_allocator']

_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
# Variants that ``backend: auto`` runs in ONNX Runtime on the CPU (fp32, weights loaded by the
# engine): measured on the benchmark CPU, the official network at 256x512 ran 2.27x eager in
# ONNX Runtime vs 1.67x for the fused torch copy (median 2.4 s vs 4.0 s); for the seed network
# ONNX Runtime was slower than its fused torch copy (also with one thread and no spinning: the
# channel LayerNorms become transposes around each norm), so it stays on torch: on its copy run
# by oneDNN Graph where that passes its check (LayerNorm + GELU as one kernel), else the fused
# copy (``benchmarks/bench_model.py``).
_ONNXRUNTIME_BY_DEFAULT = frozenset({'official'})
#: CUDA at half precision may differ from the float32 network by this much at start-up
#: (normalised depth). Measured on the CPU with the same conversion: the shipped seed_small
#: differs by 0.0007 (fp16) and 0.005 (bf16), random-weight seed and official networks by up
#: to 0.005 and 0.05; converting the whole seed network instead gave 0.4-0.9 (its pre-fill
#: in fp16). The bounds catch that and fp16 overflow, not the usual rounding.
REDUCED_PRECISION_TOLERANCE = {'fp16': 0.03, 'bf16': 0.1}
# TorchScript profiles each new input shape on its first calls before oneDNN Graph compiles it.
_ONEDNN_GRAPH_PROFILING_RUNS = 2
#: Network-size depth at least this (metres) stays > 0 through upsampling: with weights that
#: sum to 1, one of them is >= 1/4, so no product comes near float32's underflow.
_POSITIVE_DEPTH_M = 1e-6
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
    linear = (network_pixel_index(rows, in_h, out_h) * out_w
              + network_pixel_index(cols, in_w, out_w))
    zbuffer_nearest(out.reshape(-1), linear, values)
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


def _cast_inputs_hook(dtype: torch.dtype) -> Any:
    """A forward pre-hook that casts a module's floating-point tensor arguments to ``dtype``
    (a no-op for those already in it)."""
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        del module
        return tuple(a.to(dtype) if isinstance(a, Tensor) and a.is_floating_point() else a
                     for a in args)
    return hook


def reduced_precision_core(model: nn.Module, dtype: torch.dtype) -> bool:
    """Convert a G2 network's convolution stack to ``dtype`` once, in place; keep the rest fp32.

    Every top-level child except ``head`` (a ``Conv2d``) goes to ``dtype`` and casts its
    inputs to it (a forward pre-hook: a no-op between two converted modules); ``head`` stays
    float32 and casts its input up. So the network takes and returns float32, its bulk runs at
    half precision without per-frame weight casts (as autocast would do), and what it computes
    around the stack stays float32: the seed networks' median scale, log depth, pre-fills (the
    pixel coordinates and squared distances of the nearest-point search exceed what fp16
    holds, 65504, beyond 255 px; bf16 rounds coordinates above 256 px) and residual; the
    output is not rounded to 8 (bf16) or 11 (fp16) bits (steps of 0.3 m at 80 m in bf16).
    The input ``point`` channel still enters the stack at ``dtype`` (80 m: +-0.02 m fp16,
    +-0.16 m bf16).

    Args:
        model: the network (its modules are changed and hooked in place).
        dtype: ``torch.float16`` or ``torch.bfloat16``.

    Returns:
        False, leaving ``model`` untouched, when it has no ``head`` convolution or holds
        parameters or buffers of its own outside its children: then convert it whole.
    """
    head = getattr(model, 'head', None)
    if (not isinstance(head, nn.Conv2d) or any(True for _ in model.parameters(recurse=False))
            or any(True for _ in model.buffers(recurse=False))):
        return False
    head.register_forward_pre_hook(_cast_inputs_hook(torch.float32))
    for child in model.children():
        if child is head or not any(True for _ in child.parameters()):
            continue  # parameter-free modules (activations) follow their input's dtype
        child.to(dtype)
        # Containers are not called: the modules in them are.
        called = (list(child.values()) if isinstance(child, nn.ModuleDict)
                  else list(child) if isinstance(child, nn.ModuleList) else [child])
        for module in called:
            module.register_forward_pre_hook(_cast_inputs_hook(dtype))
    return True


def _into(out: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    """``result`` written into ``out`` (returned) unless it already is ``out``; or ``result``."""
    if out is None or result is out:
        return result
    np.copyto(out, result.reshape(out.shape))
    return out


class DepthEngine:
    """Run a G2-MonoDepth network on numpy images: load, resize, normalise, infer, resize back.

    One engine serves one thread at a time (it reuses pinned host buffers on CUDA).

    How the network runs is settled once, at construction:

    - CPU, fp32: ``onnxruntime`` exports the network once and checks the session against the
      plain network on random inputs before using it (also the path to ONNX Runtime's
      CUDA/TensorRT providers on a Jetson). ``auto`` does that for the official network (faster
      there, ``benchmarks/bench_model.py --backends``) when the engine loaded the weights, and
      falls back to torch, saying why in :attr:`backend_note`, if onnxruntime is missing or the
      check fails; the seed network runs torch (channels_last). ``torch``: always torch. Either
      way torch runs the network's fused fp32 copy (``fused_for_cpu_inference``: both variants)
      once that has passed the same check, else the plain network, saying why in
      :attr:`backend_note`. For the seed network ``auto`` first tries that copy as TorchScript
      graphs run by oneDNN Graph (``onednn_graph``: LayerNorm and GELU as one kernel), checked
      the same way and required to have fused kernels; ``onednn_graph`` insists on it. Such
      graphs compile per input size on their first calls: warmed up at start-up when the size
      is fixed (``input_width`` > 0), else on the first frames.
    - CUDA: weights converted once to fp16/bf16 (no per-frame autocast): the convolution
      stack only, the network's pre-fill, scaling and head staying float32
      (:func:`reduced_precision_core`), checked against float32 at start-up
      (``REDUCED_PRECISION_TOLERANCE``); ``cudnn.benchmark`` (process-wide; the network size
      is fixed per camera even when ``input_width`` is 0); a warm-up at the configured size
      when it is fixed (``input_width`` > 0) and, with ``cuda_graph``, a graph captured for
      that size, checked against the eager network, replayed (other sizes run eagerly). One
      host synchronisation per frame: the depth is copied into a pinned buffer and the stream
      synchronised once. fp32 convolutions may use TF32 (torch's default for cuDNN).
    - CPU, fp16/bf16: autocast around fp32 weights (for measurement; CPU kernels at half
      precision are not faster here).

    Attributes:
        loaded: the loaded network and its checkpoint record.
        model: the torch network (a fused copy when ``fused``); the plain one the backends
            were checked against.
        fused: True when the fused fp32 CPU copy of the network runs.
        backend: ``'onnxruntime'``, ``'torch'``, ``'torch+onednn_graph'`` (the fused copy as
            oneDNN Graph TorchScript graphs) or ``'torch+cuda_graph'``.
        backend_error: the running backend's (ONNX Runtime session or fused copy) largest
            difference from the plain network at start-up (normalised depth; oneDNN Graph:
            also at each input size checked since; CUDA: fp16/bf16 against float32 and the
            CUDA graph against the eager network, the larger), or None.
        backend_note: why ``auto`` did not use ONNX Runtime or oneDNN Graph where it would
            have, or why the fused copy was not used ('' otherwise).
        last_depth_positive: True when every pixel of the last :meth:`infer` result is known
            to be > 0 without reading it: its network-size depth was at least
            ``_POSITIVE_DEPTH_M`` (the CPU path checks that at the network size), and
            interpolation with non-negative weights or the edge-aware choice of one neighbour
            keep that. False: not known (a consumer must look for zeros itself).

    Args:
        config: weights path, variant, device, precision, input size, max depth, backend.
        model: use this instead of loading ``config.weights``: a :class:`LoadedModel` (its
            recorded max depth applies when ``config.max_depth`` is 0), or a bare network (the
            trainer's validation; then ``config.max_depth`` must be > 0). ``config.weights``
            then only labels it. The engine puts the network in eval mode, channels_last,
            on its device (on CUDA at fp16/bf16 also converted, hooks included, in place).
        tune_allocator: on CPU, call :func:`tune_cpu_allocator` (process-wide).
        fuse_cpu: on CPU at fp32, run the network's fused inference copy when it has one
            (``fused_for_cpu_inference``) and the torch backend runs, after checking it against
            the plain network once (as a backend: ``check_against_module``). None (default):
            only for weights the engine did not get as a bare module, since a fused copy does
            not follow later weight updates.

    Raises:
        CheckpointError: the weights file is missing, unsafe, or does not fit the variant.
        ConfigError: no max depth known (release weights need ``max_depth``), CUDA missing,
            or ``backend: onnxruntime`` / ``onednn_graph`` that cannot run (not installed or
            not in this PyTorch build, not CPU fp32, export failed, output differs from the
            plain network, nothing fused); on CUDA, fp16/bf16 too far from float32, or a
            ``cuda_graph`` that cannot be captured or differs from the eager network.
    """

    def __init__(self, config: EngineConfig, *,
                 model: nn.Module | LoadedModel | None = None,
                 tune_allocator: bool = True, fuse_cpu: bool | None = None) -> None:
        self.config = config
        self._device = resolve_device(config.device)
        cuda = self._device.type == 'cuda'
        if tune_allocator and not cuda:
            tune_cpu_allocator()
        if config.num_threads and not cuda:
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
        precision_dtype = _DTYPES.get(config.precision)
        self._autocast_dtype = None if cuda else precision_dtype
        self._input_dtype = torch.float32
        self.model = loaded.model.eval().to(self._device, memory_format=torch.channels_last)
        self.backend_error: float | None = None
        if cuda and precision_dtype is not None:
            self._convert_for_cuda(precision_dtype)
        own_weights = model is None or isinstance(model, LoadedModel)
        if fuse_cpu is None:
            fuse_cpu = own_weights
        self.fused = False
        self.backend = 'torch'
        self.backend_note = ''
        self._forward: Any = self.model
        self._graph: CudaGraphRunner | None = None
        self._graph_sizes_checked: set[tuple[int, ...]] = set()  # oneDNN Graph copy: (B,C,H,W)
        self._pinned: dict[tuple[str, tuple[int, ...], torch.dtype], Tensor] = {}
        self._needs_sync = False
        self.last_depth_positive = False
        cpu_fp32 = not cuda and precision_dtype is None
        wanted = config.backend
        if wanted in ('onnxruntime', 'onednn_graph') and not cpu_fp32:
            msg = (f"parameter 'backend' is {wanted!r}, which runs fp32 on the CPU; got "
                   f"device {self._device.type} precision {config.precision} (use 'auto' or "
                   "'torch')")
            raise ConfigError(msg)
        if wanted == 'onnxruntime':
            self._use_onnxruntime()
        elif (wanted == 'auto' and cpu_fp32 and own_weights
              and loaded.variant in _ONNXRUNTIME_BY_DEFAULT):
            try:
                self._use_onnxruntime()
            except ConfigError as exc:  # not installed, export failed, or it differs
                self.backend_note = f'ONNX Runtime not used: {exc}'
        if wanted == 'onednn_graph':
            self._use_fused_copy(onednn_graph=True, required=True)
        elif self.backend == 'torch' and fuse_cpu and cpu_fp32:
            if wanted == 'auto' and self._has_onednn_graph_form():
                self._use_fused_copy(onednn_graph=True)
            if not self.fused:
                self._use_fused_copy()
        if self.backend == 'torch+onednn_graph' and self.input_width:
            self.warm_up(self.input_height, self.input_width)
        if cuda:
            # Fixed input sizes: let cuDNN time its algorithms once per size (process-wide).
            torch.backends.cudnn.benchmark = True
            if self.input_width:
                self.warm_up(self.input_height, self.input_width)
            elif config.cuda_graph:
                self.backend_note = ('cuda_graph not used: it needs a fixed network input size '
                                     '(input_width > 0)')

    # --- set-up -------------------------------------------------------------------------------

    def _convert_for_cuda(self, dtype: torch.dtype) -> None:
        """Weights to ``dtype`` once (no per-frame autocast), checked against fp32 here.

        The convolution stack only, where the network has the G2 layout
        (:func:`reduced_precision_core`), else the whole network with its inputs. The start-up
        check compares it with the float32 network on one random input (1:2, the CPU
        backends' check size) and records the difference in :attr:`backend_error`.

        Raises:
            ConfigError: the network cannot run at ``dtype`` on this device, or the
                difference is not finite (fp16 overflow) or exceeds
                ``REDUCED_PRECISION_TOLERANCE``.
        """
        other = 'fp16' if dtype == torch.bfloat16 else 'bf16'
        m = self._input_multiple
        inputs = self._example_inputs(m, 2 * m, seed=1)
        with torch.inference_mode():
            expected = self.model(*inputs).float()
            if not reduced_precision_core(self.model, dtype):
                self.model.to(dtype)
                self._input_dtype = dtype
                inputs = self._example_inputs(m, 2 * m, seed=1)
            try:
                got = self.model(*inputs).float()
            except RuntimeError as exc:  # e.g. no kernel for this dtype on this GPU
                msg = (f"parameter 'precision' is {self.config.precision!r} but the network "
                       f"cannot run at it here ({str(exc)[:300]}); use {other!r} or 'fp32'")
                raise ConfigError(msg) from exc
        error = float((got - expected).abs().max()) if expected.numel() else 0.0
        tolerance = REDUCED_PRECISION_TOLERANCE[self.config.precision]
        if not error <= tolerance:  # also NaN
            msg = (f"parameter 'precision' is {self.config.precision!r} but the network then "
                   f'differs from float32 by {error:.3g} (normalised depth) at start-up; '
                   f"allowed {tolerance:g}: use {other!r} or 'fp32'")
            raise ConfigError(msg)
        self.backend_error = error

    def _example_inputs(self, height: int, width: int, *, seed: int = 0) -> tuple[Tensor, ...]:
        """Random network inputs of one (height, width), built as infer_tensors builds them."""
        gen = torch.Generator().manual_seed(seed)
        rgb = torch.randint(0, 256, (1, 3, height, width), generator=gen, dtype=torch.uint8)
        keep = torch.rand(1, 1, height, width, generator=gen) < 0.05
        sparse = torch.rand(1, 1, height, width, generator=gen) * self._max_depth * keep
        with torch.inference_mode():
            return self._network_inputs(rgb.to(self._device), sparse.to(self._device))

    def _use_onnxruntime(self) -> None:
        """Export to ONNX Runtime and adopt it if it agrees with the plain network."""
        m = self._input_multiple
        # Exported at one small size (height, width are dynamic axes), checked at another.
        backend = OnnxRuntimeBackend(self.model, self._example_inputs(m, m),
                                     num_threads=self.config.num_threads
                                     or torch.get_num_threads())
        try:
            self.backend_error = check_against_module(backend, self.model,
                                                      self._example_inputs(m, 2 * m, seed=1))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors, one message
            # e.g. the seed networks' pre-fills record their image size in the graph.
            msg = (f'the exported network does not run at another input size in ONNX Runtime '
                   f'({type(exc).__name__}: {str(exc)[:200]})')
            raise ConfigError(msg) from exc
        self._forward = backend
        self.backend = 'onnxruntime'

    def _has_onednn_graph_form(self) -> bool:
        make_fused = getattr(self.model, 'fused_for_cpu_inference', None)
        return (make_fused is not None
                and 'onednn_graph' in inspect.signature(make_fused).parameters)

    def _use_fused_copy(self, *, onednn_graph: bool = False, required: bool = False) -> None:
        """Swap in the network's fused CPU copy if it exists and agrees with the plain one.

        Checked like a backend, on the engine's own inputs at two sizes (square and 1:2, so
        that a mix-up of height and width would show); a copy that cannot be built (no oneDNN
        in this PyTorch build) or that differs leaves the plain network, with the reason in
        :attr:`backend_note`. ``onednn_graph``: the copy as oneDNN Graph TorchScript graphs,
        checked at the 1:2 size only, once compiled there (:meth:`_onednn_graph_error`; each
        size costs a compilation), refused if nothing was fused, and checked again at each
        new input size on first use (:meth:`_check_onednn_graph_size`).

        Raises:
            ConfigError: ``required`` and the copy cannot be used.
        """
        kind = 'oneDNN Graph copy' if onednn_graph else 'fused CPU copy'
        if onednn_graph and not self._has_onednn_graph_form():
            if required:
                msg = (f"parameter 'backend' is 'onednn_graph' but the {self.loaded.variant} "
                       "network has no oneDNN Graph form (use 'auto' or 'torch')")
                raise ConfigError(msg)
            return
        make_fused = getattr(self.model, 'fused_for_cpu_inference', None)
        if make_fused is None:
            return
        m = self._input_multiple
        try:
            checks = [self._example_inputs(h, w, seed=s)
                      for s, (h, w) in enumerate(((m, m), (m, 2 * m)))]
            if onednn_graph:
                checks = checks[1:]
                fused = make_fused(onednn_graph=True)
                error = max(self._onednn_graph_error(fused, inputs) for inputs in checks)
                if onednn_graph_kernels(fused, *checks[-1]) == 0:
                    msg = 'oneDNN Graph fused no kernel on this CPU'
                    raise ConfigError(msg)
            else:
                fused = make_fused().to(memory_format=torch.channels_last)
                error = max(check_against_module(fused, self.model, inputs) for inputs in checks)
        except (RuntimeError, ConfigError) as exc:
            if required:
                msg = f"parameter 'backend' is 'onednn_graph' but it cannot run: {exc}"
                raise ConfigError(msg) from exc
            note = f'{kind} not used: {exc}'
            self.backend_note = f'{self.backend_note}; {note}' if self.backend_note else note
            return
        self.model = fused
        self._forward = fused
        self.fused = True
        self.backend_error = error
        if onednn_graph:
            self.backend = 'torch+onednn_graph'
            self._graph_sizes_checked = {tuple(t.shape) for t in (c[0] for c in checks)}

    def _onednn_graph_error(self, graph_copy: nn.Module, inputs: tuple[Tensor, ...]) -> float:
        """The oneDNN Graph copy's largest difference from the plain network on ``inputs``,
        after the calls that make TorchScript compile the graphs for their size.

        Raises:
            ConfigError: the difference exceeds the parity tolerance.
        """
        with torch.inference_mode():
            for _ in range(_ONEDNN_GRAPH_PROFILING_RUNS):
                graph_copy(*inputs)
        return check_against_module(graph_copy, self.loaded.model, inputs)

    def _check_onednn_graph_size(self, inputs: tuple[Tensor, ...]) -> None:
        """First use of an input size by the oneDNN Graph copy: compile and check it there.

        The graphs are compiled per size, so the start-up check does not cover this one. If
        it differs, the engine falls back to the fused copy (or the plain network) for good,
        saying why in :attr:`backend_note`.
        """
        size = tuple(inputs[0].shape)
        try:
            error = self._onednn_graph_error(self._forward, inputs)
        except (RuntimeError, ConfigError) as exc:  # differs, or TorchScript failed there
            self.backend_note = f'oneDNN Graph copy dropped at input size {size}: {exc}'
            self.model = self._forward = self.loaded.model
            self.backend, self.fused, self.backend_error = 'torch', False, None
            self._use_fused_copy()
            return
        self._graph_sizes_checked.add(size)
        self.backend_error = max(self.backend_error or 0.0, error)

    def warm_up(self, height: int, width: int, *, runs: int = 3) -> None:
        """Run the network a few times at a network input size (h, w), before real frames.

        On CUDA this lets cuDNN pick its algorithms and the allocator settle, and, with
        ``cuda_graph``, captures the graph for this size. Synchronises once at the end.
        """
        inputs = self._example_inputs(int(height), int(width))
        with torch.inference_mode():
            for _ in range(runs):
                self._run(inputs)
            if (self._device.type == 'cuda' and self.config.cuda_graph
                    and self._graph is None):
                self._graph = self._captured_graph(inputs)
                self.backend = 'torch+cuda_graph'
        if self._device.type == 'cuda':
            torch.cuda.current_stream(self._device).synchronize()

    def _captured_graph(self, inputs: tuple[Tensor, ...]) -> CudaGraphRunner:
        """The network captured as a CUDA graph for the shapes of ``inputs``, checked once.

        The check replays it on other inputs of that size against the eager network: the
        replay must read what is copied into its static inputs, and nothing the capture froze
        (a host-side value) may differ.

        Raises:
            ConfigError: the capture failed or the replay differs from the eager network.
        """
        other = self._example_inputs(*inputs[0].shape[-2:], seed=1)
        try:
            graph = CudaGraphRunner(self._forward, inputs)
            error = check_against_module(graph, self._forward, other)
        except (RuntimeError, ConfigError) as exc:
            msg = (f"parameter 'cuda_graph' is true but the network cannot run as a CUDA graph "
                   f'({type(exc).__name__}: {str(exc)[:300]}); set it to false')
            raise ConfigError(msg) from exc
        self.backend_error = max(self.backend_error or 0.0, error)
        return graph

    # --- properties ---------------------------------------------------------------------------

    @property
    def wants_camera_size_points(self) -> bool:
        """True when ``upsample: prefill_guided`` applies to this network, which then needs
        the points at the camera size: a caller with the network-size map should pass the
        camera-size one as ``sparse_full`` too (a network that pins its points is then also
        pinned at the camera size). Not for pinning alone: that would take every frame off the
        CPU host path."""
        model = self.loaded.model
        return (self.config.upsample == 'prefill_guided' and getattr(model, 'residual', False)
                and getattr(model, 'prefill_kind', '') in PREFILL_GUIDED_KINDS)

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

    # --- tensors ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self._autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self._device.type, dtype=self._autocast_dtype):
            yield

    def _network_inputs(self, rgb: Tensor, sparse: Tensor) -> tuple[Tensor, ...]:
        """The network's positional inputs from (B,3,h,w) RGB and (B,1,h,w) metres.

        Every backend is built from and checked with what this returns, so a network with
        other inputs only changes this method.
        """
        rgb_f = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
        sparse = sparse.float()
        valid = (sparse > 0) & (sparse < math.inf)  # finite and > 0; isfinite costs 3x more
        point = torch.where(valid, sparse / self._max_depth, 0.0).clamp_(0.0, 1.0)
        hole = valid.float()
        memory = torch.channels_last
        return tuple(t.to(self._input_dtype).contiguous(memory_format=memory)
                     for t in (rgb_f, point, hole))

    def _host_network_inputs(self, rgb: np.ndarray, sparse: np.ndarray) -> tuple[Tensor, ...]:
        """:meth:`_network_inputs` of host arrays on the CPU at fp32, built in numpy.

        The same tensors to the bit (tested), from (h, w, 3) uint8 RGB and (h, w) metres.
        numpy runs these few small passes on the calling thread; torch would hand each one to
        its OpenMP pool, whose hand-offs cost ~1 ms here and tens of ms when another process
        holds a core.
        """
        f32 = np.float32
        rgb_f = np.divide(rgb, f32(255.0), dtype=np.float32)  # a true division, as torch's
        sparse = np.asarray(sparse, np.float32)
        point = np.divide(sparse, f32(self._max_depth))
        np.minimum(point, f32(1.0), out=point)
        valid = sparse > 0
        if not (sparse.size == 0 or sparse.min() >= 0 and sparse.max() < np.inf):
            # Not clean (NaN, +-inf or negative somewhere): those are no points, as in torch.
            valid &= sparse < np.inf
            point[~valid] = 0.0
        hole = valid.astype(np.float32)
        # (h, w, 3) -> (1, 3, h, w) channels_last and (1, 1, h, w): views, no copies.
        return (torch.from_numpy(rgb_f).permute(2, 0, 1)[None],
                torch.from_numpy(point)[None, None], torch.from_numpy(hole)[None, None])

    def _run(self, inputs: tuple[Tensor, ...]) -> Tensor:
        if self._graph is not None and self._graph.matches(inputs):
            return self._graph(*inputs)
        if (self.backend == 'torch+onednn_graph'
                and tuple(inputs[0].shape) not in self._graph_sizes_checked):
            self._check_onednn_graph_size(inputs)
        with self._autocast():
            return self._forward(*inputs)

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
            out = self._run(self._network_inputs(rgb, sparse))
            # The official head has no activation; both variants are trained on [0, 1].
            return out.float().clamp(0.0, 1.0) * self._max_depth

    # --- host arrays --------------------------------------------------------------------------

    def _pinned_buffer(self, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        key = (role, shape, dtype)
        buffer = self._pinned.get(key)
        if buffer is None:
            self._pinned = {k: v for k, v in self._pinned.items() if k[0] != role}
            buffer = self._pinned[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return buffer

    def _to_device(self, array: np.ndarray, role: str) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self._device.type != 'cuda':
            return tensor
        pinned = self._pinned_buffer(role, tuple(tensor.shape), tensor.dtype)
        # Every frame ends with a synchronisation (or marks the engine for one), so no copy
        # out of this buffer is still in flight when it is refilled.
        pinned.copy_(tensor)
        return pinned.to(self._device, non_blocking=True)

    def to_host_async(self, tensor: Tensor, role: str) -> Tensor:
        """Queue a device -> pinned host copy that the next :meth:`infer` completes.

        For extra outputs of a frame (the image-size sparse map): they ride on the frame's one
        synchronisation. On CPU the tensor itself is returned.

        Returns:
            A host tensor; read it only after the next ``infer`` returned; it is reused by
            the same ``role`` on the next frame.
        """
        if self._device.type != 'cuda':
            return tensor
        host = self._pinned_buffer(role, tuple(tensor.shape), tensor.dtype)
        host.copy_(tensor, non_blocking=True)
        return host

    def infer(self, rgb: np.ndarray, sparse_depth: np.ndarray | Tensor, *,
              out_hw: tuple[int, int] | None = None, sparse_clean: bool = False,
              guide: np.ndarray | None = None, out: np.ndarray | None = None,
              sparse_full: np.ndarray | Tensor | None = None) -> np.ndarray:
        """Dense metric depth at the camera image's resolution.

        Args:
            rgb: (H, W, 3) uint8 at the camera size, or (h, w, 3) already at the network input
                size (e.g. ``codecs.rgb_from_image(msg, out_hw=(h, w))``). A camera-size image
                is shrunk on uint8 (``imaging.area_resize``) before it becomes float.
            sparse_depth: (H, W) metres at the camera size, or (h, w) at the network input
                size (then not resized); 0, negative or non-finite = no point. A tensor on
                :attr:`device` must be (h, w) and clean (``SparseProjector`` output).
            out_hw: (H, W) of the camera image when ``rgb`` is at the network size; None = the
                size of ``rgb``.
            sparse_clean: ``sparse_depth`` holds only finite values >= 0 (a projection):
                skip the cleaning pass at the network size.
            guide: (H, W, 3) uint8 camera-size image for ``upsample: edge_aware`` when ``rgb``
                is at the network size (a camera-size ``rgb`` is its own guide).
            out: (H, W) float32 C-contiguous array the result is written into (e.g. the depth
                message's buffer, ``codecs.DepthImageEncoder.target``); the CPU upsamplers
                write there directly, other paths copy. None: a new array.
            sparse_full: (H, W) float32 metres, the camera-size map of the same points when
                ``sparse_depth`` is at the network size (``SparseProjector``'s ``full``; a
                tensor on :attr:`device` or an array), for what needs the points at the
                camera size: ``prefill_guided`` (:attr:`wants_camera_size_points`) and, given
                a camera-size map, networks that pin their points. Ignored otherwise.

        Returns:
            (H, W) float32 metres in [0, max_depth], upsampled as ``config.upsample`` says
            (``bilinear``: cv2 on CPU, torch on CUDA; ``edge_aware``: ``models.upsample``);
            networks that pin their points are pinned again when the points came at (H, W).

        Raises:
            ShapeError: rgb is not (H, W, 3) uint8, sparse_depth has neither size, or
                ``edge_aware`` upsampling has no camera-size image.
        """
        self.last_depth_positive = False
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            msg = f'rgb must be (H, W, 3) uint8; got shape {rgb.shape} dtype {rgb.dtype}'
            raise ShapeError(msg)
        height, width = (int(v) for v in (out_hw or rgb.shape[:2]))
        h, w = self.network_input_size(height, width)
        if rgb.shape[:2] not in ((h, w), (height, width)):
            msg = (f'rgb must be {(height, width)} (the camera size) or {(h, w)} (the network '
                   f'input size); got {rgb.shape[:2]}')
            raise ShapeError(msg)
        if isinstance(sparse_depth, Tensor):
            if tuple(sparse_depth.shape) != (h, w):
                msg = f'a sparse_depth tensor must be {(h, w)}; got {tuple(sparse_depth.shape)}'
                raise ShapeError(msg)
            sparse_in: np.ndarray | Tensor = sparse_depth
        else:
            sparse_depth = np.asarray(sparse_depth)
            if sparse_depth.shape not in ((h, w), (height, width)):
                msg = (f'sparse_depth must be {(height, width)} (the RGB size) or {(h, w)} (the '
                       f'network input size); got {sparse_depth.shape}')
                raise ShapeError(msg)
            sparse_in = sparse_depth
            if sparse_depth.shape != (h, w) or not sparse_clean:
                sparse_in = resize_sparse_depth(sparse_depth, (h, w))  # same size: cleans only
        rgb_full = rgb if rgb.shape[:2] == (height, width) else guide
        # prefill_guided falls back to edge_aware where its conditions do not hold.
        edge_aware = (self.config.upsample in ('edge_aware', 'prefill_guided')
                      and (height, width) != (h, w))
        if edge_aware and (rgb_full is None or rgb_full.shape != (height, width, 3)):
            msg = (f'upsample edge_aware needs the camera-size image ({height}, {width}, 3) as '
                   'rgb or guide; got none')
            raise ShapeError(msg)
        model = self.loaded.model
        camera_points: np.ndarray | Tensor | None = None  # the points at (H, W)
        if (height, width) != (h, w):
            if not isinstance(sparse_depth, Tensor) and sparse_depth.shape == (height, width):
                camera_points = sparse_depth
            elif sparse_full is not None and tuple(sparse_full.shape) == (height, width):
                camera_points = sparse_full
        pin_full = getattr(model, 'pin_points', False) and camera_points is not None
        prefill_guided = self.wants_camera_size_points and camera_points is not None
        if out is not None and (out.shape != (height, width) or out.dtype != np.float32
                                or not out.flags.c_contiguous or not out.flags.writeable):
            msg = (f'out must be a writable C-contiguous ({height}, {width}) float32 array; '
                   f'got {out.shape} {out.dtype}')
            raise ShapeError(msg)
        if rgb.shape[:2] != (h, w):
            rgb = area_resize(rgb, (h, w))

        cuda = self._device.type == 'cuda'
        stream = torch.cuda.current_stream(self._device) if cuda else None
        if stream is not None and self._needs_sync:  # a failed frame may have left copies queued
            stream.synchronize()
            self._needs_sync = False
        if stream is None and not isinstance(sparse_in, Tensor) and not (pin_full
                                                                         or prefill_guided):
            return self._infer_on_host(rgb, sparse_in, (height, width),
                                       rgb_full if edge_aware else None, out=out)
        try:
            with torch.inference_mode():
                rgb_t = self._to_device(rgb, 'rgb').permute(2, 0, 1).unsqueeze(0)
                sparse_t = (sparse_in.to(self._device) if isinstance(sparse_in, Tensor)
                            else self._to_device(sparse_in, 'sparse'))[None, None]
                depth = self.infer_tensors(rgb_t, sparse_t)
                if stream is None and not (edge_aware or pin_full):
                    # Clipped there: bilinear weights summing to 1 - ulp can overshoot max_depth.
                    return _into(out, self._upsample_on_host(depth[0, 0].numpy(),
                                                             (height, width)))
                if (height, width) != (h, w):
                    depth = self._to_camera_size(
                        depth, (height, width), rgb_t, rgb_full if edge_aware else None,
                        camera_points if (pin_full or prefill_guided) else None,
                        sparse_t if prefill_guided else None)
                if stream is None:
                    return _into(out, np.ascontiguousarray(depth[0, 0].numpy()))
                host = self._pinned_buffer('depth', (height, width), torch.float32)
                host.copy_(depth[0, 0], non_blocking=True)
                self._needs_sync = True
                stream.synchronize()  # the frame's one synchronisation
                self._needs_sync = False
                # Copied out: the pinned buffer is the next frame's target.
                return host.numpy().copy() if out is None else _into(out, host.numpy())
        except BaseException:
            if cuda:
                self._needs_sync = True
            raise

    def _infer_on_host(self, rgb: np.ndarray, sparse: np.ndarray, size: tuple[int, int],
                       guide: np.ndarray | None, *, out: np.ndarray | None = None
                       ) -> np.ndarray:
        """CPU: the network's inputs, its output scaling and the upsampling in numpy/OpenCV.

        What ``infer_tensors`` and ``_to_camera_size`` compute, to the bit, without a torch op
        besides the network's own (each would be handed to torch's OpenMP pool: a cost, and a
        long wait when another process holds a core).

        Args:
            rgb: (h, w, 3) uint8 at the network input size.
            sparse: (h, w) float32 metres at the network input size, clean.
            size: (H, W) of the output.
            guide: (H, W, 3) uint8 camera-size image for edge-aware upsampling, or None
                (bilinear).

        Returns:
            (H, W) float32 metres in [0, max_depth].
        """
        with torch.inference_mode():
            net_out = self._run(self._host_network_inputs(rgb, sparse))
            depth = net_out[0, 0].float().numpy()  # the network's fresh output: scaled in place
        f32 = np.float32
        # As infer_tensors: the official head has no activation; both are trained on [0, 1].
        np.clip(depth, f32(0.0), f32(1.0), out=depth)
        np.multiply(depth, f32(self._max_depth), out=depth)
        # At the network size (a tenth of the pixels at 1080p): spares the depth message's
        # encoder its full-size search for zeros (0.5 ms at 1080p).
        positive = bool(depth.size) and float(depth.min()) >= _POSITIVE_DEPTH_M
        if depth.shape == tuple(size):
            result = _into(out, np.ascontiguousarray(depth))
        elif guide is None:
            result = self._upsample_on_host(depth, size, out=out)
        else:
            from g2mono_ros.models.upsample_host import edge_aware_upsample_host

            result = self._clip_upsampled(edge_aware_upsample_host(depth, rgb, guide, out=out),
                                          depth)
        self.last_depth_positive = positive
        return result

    def _clip_upsampled(self, up: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``up`` (H, W), interpolated from ``depth`` (h, w), clipped to [0, max_depth] in place.

        Interpolation weights summing to 1 + ulp can overshoot max_depth by a rounding step,
        never by 2**-20 relative; and non-negative weights of values >= 0 stay >= 0. So when
        ``depth`` stays that far below max_depth (a cheap check at the network size), the
        full-size pass would change nothing and is skipped.
        """
        top = np.float32(self._max_depth)
        if depth.size and float(depth.max()) <= float(top) * (1.0 - 2.0 ** -20):
            return up
        return np.clip(up, np.float32(0.0), top, out=up)

    def _to_camera_size(self, depth: Tensor, size: tuple[int, int], rgb_net: Tensor,
                        rgb_full: np.ndarray | None, sparse_full: np.ndarray | Tensor | None,
                        sparse_net: Tensor | None = None) -> Tensor:
        """(1, 1, h, w) -> (1, 1, H, W) on the device: edge-aware when ``rgb_full`` (H, W, 3)
        is given, else bilinear; ``prefill_guided`` (a nearest-pre-fill residual network) when
        ``sparse_net`` (1, 1, h, w) and ``sparse_full`` (H, W) are given too; for networks that
        pin their points, pinned again at the camera size when ``sparse_full`` is given."""
        from g2mono_ros.models.upsample import (pin_to_points, prefill_guided_upsample,
                                                upsample_depth)

        sparse = None
        if isinstance(sparse_full, Tensor):  # the projector's map, already on the device
            sparse = sparse_full.to(self._device, torch.float32)[None, None]
            sparse = sparse.clamp(0.0, self._max_depth)
        elif sparse_full is not None:
            # Not 'sparse_full': to_host_async's buffer of that shape may be in flight.
            sparse = self._to_device(np.asarray(sparse_full, np.float32), 'sparse_full_in')
            sparse = sparse[None, None].clamp(0.0, self._max_depth)
        if rgb_full is not None:
            # uint8 guides: models.upsample scales them (on CPU only at the edge pixels).
            guide_hr = self._to_device(rgb_full, 'rgb_full').permute(2, 0, 1)[None]
            guide_lr = rgb_net
            if sparse_net is not None and sparse is not None:
                depth = prefill_guided_upsample(depth, sparse_net.float(), sparse, guide_lr,
                                                guide_hr, kind=self.loaded.model.prefill_kind)
            else:
                depth = upsample_depth(depth, size, mode='edge_aware', guide_lr=guide_lr,
                                       guide_hr=guide_hr)
        else:
            depth = F.interpolate(depth, size=size, mode='bilinear', align_corners=False)
        # Interpolation weights summing to 1 - ulp can overshoot max_depth by a rounding step.
        depth = depth.clamp_(0.0, self._max_depth)
        if sparse is not None and getattr(self.loaded.model, 'pin_points', False):
            depth = pin_to_points(depth, sparse)
        return depth

    def _upsample_on_host(self, depth: np.ndarray, out_hw: tuple[int, int], *,
                          out: np.ndarray | None = None) -> np.ndarray:
        """Bilinear, pixel centres aligned (as ``F.interpolate(align_corners=False)``), into
        ``out`` when given (as ``infer``'s)."""
        if depth.shape == tuple(out_hw):
            return _into(out, np.ascontiguousarray(depth))
        import cv2

        if out is not None:
            resized = cv2.resize(depth, (out_hw[1], out_hw[0]), dst=out,
                                 interpolation=cv2.INTER_LINEAR)
            out = _into(out, resized)  # OpenCV writes into a dst of this size: no copy
        else:
            out = cv2.resize(depth, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
        # Interpolation weights may not sum to exactly 1: stay inside [0, max depth].
        return self._clip_upsampled(out, depth)
