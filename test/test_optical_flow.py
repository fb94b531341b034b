"""Flow from the frames themselves (flow.source: dis): the package's convention, and what wins."""

import numpy as np
import pytest

from mots_ros.config import preset
from mots_ros.cues import Cue
from mots_ros.datatypes import Frame
from mots_ros.optical_flow import DisFlow
from mots_ros.pipeline import MotsPipeline
from mots_ros.registry import CUES


def textured(shift_x=0, shift_y=0):
    rng = np.random.default_rng(0)
    base = (rng.random((140, 220)) * 255).astype(np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    image = np.roll(np.roll(base, shift_y, axis=0), shift_x, axis=1)
    return np.repeat(image[..., None], 3, axis=2)


def test_dis_flow_points_from_the_previous_frame_to_the_current_one():
    dis = DisFlow("medium")
    assert dis.next_flow(textured()) is None  # no previous frame yet
    flow = dis.next_flow(textured(3, 2))  # everything moved 3 px right and 2 px down
    centre = flow[20:-20, 20:-20].reshape(-1, 2)
    assert flow.shape == (140, 220, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(centre, axis=0), [3.0, 2.0], atol=0.25)
    dis.reset()
    assert dis.next_flow(textured(3, 2)) is None
    with pytest.raises(ValueError, match="DIS preset must be one of"):
        DisFlow("slow")


class FlowSeenCue(Cue):
    seen: list = []

    def similarity(self, detections, tracks, context):
        FlowSeenCue.seen.append(None if context.flow is None else float(np.median(context.flow[..., 0])))
        return np.zeros((len(detections), len(tracks)))


@pytest.mark.parametrize("source, given, expected", [
    ("dis", None, 3.0),  # computed from the frames
    ("dis", 7.0, 7.0),  # the frame's own flow wins
    ("topic", None, None),  # no flow at all
    ("topic", 7.0, 7.0),
    ("none", 7.0, None),  # flow ignored even when given
])
def test_flow_sources(source, given, expected):
    CUES.register("flow_seen", FlowSeenCue)
    FlowSeenCue.seen = []
    config = preset("car-published").replace(**{"flow.source": source, "segmentation.kind": "ground_truth",
                                      "tracker.cues.embedding.weight": 0.0, "tracker.cues.flow_seen.weight": 1.0})
    pipeline = MotsPipeline.from_config(config)
    from mots_ros.datasets import records_from_instance_map

    labels = np.zeros((140, 220), np.int32)
    labels[40:80, 60:100] = 1001
    pipeline.segmenter.use_annotations({0: records_from_instance_map(0, labels), 1: records_from_instance_map(1, labels)})
    pipeline.process(Frame(textured(), stamp_ns=0, frame_index=0))
    flow = None if given is None else np.full((140, 220, 2), given, np.float32)
    result = pipeline.process(Frame(textured(3, 2), stamp_ns=1, frame_index=1, flow=flow))
    (value,) = FlowSeenCue.seen
    assert (value is None) if expected is None else value == pytest.approx(expected, abs=0.3)
    assert ("optical_flow" in result.latency_ms) == (source == "dis")


def test_no_flow_across_a_time_jump_and_dis_starts_again_after_it():
    CUES.register("flow_seen", FlowSeenCue)
    FlowSeenCue.seen = []
    config = preset("car-published").replace(**{"flow.source": "dis", "segmentation.kind": "ground_truth",
                                                "tracker.cues.embedding.weight": 0.0, "tracker.cues.flow_seen.weight": 1.0,
                                                "tracker.time_jump_s": 1.0, "tracker.threshold": 0.0})
    pipeline = MotsPipeline.from_config(config)
    from mots_ros.datasets import records_from_instance_map

    labels = np.zeros((140, 220), np.int32)
    labels[40:80, 60:100] = 1001
    pipeline.segmenter.use_annotations({i: records_from_instance_map(i, labels) for i in range(4)})
    second = 1_000_000_000
    for index, (stamp_ns, shift) in enumerate([(0, 0), (second // 10, 3), (5 * second, 6), (5 * second + second // 10, 9)]):
        pipeline.process(Frame(textured(shift, 2), stamp_ns=stamp_ns, frame_index=index))
    # frame 1 follows frame 0; frame 2 comes 4.9 s later (no flow, motion restarts); frame 3 follows it
    assert FlowSeenCue.seen[0] == pytest.approx(3.0, abs=0.3) and FlowSeenCue.seen[1] is None
    assert FlowSeenCue.seen[2] == pytest.approx(3.0, abs=0.3)
    assert len(pipeline.tracker.tracks) == 1  # the track itself survives the jump
