"""How the engine runs the network: plain torch, TorchScript graphs run by oneDNN Graph, an ONNX
Runtime session exported from the module, or a CUDA graph replay; and the start-up check of a
backend against the plain module.

A backend is a callable taking the module's own positional input tensors and returning its
output tensor, so it follows whatever inputs the network takes (it is built from example inputs).
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from g2mono_ros.errors import ConfigError

__all__ = ['BACKENDS', 'CudaGraphRunner', 'OneDnnGraphModule', 'OnnxRuntimeBackend',
           'check_against_module', 'onednn_graph_kernels', 'onednn_graph_unavailable']

#: Values of the ``backend`` parameter.
BACKENDS = ('auto', 'torch', 'onednn_graph', 'onnxruntime')

#: A backend may differ from the plain network by this much (normalised depth, i.e. a fraction
#: of max depth): 0.1 %, a tenth of the 1 % accuracy budget of the fast CPU path.
PARITY_TOLERANCE = 1e-3

Forward = Callable[..., Tensor]


class OnnxRuntimeBackend:
    """The module exported to ONNX once, run by ONNX Runtime's CPU execution provider.

    Height, width and batch are dynamic axes, so one session serves every input size. On the
    benchmark CPU this ran the seed network at 256x512 more than 2x faster than eager torch
    (``benchmarks/bench_model.py``).

    Args:
        module: the network in eval mode, on the CPU, fp32.
        example_inputs: one set of its positional input tensors (B, C, H, W).
        num_threads: ONNX Runtime intra-op threads (0 = its default, one per core).

    Raises:
        ConfigError: onnxruntime is not installed, or the export or session creation failed.
    """

    def __init__(self, module: nn.Module, example_inputs: Sequence[Tensor], *,
                 num_threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            msg = ("parameter 'backend' is 'onnxruntime' but the onnxruntime package is not "
                   'installed (pip install onnxruntime)')
            raise ConfigError(msg) from None
        names = [f'input{i}' for i in range(len(example_inputs))]
        inputs = tuple(t.detach().cpu().float().contiguous() for t in example_inputs)
        buffer = io.BytesIO()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # The shape checks in forward() become constants in the trace; the axes below
                # say what may vary.
                warnings.simplefilter('ignore')
                torch.onnx.export(module, inputs, buffer, input_names=names,
                                  output_names=['output'], opset_version=17, dynamo=False,
                                  dynamic_axes={name: {0: 'batch', 2: 'height', 3: 'width'}
                                                for name in (*names, 'output')})
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(num_threads)
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(buffer.getvalue(), options,
                                                 providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: BLE001 - exporter and runtime raise many types
            msg = f'could not export the network to ONNX Runtime: {type(exc).__name__}: {exc}'
            raise ConfigError(msg) from exc
        self._names = names

    def __call__(self, *inputs: Tensor) -> Tensor:
        feed = {name: t.detach().float().contiguous().numpy()
                for name, t in zip(self._names, inputs)}
        return torch.from_numpy(self._session.run(None, feed)[0])


def onednn_graph_unavailable() -> str | None:
    """None when this PyTorch can run TorchScript graphs through oneDNN Graph, else why not.

    oneDNN Graph (LLGA) ships with the x86 builds that have oneDNN; ARM builds may lack it.
    """
    if not (torch.backends.mkldnn.is_available()
            and hasattr(torch._C, '_jit_set_llga_enabled')
            and hasattr(torch._C, '_jit_llga_enabled')):
        return 'this PyTorch build has no oneDNN Graph (LLGA) fuser'
    return None


_FUSION_LOCK = threading.Lock()
_fusion_users = 0
_fusion_before = False


@contextlib.contextmanager
def _onednn_graph_fusion() -> Iterator[None]:
    """oneDNN Graph fusion on while any of our graphs runs, then as it was before.

    The switch is process-wide and TorchScript reads it when it optimises a graph for a new
    input shape (on the first calls with that shape), so it stays on while a call of ours is
    in flight in any thread; TorchScript graphs of others see it off otherwise.
    """
    global _fusion_users, _fusion_before
    with _FUSION_LOCK:
        if _fusion_users == 0:
            _fusion_before = torch._C._jit_llga_enabled()
            torch._C._jit_set_llga_enabled(True)
        _fusion_users += 1
    try:
        yield
    finally:
        with _FUSION_LOCK:
            _fusion_users -= 1
            if _fusion_users == 0:
                torch._C._jit_set_llga_enabled(_fusion_before)


class OneDnnGraphModule(nn.Module):
    """A module traced and frozen into a TorchScript graph that oneDNN Graph compiles.

    oneDNN Graph runs adjacent operations as one kernel where a plain torch call cannot, e.g.
    LayerNorm and the GELU after it (one pass over memory instead of two, and oneDNN's norm is
    faster than torch's on channels-last rows). The graph is specialised per input shape: on
    the first two calls with a new shape TorchScript profiles it (runs unfused, slower), then
    compiles the fused kernels, which later calls with that shape reuse. They are compiled for
    the number of torch threads of those calls: keep it (compiled for 2 threads and run with
    1, seed_small at 256x512 took 30 % longer than compiled for 1). Tracing records one
    path through ``module``: its forward must not branch on values, only on what is fixed
    (attributes, channel counts). TorchScript is deprecated in PyTorch 2.x (still shipped; its
    warnings are silenced here): check the result against the plain module before use.

    Args:
        module: the module to trace, in eval mode; its weights become constants of the graph
            (later changes to them are not seen).
        example_inputs: one set of its positional inputs (any size: the graph is not tied to it).

    Raises:
        RuntimeError: oneDNN Graph is not available (:func:`onednn_graph_unavailable`), or
            tracing failed.
    """

    def __init__(self, module: nn.Module, example_inputs: Sequence[Tensor]) -> None:
        super().__init__()
        reason = onednn_graph_unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')  # TracerWarning; TorchScript's DeprecationWarning
            traced = torch.jit.trace(module.eval(), tuple(example_inputs), check_trace=False)
            self.graph = torch.jit.freeze(traced)

    def forward(self, *inputs: Tensor) -> Tensor:
        with _onednn_graph_fusion():
            return self.graph(*inputs)


def onednn_graph_kernels(model: nn.Module, *inputs: Tensor) -> int:
    """Run ``model`` on ``inputs``; how many oneDNN Graph kernels its graphs ran.

    Counts over every :class:`OneDnnGraphModule` inside ``model`` (or ``model`` itself). 0 when
    nothing was fused: the input shape is new to the graphs (they profile it first), or oneDNN
    Graph fused nothing on this CPU (then the graphs run plain TorchScript, no faster).
    """
    counts: list[int] = []

    def count(module: nn.Module, args: Any, output: Any) -> None:
        del module, args, output
        graph = torch._C._last_executed_optimized_graph()
        counts.append(len(graph.findAllNodes('prim::oneDNNFusionGroup', recurse=True)))

    handles = [module.register_forward_hook(count) for module in model.modules()
               if isinstance(module, OneDnnGraphModule)]
    try:
        with torch.inference_mode():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return sum(counts)


class CudaGraphRunner:
    """Replays one captured CUDA graph of ``forward`` for one fixed set of input shapes.

    Inputs are copied into static device tensors, the graph replays, and the static output is
    returned (overwritten by the next replay: use it before calling again). Other shapes run
    ``forward`` directly.

    Args:
        forward: the network call to capture (module or backend), on a CUDA device.
        example_inputs: tensors of the shapes, dtypes and device to capture for.
        warmup_runs: eager runs on a side stream before the capture (cudnn autotuning, lazy
            initialisation must not happen inside the capture).
    """

    def __init__(self, forward: Forward, example_inputs: Sequence[Tensor], *,
                 warmup_runs: int = 3) -> None:
        self._forward = forward
        self._static_in = [t.detach().clone() for t in example_inputs]
        self._shapes = [(t.shape, t.dtype) for t in self._static_in]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(warmup_runs):
                forward(*self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        # Captured on the warm-up's stream: library handles and workspaces created lazily
        # per stream (cuBLAS(Lt)) then exist before the capture, as make_graphed_callables does.
        with torch.cuda.graph(self._graph, stream=side), torch.inference_mode():
            self._static_out = forward(*self._static_in)

    def matches(self, inputs: Sequence[Tensor]) -> bool:
        """True when ``inputs`` have the captured shapes and dtypes."""
        return len(inputs) == len(self._shapes) and all(
            (t.shape, t.dtype) == s for t, s in zip(inputs, self._shapes))

    def __call__(self, *inputs: Tensor) -> Tensor:
        if not self.matches(inputs):
            return self._forward(*inputs)
        for static, tensor in zip(self._static_in, inputs):
            static.copy_(tensor, non_blocking=True)
        self._graph.replay()
        return self._static_out


def check_against_module(candidate: Forward, module: nn.Module, inputs: Sequence[Tensor], *,
                         tolerance: float = PARITY_TOLERANCE) -> float:
    """Largest absolute difference between ``candidate`` and ``module`` on ``inputs``.

    Raises:
        ConfigError: the difference exceeds ``tolerance`` (or is not finite).
    """
    with torch.inference_mode():
        expected = module(*inputs).float()
        got = candidate(*inputs).float().to(expected.device)
    if got.shape != expected.shape:
        msg = (f'backend output shape {tuple(got.shape)} differs from the network\'s '
               f'{tuple(expected.shape)}')
        raise ConfigError(msg)
    error = float((got - expected).abs().max()) if expected.numel() else 0.0
    if not error <= tolerance:  # also catches NaN
        msg = (f'backend output differs from the plain network by {error:.3g} (normalised '
               f'depth); allowed {tolerance:g}')
        raise ConfigError(msg)
    return error

