"""Configuration: frozen dataclasses with defaults, ranges, descriptions and YAML loading.

Every field declares its type, range or choices and a one-line description. The same metadata
validates YAML files, builds the ``mots-ros`` CLI defaults and declares the ROS parameters (whose
names are the dotted field paths, e.g. ``tracker.max_age``). Config files are ROS 2 parameter
files (``/**: ros__parameters: {...}``); a bare mapping of the same sections is accepted too.

Presets hold the published constants (spec §3.2, §7.1): ``car`` and ``pedestrian``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mots_ros.errors import ConfigError


def _option(default, description: str, *, low=None, high=None, choices=None):
    return field(default=default, metadata={"description": description, "low": low, "high": high, "choices": choices})


@dataclass(frozen=True)
class SegmentationConfig:
    weights: str = _option("default", "SpatialEmbedding checkpoint (.pth/.pt) or ONNX file; 'default' = the shipped model")
    class_id: int = _option(1, "KITTI MOTS class id given to every instance (1 car, 2 pedestrian)", choices=(1, 2))
    seed_threshold: float = _option(0.94, "minimum seed score of a cluster centre (spec: 0.94 cars)", low=0.5, high=1.0)
    min_pixel: int = _option(160, "minimum instance size in pixels (spec: 160 cars)", low=0, high=1_000_000)
    n_sigma: int = _option(2, "bandwidth channels of the model: 2 (x, y) or 1 (isotropic)", choices=(1, 2))
    input_height: int = _option(0, "fixed network input height (multiple of 8); 0 = the frame padded to a multiple of 8", low=0, high=8192)
    input_width: int = _option(0, "fixed network input width (multiple of 8); 0 = the frame padded to a multiple of 8", low=0, high=8192)


@dataclass(frozen=True)
class EmbeddingConfig:
    weights: str = _option("default", "PointTrack checkpoint (.pth/.pt) or ONNX file; 'default' = the shipped model")
    num_foreground_points: int = _option(1000, "foreground points per instance (spec: 1000)", low=1, high=100_000)
    num_environment_points: int = _option(500, "environment points per instance (spec: 500)", low=1, high=100_000)
    context_ratio: float = _option(0.2, "context crop growth per side, fraction of the box (spec: 0.2)", low=0.0, high=2.0)
    seed: int = _option(0, "seed of the point-sampling generator; results reproduce for a given seed", low=0, high=2**31 - 1)


@dataclass(frozen=True)
class TrackerConfig:
    reid_scale: float = _option(1.0090931467228708, "alpha: weight of the embedding term (spec §7.1)", low=0.0, high=1e6)
    reid_offset: float = _option(8.810218833503743, "beta: offset added to the negative embedding distance", low=-1e6, high=1e6)
    mask_iou_weight: float = _option(0.74, "gamma: weight of the mask IoU with the track's last mask", low=0.0, high=1e6)
    flow_iou_weight: float = _option(0.0, "weight of the IoU with the track's last mask warped by optical flow", low=0.0, high=1e6)
    threshold: float = _option(0.8165986526897969, "tau: pairs with similarity <= tau are never matched", low=-1e6, high=1e6)
    max_age: float = _option(30.0, "a track is dropped when unmatched for longer than this", low=0.0, high=1e9)
    age_unit: str = _option("frames", "unit of max_age: 'frames' (frame numbers) or 'seconds' (image stamps)", choices=("frames", "seconds"))


@dataclass(frozen=True)
class InferenceConfig:
    backend: str = _option("auto", "auto, torch, onnxruntime or tensorrt", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    device: str = _option("auto", "auto (a GPU when there is one), cpu or cuda", choices=("auto", "cpu", "cuda"))
    num_threads: int = _option(0, "CPU threads for inference; 0 = the runtime's default", low=0, high=256)
    precision: str = _option("fp16", "TensorRT engine precision (fp32, fp16, int8)", choices=("fp32", "fp16", "int8"))
    calibration_images: str = _option("", "image folder for int8 calibration; empty when not using int8")
    cache_dir: str = _option("~/.cache/mots_ros", "where exported ONNX files and TensorRT engines are cached")


@dataclass(frozen=True)
class NodeConfig:
    mode: str = _option("live", "live: newest frame wins, drops counted; replay: every frame in order", choices=("live", "replay"))
    image_transport: str = _option("raw", "raw (sensor_msgs/Image on 'image') or compressed (CompressedImage on 'image/compressed')", choices=("raw", "compressed"))
    use_flow: bool = _option(False, "subscribe to 'flow' (32FC2) and match it to images by exact stamp")
    flow_timeout_s: float = _option(0.1, "how long a frame waits for its flow before going on without it", low=0.0, high=60.0)
    no_image_warning_s: float = _option(5.0, "warn when no image arrived this long after activation", low=0.1, high=3600.0)
    replay_queue_size: int = _option(1000, "replay mode: reliable input queue depth, and the backlog that draws a warning", low=1, high=100_000)
    max_image_pixels: int = _option(33_554_432, "frames larger than this many pixels are refused", low=1, high=2**31 - 1)
    autostart: bool = _option(True, "configure and activate on start, without an external lifecycle manager")
    latency_log: str = _option("", "CSV file for per-frame stage latencies (ms); empty = none")


@dataclass(frozen=True)
class Config:
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    node: NodeConfig = field(default_factory=NodeConfig)

    def validate(self) -> "Config":
        """Checks every field; returns self. Raises ConfigError naming the key and the reason."""
        for section in dataclasses.fields(self):
            section_value = getattr(self, section.name)
            for item in dataclasses.fields(section_value):
                check_value(f"{section.name}.{item.name}", getattr(section_value, item.name), item)
        seg = self.segmentation
        if (seg.input_height == 0) != (seg.input_width == 0):
            raise ConfigError("segmentation.input_height and segmentation.input_width must both be 0 or both be set")
        for key in ("input_height", "input_width"):
            if getattr(seg, key) % 8:
                raise ConfigError(f"segmentation.{key}: {getattr(seg, key)} is not a multiple of 8")
        return self

    def replace(self, **overrides: Any) -> "Config":
        """A copy with dotted-key overrides, e.g. ``replace(**{"tracker.max_age": 5})``."""
        return from_dict(_merge(to_dict(self), _nest(overrides)))


PRESETS: dict[str, dict] = {
    "car": {
        "segmentation": {"class_id": 1, "seed_threshold": 0.94, "min_pixel": 160},
        "tracker": {
            "reid_scale": 1.0090931467228708,
            "reid_offset": 8.810218833503743,
            "threshold": 0.8165986526897969,
            "mask_iou_weight": 0.74,
            "max_age": 30.0,
        },
    },
    "pedestrian": {
        "segmentation": {"class_id": 2, "seed_threshold": 0.94, "min_pixel": 160},
        "tracker": {
            "reid_scale": 1.3437965549876354,
            "reid_offset": 9.447084376750222,
            "threshold": 0.47985540892434836,
            "mask_iou_weight": 0.54,
            "max_age": 30.0,
        },
    },
}


def preset(name: str) -> Config:
    """The published settings for ``car`` or ``pedestrian``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return from_dict(PRESETS[name])


