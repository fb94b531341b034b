"""INT8 calibration for the segmentation engine from an image folder (TensorRT only; not verified here)."""

from __future__ import annotations

from pathlib import Path


from mots_ros.datasets import list_frames, read_image_rgb
from mots_ros.segmentation.segmenter import to_network_input

MAX_CALIBRATION_IMAGES = 200


def ImageFolderCalibrator(trt, folder, input_shape: tuple[int, ...], memory, cache_file: Path):
    """A ``trt.IInt8EntropyCalibrator2`` fed with the folder's images, preprocessed as the segmenter does.

    Built by a function because the TensorRT base class exists only once TensorRT is imported.
    """

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.paths = [p for _, p in list_frames(folder)][:MAX_CALIBRATION_IMAGES]
            self.position = 0
            self.handle = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.position >= len(self.paths):
                return None
            image = read_image_rgb(self.paths[self.position])[: input_shape[2], : input_shape[3]]
            self.position += 1
            if self.handle is not None:
                memory.release(self.handle)
            self.handle, pointer = memory.upload(to_network_input(image, input_shape[2], input_shape[3]))
            return [pointer]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()
