"""``mots-ros demo``: a synthetic drive (or a real MOTS sequence) through the real node, end to end.

1. Render a synthetic driving sequence (or take ``--data``), and write it as a rosbag2.
2. Start ``mots_node`` (``mots-ros run``, replay mode) and ``mots-ros record`` in their own processes,
   on shared-memory DDS in a random domain, and play the bag into the node frame by frame.
3. Score the recorded tracks with TrackEval, and write an overlay video, the metrics as JSON and
   one PNG plot (a timeline per track plus the headline metrics).

The demo only orchestrates processes; it never imports rclpy itself.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from mots_ros.config import load_config
from mots_ros.datasets import MotsRecord, find_sequences, list_frames, read_image_rgb, read_mots_txt, records_by_frame
from mots_ros.datatypes import CLASS_NAMES
from mots_ros.errors import MotsError
from mots_ros.processes import ChildProcess, dds_environment, package_file

logger = logging.getLogger(__name__)

DEMO_SEED = 2026  # not among the training (100-123) or evaluation (900-903) seeds
HEADLINE = ("HOTA", "DetA", "AssA", "sMOTSA", "MOTSA", "IDS", "IDF1")


def run_demo(out: Path, *, data: Path | None = None, sequence: str | None = None, frames: int = 80,
             first: int | None = None, params_file: Path | None = None, fps: float = 10.0,
             seed: int = DEMO_SEED) -> dict:
    """Runs the whole demo; returns the paths of its outputs and the headline metrics."""
    from mots_ros.bags import images_to_bag
    from mots_ros.evaluation import evaluate, save_result

    started = time.monotonic()
    out = Path(out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    given_data = data is not None
    if data is None:
        from mots_ros.synthetic.driving import DrivingConfig, write_sequence

        data, sequence = out / "data", "0000"
        print(f"[demo] rendering a synthetic drive: {frames} frames of 1242x375 (seed {seed})", flush=True)
        write_sequence(data, sequence, DrivingConfig(frames=frames, seed=seed, fps=fps))
    chosen = [s for s in find_sequences(data) if sequence is None or s.name == sequence]
    if not chosen:
        raise MotsError(f"{data}: no sequence {sequence}")
    sequence, image_dir = chosen[0].name, chosen[0].image_dir
    frame_numbers = [f for f, _ in list_frames(image_dir) if first is None or f >= first][: frames if given_data else None]
    if not frame_numbers:
        raise MotsError(f"{image_dir}: no frames from {first}")
    first, last = frame_numbers[0], frame_numbers[-1]
    bag = out / "bag"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    images_to_bag(image_dir, bag, fps=fps, sequence=sequence, first=first, last=last)
    print(f"[demo] wrote the bag {bag} ({len(frame_numbers)} frames)", flush=True)

    params_file = params_file or package_file("config", "car.yaml")
    results = out / "results"
    results.mkdir(exist_ok=True)
    env = dds_environment()
    node = ChildProcess("node", ["run", "--params-file", str(params_file), "--namespace", "camera",
                           "--ros-args", "-p", "node.mode:=replay"], logs, env)
    recorder = player = None
    try:
        node.wait_for("active:", 120)
        print("[demo] mots_node is active; replaying the bag through it", flush=True)
        recorder = ChildProcess("record", ["record", "--topic", "/camera/tracks", "--fps", str(fps), "--out",
                                     str(results / f"{sequence}.txt"), "--frames", str(len(frame_numbers)),
                                     "--idle-timeout", "60", "--timeout", "1800"], logs, env)
        recorder.wait_for("ready:", 60)
        player = ChildProcess("replay", ["bag", "replay", str(bag), "--fast", "--wait-for-tracks", "/camera/tracks",
                                   "--topics", "/camera/image", "/camera/camera_info"], logs, env)
        total = len(frame_numbers)
        player.wait_reporting(1800, "progress:", lambda line: print(
            f"[demo] {line.split()[1]}/{total} frames through the node", flush=True))
        recorder.wait(120)
    finally:
        for child in (player, recorder, node):
            if child is not None:
                child.stop()

    from mots_ros.datasets import SeqmapEntry, write_seqmap

    write_seqmap(results / "demo.seqmap", [SeqmapEntry(sequence, first, last)])
    # Score the class the node segments; the ground truth may hold others it was never asked to find.
    class_name = CLASS_NAMES[load_config(params_file).segmentation.class_id]
    result = evaluate(data, results, seqmap=results / "demo.seqmap", classes=[class_name])
    metrics_path = out / "metrics.json"
    save_result(result, metrics_path)
    records = read_mots_txt(results / f"{sequence}.txt")
    video = write_overlay_video(out / "overlay.mp4", image_dir, records, fps, first, last)
    plot = write_timeline_plot(out / "tracks.png", records, result, first, last)
    elapsed = time.monotonic() - started
    print(result.table())
    print(f"\n[demo] finished in {elapsed:.0f} s. Outputs in {out}:")
    for path in (video, metrics_path, plot, results / f"{sequence}.txt", logs):
        print(f"  {path}")
    (out / "summary.json").write_text(json.dumps({"seconds": elapsed, "frames": len(frame_numbers)}, indent=2))
    return {"video": video, "metrics": metrics_path, "plot": plot, "seconds": elapsed}


def write_overlay_video(path: Path, image_dir: Path, records: list[MotsRecord], fps: float, first: int, last: int) -> Path:
    """An mp4 (mp4v) of every frame with its tracked masks, boxes and ids."""
    import cv2

    from mots_ros.overlay import draw_records

    by_frame = records_by_frame(records)
    writer = None
    for frame, image_path in list_frames(image_dir):
        if not first <= frame <= last:
            continue
        image = draw_records(read_image_rgb(image_path), by_frame.get(frame, []))
        cv2.putText(image, f"frame {frame}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (image.shape[1], image.shape[0]))
        writer.write(image[..., ::-1])
    if writer is not None:
        writer.release()
    return path


def write_timeline_plot(path: Path, records: list[MotsRecord], result, first: int, last: int) -> Path:
    """One PNG: when each track id was seen (a bar per id, in its overlay colour) and the headline metrics."""
    import cv2

    from mots_ros.overlay import track_colour

    ids = sorted({r.track_id for r in records})
    width, row, left, top = 1100, 14, 70, 110
    height = top + max(1, len(ids)) * row + 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    span = max(1, last - first)
    x_of = lambda frame: int(left + (frame - first) / span * (width - left - 20))  # noqa: E731
    cv2.putText(canvas, "track timeline (one row per track id) and metrics", (left, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (0, 0, 0), 1, cv2.LINE_AA)
    for column, (class_name, values) in enumerate(result.scores.get("COMBINED", {}).items()):
        text = f"{class_name}: " + "  ".join(
            f"{k} {values[k]:.1f}" if k != "IDS" else f"IDS {int(values[k])}" for k in HEADLINE)
        cv2.putText(canvas, text, (left, 52 + 22 * column), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
    frames_of = {i: sorted(r.frame for r in records if r.track_id == i) for i in ids}
    for index, track_id in enumerate(ids):
        y = top + index * row
        cv2.putText(canvas, str(track_id), (10, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        colour = track_colour(track_id)[::-1]
        for frame in frames_of[track_id]:
            cv2.rectangle(canvas, (x_of(frame), y + 2), (x_of(frame + 1) - 1, y + row - 3), colour, -1)
    axis_y = top + max(1, len(ids)) * row + 8
    cv2.line(canvas, (left, axis_y), (width - 20, axis_y), (0, 0, 0), 1)
    for frame in np.linspace(first, last, 6).astype(int):
        cv2.putText(canvas, str(frame), (x_of(frame) - 10, axis_y + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(canvas, "frame", (width // 2, axis_y + 38), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), canvas)
    return path
