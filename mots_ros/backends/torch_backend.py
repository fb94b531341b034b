"""PyTorch backend (CPU or CUDA)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import numpy as np

from mots_ros.backends import nvidia_gpu_present
from mots_ros.errors import BackendError

if TYPE_CHECKING:
    from mots_ros.config import Config


class TorchBackend:
    """Runs an ``nn.Module`` in eval mode under ``torch.inference_mode``.

    Args:
        module: the network; it is moved to ``device`` and put in eval mode.
        device: ``cpu`` or ``cuda``.
        num_threads: CPU threads for torch (process-wide); 0 leaves torch's default.
    """

    auto_priority = {"cuda": 30, "cpu": 50}
    fixed_input_size = None  # any image size runs

    @classmethod
    def available_devices(cls) -> list[str]:
        """``cuda`` when torch sees a GPU, and ``cpu`` when torch is installed."""
        if importlib.util.find_spec("torch") is None:
            return []
        if nvidia_gpu_present():
            import torch

            if torch.cuda.is_available():
                return ["cuda", "cpu"]
        return ["cpu"]

    @classmethod
    def for_network(cls, network: str, device: str, config: Config, **options) -> TorchBackend:
        """The network built from its checkpoint (the configured one or the shipped default)."""
        from mots_ros.model_files import build_embedding_network, build_segmentation_network, model_file

        builder = build_segmentation_network if network == "segmentation" else build_embedding_network
        module = builder(model_file(config, network, "checkpoint"))
        return cls(module, device=device, num_threads=config.inference.num_threads)

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

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        """The output for an ``(N, ...)`` batch of single inputs (the module takes any N)."""
        return self.run(images)

    def run(self, *inputs: Any) -> np.ndarray:
        """The output on the host for numpy inputs, or for tensors already on any device."""
        return self.run_on_device(*inputs).cpu().numpy()

    def run_on_device(self, *inputs: Any) -> Any:
        """The float32 output as a tensor left on ``device`` (``inference.postprocessing: device``)."""
        torch = self._torch
        with torch.inference_mode():
            tensors = [x.to(self.device, torch.float32) if isinstance(x, torch.Tensor)
                       else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device) for x in inputs]
            return self.module(*tensors).float()

    def synchronize(self) -> None:
        """Waits for the device's queued work, so that a stage's time is its own (CUDA runs asynchronously)."""
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)
