"""PyTorch backend (CPU or CUDA)."""

from __future__ import annotations

import numpy as np

from mots_ros.errors import BackendError


class TorchBackend:
    """Runs an ``nn.Module`` in eval mode under ``torch.inference_mode``.

    Args:
        module: the network; it is moved to ``device`` and put in eval mode.
        device: ``cpu`` or ``cuda``.
        num_threads: CPU threads for torch (process-wide); 0 leaves torch's default.
    """

    def __init__(self, module, device: str = "cpu", num_threads: int = 0):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' was requested but torch sees no CUDA GPU; use device 'cpu'")
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self._torch = torch
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.name = f"torch-{self.device.type}"

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device) for x in inputs]
            return self.module(*tensors).float().cpu().numpy()
