"""Tracker lifecycles asserted frame by frame (spec §7)."""

import dataclasses

import numpy as np

from mots_ros.config import TrackerConfig, preset
from mots_ros.cues import FrameContext
from mots_ros.datatypes import Instance, TrackState
from mots_ros.masks import decode_rle, encode_rle
from mots_ros.cues.embedding import EmbeddingCue
from mots_ros.cues.flow_iou import FlowIoUCue, warp_mask
from mots_ros.cues.mask_iou import MaskIoUCue
from mots_ros.tracker import Tracker

CAR = preset("car-published").tracker
HEIGHT, WIDTH = 60, 100


def config(cues: dict | None = None, **changes) -> TrackerConfig:
    """The car tracker config with changes; ``cues`` entries are merged over the car cues by name."""
    cues = cues or {}
    merged = {name: {**options, **cues.get(name, {})} for name, options in CAR.cues.items()}
    merged.update({name: options for name, options in cues.items() if name not in merged})
    return dataclasses.replace(CAR, cues=merged, **changes)


def instance(box, embedding=(0.0, 0.0), class_id=1):
    x0, y0, x1, y1 = box
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return Instance(rle=encode_rle(mask), bbox=box, class_id=class_id, score=1.0, embedding=np.asarray(embedding, np.float32))


def ids(tracked):
    return [t.track_id for t in tracked]


def test_id_survives_a_gap_up_to_max_age_then_a_new_id_comes():
    tracker = Tracker(config(max_age_frames=3))
    car = instance((10, 10, 30, 30))
    assert ids(tracker.update([car], stamp_ns=0, frame_index=0)) == [1]
    assert tracker.update([], stamp_ns=1, frame_index=1) == []  # empty frames still age tracks
    assert tracker.update([], stamp_ns=2, frame_index=2) == []
    assert ids(tracker.update([car], stamp_ns=3, frame_index=3)) == [1]  # unmatched for 3 = max_age: kept
    for frame in (4, 5, 6):
        tracker.update([], stamp_ns=frame, frame_index=frame)
    assert ids(tracker.update([car], stamp_ns=7, frame_index=7)) == [2]  # 7 - 3 > 3: dropped, new id


def test_frame_numbers_not_arrival_order_define_age():
    tracker = Tracker(config(max_age_frames=3))
    car = instance((10, 10, 30, 30))
    tracker.update([car], stamp_ns=0, frame_index=10)
    assert ids(tracker.update([car], stamp_ns=1, frame_index=20)) == [2]  # frames 11..19 were never seen


def test_ids_are_never_reused_even_across_resets():
    tracker = Tracker(config(max_age_frames=0))
    seen = []
    for frame in range(6):
        if frame == 3:
            tracker.reset()
        far_apart = [instance((5 + 30 * (frame % 2), 5, 20 + 30 * (frame % 2), 20), embedding=(50.0 * frame, 0.0))]
        seen += ids(tracker.update(far_apart, stamp_ns=frame, frame_index=frame))
    assert seen == [1, 2, 3, 4, 5, 6] and tracker.epoch == 1


def test_time_going_backwards_resets_and_bumps_the_epoch():
    tracker = Tracker(config(age_unit="seconds", max_age_s=3.0))
    car = instance((10, 10, 30, 30))
    tracker.update([car], stamp_ns=5_000_000_000)
    assert ids(tracker.update([car], stamp_ns=5_100_000_000)) == [1]
    assert tracker.epoch == 0
    assert ids(tracker.update([car], stamp_ns=1_000_000_000)) == [2]  # a bag looped
    assert tracker.epoch == 1 and len(tracker.tracks) == 1


def test_seconds_mode_ages_tracks_by_stamp():
    tracker = Tracker(config(age_unit="seconds", max_age_s=1.0))
    car = instance((10, 10, 30, 30))
    tracker.update([car], stamp_ns=0)
    assert ids(tracker.update([car], stamp_ns=1_000_000_000)) == [1]
    assert ids(tracker.update([car], stamp_ns=2_500_000_000)) == [2]


def test_states_go_from_tentative_to_confirmed():
    tracker = Tracker(CAR)
    car = instance((10, 10, 30, 30))
    assert tracker.update([car], stamp_ns=0, frame_index=0)[0].state == TrackState.TENTATIVE
    assert tracker.update([car], stamp_ns=1, frame_index=1)[0].state == TrackState.CONFIRMED


def test_similarity_is_the_published_weighted_sum():
    tracker = Tracker(CAR)
    tracker.update([instance((10, 10, 29, 29), embedding=(0.0, 0.0))], stamp_ns=0, frame_index=0)
    moved = instance((20, 10, 39, 29), embedding=(3.0, 4.0))  # distance 5; IoU 200 / 600
    sim = tracker.similarity([moved], context=FrameContext(2))
    alpha, beta, gamma = CAR.cues["embedding"]["weight"], CAR.cues["embedding"]["offset"], CAR.cues["mask_iou"]["weight"]
    expected = alpha * (beta - 5.0) + gamma * (200 / 600)
    np.testing.assert_allclose(sim, [[expected]])


