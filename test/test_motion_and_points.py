"""The motion cue (CenterTrack), the point cue (SAM-PT), greedy assignment, embedding averages and time jumps."""

import dataclasses

import numpy as np
import pytest

from mots_ros.config import TrackerConfig, preset
from mots_ros.cues import create_cues
from mots_ros.cues.points import k_medoids
from mots_ros.datatypes import Instance
from mots_ros.errors import ConfigError
from mots_ros.masks import encode_rle, rle_contains
from mots_ros.tracker import Tracker

HEIGHT, WIDTH = 80, 160
SECOND = 1_000_000_000


def box(x0, y0=30, width=12, height=20, embedding=(0.0, 0.0)):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0 : y0 + height, x0 : x0 + width] = True
    return Instance(rle=encode_rle(mask), bbox=(x0, y0, x0 + width - 1, y0 + height - 1), class_id=2, score=1.0,
                    embedding=np.asarray(embedding, np.float32))


def tracker_with(cues, **changes):
    return Tracker(dataclasses.replace(TrackerConfig(), cues=cues, threshold=0.0, max_age_frames=30, **changes))


def ids(tracked):
    return [t.track_id for t in tracked]


def run(tracker, detections_per_frame, step_ns=SECOND // 10, **per_frame):
    """Feeds frames 0, 1, ...; returns each frame's ids."""
    return [ids(tracker.update(dets, stamp_ns=i * step_ns, frame_index=i, **{k: v[i] for k, v in per_frame.items()}))
            for i, dets in enumerate(detections_per_frame)]


# ---------------------------------------------------------------------------------------------- motion
def test_a_lost_track_coasts_on_its_velocity_and_is_found_where_it_went():
    # 8 px per frame to the right, hidden for two frames: the last mask no longer overlaps.
    frames = [[box(10)], [box(18)], [], [], [box(42)]]
    assert run(tracker_with({"motion": {"weight": 1.0}}), frames) == [[1], [1], [], [], [1]]
    assert run(tracker_with({"mask_iou": {"weight": 1.0}}), frames) == [[1], [1], [], [], [2]]


def test_with_flow_the_prediction_follows_the_mean_flow_inside_the_mask():
    flow = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    flow[..., 0] = 30.0
    frames = [[box(10)], [box(40)]]
    assert run(tracker_with({"motion": {"weight": 1.0, "iou_share": 1.0}}), frames, flow=[None, flow])[-1] == [1]
    assert run(tracker_with({"motion": {"weight": 1.0, "iou_share": 1.0}}), frames, flow=[None, None])[-1] == [2]
    assert run(tracker_with({"motion": {"weight": 1.0, "iou_share": 1.0, "use_flow": False}}), frames,
               flow=[None, flow])[-1] == [2]


def test_the_gate_stops_appearance_from_reidentifying_a_track_where_motion_says_it_cannot_be():
    same_look = (1.0, 1.0)
    frames = [[box(10, embedding=same_look)], [box(120, embedding=same_look)]]
    appearance = {"embedding": {"weight": 1.0, "offset": 1.0}}
    assert run(tracker_with(appearance), frames)[-1] == [1]
    gated = {**appearance, "motion": {"weight": 1e-6, "gate": 2.0}}
    assert run(tracker_with(gated), frames)[-1] == [2]
    # The gate widens with the frames a track has been lost: 3 radii after 4 frames lost is within 2·√4.
    slow = [[box(10, embedding=same_look)], [], [], [], [box(10 + 3 * 15, embedding=same_look)]]
    assert run(tracker_with(gated), slow)[-1] == [1]


def test_motion_similarity_is_one_for_a_perfect_prediction_and_falls_with_normalised_distance():
    (cue,) = create_cues({"motion": {"weight": 1.0, "iou_share": 0.0}})
    tracker = Tracker(TrackerConfig(cues={}, threshold=0.0), cues=[cue])
    tracker.update([box(10)], stamp_ns=0, frame_index=0)
    context = tracker_context(tracker, 1)
    cue.start_frame(tracker.tracks, context)
    radius = np.sqrt(12 * 20)
    similarity = cue.similarity([box(10), box(10 + int(radius // 2))], tracker.tracks, context)
    assert similarity[0, 0] == pytest.approx(1.0)
    assert similarity[1, 0] == pytest.approx(1 - int(radius // 2) / radius)


def tracker_context(tracker, serial, **fields):
    from mots_ros.cues import FrameContext

    return FrameContext(serial, stamp_ns=serial, **fields)


# ---------------------------------------------------------------------------------------------- assignment
def test_greedy_assignment_takes_the_most_similar_pair_first():
    cues = {"embedding": {"weight": 1.0, "offset": 10.0}}
    first = [box(0, embedding=(0.0, 0.0)), box(60, embedding=(2.0, 0.0))]
    second = [box(0, embedding=(1.4, 0.0)), box(60, embedding=(2.9, 0.0))]
    assert run(tracker_with(cues), [first, second])[-1] == [1, 2]  # Hungarian: 8.6 + 9.1 beats 9.4 + 7.1
    assert run(tracker_with(cues, assignment="greedy"), [first, second])[-1] == [2, 1]  # greedy: 9.4 first


# ---------------------------------------------------------------------------------------------- memory
def test_embedding_average_moves_by_one_minus_ema_per_match():
    tracker = tracker_with({"embedding": {"weight": 1.0, "offset": 10.0, "ema": 0.75}})
    run(tracker, [[box(0, embedding=(0.0, 0.0))], [box(0, embedding=(4.0, 0.0))], [box(0, embedding=(4.0, 0.0))]])
    assert tracker.tracks[0].cue_state["embedding"] == pytest.approx([1.75, 0.0])  # 0 -> 1 -> 1.75
    plain = tracker_with({"embedding": {"weight": 1.0, "offset": 10.0}})
    run(plain, [[box(0, embedding=(0.0, 0.0))], [box(0, embedding=(4.0, 0.0))]])
    assert "embedding" not in plain.tracks[0].cue_state  # ema 0: the published last-match embedding


def test_a_time_jump_keeps_tracks_but_breaks_motion():
    tracker = tracker_with({"motion": {"weight": 1.0, "iou_share": 0.0}}, time_jump_s=1.0)
    run(tracker, [[box(10)], [box(24)]])  # 14 px per frame
    state = tracker.tracks[0].cue_state["motion"]
    assert state.velocity_x == pytest.approx(14.0)
    tracked = tracker.update([box(24)], stamp_ns=5 * SECOND, frame_index=2)  # 4.9 s later, same place
    assert ids(tracked) == [1]
    assert tracker.tracks[0].cue_state["motion"].velocity_x == pytest.approx(0.0)
    assert not tracker.continues(20 * SECOND) and tracker.continues(5 * SECOND + SECOND // 2)


def test_cue_options_out_of_range_are_config_errors_naming_the_cue():
    for cues, text in [({"motion": {"weight": 1.0, "iou_share": 2.0}}, "tracker.cues.motion: iou_share"),
                       ({"points": {"weight": 1.0, "propagation": "magic"}}, "tracker.cues.points: propagation"),
                       ({"embedding": {"weight": 1.0, "offset": 1.0, "ema": 1.0}}, "tracker.cues.embedding: ema")]:
        with pytest.raises(ConfigError, match=text):
            create_cues(cues)


def test_assignment_is_a_checked_config_key_and_published_presets_keep_hungarian():
    assert preset("pedestrian-published").tracker.assignment == "hungarian"
    with pytest.raises(ConfigError, match="tracker.assignment"):
        preset("pedestrian").replace(**{"tracker.assignment": "random"})


# ---------------------------------------------------------------------------------------------- points
def textured_frames(shifts, seed=0):
    """A smooth random texture moved right by each shift (px), as RGB frames."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH + 100), dtype=np.uint8), (0, 0), 1.5)
    frames = []
    for shift in shifts:
        gray = texture[:, 50 - shift : 50 - shift + WIDTH]
        frames.append(np.repeat(gray[..., None], 3, axis=2).copy())
    return frames


def test_k_medoids_picks_distinct_points_inside_the_mask():
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:50, 20:40] = True
    rows, cols = np.nonzero(mask)
    points = k_medoids(np.stack([cols, rows], 1).astype(np.float32), 8)
    assert len(np.unique(points, axis=0)) == 8
    assert rle_contains(encode_rle(mask), points[:, 0], points[:, 1]).all()


def test_points_follow_the_image_and_find_a_track_after_a_short_occlusion():
    images = textured_frames([0, 6, 12, 18])
    # The object is 10 px wide and moves 6 px per frame; hidden in frame 2, back at +18 px in frame 3.
    frames = [[box(40, width=10)], [box(46, width=10)], [], [box(58, width=10)]]
    points = {"points": {"weight": 1.0, "negative_points": 0}}
    assert run(tracker_with(points), frames, image_rgb=images) == [[1], [1], [], [1]]
    assert run(tracker_with({"mask_iou": {"weight": 1.0}}), frames, image_rgb=images)[-1] == [2]


def test_negative_points_vote_against_a_neighbour_that_swallowed_the_ring():
    images = textured_frames([0, 0])
    (cue,) = create_cues({"points": {"weight": 1.0, "negative_points": 8}})
    tracker = Tracker(TrackerConfig(cues={}, threshold=0.0), cues=[cue])
    tracker.update([box(40, width=10)], stamp_ns=0, frame_index=0, image_rgb=images[0])
    context = tracker_context(tracker, 2, image_rgb=images[1], previous_image_rgb=images[0])
    cue.start_frame(tracker.tracks, context)
    exact, bloated = box(40, width=10), box(20, y0=10, width=60, height=60)
    similarity = cue.similarity([exact, bloated], tracker.tracks, context)
    assert similarity[0, 0] == pytest.approx(1.0)
    assert similarity[1, 0] < 0.5  # all positives inside, but so are most negatives


def test_points_that_fail_the_forward_backward_check_are_dropped():
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(2)]
    (cue,) = create_cues({"points": {"weight": 1.0}})
    tracker = Tracker(TrackerConfig(cues={}, threshold=0.0), cues=[cue])
    tracker.update([box(40)], stamp_ns=0, frame_index=0, image_rgb=noise[0])
    cue.start_frame(tracker.tracks, tracker_context(tracker, 2, image_rgb=noise[1], previous_image_rgb=noise[0]))
    assert tracker.tracks[0].cue_state["points"].positive_alive.sum() <= 2  # unrelated frames: nothing comes back
