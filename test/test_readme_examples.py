"""The README's "Extending" examples run as written: a cue, a segmenter and a backend."""

from __future__ import annotations

import re
import types

import numpy as np

from conftest import REPO
from mots_ros.config import TrackerConfig, preset
from mots_ros.datatypes import Frame, Instance
from mots_ros.masks import encode_rle
from mots_ros.pipeline import MotsPipeline
from mots_ros.registry import BACKENDS, CUES, SEGMENTERS
from mots_ros.tracker import Tracker


def readme_example(path: str) -> types.ModuleType:
    """The README's python block that starts with ``# <path>``, executed as a module."""
    section = (REPO / "README.md").read_text().split("## Extending", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    (code,) = [b for b in blocks if b.splitlines()[0].startswith(f"# {path}")]
    module = types.ModuleType(path)
    exec(compile(code, f"README.md:{path}", "exec"), module.__dict__)
    return module


def box_instance(x0, y0, size=10):
    mask = np.zeros((80, 120), bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return Instance(encode_rle(mask), (x0, y0, x0 + size - 1, y0 + size - 1), 1, 1.0)


def test_the_cue_example_follows_box_centres():
    CUES.register("centre_distance", readme_example("mots_ros/cues/centre_distance.py").CentreDistanceCue)
    config = TrackerConfig(cues={"centre_distance": {"weight": 1.0, "max_distance_px": 20.0}}, threshold=0.0)
    tracker = Tracker(config)
    tracker.update([box_instance(10, 10), box_instance(60, 10)], stamp_ns=0, frame_index=0)
    # no mask overlap at all; only the centres say which is which
    tracked = tracker.update([box_instance(75, 12), box_instance(25, 12)], stamp_ns=1, frame_index=1)
    assert [t.track_id for t in tracked] == [2, 1]
    far = tracker.update([box_instance(25, 60)], stamp_ns=2, frame_index=2)  # 48 px away: below the threshold
    assert [t.track_id for t in far] == [3]


def test_the_segmenter_example_finds_and_tracks_a_moving_square():
    SEGMENTERS.register("motion", readme_example("mots_ros/segmenters/motion.py").MotionSegmenter)
    config = preset("car-published").replace(**{"segmentation.kind": "motion", "segmentation.min_pixel": 50,
                                      "tracker.cues.embedding.weight": 0.0, "tracker.cues.mask_iou.weight": 1.0,
                                      "tracker.threshold": 0.1})
    pipeline = MotsPipeline.from_config(config)
    background = np.random.default_rng(0).integers(0, 60, (80, 120, 3), dtype=np.uint8)
    ids = []
    for step in range(20):
        image = background.copy()
        if step >= 10:  # the background model learns the empty scene first
            x0 = 10 + 6 * (step - 10)
            image[30:50, x0 : x0 + 20] = 255
        result = pipeline.process(Frame(image, stamp_ns=step, frame_index=step))
        if step >= 10:
            assert len(result.instances) == 1, step
            ids.append(result.instances[0].track_id)
    assert len(set(ids)) == 1 and pipeline.stage_names[0] == "background_subtraction"


def test_the_backend_example_agrees_with_onnx_runtime():
    BACKENDS.register("opencv_readme", readme_example("mots_ros/backends/opencv_backend.py").OpenCvDnnBackend)
    from mots_ros.backends import create_backend
    from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
    from mots_ros.export import max_relative_error

    config = preset("car-published").replace(**{"inference.backend": "opencv_readme"})
    backend = create_backend("embedding", config)
    rng = np.random.default_rng(0)
    points, boxes = rng.random((5, 1500, 8), dtype=np.float32), rng.random((5, 4), dtype=np.float32)
    reference = OnnxRuntimeBackend(REPO / "models" / "pointtrack_car.onnx").run(points, boxes)
    assert backend.name == "opencv-cpu" and max_relative_error(reference, backend.run(points, boxes)) < 1e-4