def test_pairs_at_or_below_the_threshold_never_match():
    tracker = Tracker(config({"mask_iou": {"weight": 0.0}, "embedding": {"weight": 1.0, "offset": 1.0}}, threshold=0.5))
    tracker.update([instance((10, 10, 20, 20), embedding=(0.0, 0.0))], stamp_ns=0, frame_index=0)
    assert ids(tracker.update([instance((10, 10, 20, 20), embedding=(0.5, 0.0))], stamp_ns=1, frame_index=1)) == [2]
    assert ids(tracker.update([instance((10, 10, 20, 20), embedding=(0.9, 0.0))], stamp_ns=2, frame_index=2)) == [2]


def test_assignment_is_globally_optimal_not_greedy():
    # Greedy would give detection 0 to track 1 (its best) and leave detection 1 with a poor match.
    tracker = Tracker(config({"mask_iou": {"weight": 0.0}, "embedding": {"weight": 1.0, "offset": 10.0}}, threshold=0.0))
    tracker.update([instance((0, 0, 5, 5), (0.0, 0.0)), instance((40, 0, 45, 5), (2.0, 0.0))], stamp_ns=0, frame_index=0)
    tracked = tracker.update([instance((0, 0, 5, 5), (1.4, 0.0)), instance((40, 0, 45, 5), (2.9, 0.0))], stamp_ns=1, frame_index=1)
    assert ids(tracked) == [1, 2]  # total distance 1.4 + 0.9 beats 0.6 + 2.9


def test_classes_never_match_each_other():
    tracker = Tracker(CAR)
    tracker.update([instance((10, 10, 30, 30), class_id=1)], stamp_ns=0, frame_index=0)
    assert ids(tracker.update([instance((10, 10, 30, 30), class_id=2)], stamp_ns=1, frame_index=1)) == [2]


def test_unmatched_detections_are_born_in_detection_order():
    tracker = Tracker(CAR)
    tracker.update([instance((0, 0, 5, 5))], stamp_ns=0, frame_index=0)
    tracked = tracker.update(
        [instance((60, 30, 70, 40), (90.0, 0.0)), instance((0, 0, 5, 5)), instance((80, 40, 90, 50), (-90.0, 0.0))],
        stamp_ns=1, frame_index=1,
    )
    assert ids(tracked) == [2, 1, 3]


def test_cues_are_pluggable():
    class RightwardMotionCue:
        """Prefers detections to the right of the track's last box."""

        name, weight = "rightward", 1.0

        def similarity(self, detections, tracks, context):
            return np.array([[1.0 if d.bbox[0] > decode_rle(t.rle).nonzero()[1].min() else -1.0 for t in tracks] for d in detections])

    tracker = Tracker(config(threshold=0.0), cues=[RightwardMotionCue()])
    tracker.update([instance((10, 10, 20, 20))], stamp_ns=0, frame_index=0)
    assert ids(tracker.update([instance((5, 10, 15, 20))], stamp_ns=1, frame_index=1)) == [2]
    assert ids(tracker.update([instance((7, 10, 17, 20))], stamp_ns=2, frame_index=2)) == [2]  # right of 2, left of 1
    assert [c.name for c in Tracker(CAR).cues] == ["embedding", "mask_iou"]
    assert isinstance(Tracker(config({"flow_iou": {"weight": 1.0}})).cues[-1], FlowIoUCue)


def test_flow_cue_follows_a_fast_object():
    flow = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    flow[..., 0] = 30.0  # everything moved 30 px right
    cues = [EmbeddingCue(weight=0.0, offset=0.0), MaskIoUCue(weight=1.0), FlowIoUCue(weight=1.0)]
    before, after = instance((5, 10, 25, 30)), instance((35, 10, 55, 30))
    with_flow = Tracker(config(threshold=0.5), cues=cues)
    with_flow.update([before], stamp_ns=0, frame_index=0)
    assert ids(with_flow.update([after], stamp_ns=1, frame_index=1, flow=flow)) == [1]
    without_flow = Tracker(config(threshold=0.5), cues=cues)
    without_flow.update([before], stamp_ns=0, frame_index=0)
    assert ids(without_flow.update([after], stamp_ns=1, frame_index=1)) == [2]


def test_warp_mask_moves_pixels_and_drops_those_leaving_the_image():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 7:9] = True
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, 1.0
    warped = warp_mask(mask, flow)
    assert warped.sum() == 2 and warped[3:5, 9].all()


def test_restart_ids_starts_a_sequence_at_one():
    tracker = Tracker(CAR)
    tracker.update([instance((10, 10, 30, 30)), instance((50, 10, 70, 30), (90.0, 0.0))], stamp_ns=0, frame_index=0)
    tracker.reset()
    assert ids(tracker.update([instance((10, 10, 30, 30))], stamp_ns=1, frame_index=1)) == [3]
    tracker.reset(restart_ids=True)
    assert ids(tracker.update([instance((10, 10, 30, 30))], stamp_ns=2, frame_index=2)) == [1]


def test_warping_an_rle_equals_warping_its_decoded_mask():
    from mots_ros.cues.flow_iou import warp_rle

    rng = np.random.default_rng(3)
    for _ in range(50):
        mask = rng.random((HEIGHT, WIDTH)) < 0.2
        flow = rng.normal(0, 6, (HEIGHT, WIDTH, 2)).astype(np.float32)
        assert (decode_rle(warp_rle(encode_rle(mask), flow)) == warp_mask(mask, flow)).all()
