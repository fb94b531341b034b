"""KITTI MOTS and MOTSChallenge files: txt annotations, instance PNGs, image folders, seqmaps.

Txt lines are ``frame obj_id class_id height width rle`` (spec §9.1):

- ground truth uses ``obj_id = class_id * 1000 + n``; ignore regions are class 10, id 10000;
- tracker results use small track ids;
- KITTI MOTS frames start at 0, MOTSChallenge frames at 1 (the frame number is the image's
  file name either way);
- ``rle`` is the COCO compressed string of the column-major mask.

Dataset folders (both layouts)::

    <root>/images/<seq>/<frame:06d>.png|jpg
    <root>/instances_txt/<seq>.txt          (or instances/<seq>/<frame:06d>.png)
    <root>/seqmaps/*.seqmap                 (optional)
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mots_ros.datatypes import IGNORE_CLASS_ID, IGNORE_TRACK_ID
from mots_ros.errors import FormatError
from mots_ros.masks import encode_rle, merge_rles, rle_area, rle_from_string, rle_problem, rle_to_string

VALID_CLASS_IDS = (1, 2, IGNORE_CLASS_ID)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class MotsRecord:
    """One line of a MOTS txt file."""

    frame: int
    track_id: int
    class_id: int
    rle: dict

    @property
    def height(self) -> int:
        return int(self.rle["size"][0])

    @property
    def width(self) -> int:
        return int(self.rle["size"][1])

    @property
    def is_ignore(self) -> bool:
        return self.class_id == IGNORE_CLASS_ID


def read_mots_txt(path: str | os.PathLike, *, check_overlaps: bool = True) -> list[MotsRecord]:
    """Reads and checks a MOTS txt file.

    Checks each line's fields and RLE, class ids (1, 2, 10), duplicate ids within a frame and,
    unless ``check_overlaps`` is False, overlapping masks within a frame.

    Raises:
        FormatError: naming the file and the line (1-based) of the first problem.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read MOTS txt file ({err})") from err
    records = []
    seen: set[tuple[int, int]] = set()
    line_of: dict[tuple[int, int], int] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = _parse_line(line, f"{path}:{line_number}")
        key = (record.frame, record.track_id)
        if key in seen and not record.is_ignore:
            raise FormatError(
                f"{path}:{line_number}: track id {record.track_id} appears twice in frame {record.frame} "
                f"(first at line {line_of[key]})"
            )
        seen.add(key)
        line_of[key] = line_number
        records.append(record)
    if check_overlaps:
        for frame, frame_records in records_by_frame(records).items():
            _check_no_overlap(path, frame, frame_records, line_of)
    return records


def _parse_line(line: str, where: str) -> MotsRecord:
    fields = line.split()
    if len(fields) != 6:
        raise FormatError(f"{where}: expected 6 fields 'frame id class height width rle', got {len(fields)}")
    try:
        frame, track_id, class_id, height, width = (int(v) for v in fields[:5])
    except ValueError as err:
        raise FormatError(f"{where}: the first five fields must be integers ({err})") from err
    if frame < 0 or track_id < 0:
        raise FormatError(f"{where}: frame and id must be >= 0, got frame {frame}, id {track_id}")
    if class_id not in VALID_CLASS_IDS:
        raise FormatError(f"{where}: class id {class_id} is not one of {list(VALID_CLASS_IDS)}")
    if height <= 0 or width <= 0:
        raise FormatError(f"{where}: mask size {height}x{width} is empty")
    rle = rle_from_string(fields[5], height, width)
    problem = rle_problem(rle)
    if problem:
        raise FormatError(f"{where}: malformed RLE mask: {problem}")
    return MotsRecord(frame, track_id, class_id, rle)


def _check_no_overlap(path: Path, frame: int, frame_records: list[MotsRecord], line_of: dict) -> None:
    if len(frame_records) < 2:
        return
    sizes = {tuple(r.rle["size"]) for r in frame_records}
    if len(sizes) > 1:
        raise FormatError(f"{path}: frame {frame} mixes mask sizes {sorted(sizes)}")
    rles = [r.rle for r in frame_records]
    if rle_area(merge_rles(rles)) == sum(rle_area(r) for r in rles):
        return
    for i, a in enumerate(frame_records):
        for b in frame_records[i + 1 :]:
            if rle_area(merge_rles([a.rle, b.rle], intersect=True)) > 0:
                raise FormatError(
                    f"{path}:{line_of[(frame, b.track_id)]}: mask of id {b.track_id} overlaps id {a.track_id} "
                    f"(line {line_of[(frame, a.track_id)]}) in frame {frame}"
                )


