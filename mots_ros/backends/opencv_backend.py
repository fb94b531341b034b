"""OpenCV's DNN module as a backend: ONNX files on the CPU with no runtime beyond OpenCV itself.

The worked example of a backend in the README: one module, one line in ``mots_ros.registry.BACKENDS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mots_ros.errors import BackendError

if TYPE_CHECKING:
    from mots_ros.config import Config


class OpenCvDnnBackend:
    """Runs an ONNX file with ``cv2.dnn`` on the CPU.

    Args:
        path: the ONNX file (the exports of :mod:`mots_ros.export`: inputs ``image``, or
            ``points`` and ``boxes``).
        num_threads: OpenCV's worker threads (process-wide); 0 leaves OpenCV's default.
    """

    auto_priority = {"cpu": 60}  # after ONNX Runtime and torch, which ran both networks faster here

    @classmethod
    def available_devices(cls) -> list[str]:
        """Always ``cpu``: OpenCV is a dependency of mots_ros."""
        return ["cpu"]

    @classmethod
    def for_network(cls, network: str, device: str, config: Config, **options) -> OpenCvDnnBackend:
        """The network's ONNX file (a checkpoint is exported once, which needs torch)."""
        from mots_ros.model_files import model_file

        if device != "cpu":
            raise BackendError(f"backend opencv runs on the CPU only, not on {device!r}")
        return cls(model_file(config, network, "onnx"), num_threads=config.inference.num_threads)

    def __init__(self, path: str | Path, *, num_threads: int = 0):
        import cv2

        if num_threads > 0:
            cv2.setNumThreads(num_threads)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as err:
            raise BackendError(f"OpenCV DNN cannot load {path}: {err}") from err
        self.input_names = _onnx_input_names(Path(path))
        self.name = "opencv-cpu"

    fixed_input_size = None  # OpenCV reshapes the network to each input

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """The network's first output for float32 inputs, in the file's input order."""
        names = self.input_names if len(inputs) == 1 or self.input_names[0] else self.input_names[1:]
        for name, array in zip(names, inputs):
            self.net.setInput(np.ascontiguousarray(array, dtype=np.float32), name)
        return np.asarray(self.net.forward(), np.float32)


def _onnx_input_names(path: Path) -> list[str]:
    """The graph's input names, read with the ``onnx`` package when it is there.

    Without it, the names of this package's exports are assumed: ``""`` (OpenCV's first input) for
    a one-input network, ``points`` and ``boxes`` for the embedding.
    """
    try:
        import onnx
    except ImportError:
        return ["", "points", "boxes"]
    graph = onnx.load(str(path), load_external_data=False).graph
    initialisers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initialisers]
