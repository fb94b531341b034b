import numpy as np
import pytest

from mots_ros.datasets import (
    MotsRecord,
    SeqmapEntry,
    find_sequences,
    instance_map_from_records,
    list_frames,
    read_instance_png,
    read_instance_png_folder,
    read_mots_txt,
    read_seqmap,
    records_from_instance_map,
    write_instance_png,
    write_mots_txt,
    write_seqmap,
)
from mots_ros.errors import FormatError
from mots_ros.masks import decode_rle, encode_rle


def _records(rng):
    id_map = np.zeros((30, 40), np.int32)
    id_map[2:10, 3:12], id_map[15:28, 20:35], id_map[0:4, 30:40] = 1001, 2002, 10000
    return id_map, records_from_instance_map(7, id_map)


def test_txt_round_trip(tmp_path, rng):
    id_map, records = _records(rng)
    assert sorted((r.track_id, r.class_id) for r in records) == [(1001, 1), (2002, 2), (10000, 10)]
    write_mots_txt(tmp_path / "0001.txt", records)
    lines = (tmp_path / "0001.txt").read_text().splitlines()
    assert lines[0].split()[:5] == ["7", "1001", "1", "30", "40"]
    again = read_mots_txt(tmp_path / "0001.txt")
    assert [(r.frame, r.track_id, r.class_id, r.rle["counts"]) for r in again] == [
        (r.frame, r.track_id, r.class_id, r.rle["counts"]) for r in records
    ]
    np.testing.assert_array_equal(instance_map_from_records(again, 30, 40), id_map)


def test_instance_png_round_trip(tmp_path, rng):
    id_map, _ = _records(rng)
    write_instance_png(tmp_path / "instances" / "0001" / "000007.png", id_map)
    np.testing.assert_array_equal(read_instance_png(tmp_path / "instances" / "0001" / "000007.png"), id_map)
    records = read_instance_png_folder(tmp_path / "instances" / "0001")
    assert {r.track_id for r in records} == {1001, 2002, 10000} and {r.frame for r in records} == {7}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("0 1 1 10 10", "expected 6 fields"),
        ("a 1 1 10 10 X", "must be integers"),
        ("0 1 3 10 10 X", "class id 3"),
        ("0 1 1 0 10 X", "empty"),
        ("0 1 1 10 10 abc", "malformed RLE"),
        ("0 1 1 10 10 " + "0" * 5, "malformed RLE"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, problem):
    good = f"0 5 1 10 10 {encode_rle(np.zeros((10, 10), bool))['counts'].decode()}"
    path = tmp_path / "bad.txt"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(FormatError, match=f"{path}:3: .*{problem}"):
        read_mots_txt(path)


def test_duplicate_ids_and_overlaps_are_refused(tmp_path):
    a, b = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    a[0:5, 0:5], b[4:8, 4:8] = True, True
    ra, rb = encode_rle(a)["counts"].decode(), encode_rle(b)["counts"].decode()
    (tmp_path / "dup.txt").write_text(f"0 1 1 10 10 {ra}\n0 1 1 10 10 {rb}\n")
    with pytest.raises(FormatError, match="dup.txt:2: track id 1 appears twice in frame 0 \\(first at line 1\\)"):
        read_mots_txt(tmp_path / "dup.txt")
    (tmp_path / "overlap.txt").write_text(f"0 1 1 10 10 {ra}\n0 2 1 10 10 {rb}\n")
    with pytest.raises(FormatError, match="overlap.txt:2: mask of id 2 overlaps id 1 \\(line 1\\)"):
        read_mots_txt(tmp_path / "overlap.txt")


def test_layout_discovery_and_frame_listing(tmp_path):
    for seq in ("0002", "0005"):
        (tmp_path / "images" / seq).mkdir(parents=True)
        for frame in (2, 0, 10):
            (tmp_path / "images" / seq / f"{frame:06d}.png").write_bytes(b"")
        (tmp_path / "images" / seq / "notes.txt").write_text("ignored")
    (tmp_path / "instances_txt").mkdir()
    (tmp_path / "instances_txt" / "0005.txt").write_text("")
    sequences = find_sequences(tmp_path)
    assert [s.name for s in sequences] == ["0002", "0005"]
    assert sequences[0].annotations is None and sequences[1].annotations.name == "0005.txt"
    assert [f for f, _ in list_frames(tmp_path / "images" / "0002")] == [0, 2, 10]
    assert find_sequences(tmp_path / "images" / "0002")[0].name == "0002"  # a bare image folder
    with pytest.raises(FormatError, match="no images"):
        list_frames(tmp_path / "instances_txt")


def test_seqmap_round_trip_and_errors(tmp_path):
    write_seqmap(tmp_path / "a.seqmap", [SeqmapEntry("0002", 0, 232), SeqmapEntry("0005", 301, 400)])
    assert (tmp_path / "a.seqmap").read_text().splitlines()[0] == "0002 empty 000000 000232"
    assert read_seqmap(tmp_path / "a.seqmap")[1] == SeqmapEntry("0005", 301, 400)
    (tmp_path / "b.seqmap").write_text("0002 empty 10 5\n")
    with pytest.raises(FormatError, match="b.seqmap:1: last frame 5 is before first frame 10"):
        read_seqmap(tmp_path / "b.seqmap")


def test_real_mots20_annotations_read_cleanly(mots20):
    records = read_mots_txt(mots20 / "instances_txt" / "0005.txt")
    assert len(records) == 3648 and min(r.frame for r in records) == 1
    ignore = [r for r in records if r.is_ignore]
    assert ignore and all(r.track_id == 10000 for r in ignore)
    assert decode_rle(records[0].rle).shape == (480, 640)
    assert isinstance(records[0], MotsRecord)
