"""Post-processing in torch (for the device that ran the networks) gives what numpy gives, on CPU torch."""

import numpy as np
import pytest
import torch

from mots_ros.embedding.points import sample_points
from mots_ros.masks import encode_label_map, rle_from_runs
from mots_ros.segmentation import SpatialEmbeddingNet, cluster_with_scores
from mots_ros.segmentation.device_postprocessing import (
    cluster_with_scores_torch,
    column_runs_torch,
    sample_points_torch,
)
from mots_ros.segmenters.spatial_embedding import to_network_input
from mots_ros.synthetic.driving import DrivingConfig, DrivingScene
from mots_ros.synthetic.network_outputs import ideal_raw_output, random_instance_map
from test_clustering import crafted_output


def assert_same_clustering(raw, **settings):
    labels, scores = cluster_with_scores(raw, **settings)
    device_labels, device_scores = cluster_with_scores_torch(torch.from_numpy(raw), **settings)
    np.testing.assert_array_equal(device_labels.numpy(), labels)
    np.testing.assert_array_equal(device_scores.numpy(), scores)
    return labels


@pytest.mark.parametrize("case", range(8))
def test_clustering_maps_are_identical_on_crafted_outputs(case):
    rng = np.random.default_rng(700 + case)
    raw = crafted_output(96, 160, 6, rng, noise=0.004 + 0.002 * case)
    labels = assert_same_clustering(raw, threshold=0.9 if case % 2 else 0.94, min_pixel=40 + 10 * case)
    assert labels.max() >= 1  # instances were found, so the comparison covers the loop


def test_clustering_maps_are_identical_on_ideal_and_network_outputs():
    rng = np.random.default_rng(5)
    labels = random_instance_map(200, 600, 12, rng)
    raw = ideal_raw_output(labels, rng, offset_noise=0.002)
    assert assert_same_clustering(raw).max() >= 10
    assert_same_clustering(raw[[0, 1, 2, 4]], n_sigma=1, min_pixel=50)  # isotropic bandwidth
    # A random-weight network's output on a real-looking frame: many candidates, odd bandwidths.
    torch.manual_seed(3)
    image = next(iter(DrivingScene(DrivingConfig(height=128, width=416, frames=1, seed=3)).frames())).image_rgb
    network_raw = SpatialEmbeddingNet(width=0.25).eval()(torch.from_numpy(to_network_input(image, 128, 416)))
    network_raw = network_raw[0].detach().numpy()
    network_raw[4] += 4.0  # raise the seeds so that proposals are tried
    assert_same_clustering(network_raw, threshold=0.9, min_pixel=20)


def test_run_lengths_are_identical_to_the_numpy_encoder():
    rng = np.random.default_rng(8)
    labels = random_instance_map(150, 400, 5, rng).astype(np.int32)
    labels[-1, -1] = 3  # an instance owning the last pixel ends on a foreground run
    labels[0, 0] = 2  # and one owning the first starts with an empty background run
    ids = [1, 2, 3, 4, 5, 99]  # 99 is absent: an all-background mask
    expected = encode_label_map(labels, ids)
    runs = column_runs_torch(torch.from_numpy(labels), ids)
    assert [rle_from_runs(r, 150, 400)["counts"] for r in runs] == [rle["counts"] for rle in expected]


def test_point_clouds_are_identical_with_the_same_generator():
    rng = np.random.default_rng(11)
    labels = random_instance_map(120, 300, 7, rng).astype(np.int32)
    labels[-1, 100:140] = 50  # drawn only on the last row: the edge-only crop rule
    image = rng.integers(0, 256, (120, 300, 3), dtype=np.uint8)
    expected = sample_points(labels, image, np.random.default_rng(4), num_foreground=200, num_environment=100)
    clouds, device_points = sample_points_torch(torch.from_numpy(labels), torch.from_numpy(image),
                                                np.random.default_rng(4), num_foreground=200, num_environment=100)
    for field in ("instance_ids", "points", "boxes", "bboxes", "pixel_counts"):
        np.testing.assert_array_equal(getattr(clouds, field), getattr(expected, field), err_msg=field)
    np.testing.assert_array_equal(device_points.numpy(), expected.points)
    kept, kept_points = sample_points_torch(torch.from_numpy(labels), torch.from_numpy(image), np.random.default_rng(4),
                                            num_foreground=200, num_environment=100, points_to_host=False)
    assert kept.points.shape == (expected.points.shape[0], 0, 8)  # nothing copied for the points
    np.testing.assert_array_equal(kept.bboxes, expected.bboxes)
    np.testing.assert_array_equal(kept_points.numpy(), expected.points)
    empty, _ = sample_points_torch(torch.zeros((5, 5), dtype=torch.int32), torch.from_numpy(image[:5, :5]),
                                   np.random.default_rng(0))
    assert empty.points.shape == (0, 1500, 8)


