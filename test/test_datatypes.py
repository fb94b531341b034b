"""The plain records: lazily decoded masks, class names, and id images with or without an index map."""

import numpy as np

from mots_ros.datatypes import FrameResult, Instance, TrackedInstance, TrackState
from mots_ros.masks import encode_rle


def two_tracks(with_map: bool) -> FrameResult:
    labels = np.zeros((6, 8), np.int32)
    labels[1:3, 1:4], labels[4:6, 5:8] = 1, 2
    instances = tuple(
        TrackedInstance(track_id, TrackState.CONFIRMED,
                        Instance(encode_rle(labels == i + 1), (0, 0, 1, 1), class_id=class_id, score=0.5))
        for i, (track_id, class_id) in enumerate([(70000, 1), (3, 7)])
    )
    return FrameResult(0, None, 6, 8, 0, instances, instance_map=labels if with_map else None)


def test_id_images_agree_with_and_without_the_index_map_and_wrap_above_65535():
    with_map, without = two_tracks(True).id_image(), two_tracks(False).id_image()
    np.testing.assert_array_equal(with_map, without)
    assert with_map.dtype == np.uint16 and set(np.unique(with_map)) == {0, 70000 & 0xFFFF, 3}


def test_tracked_instances_expose_their_instance():
    first, second = two_tracks(True).instances
    assert first.class_name == "car" and second.class_name == "unknown"
    assert first.mask.sum() == 6 and first.mask.dtype == bool and first.embedding.size == 0
