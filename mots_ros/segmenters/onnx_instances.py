"""A user's own ONNX instance-segmentation model as the segmenter.

PointTrack association then runs on the masks of the detector a team already uses.

Input: one ``(1, 3, H, W) float32`` RGB image in [0, 1]. A fixed H and W (read from the file) get a
letterboxed frame (aspect kept, centred, grey 114 padding, as YOLO exports expect); a dynamic size
gets the frame padded at the right and bottom to a multiple of 32.

Supported output layouts (told apart by the outputs' ranks and names):

- **YOLO-seg** (Ultralytics YOLOv8/v11 ``-seg`` exports, two outputs): detections
  ``(1, 4 + C + M, N)`` (or transposed ``(1, N, 4 + C + M)``): box centre x, centre y, width,
  height in input pixels, C class scores in [0, 1], M mask coefficients; and prototypes
  ``(1, M, Hp, Wp)``. A mask is ``sigmoid(coefficients · prototypes)`` upsampled to the input and
  cut to its box. Class-aware non-maximum suppression at ``segmentation.nms_iou``.
- **Per-instance masks** (e.g. Mask R-CNN exports): outputs whose names contain ``masks``
  (``(N, Hm, Wm)``, ``(N, 1, Hm, Wm)`` or ``(1, N, Hm, Wm)`` probabilities in [0, 1] over the
  input image), ``scores`` (``(N,)``) and ``labels`` or ``classes`` (``(N,)`` class indices);
  other outputs (``boxes``) are ignored. No suppression is applied: the model did it.

Detections scoring below ``segmentation.score_threshold`` or of a class missing from
``segmentation.class_map`` are dropped. Masks are thresholded at ``segmentation.mask_threshold``
and made exclusive (a pixel goes to the highest-scoring mask), and instances left with fewer than
``segmentation.min_pixel`` pixels are dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from mots_ros.config import Config, SegmentationConfig, parse_class_map
from mots_ros.errors import ConfigError, InputError
from mots_ros.segmenters import Segmentation

LETTERBOX_GREY = 114


@dataclass(frozen=True)
class _Letterbox:
    scale: float
    top: int
    left: int
    height: int  # the resized image inside the network input
    width: int


@dataclass(frozen=True)
class _Detections:
    probabilities: np.ndarray  # (K, H_in, W_in) float32 mask probabilities over the network input
    model_classes: np.ndarray  # (K,) int
    scores: np.ndarray  # (K,) float32


class OnnxInstanceSegmenter:
    """Runs an instance-segmentation ONNX file with ONNX Runtime (layouts in the module docstring).

    Args:
        path: the ONNX file.
        config: thresholds, ``class_map`` and ``min_pixel``.
        device: ``cpu`` or ``cuda``; num_threads: intra-op CPU threads (0: the runtime's default).
    """

    name = "onnx_instances"
    stage_names: tuple[str, ...] = ("segmentation_network", "mask_decoding")

    def __init__(self, path: str, config: SegmentationConfig, *, device: str = "cpu", num_threads: int = 0):
        from mots_ros.backends.onnx_backend import OnnxRuntimeBackend

        self.config = config
        self.class_map = parse_class_map(config.class_map)
        self.backend = OnnxRuntimeBackend(path, provider=device, num_threads=num_threads)
        self.backend_name = self.backend.name
        session = self.backend.session
        outputs = session.get_outputs()
        self.output_names = [o.name for o in outputs]
        ranks = [len(o.shape) for o in outputs]
        if len(outputs) == 2 and sorted(ranks) == [3, 4]:
            self.layout = "yolo"
        elif self._named_output("masks") is not None and self._named_output("scores") is not None and (
                self._named_output("labels") is not None or self._named_output("classes") is not None):
            self.layout = "masks"
        else:
            raise ConfigError(f"segmentation.weights: {path} has outputs {list(zip(self.output_names, ranks))}; "
                              "onnx_instances reads YOLO-seg (detections of rank 3 + prototypes of rank 4) or "
                              "per-instance masks (outputs named masks, scores and labels/classes)")
        shape = session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ConfigError(f"segmentation.weights: {path} takes input of shape {shape}; expected (1, 3, H, W)")
        self.fixed_size = (int(shape[2]), int(shape[3])) if all(isinstance(d, int) for d in shape[2:]) else None

    @classmethod
    def from_config(cls, config: Config) -> OnnxInstanceSegmenter:
        """The model in ``segmentation.weights`` on ONNX Runtime (CUDA when ``inference.device`` is cuda)."""
        weights = config.segmentation.weights
        if weights == "default" or not weights.endswith(".onnx"):
            raise ConfigError("segmentation.kind onnx_instances needs segmentation.weights set to your .onnx file")
        device = "cuda" if config.inference.device == "cuda" else "cpu"
        return cls(weights, config.segmentation, device=device, num_threads=config.inference.num_threads)

    def _named_output(self, word: str) -> int | None:
        return next((i for i, name in enumerate(self.output_names) if word in name.lower()), None)

    def _output_index(self, word: str) -> int:
        index = self._named_output(word)
        if index is None:  # the layout check at load makes this unreachable for the words it checked
            raise InputError(f"the model has no output named like {word!r}: {self.output_names}")
        return index

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """Instances of an ``(H, W, 3) uint8`` RGB frame, classes mapped by ``class_map``."""
        started = time.perf_counter()
        network_input, box = self._prepare(image_rgb)
        outputs = self.backend.run_all(network_input)
        decoding_started = time.perf_counter()
        input_size = network_input.shape[2:]
        decode = self._decode_yolo if self.layout == "yolo" else self._decode_masks
        found = decode(outputs, input_size)
        segmentation = self._label_map(found, box, image_rgb.shape[:2])
        finished = time.perf_counter()
        segmentation.latency_ms.update(segmentation_network=(decoding_started - started) * 1e3,
                                       mask_decoding=(finished - decoding_started) * 1e3)
        return segmentation

    def _prepare(self, image_rgb: np.ndarray) -> tuple[np.ndarray, _Letterbox]:
        height, width = image_rgb.shape[:2]
        if self.fixed_size is None:
            target = (-(-height // 32) * 32, -(-width // 32) * 32)
            canvas = np.full((*target, 3), LETTERBOX_GREY, np.uint8)
            canvas[:height, :width] = image_rgb
            box = _Letterbox(1.0, 0, 0, height, width)
        else:
            target = self.fixed_size
            scale = min(target[0] / height, target[1] / width)
            new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
            top, left = (target[0] - new_h) // 2, (target[1] - new_w) // 2
            canvas = np.full((*target, 3), LETTERBOX_GREY, np.uint8)
            canvas[top : top + new_h, left : left + new_w] = cv2.resize(image_rgb, (new_w, new_h),
                                                                       interpolation=cv2.INTER_LINEAR)
            box = _Letterbox(scale, top, left, new_h, new_w)
        return canvas.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0), box

    def _decode_yolo(self, outputs: list[np.ndarray], input_size: tuple[int, int]) -> _Detections:
        detections, prototypes = sorted(outputs, key=np.ndim)
        if detections.shape[0] != 1 or prototypes.shape[0] != 1:
            raise InputError(f"YOLO-seg outputs must have batch 1, got {detections.shape} and {prototypes.shape}")
        num_coefficients = prototypes.shape[1]
        rows = detections[0]
        if rows.shape[0] - 4 - num_coefficients < 1:  # transposed export: (N, 4 + C + M)
            rows = rows.T
        if rows.shape[0] - 4 - num_coefficients < 1:
            raise InputError(f"YOLO-seg detections {detections.shape} do not fit {num_coefficients} mask coefficients")
        rows = rows.T  # (N, 4 + C + M)
        class_scores = rows[:, 4:-num_coefficients]
        model_classes = class_scores.argmax(1)
        scores = class_scores[np.arange(len(rows)), model_classes]
        keep = (scores >= self.config.score_threshold) & np.isin(model_classes, list(self.class_map))
        rows, model_classes, scores = rows[keep], model_classes[keep], scores[keep]
        boxes = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2,
                          rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2], 1)
        chosen = _class_aware_nms(boxes, scores, model_classes, self.config.nms_iou)
        rows, boxes, model_classes, scores = rows[chosen], boxes[chosen], model_classes[chosen], scores[chosen]
        input_h, input_w = input_size
        proto = prototypes[0].reshape(num_coefficients, -1)
        logits = (rows[:, -num_coefficients:] @ proto).reshape(-1, *prototypes.shape[2:])
        probabilities = np.empty((len(rows), input_h, input_w), np.float32)
        ys, xs = np.arange(input_h)[:, None] + 0.5, np.arange(input_w)[None, :] + 0.5
        for k in range(len(rows)):
            upsampled = cv2.resize(1 / (1 + np.exp(-logits[k])), (input_w, input_h), interpolation=cv2.INTER_LINEAR)
            inside = (xs >= boxes[k, 0]) & (xs <= boxes[k, 2]) & (ys >= boxes[k, 1]) & (ys <= boxes[k, 3])
            probabilities[k] = np.where(inside, upsampled, 0.0)
        return _Detections(probabilities, model_classes, scores.astype(np.float32))

    def _decode_masks(self, outputs: list[np.ndarray], input_size: tuple[int, int]) -> _Detections:
        masks = outputs[self._output_index("masks")]
        scores = np.asarray(outputs[self._output_index("scores")], np.float32).reshape(-1)
        classes_at = self._named_output("labels")
        model_classes = np.asarray(outputs[classes_at if classes_at is not None else self._output_index("classes")]).reshape(-1)
        if masks.ndim == 4:
            masks = masks[:, 0] if masks.shape[1] == 1 and masks.shape[0] == scores.size else masks[0]
        if masks.ndim != 3 or masks.shape[0] != scores.size or model_classes.size != scores.size:
            raise InputError(f"mask outputs disagree: masks {masks.shape}, scores {scores.shape}, classes {model_classes.shape}")
        model_classes = model_classes.astype(np.int64)
        keep = (scores >= self.config.score_threshold) & np.isin(model_classes, list(self.class_map))
        input_h, input_w = input_size
        probabilities = masks[keep].astype(np.float32)
        if probabilities.shape[1:] != (input_h, input_w):
            probabilities = np.stack([cv2.resize(m, (input_w, input_h), interpolation=cv2.INTER_LINEAR)
                                      for m in probabilities]) if len(probabilities) else np.zeros((0, input_h, input_w), np.float32)
        return _Detections(probabilities, model_classes[keep], scores[keep])

    def _label_map(self, found: _Detections, box: _Letterbox, image_size: tuple[int, int]) -> Segmentation:
        height, width = image_size
        labels = np.zeros((height, width), np.int32)
        order = np.argsort(found.scores, kind="stable")  # ascending: the best mask is painted last and wins
        class_ids, scores = {}, {}
        for new_id, k in enumerate(order, start=1):
            inside = found.probabilities[k, box.top : box.top + box.height, box.left : box.left + box.width]
            if inside.shape != (height, width):
                inside = cv2.resize(inside, (width, height), interpolation=cv2.INTER_LINEAR)
            labels[inside > self.config.mask_threshold] = new_id
            class_ids[new_id] = self.class_map[int(found.model_classes[k])]
            scores[new_id] = float(found.scores[k])
        sizes = np.bincount(labels.ravel(), minlength=len(order) + 1)
        too_small = np.flatnonzero(sizes[1:] < max(1, self.config.min_pixel)) + 1
        if too_small.size:
            labels[np.isin(labels, too_small)] = 0
        return Segmentation.from_label_map(labels, class_ids, scores)


def _class_aware_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression within each class, best score first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    suppressed = np.zeros(len(boxes), bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        width = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        height = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        overlap = width * height / np.maximum(areas[i] + areas - width * height, 1e-9)
        suppressed |= (overlap > iou_threshold) & (classes == classes[i])
    return np.array(kept, np.int64)