def write_mots_txt(path: str | os.PathLike, records: list[MotsRecord]) -> None:
    """Writes records sorted by frame, in the order given within a frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: r.frame)
    with open(path, "w") as out:
        for r in ordered:
            out.write(f"{r.frame} {r.track_id} {r.class_id} {r.height} {r.width} {rle_to_string(r.rle)}\n")


def records_by_frame(records: list[MotsRecord]) -> dict[int, list[MotsRecord]]:
    grouped: dict[int, list[MotsRecord]] = defaultdict(list)
    for record in records:
        grouped[record.frame].append(record)
    return dict(grouped)


def instance_map_from_records(records: list[MotsRecord], height: int, width: int) -> np.ndarray:
    """``(H, W) int32`` map with pixel value ``obj_id`` (10000 for ignore regions), 0 elsewhere."""
    from mots_ros.masks import decode_rle

    id_map = np.zeros((height, width), np.int32)
    for record in records:
        if (record.height, record.width) != (height, width):
            raise FormatError(f"frame {record.frame}: mask size {record.height}x{record.width} is not {height}x{width}")
        id_map[decode_rle(record.rle)] = IGNORE_TRACK_ID if record.is_ignore else record.track_id
    return id_map


def records_from_instance_map(frame: int, id_map: np.ndarray) -> list[MotsRecord]:
    """Records of a KITTI MOTS instance PNG (value = class*1000 + n, 10000 = ignore)."""
    records = []
    for value in np.unique(id_map):
        if value == 0:
            continue
        class_id = IGNORE_CLASS_ID if value == IGNORE_TRACK_ID else int(value) // 1000
        records.append(MotsRecord(frame, int(value), class_id, encode_rle(id_map == value)))
    return records


def read_instance_png(path: str | os.PathLike) -> np.ndarray:
    """Reads a 16-bit KITTI MOTS instance PNG as ``(H, W) int32``."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FormatError(f"{path}: cannot read instance PNG")
    if image.ndim != 2:
        raise FormatError(f"{path}: instance PNG must be single-channel, got shape {image.shape}")
    return image.astype(np.int32)


def write_instance_png(path: str | os.PathLike, id_map: np.ndarray) -> None:
    """Writes a ``(H, W)`` map of values < 65536 as a 16-bit PNG."""
    import cv2

    if id_map.min() < 0 or id_map.max() > 65535:
        raise FormatError(f"{path}: instance ids must be in 0..65535 for a 16-bit PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), id_map.astype(np.uint16)):
        raise FormatError(f"{path}: cannot write instance PNG")


def read_instance_png_folder(folder: str | os.PathLike) -> list[MotsRecord]:
    """Records of every ``<frame>.png`` in a KITTI MOTS ``instances/<seq>`` folder."""
    return [r for frame, path in list_frames(folder, (".png",)) for r in records_from_instance_map(frame, read_instance_png(path))]


def list_frames(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[tuple[int, Path]]:
    """``(frame_number, path)`` of every image in ``folder`` named by its frame number, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"{folder}: image folder does not exist")
    frames = []
    for path in folder.iterdir():
        if path.suffix.lower() in suffixes and path.stem.isdigit():
            frames.append((int(path.stem), path))
    if not frames:
        raise FormatError(f"{folder}: no images named by frame number ({', '.join(suffixes)})")
    return sorted(frames)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB image from a PNG or JPEG file."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FormatError(f"{path}: cannot read image")
    return np.ascontiguousarray(bgr[..., ::-1])


@dataclass(frozen=True)
class SequenceFiles:
    """The files of one sequence of a dataset folder: its image folder and its annotations."""

    name: str
    image_dir: Path
    annotations: Path | None  # txt file or instance PNG folder


def find_sequences(root: str | os.PathLike) -> list[SequenceFiles]:
    """Sequences of a KITTI MOTS / MOTSChallenge folder (see the module docstring).

    ``root`` may also be a single image folder; it is then one sequence named after the folder.
    """
    root = Path(root)
    images = root / "images"
    if not images.is_dir():
        if root.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir()):
            return [SequenceFiles(root.name, root, None)]
        raise FormatError(f"{root}: expected an images/<seq>/ folder or a folder of numbered images")
    sequences = []
    for image_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        txt = root / "instances_txt" / f"{image_dir.name}.txt"
        pngs = root / "instances" / image_dir.name
        annotations = txt if txt.is_file() else pngs if pngs.is_dir() else None
        sequences.append(SequenceFiles(image_dir.name, image_dir, annotations))
    if not sequences:
        raise FormatError(f"{images}: no sequence folders")
    return sequences


def read_annotations(sequence: SequenceFiles) -> list[MotsRecord]:
    if sequence.annotations is None:
        raise FormatError(f"sequence {sequence.name} has no ground truth (instances_txt/ or instances/)")
    if sequence.annotations.is_dir():
        return read_instance_png_folder(sequence.annotations)
    return read_mots_txt(sequence.annotations)


@dataclass(frozen=True)
class SeqmapEntry:
    name: str
    first_frame: int
    last_frame: int


def read_seqmap(path: str | os.PathLike) -> list[SeqmapEntry]:
    """Reads ``<seq> empty <first:06d> <last:06d>`` lines (KITTI MOTS / MOTSChallenge seqmaps)."""
    path = Path(path)
    entries = []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise FormatError(f"{path}: cannot read seqmap ({err.strerror})") from err
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].lower() in ("name", "#"):
            continue
        if len(fields) != 4:
            raise FormatError(f"{path}:{number}: expected '<seq> empty <first> <last>', got {line!r}")
        try:
            first, last = int(fields[2]), int(fields[3])
        except ValueError as err:
            raise FormatError(f"{path}:{number}: first and last frame must be integers") from err
        if last < first:
            raise FormatError(f"{path}:{number}: last frame {last} is before first frame {first}")
        entries.append(SeqmapEntry(fields[0], first, last))
    if not entries:
        raise FormatError(f"{path}: seqmap lists no sequence")
    return entries


def write_seqmap(path: str | os.PathLike, entries: list[SeqmapEntry]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        for e in entries:
            out.write(f"{e.name} empty {e.first_frame:06d} {e.last_frame:06d}\n")