def test_label_boxes_and_nearest_resize_match_numpy_and_opencv():
    import cv2

    from mots_ros.masks import label_boxes
    from mots_ros.segmentation.device_postprocessing import label_boxes_torch, resize_labels_nearest_torch

    labels = random_instance_map(90, 250, 6, np.random.default_rng(12)).astype(np.int32)
    for expected, found in zip(label_boxes(labels), label_boxes_torch(torch.from_numpy(labels))):
        np.testing.assert_array_equal(found, expected)
    assert label_boxes_torch(torch.zeros((4, 4), dtype=torch.int32))[1].shape == (0, 4)
    for height, width in ((180, 500), (37, 111), (90, 250), (61, 499)):
        expected = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(resize_labels_nearest_torch(torch.from_numpy(labels), height, width).numpy(), expected)


def tracks_of(result):
    return [(t.track_id, t.rle["counts"], t.bbox, t.class_id, t.score) for t in result.instances]


@pytest.fixture(scope="module")
def drive():
    return [f.image_rgb for f in DrivingScene(DrivingConfig(height=375, width=1242, frames=6, seed=915)).frames()]


@pytest.mark.parametrize("overrides", [
    {},  # the car preset: embeddings, DIS flow and the motion cue
    {"segmentation.input_scale": 0.6},  # the network sees a resized frame; the map is resized back on the device
    {"tracker.cues": {"mask_iou": {"weight": 1.0}}, "flow.source": "none"},  # no embedder: boxes from the map
], ids=["car", "input-scale", "iou-only"])
def test_the_pipeline_tracks_identically_with_postprocessing_on_the_device(drive, overrides):
    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.pipeline import MotsPipeline

    config = preset("car").replace(**{"inference.backend": "torch", "inference.device": "cpu", **overrides})
    on_host = MotsPipeline.from_config(config)
    on_device = MotsPipeline.from_config(config.replace(**{"inference.postprocessing": "device"}))
    assert on_device.postprocessing_on_device and not on_host.postprocessing_on_device
    instances = 0
    for index, image in enumerate(drive):
        frame = Frame(image, stamp_ns=index * 100_000_000, frame_index=index)
        host, device = on_host.process(frame), on_device.process(frame)
        assert tracks_of(device) == tracks_of(host), index
        for a, b in zip(device.instances, host.instances):
            np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-5, atol=1e-5)
        assert device.instance_map is None  # the map never came to the host
        np.testing.assert_array_equal(device.id_image(), host.id_image())
        assert set(device.latency_ms) == set(on_device.stage_names)
        instances += len(host.instances)
    assert instances > 5  # the shipped car model found cars, so the comparison covered them


def test_an_embedding_backend_without_tensors_gets_the_points_on_the_host(drive):
    from mots_ros.backends import create_backend
    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.pipeline import MotsPipeline

    config = preset("car").replace(**{"inference.backend": "torch"})
    onnx_embedding = create_backend("embedding", config.replace(**{"inference.backend": "onnxruntime"}))
    on_host = MotsPipeline.from_config(config, embedding_backend=onnx_embedding)
    on_device = MotsPipeline.from_config(config.replace(**{"inference.postprocessing": "device"}),
                                         embedding_backend=onnx_embedding)
    for index, image in enumerate(drive[:3]):
        frame = Frame(image, stamp_ns=index * 100_000_000, frame_index=index)
        host, device = on_host.process(frame), on_device.process(frame)
        assert host.instances and tracks_of(device) == tracks_of(host)
        for a, b in zip(device.instances, host.instances):
            np.testing.assert_array_equal(a.embedding, b.embedding)  # the same host points into the same runtime


def test_postprocessing_on_the_device_is_refused_for_a_backend_that_cannot_keep_its_output():
    from mots_ros.config import preset
    from mots_ros.errors import ConfigError
    from mots_ros.pipeline import MotsPipeline

    config = preset("car").replace(**{"inference.backend": "onnxruntime", "inference.postprocessing": "device"})
    with pytest.raises(ConfigError, match="inference.postprocessing device needs .* torch"):
        MotsPipeline.from_config(config)


def test_cameras_with_postprocessing_on_the_device_track_as_alone(drive):
    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.multi_camera import MultiCameraPipeline
    from mots_ros.pipeline import MotsPipeline

    config = preset("car").replace(**{"inference.backend": "torch", "inference.postprocessing": "device"})
    cameras = MultiCameraPipeline.from_config(config, ["front", "rear"])
    alone = MotsPipeline.from_config(config)
    for index, image in enumerate(drive[:3]):
        frame = Frame(image, stamp_ns=index * 100_000_000, frame_index=index)
        results, problems = cameras.process({"front": frame, "rear": Frame(image[:, ::-1].copy(), frame.stamp_ns, index)})
        assert not problems and set(results) == {"front", "rear"}
        assert tracks_of(results["front"]) == tracks_of(alone.process(frame))


@pytest.mark.slow
def test_the_gpu_check_script_runs_here_and_finds_the_paths_identical(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu_check.json"
    subprocess.run([sys.executable, str(root / "tools" / "gpu_check.py"), "--out", str(out), "--frames", "2",
                    "--repeats", "1", "--width", "0.25"], check=True, timeout=600, capture_output=True)
    report = json.loads(out.read_text())
    cpu = report["postprocessing_on_device"]["cpu"]
    assert cpu["frames"] == cpu["identical_frames"] == 2 and cpu["instances"] > 0
    assert report["whole_frame"]["frame_torch_cpu_postprocessing_device"]["instances"] == 10
