"""Inference backends: one small protocol, several runtimes, imported only when used.

A backend runs one network on numpy arrays and returns a numpy array. Runtimes (torch,
onnxruntime, tensorrt) are imported lazily inside the backend that needs them, so a deployment
that uses ONNX Runtime or TensorRT never imports torch.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class InferenceBackend(Protocol):
    """Runs one network.

    Attributes:
        name: what runs it, e.g. ``torch-cpu`` or ``onnxruntime-cpu``; shown in diagnostics.
    """

    name: str

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """Runs the network on float32 arrays and returns its float32 output."""
        ...
