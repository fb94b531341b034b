"""Overlays: each track's fixed colour tints exactly its mask, with a box and its id."""

import numpy as np

from mots_ros.datasets import MotsRecord
from mots_ros.datatypes import FrameResult, Instance, TrackedInstance, TrackState
from mots_ros.masks import encode_rle
from mots_ros.overlay import draw_overlay, draw_records, track_colour


def result_with_one_track(track_id=7):
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    instance = Instance(rle=encode_rle(mask), bbox=(20, 10, 39, 29), class_id=1, score=1.0)
    return mask, FrameResult(0, 0, 40, 60, 0, (TrackedInstance(track_id, TrackState.CONFIRMED, instance),))


def test_colours_are_stable_and_distinct():
    assert track_colour(3) == track_colour(3)
    assert len({track_colour(i) for i in range(1, 50)}) == 49


def test_the_mask_is_tinted_with_its_track_colour_and_the_rest_is_untouched():
    mask, result = result_with_one_track()
    image = np.full((40, 60, 3), 100, np.uint8)
    drawn = draw_overlay(image, result)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8 and (image == 100).all()  # a copy
    inside = drawn[20:28, 22:38].reshape(-1, 3)  # below the id label, inside the box outline
    expected = (np.full(3, 100.0) * 0.5 + np.array(track_colour(7)) * 0.5).astype(np.uint8)
    assert (inside == expected).all()
    assert (drawn[:, 45:] == 100).all()  # right of the box and its label
    assert (drawn[35:] == 100).all()


def test_records_draw_like_results_and_skip_ignore_regions():
    mask, result = result_with_one_track()
    image = np.full((40, 60, 3), 100, np.uint8)
    ignore = np.zeros_like(mask)
    ignore[0:5, 0:5] = True
    records = [MotsRecord(0, 7, 1, encode_rle(mask)), MotsRecord(0, 10000, 10, encode_rle(ignore))]
    np.testing.assert_array_equal(draw_records(image, records), draw_overlay(image, result))
