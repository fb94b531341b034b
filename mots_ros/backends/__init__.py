"""Inference backends: one small protocol, several runtimes, imported only when used.

A backend runs one network on numpy arrays and returns a numpy array. Runtimes (torch,
onnxruntime, tensorrt) are imported lazily inside the backend that needs them, so a deployment
that uses ONNX Runtime or TensorRT never imports torch.

``backend: auto`` takes the first that is available, in this order (fastest first):
tensorrt > onnxruntime-cuda > torch-cuda > onnxruntime-cpu > torch-cpu.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

AUTO_ORDER = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu", "torch-cpu")


class InferenceBackend(Protocol):
    """Runs one network.

    Attributes:
        name: what runs it, e.g. ``torch-cpu`` or ``onnxruntime-cpu``; shown in diagnostics.
    """

    name: str

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """Runs the network on float32 arrays and returns its float32 output."""
        ...


def nvidia_gpu_present() -> bool:
    """A cheap check for an NVIDIA driver (desktop or Jetson) before importing any GPU runtime."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvhost-ctrl-gpu"))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_backends(device: str = "auto") -> list[str]:
    """Backends usable on this machine for ``device`` (auto, cpu, cuda), fastest first."""
    names = []
    if device in ("auto", "cuda") and nvidia_gpu_present():
        if _installed("tensorrt"):
            names.append("tensorrt")
        if _installed("onnxruntime"):
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                names.append("onnxruntime-cuda")
        if _installed("torch"):
            import torch

            if torch.cuda.is_available():
                names.append("torch-cuda")
    if device in ("auto", "cpu"):
        if _installed("onnxruntime"):
            names.append("onnxruntime-cpu")
        if _installed("torch"):
            names.append("torch-cpu")
    return [name for name in AUTO_ORDER if name in names]
