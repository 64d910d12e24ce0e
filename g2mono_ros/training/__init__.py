"""The trainer: G2 loss, input simulation, datasets, training loop (DDP), ONNX export.

Submodules are imported on use (``g2mono_ros.training.losses`` etc.); this package pulls in
nothing heavy by itself.
"""

__all__: list[str] = []
