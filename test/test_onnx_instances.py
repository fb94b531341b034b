"""The onnx_instances segmenter on ONNX files of both supported layouts, built here (constant outputs
whose masks are known, and random weights run end to end through the pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mots_ros.config import SegmentationConfig, preset
from mots_ros.datatypes import Frame
from mots_ros.errors import ConfigError
from mots_ros.pipeline import MotsPipeline
from mots_ros.segmenters.onnx_instances import OnnxInstanceSegmenter

INPUT_H, INPUT_W = 64, 96
PERSON, BICYCLE, CAR = 0, 1, 2  # COCO indices; the default class_map keeps person -> 2 and car -> 1


class ConstantOutputs(torch.nn.Module):
    """Always returns the given tensors (the image only fixes the graph's input)."""

    def __init__(self, *outputs: torch.Tensor):
        super().__init__()
        for i, output in enumerate(outputs):
            self.register_buffer(f"out{i}", output)
        self.count = len(outputs)

    def forward(self, image):
        zero = image.mean() * 0
        return tuple(getattr(self, f"out{i}") + zero for i in range(self.count))


def export(module, path, output_names, dynamic=False):
    axes = {"images": {2: "height", 3: "width"}} if dynamic else None
    torch.onnx.export(module.eval(), (torch.rand(1, 3, INPUT_H, INPUT_W),), str(path), input_names=["images"],
                      output_names=output_names, dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def yolo_detection(cx, cy, w, h, class_index, score, coefficients=(1.0, 0.0)):
    scores = [0.0, 0.0, 0.0]
    scores[class_index] = score
    return [cx, cy, w, h, *scores, *coefficients]


def yolo_file(path, transposed=False, dynamic=False):
    rows = [
        yolo_detection(20, 20, 16, 24, PERSON, 0.9),
        yolo_detection(21, 20, 16, 24, PERSON, 0.8),  # the same person again: suppressed
        yolo_detection(60, 40, 32, 20, CAR, 0.7),
        yolo_detection(80, 10, 10, 10, BICYCLE, 0.95),  # no KITTI class: dropped
        yolo_detection(40, 50, 10, 10, PERSON, 0.1),  # below the score threshold
    ]
    detections = torch.tensor(rows, dtype=torch.float32).T[None]  # (1, 4 + 3 + 2, N)
    if transposed:
        detections = detections.transpose(1, 2)
    prototypes = torch.zeros(1, 2, INPUT_H // 4, INPUT_W // 4)
    prototypes[0, 0] = 10.0  # sigmoid(10) ~ 1: each mask is its box
    return export(ConstantOutputs(detections, prototypes), path, ["output0", "output1"], dynamic=dynamic)


def config(**changes):
    return SegmentationConfig(kind="onnx_instances", min_pixel=10, **changes)


@pytest.mark.parametrize("transposed", [False, True])
def test_yolo_layout_gives_box_shaped_masks_after_score_class_and_nms_filtering(tmp_path, transposed):
    segmenter = OnnxInstanceSegmenter(str(yolo_file(tmp_path / "yolo.onnx", transposed)), config())
    assert segmenter.layout == "yolo" and segmenter.fixed_size == (INPUT_H, INPUT_W)
    result = segmenter.segment(np.zeros((INPUT_H, INPUT_W, 3), np.uint8))
    assert result.class_ids.tolist() == [1, 2] and result.scores.tolist() == pytest.approx([0.7, 0.9])
    areas = {int(c): int((result.labels == i).sum()) for i, c in zip(result.instance_ids, result.class_ids)}
    assert areas == {2: 16 * 24, 1: 32 * 20}  # pixel centres inside each box
    person = result.labels == result.instance_ids[1]
    rows, cols = np.nonzero(person)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (12, 27, 8, 31)
    assert set(result.latency_ms) == set(segmenter.stage_names)


def test_yolo_letterbox_maps_masks_back_to_the_frame(tmp_path):
    segmenter = OnnxInstanceSegmenter(str(yolo_file(tmp_path / "yolo.onnx")), config())
    half = segmenter.segment(np.zeros((INPUT_H // 2, INPUT_W // 2, 3), np.uint8))  # scaled x2 into the input
    assert half.labels.shape == (INPUT_H // 2, INPUT_W // 2)
    areas = sorted(int((half.labels == i).sum()) for i in half.instance_ids)
    assert areas == [8 * 12, 16 * 10]
    dynamic = OnnxInstanceSegmenter(str(yolo_file(tmp_path / "dynamic.onnx", dynamic=True)), config())
    assert dynamic.fixed_size is None  # any size: padded to a multiple of 32, never resized
    padded = dynamic.segment(np.zeros((INPUT_H - 4, INPUT_W - 8, 3), np.uint8))
    assert padded.labels.shape == (INPUT_H - 4, INPUT_W - 8)
    assert sorted(int((padded.labels == i).sum()) for i in padded.instance_ids) == [16 * 24, 32 * 20]
    wide = segmenter.segment(np.zeros((INPUT_H // 2, INPUT_W, 3), np.uint8))  # padded above and below by 16 rows
    person = wide.labels == wide.instance_ids[wide.class_ids.tolist().index(2)]
    rows, _ = np.nonzero(person)
    assert (rows.min(), rows.max()) == (0, 31 - 16) and person.sum() == 16 * (32 - 16)


def masks_file(path):
    masks = torch.zeros(3, 1, INPUT_H, INPUT_W)
    masks[0, 0, 10:30, 10:40] = 0.9  # pedestrian, score 0.6
    masks[1, 0, 20:40, 30:60] = 0.8  # car, score 0.9: wins the overlap
    masks[2, 0, 50:60, 0:10] = 0.3  # below the mask threshold everywhere: nothing left
    boxes = torch.zeros(3, 4)
    labels = torch.tensor([PERSON, CAR, PERSON], dtype=torch.int64)
    scores = torch.tensor([0.6, 0.9, 0.8])
    return export(ConstantOutputs(boxes, labels, scores, masks), path, ["boxes", "labels", "scores", "masks"])


def test_per_instance_mask_layout_makes_masks_exclusive_best_score_first(tmp_path):
    segmenter = OnnxInstanceSegmenter(str(masks_file(tmp_path / "maskrcnn.onnx")), config())
    assert segmenter.layout == "masks"
    result = segmenter.segment(np.zeros((INPUT_H, INPUT_W, 3), np.uint8))
    by_class = {int(c): result.labels == i for i, c in zip(result.instance_ids, result.class_ids)}
    assert set(by_class) == {1, 2}
    assert by_class[1].sum() == 20 * 30 and by_class[2].sum() == 20 * 30 - 10 * 10  # the car took the overlap
    assert not (by_class[1] & by_class[2]).any()


def test_files_of_another_layout_are_refused_with_the_outputs_named(tmp_path):
    path = export(ConstantOutputs(torch.zeros(1, 5)), tmp_path / "classifier.onnx", ["logits"])
    with pytest.raises(ConfigError, match="has outputs \\[\\('logits', 2\\)\\]; onnx_instances reads YOLO-seg"):
        OnnxInstanceSegmenter(str(path), config())
    with pytest.raises(ConfigError, match="needs segmentation.weights set to your .onnx file"):
        MotsPipeline.from_config(preset("car-published").replace(**{"segmentation.kind": "onnx_instances"}))


class RandomYoloSeg(torch.nn.Module):
    """A YOLO-seg shaped network with random weights: 3 classes, 4 mask coefficients, 24 anchors."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.head = torch.nn.Conv2d(8, 4 + 3 + 4, 1)
        self.prototypes = torch.nn.Conv2d(8, 4, 1)

    def forward(self, images):
        features = torch.relu(self.features(images))  # (1, 8, H/4, W/4)
        pooled = torch.nn.functional.adaptive_avg_pool2d(self.head(features), (4, 6)).flatten(2)  # (1, 11, 24)
        grid_y, grid_x = torch.meshgrid(torch.arange(4.0), torch.arange(6.0), indexing="ij")
        boxes = torch.stack([grid_x.flatten() * 16 + 8, grid_y.flatten() * 16 + 8,
                             torch.full((24,), 24.0), torch.full((24,), 24.0)])[None]
        return torch.cat([boxes, torch.sigmoid(pooled[:, 4:7]), pooled[:, 7:]], 1), self.prototypes(features)


def test_random_weight_yolo_model_runs_through_the_pipeline_with_pointtrack(tmp_path):
    torch.manual_seed(0)
    path = export(RandomYoloSeg(), tmp_path / "random_yolo.onnx", ["output0", "output1"])
    config = preset("car-published").replace(**{"segmentation.kind": "onnx_instances", "segmentation.weights": str(path),
                                      "segmentation.score_threshold": 0.0, "segmentation.mask_threshold": 0.3,
                                      "segmentation.min_pixel": 1})
    pipeline = MotsPipeline.from_config(config)
    assert pipeline.stage_names[:2] == ("segmentation_network", "mask_decoding")
    rng = np.random.default_rng(0)
    seen = 0
    for step in range(3):
        image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)  # letterboxed into 64x96
        result = pipeline.process(Frame(image, stamp_ns=step, frame_index=step))
        assert result.instance_map.shape == (60, 90)
        union = np.zeros((60, 90), int)
        for tracked in result.instances:
            union += tracked.mask
            assert tracked.class_id in (1, 2) and tracked.embedding.shape == (32,)
        assert union.max() <= 1
        seen += len(result.instances)
    assert seen > 0, "random weights should still give some masks at these thresholds"
    assert pipeline.backend_names["segmentation"] == "onnxruntime-cpu"
