"""Several cameras in one process: shared networks, batched forwards, the same tracks as one pipeline per camera."""

import threading

import numpy as np
import pytest

from mots_ros.config import preset
from mots_ros.datatypes import Frame
from mots_ros.errors import InputError
from mots_ros.multi_camera import CameraRounds, MultiCameraPipeline
from mots_ros.pipeline import MotsPipeline
from mots_ros.synthetic.driving import DrivingConfig, DrivingScene

FRAMES = 5


@pytest.fixture(scope="module")
def drives():
    """Three cameras: two KITTI-sized drives and a smaller one (its own batch)."""
    sizes = {"front": (375, 1242), "left": (375, 1242), "rear": (256, 832)}
    return {name: [f.image_rgb for f in DrivingScene(DrivingConfig(height=h, width=w, frames=FRAMES, seed=910 + i)).frames()]
            for i, (name, (h, w)) in enumerate(sizes.items())}


def summary(result):
    return [(t.track_id, t.rle["counts"], t.bbox) for t in result.instances]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_batched_cameras_track_as_their_own_pipelines_would(drives, backend):
    config = preset("car").replace(**{"inference.backend": backend, "inference.precision": "fp32"})
    cameras = MultiCameraPipeline.from_config(config, list(drives))
    singles = {name: MotsPipeline.from_config(config) for name in drives}
    shared = {id(p.segmenter.backend) for p in cameras.cameras.values()}
    assert len(shared) == 1 and len({id(p.embedder.backend) for p in cameras.cameras.values()}) == 1
    instances = 0
    for index in range(FRAMES):
        frames = {name: Frame(images[index], stamp_ns=index * 100_000_000, frame_index=index)
                  for name, images in drives.items()}
        results, problems = cameras.process(frames)
        assert not problems and set(results) == set(drives)
        # The two KITTI-sized frames shared one forward; the smaller one ran alone.
        assert results["front"].latency_ms["segmentation_network"] == results["left"].latency_ms["segmentation_network"]
        assert results["front"].latency_ms["embedding_network"] == results["rear"].latency_ms["embedding_network"]
        for name, frame in frames.items():
            alone = singles[name].process(frame)
            assert summary(results[name]) == summary(alone), (name, index)
            for batched, single in zip(results[name].instances, alone.instances):
                np.testing.assert_allclose(batched.embedding, single.embedding, atol=1e-4)
            instances += len(alone.instances)
    assert instances > 10  # the shipped car model found cars to track


def test_a_bad_frame_or_unknown_camera_holds_up_nobody(drives):
    cameras = MultiCameraPipeline.from_config(preset("car"), ["front", "left"])
    good = Frame(drives["front"][0], stamp_ns=0, frame_index=0)
    results, problems = cameras.process({"front": good, "left": Frame(np.zeros((4, 4), np.uint8), 0, 0),
                                         "roof": good})
    assert set(results) == {"front"} and set(problems) == {"left", "roof"}
    assert isinstance(problems["left"], InputError) and "roof" in str(problems["roof"])
    later, _ = cameras.process({"left": Frame(drives["left"][1], stamp_ns=100_000_000, frame_index=1)})
    assert later["left"].instances and all(t.track_id >= 1 for t in later["left"].instances)
    with pytest.raises(ValueError, match="distinct"):
        MultiCameraPipeline.from_config(preset("car"), ["a", "a"])


def test_camera_threads_meet_in_batched_rounds_and_get_their_own_results(drives):
    """One thread per camera, as the nodes of one process: each round holds every camera's frame."""
    config = preset("car").replace(**{"inference.backend": "onnxruntime", "node.batch_window_s": 1.0})
    rounds = CameraRounds(timeout_s=120.0)
    handles = {name: rounds.add_camera(name, config) for name in drives}
    assert len({id(h.pipeline.segmenter.backend) for h in handles.values()}) == 1
    assert all(h.backend_names["segmentation"].endswith("(shared)") for h in handles.values())
    outputs: dict = {name: [] for name in drives}

    def camera(name):
        for index, image in enumerate(drives[name]):
            outputs[name].append(handles[name].process(Frame(image, stamp_ns=index * 100_000_000, frame_index=index)))

    threads = [threading.Thread(target=camera, args=(name,)) for name in drives]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    # With a long window every round waited for all three cameras (the window never ran out).
    assert (rounds.rounds_run, rounds.frames_run) == (FRAMES, 3 * FRAMES)
    for name, images in drives.items():
        alone = MotsPipeline.from_config(config)
        for index, image in enumerate(images):
            expected = alone.process(Frame(image, stamp_ns=index * 100_000_000, frame_index=index))
            assert summary(outputs[name][index]) == summary(expected), (name, index)


def test_a_round_runs_without_a_removed_or_silent_camera_and_errors_stay_with_their_frame(drives):
    config = preset("car").replace(**{"inference.backend": "onnxruntime"})
    rounds = CameraRounds(window_s=0.05, timeout_s=60.0)
    front, left = rounds.add_camera("front", config), rounds.add_camera("left", config)
    # "left" sends nothing: "front" waits only for the window.
    assert front.process(Frame(drives["front"][0], stamp_ns=0, frame_index=0)).instances
    with pytest.raises(InputError, match="image"):
        left.process(Frame(np.zeros((4, 4), np.uint8), stamp_ns=0, frame_index=0))
    rounds.remove_camera("left")
    with pytest.raises(InputError, match="unknown camera 'left'"):
        left.process(Frame(drives["left"][0], stamp_ns=0, frame_index=0))
    later = front.process(Frame(drives["front"][1], stamp_ns=100_000_000, frame_index=1))
    assert later.instances and rounds.rounds_run == 3
    front.reset()
    assert front.tracker.epoch == 1