def from_dict(values: dict, *, source: str = "config") -> Config:
    """Builds and validates a Config from nested ``{section: {field: value}}``; unset fields keep defaults."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
    sections = {}
    known_sections = {f.name: f for f in dataclasses.fields(Config)}
    for name, section_values in values.items():
        if name not in known_sections:
            raise ConfigError(f"{source}: unknown section {name!r}; known sections are {sorted(known_sections)}")
        if not isinstance(section_values, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping, got {type(section_values).__name__}")
        section_type = known_sections[name].default_factory
        known_fields = {f.name: f for f in dataclasses.fields(section_type)}
        for key, value in section_values.items():
            if key not in known_fields:
                raise ConfigError(f"{source}: unknown key {name}.{key}; known keys are {sorted(known_fields)}")
            check_value(f"{name}.{key}", value, known_fields[key])
        sections[name] = section_type(**{k: _coerce(v, known_fields[k]) for k, v in section_values.items()})
    return Config(**sections).validate()


def load_config(path: str | os.PathLike | None = None, *, preset_name: str | None = None) -> Config:
    """Loads a YAML config (ROS parameter file or bare sections) over a preset's values.

    Args:
        path: YAML file; None gives the preset (or the defaults) alone.
        preset_name: ``car`` or ``pedestrian`` applied before the file.
    """
    base = to_dict(preset(preset_name)) if preset_name else {}
    if path is None:
        return from_dict(base)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    return from_dict(_merge(base, ros_parameters(document, source=str(path))), source=str(path))


def ros_parameters(document: Any, *, source: str = "config") -> dict:
    """The parameter mapping of a ROS parameter file (``<node or /**>: ros__parameters:``), or the document itself."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(document).__name__}")
    wrapped = [v for v in document.values() if isinstance(v, dict) and "ros__parameters" in v]
    if not wrapped:
        return document
    merged: dict = {}
    for node_entry in wrapped:
        merged = _merge(merged, node_entry["ros__parameters"] or {})
    return merged


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def flat_fields(config: Config | None = None) -> list[tuple[str, Any, dataclasses.Field]]:
    """``(dotted_name, value, field)`` for every field, in declaration order."""
    config = config or Config()
    rows = []
    for section in dataclasses.fields(config):
        section_value = getattr(config, section.name)
        for item in dataclasses.fields(section_value):
            rows.append((f"{section.name}.{item.name}", getattr(section_value, item.name), item))
    return rows


def resolve_path(path: str, *, base: Path | None = None) -> Path:
    """Expands ``~`` and makes relative paths relative to ``base`` (the config file's folder)."""
    expanded = Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() or base is None else base / expanded


def check_value(key: str, value: Any, item: dataclasses.Field) -> None:
    """Raises ConfigError unless ``value`` fits the field's type, range and choices."""
    expected = type(item.default)
    meta = item.metadata
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r} ({meta['description']})")
        return
    if expected in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r} ({meta['description']})")
        if expected is int and not float(value).is_integer():
            raise ConfigError(f"{key}: expected a whole number, got {value!r} ({meta['description']})")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key}: {value!r} is not finite ({meta['description']})")
        low, high = meta["low"], meta["high"]
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"{key}: {value!r} is out of range [{low}, {high}] ({meta['description']})")
    elif expected is str and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r} ({meta['description']})")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {list(meta['choices'])} ({meta['description']})")


def _coerce(value: Any, item: dataclasses.Field) -> Any:
    return type(item.default)(value)


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _nest(dotted: dict) -> dict:
    nested: dict = {}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        if not name:
            raise ConfigError(f"override {key!r} must be of the form section.key")
        nested.setdefault(section, {})[name] = value
    return nested
