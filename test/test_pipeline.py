"""The pipeline on synthetic moving blobs: stable ids, exclusive masks, clear errors."""

import logging

import numpy as np
import pytest
import torch

from mots_ros.backends.torch_backend import TorchBackend
from mots_ros.config import SegmentationConfig, preset
from mots_ros.datatypes import Frame
from mots_ros.embedding.embedder import Embedder
from mots_ros.embedding.network import PointTrackNet
from mots_ros.errors import InputError
from mots_ros.pipeline import MotsPipeline
from mots_ros.segmentation import SpatialEmbeddingNet
from mots_ros.segmenters import Segmentation
from mots_ros.segmenters.ground_truth import GroundTruthSegmenter
from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter
from mots_ros.synthetic.network_outputs import ideal_raw_output
from mots_ros.tracker import Tracker

HEIGHT, WIDTH = 120, 200
COLOURS = [(220, 40, 40), (40, 220, 40), (40, 40, 220)]


class PerfectSegmentationNetwork:
    """Stands in for a trained SpatialEmbeddingNet: reads blobs off their colours."""

    name = "ideal"
    fixed_input_size = None

    def run(self, network_input):
        image = (network_input[0].transpose(1, 2, 0) * 255).round().astype(int)
        labels = np.zeros(image.shape[:2], np.int32)
        for instance_id, colour in enumerate(COLOURS, start=1):
            labels[(np.abs(image - colour).sum(-1) < 30)] = instance_id
        return ideal_raw_output(labels)[None]


def blob_frame(step):
    image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    for i, colour in enumerate(COLOURS):
        x, y = 20 + 50 * i + 3 * step, 20 + 25 * i
        image[y : y + 30, x : x + 40] = colour
    return image


def make_pipeline(segmentation_network=None, config=None):
    torch.manual_seed(0)
    config = config or preset("car-published")
    segmenter = SpatialEmbeddingSegmenter(segmentation_network or PerfectSegmentationNetwork(), config.segmentation)
    return MotsPipeline(segmenter, Embedder(TorchBackend(PointTrackNet()), config.embedding), Tracker(config.tracker))


def test_moving_blobs_keep_their_ids():
    pipeline = make_pipeline()
    history = []
    for step in range(8):
        result = pipeline.process(Frame(blob_frame(step), stamp_ns=step * 100_000_000, frame_index=step))
        assert len(result.instances) == 3
        union = np.zeros((HEIGHT, WIDTH), int)
        for tracked in result.instances:
            union += tracked.mask
            x0, y0, x1, y1 = tracked.bbox
            rows, cols = np.nonzero(tracked.mask)
            assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max(), rows.max())
            assert tracked.embedding.shape == (32,) and tracked.class_name == "car"
        assert union.max() == 1  # masks never overlap
        history.append(sorted((t.bbox[0], t.track_id) for t in result.instances))
        assert list(result.latency_ms) == list(pipeline.stage_names) == [
            "segmentation_network", "clustering", "point_sampling", "embedding_network", "rle_encoding", "association"]
    assert all([i for _, i in frame] == [1, 2, 3] for frame in history)


def test_id_image_matches_masks():
    result = make_pipeline().process(Frame(blob_frame(0), stamp_ns=0))
    image = result.id_image()
    assert image.dtype == np.uint16
    for tracked in result.instances:
        assert (image[tracked.mask] == tracked.track_id).all()
    assert (image > 0).sum() == sum(t.mask.sum() for t in result.instances)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((HEIGHT, WIDTH), np.uint8), "must be \\(H, W, 3\\)"),
        (np.zeros((HEIGHT, WIDTH, 3), np.float32), "must be uint8"),
        (np.zeros((0, WIDTH, 3), np.uint8), "empty"),
        ("not an image", "numpy array"),
    ],
)
def test_bad_frames_raise_and_leave_the_pipeline_usable(image, message):
    pipeline = make_pipeline()
    first = pipeline.process(Frame(blob_frame(0), stamp_ns=0, frame_index=0))
    with pytest.raises(InputError, match=message):
        pipeline.process(Frame(image, stamp_ns=1, frame_index=1))
    after = pipeline.process(Frame(blob_frame(1), stamp_ns=2, frame_index=2))
    assert sorted(t.track_id for t in after.instances) == sorted(t.track_id for t in first.instances)


def test_bad_flow_is_dropped_and_the_frame_goes_on(caplog):
    pipeline = make_pipeline()
    flow = np.full((HEIGHT, WIDTH, 2), np.nan, np.float32)
    with caplog.at_level(logging.WARNING):
        result = pipeline.process(Frame(blob_frame(0), stamp_ns=0, flow=flow))
    assert len(result.instances) == 3 and "non-finite" in caplog.text
    result = pipeline.process(Frame(blob_frame(1), stamp_ns=1, flow=np.zeros((5, 5, 2), np.float32)))
    assert len(result.instances) == 3 and "does not match the image" in caplog.text


