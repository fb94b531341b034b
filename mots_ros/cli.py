"""The ``mots-ros`` command line: thin argparse wrappers over the library.

Every subcommand is ``mots-ros <name> --help``-documented. Errors that mots_ros raises on purpose
(bad files, configs, inputs) are printed as one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from mots_ros.errors import MotsError

logger = logging.getLogger("mots_ros")


def _add_config_arguments(parser: argparse.ArgumentParser, *, default_preset: str = "car") -> None:
    parser.add_argument("--preset", choices=("car", "pedestrian"), default=default_preset, help="published constants to start from")
    parser.add_argument("--config", type=Path, help="YAML config / ROS params file applied over the preset")
    parser.add_argument("--se-weights", help="SpatialEmbedding checkpoint (default: the shipped model)")
    parser.add_argument("--tracker-weights", help="PointTrack embedding checkpoint (default: the shipped model)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"), help="inference backend")
    parser.add_argument("--threads", type=int, help="CPU threads for inference")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config value, e.g. --set tracker.max_age=10 (repeatable)",
    )


def _config_from_args(args: argparse.Namespace):
    import yaml

    from mots_ros.config import load_config

    config = load_config(args.config, preset_name=args.preset)
    overrides = {}
    if args.se_weights:
        overrides["segmentation.weights"] = args.se_weights
    if args.tracker_weights:
        overrides["embedding.weights"] = args.tracker_weights
    if args.backend:
        overrides["inference.backend"] = args.backend
    if args.threads is not None:
        overrides["inference.num_threads"] = args.threads
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise MotsError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return config.replace(**overrides) if overrides else config


def cmd_track(args: argparse.Namespace) -> int:
    from mots_ros.datasets import write_mots_txt
    from mots_ros.offline import iterate_frames, track_sequence
    from mots_ros.pipeline import MotsPipeline

    config = _config_from_args(args)
    pipeline = MotsPipeline.from_config(config)
    on_result = None
    if args.overlay:
        on_result = _overlay_writer(args.overlay)
    records = track_sequence(
        pipeline, iterate_frames(args.images, args.first, args.last), fps=args.fps, on_result=on_result, progress=True
    )
    write_mots_txt(args.out, records)
    tracks = len({r.track_id for r in records})
    print(f"wrote {len(records)} masks of {tracks} tracks to {args.out}")
    return 0


def _overlay_writer(folder: Path):
    import cv2

    from mots_ros.overlay import draw_overlay

    folder.mkdir(parents=True, exist_ok=True)

    def write(frame, image_rgb, result):
        cv2.imwrite(str(folder / f"{frame:06d}.jpg"), draw_overlay(image_rgb, result)[..., ::-1])

    return write


def cmd_oracle(args: argparse.Namespace) -> int:
    from mots_ros.datasets import SeqmapEntry, find_sequences, list_frames, write_seqmap
    from mots_ros.evaluation import evaluate, save_result
    from mots_ros.offline import track_dataset
    from mots_ros.pipeline import MotsPipeline

    config = _config_from_args(args)
    sequences = [s for s in find_sequences(args.data) if not args.sequences or s.name in args.sequences]
    if not sequences:
        raise MotsError(f"{args.data}: none of the sequences {args.sequences} found")
    pipeline = MotsPipeline.from_config(config, segment=False)
    args.out.mkdir(parents=True, exist_ok=True)
    track_dataset(pipeline, sequences, args.out, oracle=True, first=args.first, last=args.last, fps=args.fps, progress=True)
    entries = []
    for sequence in sequences:
        frames = [f for f, _ in list_frames(sequence.image_dir)]
        first = args.first if args.first is not None else frames[0]
        last = args.last if args.last is not None else frames[-1]
        entries.append(SeqmapEntry(sequence.name, first, last))
    seqmap = args.out / "evaluated.seqmap"
    write_seqmap(seqmap, entries)
    result = evaluate(args.data, args.out, seqmap=seqmap)
    save_result(result, args.out / "metrics.json")
    print(result.table())
    print(f"results and metrics.json in {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mots_ros.evaluation import evaluate, save_result

    result = evaluate(args.gt, args.results, seqmap=args.seqmap, classes=args.classes)
    print(result.table())
    out = args.json or Path(args.results) / "metrics.json"
    save_result(result, out)
    print(f"metrics written to {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mots_ros.benchmark import run_benchmark

    report = run_benchmark(threads=args.threads, repeats=args.repeats, out=args.out, quick=args.quick)
    print(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mots-ros", description="Multi-object tracking and segmentation for ROS 2")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    track = sub.add_parser("track", help="track an image folder offline and write KITTI MOTS txt")
    track.add_argument("--images", type=Path, required=True, help="folder of images named by frame number")
    track.add_argument("--out", type=Path, required=True, help="result txt file")
    track.add_argument("--overlay", type=Path, help="folder for overlay JPEGs")
    track.add_argument("--fps", type=float, default=10.0, help="frame rate, for stamps (default 10)")
    track.add_argument("--first", type=int, help="first frame number to track")
    track.add_argument("--last", type=int, help="last frame number to track")
    _add_config_arguments(track)
    track.set_defaults(handler=cmd_track)

    oracle = sub.add_parser("oracle", help="track ground-truth masks with ids removed (association only) and score")
    oracle.add_argument("--data", type=Path, required=True, help="dataset root with images/ and instances_txt/")
    oracle.add_argument("--out", type=Path, required=True, help="folder for <seq>.txt results and metrics.json")
    oracle.add_argument("--sequences", nargs="*", help="sequence names (default: all)")
    oracle.add_argument("--first", type=int, help="first frame number")
    oracle.add_argument("--last", type=int, help="last frame number")
    oracle.add_argument("--fps", type=float, default=10.0, help="frame rate, for stamps")
    _add_config_arguments(oracle, default_preset="pedestrian")
    oracle.set_defaults(handler=cmd_oracle)

    evaluation = sub.add_parser("eval", help="score results with TrackEval (HOTA, sMOTSA, IDF1, ...)")
    evaluation.add_argument("--gt", type=Path, required=True, help="ground-truth folder (instances_txt/<seq>.txt or <seq>.txt)")
    evaluation.add_argument("--results", type=Path, required=True, help="folder of <seq>.txt results")
    evaluation.add_argument("--seqmap", type=Path, help="sequences and frame ranges to score")
    evaluation.add_argument("--classes", nargs="*", choices=("car", "pedestrian"), help="classes (default: those in the GT)")
    evaluation.add_argument("--json", type=Path, help="where to write the metrics JSON (default: <results>/metrics.json)")
    evaluation.set_defaults(handler=cmd_eval)

    bench = sub.add_parser("bench", help="per-stage CPU latency on a synthetic 375x1242 frame with 10 instances")
    bench.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="thread counts to measure")
    bench.add_argument("--repeats", type=int, default=20, help="timed runs per stage")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/latest.json"), help="JSON output")
    bench.add_argument("--quick", action="store_true", help="few repeats, for smoke tests")
    bench.set_defaults(handler=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except MotsError as err:
        print(f"mots-ros {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
