"""Cues built by name from tracker.cues: options, errors, hooks and what the frame context carries."""

import numpy as np
import pytest

from mots_ros.config import TrackerConfig, preset
from mots_ros.cues import CUES, Cue, FrameContext, create_cues, cues_need_embeddings
from mots_ros.cues.embedding import EmbeddingCue
from mots_ros.datatypes import Instance
from mots_ros.errors import ConfigError
from mots_ros.masks import encode_rle
from mots_ros.tracker import Tracker


def instance(x0, width=10):
    mask = np.zeros((20, 60), bool)
    mask[5:15, x0 : x0 + width] = True
    return Instance(rle=encode_rle(mask), bbox=(x0, 5, x0 + width - 1, 14), class_id=1, score=1.0,
                    embedding=np.zeros(2, np.float32))


def test_cues_are_built_with_their_options_in_config_order_and_weight_zero_disables():
    cues = create_cues(preset("pedestrian-published").tracker.cues)
    assert [(c.name, c.weight) for c in cues] == [("embedding", 1.3437965549876354), ("mask_iou", 0.54)]
    assert isinstance(cues[0], EmbeddingCue) and cues[0].offset == 9.447084376750222
    assert cues_need_embeddings(cues) and not cues_need_embeddings(cues[1:])


def test_unknown_cue_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="unknown association cue 'motoin'; known: embedding, mask_iou, flow_iou, motion, points"):
        Tracker(TrackerConfig(cues={"motoin": {"weight": 1.0}}))


def test_options_a_cue_does_not_take_are_named():
    with pytest.raises(ConfigError, match="tracker.cues.mask_iou: .*unexpected keyword argument 'radius'"):
        create_cues({"mask_iou": {"weight": 1.0, "radius": 3}})
    with pytest.raises(ConfigError, match="tracker.cues.embedding: .*missing 1 required .*'offset'"):
        create_cues({"embedding": {"weight": 1.0}})


class RecordingCue(Cue):
    """Keeps per-track state through the hooks and remembers what each frame's context held."""

    events: list = []

    def __init__(self, weight):
        super().__init__(weight)
        self.events = []

    def start_frame(self, tracks, context):
        self.events.append(("frame", context.frame_serial, len(tracks), context.previous_image_rgb is not None))

    def track_born(self, track, detection, context):
        track.cue_state[self.name] = {"seen": 1}
        self.events.append(("born", track.track_id))

    def track_matched(self, track, detection, context):
        track.cue_state[self.name]["seen"] += 1
        self.events.append(("matched", track.track_id, track.cue_state[self.name]["seen"]))

    def similarity(self, detections, tracks, context):
        assert context.image_rgb is not None and context.stamp_ns == 100
        return np.ones((len(detections), len(tracks)))


def test_hooks_keep_per_track_state_and_the_context_carries_the_frames():
    CUES.register("recording", RecordingCue)
    tracker = Tracker(TrackerConfig(cues={"recording": {"weight": 1.0}}, threshold=0.0))
    (cue,) = tracker.cues
    image = np.zeros((20, 60, 3), np.uint8)
    tracker.update([instance(5)], stamp_ns=0, frame_index=0, image_rgb=image)
    tracker.update([instance(8)], stamp_ns=100, frame_index=1, image_rgb=image)
    assert cue.events == [("frame", 1, 0, False), ("born", 1), ("frame", 2, 1, True), ("matched", 1, 2)]
    assert tracker.tracks[0].cue_state["recording"] == {"seen": 2}


def test_a_protocol_only_cue_without_hooks_works():
    class Plain:
        name, weight = "plain", 1.0

        def similarity(self, detections, tracks, context):
            return np.ones((len(detections), len(tracks)))

    tracker = Tracker(TrackerConfig(threshold=0.0), cues=[Plain()])
    tracker.update([instance(5)], stamp_ns=0)
    assert [t.track_id for t in tracker.update([instance(40)], stamp_ns=1)] == [1]


def test_frame_context_defaults_to_nothing_but_the_serial():
    context = FrameContext(3)
    assert (context.image_rgb, context.previous_image_rgb, context.flow, context.frame_index) == (None, None, None, None)


def people(embeddings):
    """One frame's detections: one non-overlapping instance per embedding."""
    return [Instance(rle=instance(10 * k).rle, bbox=(10 * k, 5, 10 * k + 9, 14), class_id=2, score=1.0,
                     embedding=np.asarray(e, np.float32)) for k, e in enumerate(embeddings)]


def test_negative_median_rescales_distances_by_the_median_between_people_of_one_frame():
    cue = EmbeddingCue(weight=1.0, offset=5.0, negative_median=2.0)
    tracks = Tracker(TrackerConfig(cues={"embedding": {"weight": 1.0, "offset": 5.0}}))
    tracks.update(people([[0.0, 0.0], [10.0, 0.0], [0.0, 4.0]]), stamp_ns=0)
    # pairwise distances 10, 4 and sqrt(116) = 10.77: median 10, so distances are multiplied by 2 / 10
    frame = people([[0.0, 0.0], [10.0, 0.0], [0.0, 4.0]])
    similarity = cue.similarity(frame, tracks.tracks, FrameContext(2))
    plain = EmbeddingCue(weight=1.0, offset=5.0).similarity(frame, tracks.tracks, FrameContext(2))
    np.testing.assert_allclose(5.0 - similarity, (5.0 - plain) * 0.2)
    assert np.all(np.diag(similarity) == 5.0)


def test_with_negative_median_the_network_output_scale_cancels():
    rng = np.random.default_rng(3)
    identities = rng.normal(0, 1.0, (6, 32))
    frames = [identities[rng.permutation(6)[:4]] + rng.normal(0, 0.35, (4, 32)) for _ in range(12)]

    def track(scale, **options):
        tracker = Tracker(TrackerConfig(threshold=0.0, cues={"embedding": {"weight": 1.0, "offset": 3.0, **options}}))
        return [[t.track_id for t in tracker.update(people(frame * scale), stamp_ns=k)] for k, frame in enumerate(frames)]

    assert track(1.0, negative_median=6.0) == track(7.0, negative_median=6.0)
    assert track(1.0) != track(7.0)  # without it, the scale decides what matches


def test_negative_median_options_are_checked():
    with pytest.raises(ValueError, match="negative_median must be a finite number >= 0, got -1"):
        EmbeddingCue(weight=1.0, offset=1.0, negative_median=-1.0)
    with pytest.raises(ValueError, match="negative_window must be at least 3, got 2"):
        EmbeddingCue(weight=1.0, offset=1.0, negative_median=1.0, negative_window=2)


def test_a_gallery_matches_a_detection_that_looks_like_any_recent_view_of_the_track():
    other = [0.0, 8.0]
    turning = [[0.0, 0.0], [0.9, 0.0], [1.8, 0.0], [0.1, 0.0]]  # a person turns step by step, then turns back

    def ids(**options):
        tracker = Tracker(TrackerConfig(threshold=0.0, cues={"embedding": {"weight": 1.0, "offset": 1.0, **options}}))
        return [[t.track_id for t in tracker.update(people([view, other]), stamp_ns=k)][0] for k, view in enumerate(turning)]

    assert ids(gallery=3) == [1, 1, 1, 1]
    assert ids() == [1, 1, 1, 3]  # the last view only: turning back looks like someone new
    with pytest.raises(ValueError, match="gallery must be >= 0 and is not used with ema"):
        EmbeddingCue(weight=1.0, offset=1.0, gallery=3, ema=0.5)
