"""Turns trained checkpoints into the shipped default models (maintainers only).

    python tools/package_models.py --segmentation se/final.pth --pedestrian-segmentation se_ped/final.pth \
        --car-embedding car.pth --pedestrian-embedding ped.pth --out models/

For each network it writes ``<name>.pth`` (official wrapper format, weights stored as float16 to
keep the repository small; loading casts them back to float32) and ``<name>.onnx`` exported from
exactly those rounded weights (dynamic image size for segmentation, dynamic instance count for
embeddings), so every backend runs the same model. Metrics in models/README.md are measured on
these files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mots_ros.checkpoints import read_checkpoint, save_checkpoint
from mots_ros.export import export_embedding, export_segmentation
from mots_ros.model_files import DEFAULT_MODELS, build_embedding_network, build_segmentation_network


def _round_to_half(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


def _save_half(model: torch.nn.Module, path: Path, build: dict, source: Path) -> None:
    _, metadata = read_checkpoint(source)
    keep = {k: metadata[k] for k in ("training", "calibration") if k in metadata}
    save_checkpoint(model, path, build=build, epoch=int(metadata.get("epoch", 0)), extra=keep)
    wrapper = torch.load(path, weights_only=True)
    wrapper["model_state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in wrapper["model_state_dict"].items()}
    torch.save(wrapper, path)


def package_segmentation(checkpoint: Path, out: Path, class_name: str = "car") -> None:
    name = DEFAULT_MODELS[("segmentation", class_name)]
    model = build_segmentation_network(checkpoint).eval()
    _round_to_half(model)
    build = {"model": "SpatialEmbeddingNet", "width": model.width, "num_classes": list(model.num_classes)}
    _save_half(model, out / f"{name}.pth", build, checkpoint)
    export_segmentation(model, out / f"{name}.onnx", height=None, width=None, class_id=1 if class_name == "car" else 2)


def package_embedding(checkpoint: Path, out: Path, class_name: str) -> None:
    name = DEFAULT_MODELS[("embedding", class_name)]
    model = build_embedding_network(checkpoint).eval()
    _round_to_half(model)
    _, metadata = read_checkpoint(checkpoint)
    build = {"model": "PointTrackNet", "embedding_scale": metadata.get("mots_ros", {}).get("embedding_scale", 1.0)}
    _save_half(model, out / f"{name}.pth", build, checkpoint)
    export_embedding(model, out / f"{name}.onnx", class_id=1 if class_name == "car" else 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmentation", type=Path, help="car SpatialEmbedding checkpoint")
    parser.add_argument("--pedestrian-segmentation", type=Path, help="pedestrian SpatialEmbedding checkpoint")
    parser.add_argument("--car-embedding", type=Path, help="calibrated car PointTrack checkpoint")
    parser.add_argument("--pedestrian-embedding", type=Path, help="calibrated pedestrian PointTrack checkpoint")
    parser.add_argument("--out", type=Path, default=Path("models"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.segmentation:
        package_segmentation(args.segmentation, args.out)
    if args.pedestrian_segmentation:
        package_segmentation(args.pedestrian_segmentation, args.out, "pedestrian")
    if args.car_embedding:
        package_embedding(args.car_embedding, args.out, "car")
    if args.pedestrian_embedding:
        package_embedding(args.pedestrian_embedding, args.out, "pedestrian")
    for path in sorted(args.out.glob("*.pth")) + sorted(args.out.glob("*.onnx")):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
