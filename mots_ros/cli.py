"""The ``mots-ros`` command line: thin argparse wrappers over the library.

Every subcommand is ``mots-ros <name> --help``-documented. Errors that mots_ros raises on purpose
(bad files, configs, inputs) are printed as one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mots_ros.errors import MotsError

logger = logging.getLogger("mots_ros")


def _add_config_arguments(parser: argparse.ArgumentParser, *, default_preset: str = "car") -> None:
    from mots_ros.backends import BACKENDS
    from mots_ros.config import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                        help="settings to start from (*-published: the paper's constants)")
    parser.add_argument("--config", "--params-file", dest="config", type=Path,
                        help="YAML config or ROS params file, applied over the preset")
    parser.add_argument("--se-weights", help="SpatialEmbedding checkpoint (default: the shipped model)")
    parser.add_argument("--embedding-weights", help="PointTrack embedding checkpoint (default: the shipped model)")
    parser.add_argument("--tracker-weights", dest="deprecated_tracker_weights", help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=["auto", *BACKENDS.names()], help="inference backend")
    parser.add_argument("--threads", type=int, help="CPU threads for inference")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config value, e.g. --set tracker.max_age_frames=10 or "
             "--set tracker.cues.mask_iou.weight=1 (repeatable)",
    )


def _config_from_args(args: argparse.Namespace):
    from mots_ros.config import load_config

    config = load_config(args.config, preset_name=args.preset)
    overrides = {}
    if args.se_weights:
        overrides["segmentation.weights"] = args.se_weights
    if args.deprecated_tracker_weights:
        logger.warning("--tracker-weights is deprecated; use --embedding-weights")
        overrides["embedding.weights"] = args.deprecated_tracker_weights
    if args.embedding_weights:
        overrides["embedding.weights"] = args.embedding_weights
    if args.backend:
        overrides["inference.backend"] = args.backend
    if args.threads is not None:
        overrides["inference.num_threads"] = args.threads
    overrides.update(_set_overrides(args.set))
    return config.replace(**overrides) if overrides else config


def _set_overrides(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as config overrides (values read as YAML)."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise MotsError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def cmd_track(args: argparse.Namespace) -> int:
    from mots_ros.datasets import find_sequences, write_mots_txt
    from mots_ros.offline_tracking import iterate_frames, track_sequence
    from mots_ros.pipeline import MotsPipeline

    if (args.images is None) == (args.data is None):
        raise MotsError("give either --images (one sequence, --out is a txt file) or --data (all sequences, --out is a folder)")
    config = _config_from_args(args)
    pipeline = MotsPipeline.from_config(config)
    if args.images is not None:
        jobs = [(args.images, args.out, args.overlay)]
    else:
        jobs = [(s.image_dir, args.out / f"{s.name}.txt", args.overlay / s.name if args.overlay else None)
                for s in find_sequences(args.data)]
    for image_dir, out, overlay in jobs:
        records = track_sequence(pipeline, iterate_frames(image_dir, args.first, args.last), fps=args.fps,
                                 on_result=_overlay_writer(overlay) if overlay else None, progress=True)
        write_mots_txt(out, records)
        print(f"wrote {len(records)} masks of {len({r.track_id for r in records})} tracks to {out}")
    return 0


def _overlay_writer(folder: Path):
    import cv2

    from mots_ros.overlay import draw_overlay

    folder.mkdir(parents=True, exist_ok=True)

    def write(frame, image_rgb, result):
        cv2.imwrite(str(folder / f"{frame:06d}.jpg"), draw_overlay(image_rgb, result)[..., ::-1])

    return write


def cmd_oracle(args: argparse.Namespace) -> int:
    from mots_ros.offline_tracking import evaluate_oracle
    from mots_ros.pipeline import MotsPipeline

    pipeline = MotsPipeline.from_config(_config_from_args(args).replace(**{"segmentation.kind": "ground_truth"}))
    result = evaluate_oracle(pipeline, args.data, args.out, sequences=args.sequences, first=args.first, last=args.last,
                             fps=args.fps, progress=True)
    print(result.table())
    print(f"results and metrics.json in {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mots_ros.evaluation import evaluate, save_result

    if args.seqmap and (args.first is not None or args.last is not None):
        raise MotsError("give --seqmap or --first/--last, not both (the seqmap names each sequence's frames)")
    result = evaluate(args.gt, args.results, seqmap=args.seqmap, classes=args.classes, first=args.first, last=args.last)
    print(result.table())
    out = args.json or Path(args.results) / "metrics.json"
    save_result(result, out)
    print(f"metrics written to {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mots_ros.benchmark import run_benchmark
    from mots_ros.nodes.commands import message_serializer

    end_to_end = None
    if not args.no_node:
        import tempfile
        from functools import partial

        from mots_ros.soak import node_end_to_end

        end_to_end = partial(node_end_to_end, Path(tempfile.mkdtemp(prefix="mots_bench_node_")))
    report = run_benchmark(threads=args.threads, repeats=args.repeats, out=args.out, quick=args.quick,
                           serialize=message_serializer(), end_to_end=end_to_end, oracle_data=args.mots20)
    print(report)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from mots_ros.datasets import SeqmapEntry, write_seqmap
    from mots_ros.synthetic.driving import DrivingConfig, write_sequence

    entries = []
    for index in range(args.sequences):
        name = f"{args.first_name + index:04d}"
        config = DrivingConfig(height=args.height, width=args.width, frames=args.frames, seed=args.seed + index,
                               fps=args.fps)
        write_sequence(args.out, name, config, write_flow=args.flow, progress=True)
        entries.append(SeqmapEntry(name, 0, args.frames - 1))
    write_seqmap(args.out / "seqmaps" / "synthetic.seqmap", entries)
    print(f"wrote {args.sequences} sequence(s) of {args.frames} frames to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.network == "calibrate":
        return _calibrate(args)
    if args.network == "segmentation":
        from mots_ros.training.segmentation import SegmentationTrainingConfig, train_segmentation

        config = SegmentationTrainingConfig(
            data=[str(d) for d in args.data], out=str(args.out), sequences=args.sequences, class_id=args.class_id,
            width=args.width, crop_height=args.crop[0], crop_width=args.crop[1], centred_crops=not args.random_crops,
            batch_size=args.batch_size, steps=args.steps, lr=args.lr or 5e-4, schedule=args.schedule,
            foreground_weight=args.foreground_weight, freeze_bn=args.freeze_bn, init=args.init, resume=args.resume,
            seed=args.seed, threads=args.threads or 0, scale_range=tuple(args.scale_range), centre_jitter=args.centre_jitter,
            colour_jitter=args.colour_jitter, seed_consistency_weight=args.seed_consistency, max_frame_gap=args.max_frame_gap,
            average_from=args.average_from, ignore_regions=args.ignore_regions.replace("-", "_"),
        )
        path = train_segmentation(config)
    else:
        from mots_ros.training.embedding import EmbeddingTrainingConfig, train_embedding

        config = EmbeddingTrainingConfig(
            data=[str(d) for d in args.data], out=str(args.out), sequences=args.sequences, class_id=args.class_id,
            steps=args.steps, lr=args.lr or 2e-3, instances_per_step=args.instances_per_step,
            foreground_points=args.points[0], environment_points=args.points[1], balanced=args.balanced,
            shuffle_group=args.shuffle_group,
            parts=args.parts, aligned_scales=args.align_scales or args.fuse_scales, scale_flow=not args.fuse_scales,
            diversity_weight=args.diversity_weight, augment=args.augment,
            held_out_identities=args.held_out_identities, init=args.init, resume=args.resume, seed=args.seed, threads=args.threads or 0,
            average_from=args.average_from,
        )
        path = train_embedding(config)
    print(f"checkpoint written to {path}")
    return 0


def cmd_run(args: argparse.Namespace, ros_args: list[str]) -> int:
    from mots_ros.nodes.commands import run_nodes

    if not args.params_file.is_file():
        raise MotsError(f"params file {args.params_file} does not exist")
    import yaml

    try:
        yaml.safe_load(args.params_file.read_text())
    except yaml.YAMLError as err:  # rclpy would print a traceback for it
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise MotsError(f"params file {args.params_file} is not valid YAML{at}: {getattr(err, 'problem', err)}") from err
    run_nodes(args.params_file, args.namespace, args.name, _ros_args(ros_args), share_networks=not args.separate_networks)
    return 0


def run_command_line(params_file: str, namespaces: list[str], ros_args: list[str]) -> list[str]:
    """The ``mots-ros run`` command that starts one node per namespace in one process.

    The nodes share each network and batch frames that arrive together; ``ros_args`` (parameters
    ``-p``, remappings ``-r`` of relative names) apply to every node, each in its own namespace.
    ``launch/mots.launch.py shared_process:=true`` starts this.
    """
    command = ["mots-ros", "run", "--params-file", params_file]
    for namespace in namespaces:
        command += ["--namespace", namespace]
    return command + (["--ros-args", *ros_args] if ros_args else [])


def _ros_args(extra: list[str]) -> list[str]:
    return extra[1:] if extra[:1] == ["--ros-args"] else extra


def cmd_bag_from_images(args: argparse.Namespace) -> int:
    from mots_ros.bags import images_to_bag

    summary = images_to_bag(args.images, args.out, fps=args.fps, flow_dir=args.flow, encoding=args.encoding,
                            compressed=args.compressed, first=args.first, last=args.last, progress=True)
    print(f"wrote {summary.frames} images ({summary.flows} with flow) at {summary.fps:g} Hz to {summary.path}")
    return 0


def cmd_bag_replay(args: argparse.Namespace, ros_args: list[str]) -> int:
    from mots_ros.nodes.commands import replay_bag

    bad = [item for item in args.remap if ":=" not in item]
    if bad:
        raise MotsError(f"--remap expects FROM:=TO, got {bad[0]!r}")
    remap = dict(item.split(":=", 1) for item in args.remap)
    count = replay_bag(args.bag, _ros_args(ros_args), rate=0.0 if args.fast else args.rate, topics=args.topics,
                       remap=remap, wait_for_tracks=args.wait_for_tracks, frame_timeout_s=args.frame_timeout,
                       loops=args.loops)
    print(f"published {count} messages from {args.bag}")
    return 0


def cmd_bag_eval(args: argparse.Namespace) -> int:
    from mots_ros.offline_tracking import evaluate_bag
    from mots_ros.pipeline import MotsPipeline

    result = evaluate_bag(MotsPipeline.from_config(_config_from_args(args)), args.bag, args.gt, args.out,
                          sequence=args.sequence, fps=args.fps, seqmap=args.seqmap, first=args.first, last=args.last,
                          progress=True)
    print(result.table())
    print(f"results and metrics.json in {args.out}")
    return 0


def cmd_record(args: argparse.Namespace, ros_args: list[str]) -> int:
    from mots_ros.nodes.commands import record_tracks

    count = record_tracks(args.topic, args.out, fps=args.fps, frames=args.frames, idle_timeout_s=args.idle_timeout,
                          timeout_s=args.timeout, ros_args=_ros_args(ros_args))
    print(f"recorded {count} messages to {args.out}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from mots_ros.export import export_and_verify

    checks = export_and_verify(_config_from_args(args), args.out, height=args.height, width=args.width,
                               dynamic=args.dynamic, only=args.only)
    for check in checks:
        print(f"{check.path}: onnx checker passed; max relative error vs torch (onnxruntime-cpu, fp32): "
              f"{check.max_relative_error:.2e}")
    return 0


def cmd_export_agreement(args: argparse.Namespace) -> int:
    import json

    from mots_ros.datasets import list_frames, read_image_rgb
    from mots_ros.precision import format_agreement, measure_agreement, save_record

    config = _config_from_args(args)
    if args.calibration_images:
        if args.calibration_images.resolve() == args.frames.resolve():
            raise MotsError("--calibration-images must not be the --frames measured on: int8 would be calibrated on "
                            "the very frames it is scored on")
        config = config.replace(**{"inference.calibration_images": str(args.calibration_images)})
    frames = [read_image_rgb(path) for _, path in list_frames(args.frames)[: args.count]]
    record = measure_agreement(config, frames, threads=config.inference.num_threads)
    print(format_agreement(record))
    print(f"record for backend/precision auto: {save_record(config, record)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
    return 0


def cmd_export_engine(args: argparse.Namespace) -> int:
    import numpy as np

    from mots_ros.backends.tensorrt_backend import TensorRTBackend

    size = (args.height, args.width) if args.height else None
    batches = None
    if args.calibration_images:
        from mots_ros.segmenters.spatial_embedding import CalibrationImages

        batches = CalibrationImages(args.calibration_images)
    backend = TensorRTBackend(args.onnx, precision=args.precision, cache_dir=args.cache_dir / "engines", image_size=size,
                              calibration_batches=batches)
    if backend.is_embedding:  # build the (K-dynamic) engine now rather than on the first frame
        backend.run(np.zeros((1, 1500, 8), np.float32), np.zeros((1, 4), np.float32))
    print(f"engine for {args.onnx} ({args.precision}) is built and cached in {args.cache_dir / 'engines'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mots_ros.demo import run_demo

    run_demo(args.out, data=args.data, sequence=args.sequence, frames=args.frames, first=args.first,
             params_file=args.params_file, fps=args.fps)
    return 0


def cmd_soak(args: argparse.Namespace) -> int:
    from mots_ros.soak import run_soak

    print(run_soak(args.out, frames=args.frames, modes=tuple(args.modes), params_file=args.params_file))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from mots_ros.config import load_config
    from mots_ros.pipeline import MotsPipeline
    from mots_ros.training.calibration import calibrate_negative_median, calibrate_scale, collect_instances, fold_scale, scale_grid

    if not args.init or len(args.data) != 1 or not args.sequences:
        raise MotsError("train calibrate needs --init CHECKPOINT, one --data folder and --sequences")
    # The shipped embeddings are scaled to the paper's constants, so calibration fits those by default.
    preset = f"{args.preset}-published" if args.score_with == "published" else args.preset
    config = load_config(preset_name=preset).replace(**{
        "embedding.weights": args.init, "inference.backend": "torch", "segmentation.kind": "ground_truth",
        "inference.num_threads": args.threads or 0, "flow.source": "none"})  # candidates are tracked without flow
    if args.set:
        config = config.replace(**_set_overrides(args.set))
    collected = collect_instances(MotsPipeline.from_config(config), args.data[0], args.sequences, args.fps,
                                  args.held_out_identities)
    fit = calibrate_negative_median if args.fit == "negative_median" else calibrate_scale
    value, table = fit(collected, args.data[0], config, scale_grid(args.steps_per_octave))
    print(f"{args.fit:>15} {'AssA':>7} {'IDF1':>7} {'IDS':>5}")
    for candidate, scores in table:
        print(f"{candidate:>15.3f} {scores['AssA']:>7.2f} {scores['IDF1']:>7.2f} {scores['IDS']:>5d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"sequences": args.sequences, "preset": args.preset, "held_out_identities": args.held_out_identities,
              "scored_with": preset, "overrides": args.set, "steps_per_octave": args.steps_per_octave, "fit": args.fit,
              "table": [[v, s["AssA"], s["IDF1"]] for v, s in table]}
    if args.fit == "negative_median":  # the weights stay as they are; the constant goes in the params
        fold_scale(Path(args.init), args.out, 1.0, {"calibration": record, "negative_median": value})
        print(f"negative_median {value:.4g} (set tracker.cues.embedding.negative_median); recorded in {args.out}")
    else:
        fold_scale(Path(args.init), args.out, value, {"calibration": record})
        print(f"scale {value:g} folded into {args.out}")
    return 0


# One function per subcommand adds its parser; each sets `handler` (and `takes_ros_args` for ROS commands).
def build_parser() -> argparse.ArgumentParser:
    """The ``mots-ros`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="mots-ros", description="Multi-object tracking and segmentation for ROS 2")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in (_add_track_command, _add_oracle_command, _add_eval_command, _add_synth_command, _add_train_command, _add_run_command, _add_bag_command, _add_record_command, _add_export_command, _add_demo_command, _add_soak_command, _add_bench_command):
        add_command(sub)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's help shows each option's default."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
                _show_defaults(subparser)


def _add_track_command(sub) -> None:
    track = sub.add_parser("track", help="track an image folder offline and write KITTI MOTS txt")
    track.add_argument("--images", type=Path, help="folder of images named by frame number (one sequence)")
    track.add_argument("--data", type=Path, help="dataset folder with images/<seq>/ (every sequence)")
    track.add_argument("--out", type=Path, required=True, help="result txt file (--images) or folder (--data)")
    track.add_argument("--overlay", type=Path, help="folder for overlay JPEGs")
    track.add_argument("--fps", type=float, default=10.0, help="frame rate, for stamps (default 10)")
    track.add_argument("--first", type=int, help="first frame number to track")
    track.add_argument("--last", type=int, help="last frame number to track")
    _add_config_arguments(track)
    track.set_defaults(handler=cmd_track)


def _add_oracle_command(sub) -> None:
    oracle = sub.add_parser("oracle", help="track ground-truth masks with ids removed (association only) and score")
    oracle.add_argument("--data", type=Path, required=True, help="dataset root with images/ and instances_txt/")
    oracle.add_argument("--out", type=Path, required=True, help="folder for <seq>.txt results and metrics.json")
    oracle.add_argument("--sequences", nargs="*", help="sequence names (default: all)")
    oracle.add_argument("--first", type=int, help="first frame number")
    oracle.add_argument("--last", type=int, help="last frame number")
    oracle.add_argument("--fps", type=float, default=10.0, help="frame rate, for stamps")
    _add_config_arguments(oracle, default_preset="pedestrian")
    oracle.set_defaults(handler=cmd_oracle)


def _add_eval_command(sub) -> None:
    evaluation = sub.add_parser("eval", help="score results with TrackEval (HOTA, sMOTSA, IDF1, ...)")
    evaluation.add_argument("--gt", type=Path, required=True, help="ground-truth folder (instances_txt/<seq>.txt or <seq>.txt)")
    evaluation.add_argument("--results", type=Path, required=True, help="folder of <seq>.txt results")
    evaluation.add_argument("--seqmap", type=Path, help="sequences and frame ranges to score")
    evaluation.add_argument("--first", type=int, help="score from this frame number on (every sequence; no seqmap)")
    evaluation.add_argument("--last", type=int, help="score up to this frame number (every sequence; no seqmap)")
    evaluation.add_argument("--classes", nargs="*", choices=("car", "pedestrian"), help="classes (default: those in the GT)")
    evaluation.add_argument("--json", type=Path, help="where to write the metrics JSON (default: <results>/metrics.json)")
    evaluation.set_defaults(handler=cmd_eval)


def _add_synth_command(sub) -> None:
    synth = sub.add_parser("synth", help="render synthetic driving sequences with exact masks and flow")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to write (KITTI MOTS layout)")
    synth.add_argument("--sequences", type=int, default=1, help="how many sequences")
    synth.add_argument("--frames", type=int, default=100, help="frames per sequence")
    synth.add_argument("--seed", type=int, default=0, help="seed of the first sequence (then +1 per sequence)")
    synth.add_argument("--first-name", type=int, default=0, help="number of the first sequence's name (0000)")
    synth.add_argument("--height", type=int, default=375, help="image height in pixels (KITTI's)")
    synth.add_argument("--width", type=int, default=1242, help="image width in pixels (KITTI's)")
    synth.add_argument("--fps", type=float, default=10.0, help="frame rate, which sets the motion per frame")
    synth.add_argument("--flow", action="store_true", help="also write flow/<seq>/NNNNNN.npy (previous -> this frame)")
    synth.set_defaults(handler=cmd_synth)


def _add_train_command(sub) -> None:
    train = sub.add_parser("train", help="train the segmentation or the embedding network")
    train.add_argument("network", choices=("segmentation", "embedding", "calibrate"),
                       help="calibrate: fit a trained embedding's distance scale to the preset's constants (--init, --out FILE)")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folders (KITTI MOTS / MOTSChallenge layout)")
    train.add_argument("--out", type=Path, required=True, help="folder for last.pth (resumable) and final.pth; a file for calibrate")
    train.add_argument("--preset", choices=("car", "pedestrian"), default="car", help="association constants to calibrate to: the published ones of this class")
    train.add_argument("--fps", type=float, default=10.0, help="frame rate of the data, for stamps (calibrate)")
    train.add_argument("--sequences", nargs="*", help="NAME or NAME:FIRST-LAST selections (default: all)")
    train.add_argument("--class-id", type=int, default=1, choices=(1, 2), help="1 car, 2 pedestrian")
    train.add_argument("--steps", type=int, default=3000, help="optimiser steps (a resumed run counts on)")
    train.add_argument("--lr", type=float, help="learning rate (default: 5e-4 segmentation, 2e-3 embedding)")
    train.add_argument("--init", help="start from this checkpoint")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.pth")
    train.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the sampling")
    train.add_argument("--threads", type=int, help="CPU threads")
    train.add_argument("--average-from", type=float, default=0.0, metavar="FRACTION",
                       help="also write final_average.pth, the weights averaged over every step after this share of "
                            "the steps (stochastic weight averaging; 0: off)")
    segmentation = train.add_argument_group("segmentation")
    segmentation.add_argument("--width", type=float, default=0.5, help="channel width multiplier")
    segmentation.add_argument("--crop", type=int, nargs=2, default=(160, 640), metavar=("H", "W"), help="training crop size")
    segmentation.add_argument("--random-crops", action="store_true", help="random crops instead of instance-centred (stage 2)")
    segmentation.add_argument("--batch-size", type=int, default=4, help="crops per step")
    segmentation.add_argument("--schedule", choices=("constant", "poly"), default="constant", help="learning-rate schedule")
    segmentation.add_argument("--foreground-weight", type=float, default=10.0,
                              help="seed-loss weight of foreground pixels (spec: 10 cars, 50 pedestrians)")
    segmentation.add_argument("--freeze-bn", action="store_true", help="BatchNorm statistics frozen (stage 2)")
    segmentation.add_argument("--scale-range", type=float, nargs=2, default=(1.0, 1.0), metavar=("LOW", "HIGH"),
                              help="resize each frame by a random factor in this range before cropping")
    segmentation.add_argument("--centre-jitter", type=float, default=0.0,
                              help="centred crops: move the instance off the centre by up to this share of the crop")
    segmentation.add_argument("--colour-jitter", type=float, default=0.0,
                              help="brightness, contrast and saturation factors drawn from 1 ± this")
    segmentation.add_argument("--seed-consistency", type=float, default=0.0, metavar="WEIGHT",
                              help="PointTrack++ temporal seed consistency: weight of the difference to the previous "
                                   "frame's seed map warped by DIS flow (0: off, as published)")
    segmentation.add_argument("--ignore-regions", choices=("background", "dont-care"), default="background",
                              help="the data's ignore regions: taught as background (published) or left out of the loss")
    segmentation.add_argument("--max-frame-gap", type=int, default=1, help="seed consistency: previous frame 1 to this many back")
    embedding = train.add_argument_group("embedding")
    embedding.add_argument("--instances-per-step", type=int, default=24, help="instances per step (spec: 24)")
    embedding.add_argument("--points", type=int, nargs=2, default=(1000, 500), metavar=("FG", "ENV"),
                           help="foreground and environment points per instance")
    embedding.add_argument("--balanced", action="store_true", help="draw instances (or frames) evenly across sequences")
    embedding.add_argument("--shuffle-group", action="store_true",
                           help="FineTrack's shuffle-group sampling: instances in groups of one frame's people")
    embedding.add_argument("--parts", type=int, default=0, help="FineTrack part heads beside the global embedding (0: published)")
    scales = embedding.add_mutually_exclusive_group()
    scales.add_argument("--align-scales", action="store_true",
                        help="part heads attend over flow-aligned multi-depth point features (needs --parts)")
    scales.add_argument("--fuse-scales", action="store_true",
                        help="as --align-scales, but the depths are merged without alignment (ablation)")
    embedding.add_argument("--diversity-weight", type=float, default=0.1, help="weight of the part heads' diversity loss")
    embedding.add_argument("--augment", action="store_true", help="colour and scale jitter and cut-out occlusions on crops")
    train.add_argument("--held-out-identities", type=float, default=0.0, metavar="FRACTION",
                       help="embedding: keep this share of identities out of training; calibrate: fit the scale on "
                            "those identities alone (the same stable choice), people the network never saw")
    calibration = train.add_argument_group("calibrate")
    calibration.add_argument("--steps-per-octave", type=int, default=2,
                             help="candidate scales per doubling, from x0.25 to x64 (2: steps of sqrt 2)")
    calibration.add_argument("--score-with", choices=("published", "measured"), default="published",
                             help="track the candidates with the class's *-published preset (the paper's constants) "
                                  "or its measured preset (car / pedestrian), always without optical flow")
    calibration.add_argument("--fit", choices=("scale", "negative_median"), default="scale",
                             help="scale: one factor folded into the network's last layer; negative_median: the "
                                  "embedding cue's per-video reference distance (recorded, weights unchanged)")
    calibration.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="and with this config change, e.g. "
                                  "--set tracker.cues.mask_iou.weight=0 (repeatable)")
    train.set_defaults(handler=cmd_train)


def _add_run_command(sub) -> None:
    run = sub.add_parser("run", help="start mots_node(s) in this process, without the launch system")
    run.add_argument("--params-file", type=Path, required=True, help="ROS params file (e.g. config/car.yaml)")
    run.add_argument("--namespace", action="append", help="one node per namespace, e.g. --namespace front --namespace rear")
    run.add_argument("--name", default="mots_node", help="node name")
    run.add_argument("--separate-networks", action="store_true",
                     help="with several namespaces: each node loads its own networks and runs alone, instead of "
                          "sharing them and batching frames that arrive together")
    run.set_defaults(handler=cmd_run, takes_ros_args=True)


def _add_bag_command(sub) -> None:
    bag = sub.add_parser("bag", help="rosbag2 tools (through rosbags; no ROS install needed)")
    bag_sub = bag.add_subparsers(dest="bag_command", required=True)
    from_images = bag_sub.add_parser("from-images", help="image folder (KITTI MOTS / MOTSChallenge layout) to an MCAP bag")
    from_images.add_argument("--images", type=Path, required=True, help="images/<seq>/ folder")
    from_images.add_argument("--out", type=Path, required=True, help="bag folder to create")
    from_images.add_argument("--fps", type=float, default=10.0, help="sequence rate (stamps follow frame numbers)")
    from_images.add_argument("--flow", type=Path, help="folder of <frame>.npy flows to write on /camera/flow")
    from_images.add_argument("--encoding", choices=("rgb8", "bgr8", "mono8"), default="rgb8", help="raw image encoding")
    from_images.add_argument("--compressed", action="store_true", help="PNG CompressedImage instead of raw")
    from_images.add_argument("--first", type=int, help="first frame number to write")
    from_images.add_argument("--last", type=int, help="last frame number to write")
    from_images.set_defaults(handler=cmd_bag_from_images)
    replay = bag_sub.add_parser("replay", help="publish a bag onto live topics")
    replay.add_argument("bag", type=Path, help="rosbag2 folder")
    replay.add_argument("--rate", type=float, default=1.0, help="speed factor over the recorded timing")
    replay.add_argument("--fast", action="store_true", help="as fast as possible (no pacing)")
    replay.add_argument("--topics", nargs="*", help="topics to publish (default: all)")
    replay.add_argument("--remap", nargs="*", default=[], metavar="FROM:=TO", help="rename topics")
    replay.add_argument("--wait-for-tracks", metavar="TOPIC",
                        help="send each image only after the tracks of the previous one arrived on TOPIC (lossless, as fast as the node)")
    replay.add_argument("--frame-timeout", type=float, default=30.0, help="longest wait for one frame's tracks")
    replay.add_argument("--loops", type=int, default=1, help="play the bag this many times (stamps jump back each time)")
    replay.set_defaults(handler=cmd_bag_replay, takes_ros_args=True)
    bag_eval = bag_sub.add_parser("eval", help="run the pipeline on every frame of a bag offline and score it")
    bag_eval.add_argument("--bag", type=Path, required=True, help="rosbag2 folder")
    bag_eval.add_argument("--gt", type=Path, required=True, help="ground-truth folder")
    bag_eval.add_argument("--out", type=Path, required=True, help="folder for <seq>.txt and metrics.json")
    bag_eval.add_argument("--sequence", help="sequence name (default: from the bag)")
    bag_eval.add_argument("--fps", type=float, help="frame rate (default: from the bag)")
    bag_eval.add_argument("--seqmap", type=Path, help="frames to score (default: the bag's frames)")
    bag_eval.add_argument("--first", type=int, help="first frame number to score")
    bag_eval.add_argument("--last", type=int, help="last frame number to score")
    _add_config_arguments(bag_eval)
    bag_eval.set_defaults(handler=cmd_bag_eval)


def _add_record_command(sub) -> None:
    record = sub.add_parser("record", help="record a tracks topic into KITTI MOTS txt")
    record.add_argument("--topic", required=True, help="TrackedInstanceArray topic, e.g. /camera/tracks")
    record.add_argument("--out", type=Path, required=True, help="txt file to write")
    record.add_argument("--fps", type=float, default=10.0, help="frame rate of the source (frame numbers come from stamps)")
    record.add_argument("--frames", type=int, help="stop after this many messages")
    record.add_argument("--idle-timeout", type=float, default=10.0, help="stop after this long without a message (once one came)")
    record.add_argument("--timeout", type=float, default=3600.0, help="stop after this long in all")
    record.set_defaults(handler=cmd_record, takes_ros_args=True)


def _add_export_command(sub) -> None:
    export = sub.add_parser("export", help="export ONNX files, or build TensorRT engines ahead of time")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    export_onnx = export_sub.add_parser("onnx", help="write both networks as ONNX and check parity with torch")
    export_onnx.add_argument("--out", type=Path, required=True, help="folder for the .onnx files")
    export_onnx.add_argument("--height", type=int, default=384, help="fixed input height (default 384)")
    export_onnx.add_argument("--width", type=int, default=1248, help="fixed input width (default 1248)")
    export_onnx.add_argument("--dynamic", action="store_true", help="dynamic input height and width instead")
    export_onnx.add_argument("--only", choices=("segmentation", "embedding"), help="export one network only")
    _add_config_arguments(export_onnx)
    export_onnx.set_defaults(handler=cmd_export_onnx)
    agreement = export_sub.add_parser(
        "agreement", help="measure every backend x precision against ONNX Runtime fp32 on your frames; backend and "
        "precision auto then use the fastest within the bounds (mots_ros.precision)")
    agreement.add_argument("--frames", type=Path, required=True, help="a folder of images named by frame number")
    agreement.add_argument("--count", type=int, default=40, help="frames to use (default 40)")
    agreement.add_argument("--calibration-images", type=Path,
                           help="also measure int8, calibrated on this folder (never the --frames you measure on)")
    agreement.add_argument("--out", type=Path, help="also write the record as JSON here")
    _add_config_arguments(agreement)
    agreement.set_defaults(handler=cmd_export_agreement)
    export_engine = export_sub.add_parser("engine", help="build and cache a TensorRT engine now (build_only)")
    export_engine.add_argument("--onnx", type=Path, required=True, help="exported network")
    export_engine.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="engine precision")
    export_engine.add_argument("--height", type=int, help="image height for a dynamic-size segmentation export")
    export_engine.add_argument("--width", type=int, help="image width for a dynamic-size segmentation export")
    export_engine.add_argument("--calibration-images", type=Path, help="image folder for int8 calibration")
    export_engine.add_argument("--cache-dir", type=Path, default=Path("~/.cache/mots_ros").expanduser(),
                               help="the inference.cache_dir the node will use")
    export_engine.set_defaults(handler=cmd_export_engine)


def _add_demo_command(sub) -> None:
    demo = sub.add_parser("demo", help="synthetic drive (or --data) -> bag -> mots_node over DDS -> tracks -> metrics, video, plot")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    demo.add_argument("--data", type=Path, help="a real MOTS-format dataset folder instead of a synthetic drive")
    demo.add_argument("--sequence", help="sequence of --data (default: the first)")
    demo.add_argument("--frames", type=int, default=80, help="frames to render (or to take from --data)")
    demo.add_argument("--first", type=int, help="first frame to take from --data")
    demo.add_argument("--fps", type=float, default=10.0, help="frame rate (MOTS20-05: 14, MOTS20-09: 30)")
    demo.add_argument("--params-file", type=Path, help="node params (default: config/car.yaml)")
    demo.set_defaults(handler=cmd_demo)


def _add_soak_command(sub) -> None:
    soak = sub.add_parser("soak", help="thousands of frames through the node: latency per stage, drops, memory")
    soak.add_argument("--out", type=Path, default=Path("benchmarks/soak"), help="output folder")
    soak.add_argument("--frames", type=int, default=2000, help="frames per mode (a 100-frame bag, looped)")
    soak.add_argument("--modes", nargs="+", choices=("replay", "live"), default=["replay", "live"], help="node modes to soak")
    soak.add_argument("--params-file", type=Path, help="node params (default: config/car.yaml)")
    soak.set_defaults(handler=cmd_soak)


def _add_bench_command(sub) -> None:
    bench = sub.add_parser("bench", help="per-stage latency (torch and ONNX Runtime) on a 375x1242 frame with 10 instances")
    bench.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="thread counts to measure")
    bench.add_argument("--repeats", type=int, default=20, help="timed runs per stage")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/latest.json"), help="JSON output")
    bench.add_argument("--quick", action="store_true", help="few repeats, for smoke tests")
    bench.add_argument("--no-node", action="store_true", help="skip the end-to-end run through mots_node")
    bench.add_argument("--mots20", type=Path, help="also score oracle tracking on every sequence of this MOTS dataset")
    bench.set_defaults(handler=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    import mots_ros.images  # noqa: F401  (caps OpenCV's decoders before any subcommand imports cv2)

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    # Everything after --ros-args goes to rclpy (remapping, parameters, log levels).
    ros_args: list[str] = []
    if "--ros-args" in argv:
        split = argv.index("--ros-args")
        argv, ros_args = argv[:split], argv[split:]
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if getattr(args, "takes_ros_args", False):
            return args.handler(args, ros_args)
        if ros_args:
            parser.error(f"'mots-ros {args.command}' takes no --ros-args")
        return args.handler(args)
    except MotsError as err:
        print(f"mots-ros {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
