"""Annotated frames from KITTI MOTS / MOTSChallenge folders (real or synthetic) for training."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mots_ros.datasets import MotsRecord, find_sequences, read_annotations, read_image_rgb, records_by_frame
from mots_ros.errors import FormatError
from mots_ros.masks import decode_rle


def is_held_out_identity(sequence: str, track_id: int, fraction: float) -> bool:
    """Whether an identity is kept out of embedding training, to calibrate on people the network never saw.

    A stable hash of the bare sequence name (``"0009"``, whatever folder holds it) and the track
    id, so training and calibration pick the same identities in every run and on every machine.
    """
    name = sequence.rsplit("/", 1)[-1]
    return zlib.crc32(f"{name}/{track_id}".encode()) / 2**32 < fraction


@dataclass(frozen=True)
class AnnotatedFrame:
    sequence: str
    frame: int
    image_path: Path
    records: tuple[MotsRecord, ...]


def parse_selection(selection: str) -> tuple[str, int | None, int | None]:
    """``"0005"`` or ``"0005:1-300"`` to (sequence, first, last)."""
    name, _, frames = selection.partition(":")
    if not frames:
        return name, None, None
    first, sep, last = frames.partition("-")
    if not sep or not first.isdigit() or not last.isdigit():
        raise FormatError(f"sequence selection {selection!r} must look like NAME or NAME:FIRST-LAST")
    return name, int(first), int(last)


class AnnotatedDataset:
    """Every annotated frame of the selected sequences of one or more dataset roots.

    Args:
        roots: dataset folders (``images/<seq>/`` + ``instances_txt/`` or ``instances/``).
        selections: ``NAME`` or ``NAME:FIRST-LAST`` entries; default: every annotated sequence.
    """

    def __init__(self, roots: list[str | os.PathLike], selections: list[str] | None = None):
        wanted = [parse_selection(s) for s in selections] if selections else None
        self.frames: list[AnnotatedFrame] = []
        for root in roots:
            for sequence in find_sequences(root):
                if sequence.annotations is None:
                    continue
                ranges = [(first, last) for name, first, last in wanted if name == sequence.name] if wanted else [(None, None)]
                if not ranges:
                    continue
                by_frame = records_by_frame(read_annotations(sequence))
                images = {int(p.stem): p for p in sequence.image_dir.iterdir() if p.stem.isdigit()}
                for frame in sorted(images):
                    if any((first is None or frame >= first) and (last is None or frame <= last) for first, last in ranges):
                        self.frames.append(
                            AnnotatedFrame(f"{Path(root).name}/{sequence.name}", frame, images[frame], tuple(by_frame.get(frame, ())))
                        )
        if not self.frames:
            raise FormatError(f"no annotated frames found in {[str(r) for r in roots]} for {selections or 'any sequence'}")

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image_rgb, id_map)``; id_map holds ``class*1000+n`` values and 10000 for ignore."""
        item = self.frames[index]
        image = read_image_rgb(item.image_path)
        id_map = np.zeros(image.shape[:2], np.int32)
        for record in item.records:
            if (record.height, record.width) != image.shape[:2]:
                raise FormatError(f"{item.image_path}: mask size {record.height}x{record.width} differs from the image")
            id_map[decode_rle(record.rle)] = record.track_id if not record.is_ignore else 10000
        return image, id_map