def test_ground_truth_segmenter_serves_each_frame_its_annotated_masks():
    from mots_ros.datasets import records_from_instance_map

    labels = np.zeros((HEIGHT, WIDTH), np.int32)
    labels[10:40, 10:60], labels[60:100, 100:150] = 2004, 2009
    segmenter = GroundTruthSegmenter({0: records_from_instance_map(0, labels)})
    pipeline = MotsPipeline(segmenter, None, Tracker(preset("pedestrian-published").tracker))
    result = pipeline.process(Frame(blob_frame(0), stamp_ns=0, frame_index=0))
    assert [t.class_id for t in result.instances] == [2, 2] and list(result.latency_ms) == list(pipeline.stage_names)
    assert sorted(int(t.mask.sum()) for t in result.instances) == [30 * 50, 40 * 50]
    assert pipeline.process(Frame(blob_frame(0), stamp_ns=1, frame_index=1)).instances == ()  # no annotations
    with pytest.raises(InputError, match="looks masks up by frame number"):
        pipeline.process(Frame(blob_frame(0), stamp_ns=2))


def test_segmentation_from_a_label_map_checks_ids_and_classes():
    labels = np.zeros((HEIGHT, WIDTH), np.int32)
    labels[10:40, 10:60], labels[60:100, 100:150] = 4, 9
    segmentation = Segmentation.from_label_map(labels, {4: 2, 9: 1}, {9: 0.5})
    assert segmentation.instance_ids.tolist() == [4, 9] and segmentation.class_ids.tolist() == [2, 1]
    assert segmentation.scores.tolist() == [1.0, 0.5]
    with pytest.raises(InputError, match="have no class id"):
        Segmentation.from_label_map(labels, {4: 2})
    with pytest.raises(InputError, match="integer"):
        Segmentation.from_label_map(labels.astype(float), {4: 2, 9: 2})
    with pytest.raises(InputError, match="negative"):
        Segmentation.from_label_map(-labels, {})


def test_reset_starts_a_new_epoch_and_reproduces_embeddings():
    pipeline = make_pipeline()
    first = pipeline.process(Frame(blob_frame(0), stamp_ns=0))
    pipeline.reset()
    again = pipeline.process(Frame(blob_frame(0), stamp_ns=0))
    assert again.tracker_epoch == first.tracker_epoch + 1
    np.testing.assert_array_equal(first.instances[0].embedding, again.instances[0].embedding)


def test_time_going_backwards_reseeds_sampling_too():
    pipeline = make_pipeline()
    first = pipeline.process(Frame(blob_frame(0), stamp_ns=10))
    pipeline.process(Frame(blob_frame(1), stamp_ns=20))
    replay = pipeline.process(Frame(blob_frame(0), stamp_ns=10))
    assert replay.tracker_epoch == 1
    np.testing.assert_array_equal(first.instances[0].embedding, replay.instances[0].embedding)


def test_real_random_network_runs_end_to_end():
    torch.manual_seed(0)
    network = TorchBackend(SpatialEmbeddingNet(width=0.25))
    result = make_pipeline(network).process(Frame(blob_frame(0)[:117, :197], stamp_ns=0))  # not multiples of 8
    assert (result.image_height, result.image_width) == (117, 197)
    assert result.instance_map.shape == (117, 197)


def test_fixed_input_size_pads_or_refuses():
    segmenter = SpatialEmbeddingSegmenter(PerfectSegmentationNetwork(), SegmentationConfig(input_height=128, input_width=208))
    assert segmenter.input_size(HEIGHT, WIDTH) == (128, 208)
    assert segmenter.predict_raw(blob_frame(0)).shape == (5, HEIGHT, WIDTH)
    with pytest.raises(InputError, match="larger than the fixed network input 128x208"):
        segmenter.input_size(130, 100)


def test_the_shipped_car_model_says_what_it_was_trained_on(caplog):
    with caplog.at_level(logging.WARNING):
        MotsPipeline.from_config(preset("car-published"))
    assert "shipped car model, trained on synthetic street scenes only" in caplog.text


def test_input_scale_runs_the_network_on_a_smaller_frame_and_returns_full_size_masks():
    class Recording(PerfectSegmentationNetwork):
        def run(self, network_input):
            self.shape = network_input.shape
            return super().run(network_input)

    full = SpatialEmbeddingSegmenter(PerfectSegmentationNetwork(), SegmentationConfig(min_pixel=20)).segment(blob_frame(0))
    network = Recording()
    half = SpatialEmbeddingSegmenter(network, SegmentationConfig(input_scale=0.5, min_pixel=20)).segment(blob_frame(0))
    assert network.shape[2:] == (-(-HEIGHT // 2 // 8) * 8, -(-WIDTH // 2 // 8) * 8)
    assert half.labels.shape == full.labels.shape == (HEIGHT, WIDTH)
    assert half.instance_ids.size == full.instance_ids.size > 0
    for full_id in full.instance_ids:
        full_mask = full.labels == full_id
        best = max(np.logical_and(full_mask, half.labels == i).sum() / np.logical_or(full_mask, half.labels == i).sum()
                   for i in half.instance_ids)
        assert best > 0.8
