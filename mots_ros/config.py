"""Configuration: frozen dataclasses with defaults, ranges, descriptions and YAML loading.

Every field declares its type, range or choices and a one-line description. The same metadata
validates YAML files, builds the ``mots-ros`` CLI defaults and declares the ROS parameters (whose
names are the dotted field paths, e.g. ``tracker.max_age_s``). Config files are ROS 2 parameter
files (``/**: ros__parameters: {...}``); a bare mapping of the same sections is accepted too.

``tracker.cues`` is the one mapping-valued field: association cues by name, each with its options
(``tracker.cues.embedding.weight`` as a ROS parameter). A file or override is merged over the
preset's cues by name.

Presets: ``car-published`` and ``pedestrian-published`` hold the published constants (spec §3.2,
§7.1); ``car`` and ``pedestrian`` are the best settings measured on development data (the
published cues plus an embedding average and the motion cue, on DIS flow).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from mots_ros.errors import ConfigError
from mots_ros.registry import BACKENDS, CUES, SEGMENTERS

logger = logging.getLogger(__name__)


def _option(default: Any, description: str, *, low: float | None = None, high: float | None = None,
            choices: tuple[Any, ...] | None = None) -> Any:
    return field(default=default, metadata={"description": description, "low": low, "high": high, "choices": choices})


def _option_factory(factory: Callable[[], Any], description: str) -> Any:
    """A mapping-valued option (its default is built fresh for each config)."""
    return field(default_factory=factory, metadata={"description": description, "low": None, "high": None, "choices": None})


@dataclass(frozen=True)
class SegmentationConfig:
    """``segmentation.*``: which segmenter, its model file and its thresholds."""

    kind: str = _option("spatial_embedding", "segmenter by name: spatial_embedding, onnx_instances (your YOLO-seg or "
                        "per-instance-mask ONNX model), ground_truth (masks from annotations), or a mots_ros.segmenters plugin")
    weights: str = _option("default", "spatial_embedding: checkpoint (.pth/.pt) or ONNX file, 'default' = the shipped "
                           "model; onnx_instances: the ONNX file")
    class_id: int = _option(1, "KITTI MOTS class id given to every instance (1 car, 2 pedestrian)", choices=(1, 2))
    seed_threshold: float = _option(0.94, "minimum seed score of a cluster centre (spec: 0.94 cars)", low=0.5, high=1.0)
    min_pixel: int = _option(160, "minimum instance size in frame pixels (spec: 160 cars)", low=0, high=1_000_000)
    n_sigma: int = _option(2, "bandwidth channels of the model: 2 (x, y) or 1 (isotropic)", choices=(1, 2))
    input_height: int = _option(0, "fixed network input height (multiple of 8); 0 = the frame padded to a multiple of 8", low=0, high=8192)
    input_width: int = _option(0, "fixed network input width (multiple of 8); 0 = the frame padded to a multiple of 8", low=0, high=8192)
    input_scale: float = _option(1.0, "spatial_embedding: frames are resized by this factor for the network and the "
                                 "masks back to full size (0.5 quarters a full-HD frame's cost); 1 = as published",
                                 low=0.1, high=1.0)
    score_threshold: float = _option(0.25, "onnx_instances: detections scoring below this are dropped", low=0.0, high=1.0)
    mask_threshold: float = _option(0.5, "onnx_instances: mask probability above which a pixel belongs to the instance",
                                    low=0.0, high=1.0)
    nms_iou: float = _option(0.45, "onnx_instances, YOLO layout: boxes overlapping a better one by more IoU are dropped",
                             low=0.0, high=1.0)
    class_map: str = _option("0:2,2:1", "onnx_instances: model class index -> KITTI MOTS class id, as 'model:kitti,...'; "
                             "other classes are dropped (default: COCO person -> pedestrian, COCO car -> car)")
    annotations: str = _option("", "ground_truth: MOTS txt file whose masks (ids removed) are the segmentation of "
                               "each frame, looked up by frame number")


@dataclass(frozen=True)
class EmbeddingConfig:
    """``embedding.*``: the PointTrack model and its point sampling (spec §5)."""

    weights: str = _option("default", "PointTrack checkpoint (.pth/.pt) or ONNX file; 'default' = the shipped model")
    num_foreground_points: int = _option(1000, "foreground points per instance (spec: 1000)", low=1, high=100_000)
    num_environment_points: int = _option(500, "environment points per instance (spec: 500)", low=1, high=100_000)
    context_ratio: float = _option(0.2, "context crop growth per side, fraction of the box (spec: 0.2)", low=0.0, high=2.0)
    seed: int = _option(0, "seed of the point-sampling generator; results reproduce for a given seed", low=0, high=2**31 - 1)


#: The published association cues and constants for cars (spec §7.1): ``α·(β − ‖Δe‖) + γ·IoU``.
PUBLISHED_CAR_CUES = {
    "embedding": {"weight": 1.0090931467228708, "offset": 8.810218833503743},
    "mask_iou": {"weight": 0.74},
    "flow_iou": {"weight": 0.0},
}
PUBLISHED_PEDESTRIAN_CUES = {
    "embedding": {"weight": 1.3437965549876354, "offset": 9.447084376750222},
    "mask_iou": {"weight": 0.54},
    "flow_iou": {"weight": 0.0},
}


@dataclass(frozen=True)
class TrackerConfig:
    """``tracker.*``: association cues, the match threshold and track lifetime (spec §7)."""

    cues: dict[str, dict[str, Any]] = _option_factory(
        lambda: copy.deepcopy(PUBLISHED_CAR_CUES),
        "association cues by name, each with its weight and options; weight 0 disables a cue. Merged by "
        "name over the preset's cues (built in: embedding, mask_iou, flow_iou; more through the mots_ros.cues "
        "entry points)",
    )
    threshold: float = _option(0.8165986526897969, "tau: pairs with similarity <= tau are never matched", low=-1e6, high=1e6)
    assignment: str = _option("hungarian", "hungarian: the assignment of most total similarity (the published one); "
                              "greedy: the most similar pair first, as CenterTrack", choices=("hungarian", "greedy"))
    age_unit: str = _option("frames", "how track age is counted: 'frames' (frame numbers, max_age_frames) or "
                            "'seconds' (image stamps, max_age_s)", choices=("frames", "seconds"))
    max_age_frames: int = _option(30, "age_unit frames: a track unmatched for more frames than this is dropped (spec: 30)",
                                  low=0, high=1_000_000_000)
    max_age_s: float = _option(3.0, "age_unit seconds: a track unmatched for longer than this is dropped", low=0.0, high=1e9)
    time_jump_s: float = _option(1.0, "a gap between frames longer than this (by stamp) breaks motion: flow, points and "
                                 "velocities start again; tracks and their appearance are kept", low=0.0, high=1e9)


@dataclass(frozen=True)
class FlowConfig:
    """``flow.*``: where the optical flow of the flow cues comes from."""

    source: str = _option("topic", "topic: the frame's own flow (the flow topic, a bag's flow) when it has one; dis: "
                          "OpenCV DIS from the previous frame when it has none (its own still wins); none: never any "
                          "flow", choices=("topic", "dis", "none"))
    dis_preset: str = _option("fast", "OpenCV DIS preset for flow.source dis", choices=("ultrafast", "fast", "medium"))


@dataclass(frozen=True)
class InferenceConfig:
    """``inference.*``: which backend runs the networks, where, and how precisely."""

    backend: str = _option("auto", "auto (the fastest available), or a backend by name: torch, onnxruntime, tensorrt, "
                           "or a mots_ros.backends plugin")
    device: str = _option("auto", "auto (a GPU when there is one), cpu or cuda", choices=("auto", "cpu", "cuda"))
    num_threads: int = _option(0, "CPU threads for inference; 0 = the runtime's default", low=0, high=256)
    precision: str = _option("auto", "network precision: auto (fp16 on TensorRT; elsewhere fp32, or with backend auto "
                             "the fastest within the agreement bounds measured by mots-ros export agreement), fp32, fp16 "
                             "(TensorRT, OpenVINO GPU), bf16 (OpenVINO CPU) or int8 (the segmentation network, on "
                             "TensorRT, ONNX Runtime CPU or OpenVINO; needs calibration_images)",
                             choices=("auto", "fp32", "fp16", "bf16", "int8"))
    openvino_device: str = _option("CPU", "OpenVINO device name for backend openvino (CPU, GPU, NPU, AUTO, ...)")
    calibration_images: str = _option("", "folder of your camera's frames for int8 calibration; empty when not using int8")
    cache_dir: str = _option("~/.cache/mots_ros", "where exported ONNX files and TensorRT engines are cached")
    postprocessing: str = _option("host", "where clustering, point sampling and RLE runs are computed: host (numpy) "
                                  "or device (torch, where the torch backend ran the segmentation network, so that "
                                  "on a GPU only run lengths, boxes and embeddings come back)",
                                  choices=("host", "device"))


@dataclass(frozen=True)
class NodeConfig:
    """``node.*``: how mots_node takes its input (ignored offline)."""

    mode: str = _option("live", "live: newest frame wins, drops counted; replay: every frame in order", choices=("live", "replay"))
    image_transport: str = _option("raw", "raw (sensor_msgs/Image on 'image') or compressed (CompressedImage on 'image/compressed')", choices=("raw", "compressed"))
    use_flow: bool = _option(False, "subscribe to 'flow' (32FC2) and match it to images by exact stamp")
    flow_timeout_s: float = _option(0.1, "how long a frame waits for its flow before going on without it", low=0.0, high=60.0)
    no_image_warning_s: float = _option(5.0, "warn when no image arrived this long after activation", low=0.1, high=3600.0)
    replay_queue_size: int = _option(1000, "replay mode: reliable input queue depth, and the most frames waiting (more are "
                                     "dropped and counted)", low=1, high=100_000)
    reorder_tolerance_s: float = _option(0.5, "a frame older than the last processed one by at most this is dropped "
                                         "(counted out_of_order); a larger jump back resets the tracker (a bag loop)",
                                         low=0.0, high=3600.0)
    flow_buffer_mib: int = _option(256, "most MiB of flow messages kept while waiting for their image", low=1, high=65536)
    max_image_pixels: int = _option(33_554_432, "frames larger than this many pixels are refused", low=1, high=2**31 - 1)
    autostart: bool = _option(True, "configure and activate on start, without an external lifecycle manager")
    latency_log: str = _option("", "CSV file for per-frame stage latencies (ms); empty = none")
    batch_window_s: float = _option(0.01, "nodes sharing networks in one process (mots-ros run with several "
                                    "namespaces): how long a frame waits for the other cameras' frames to run as one "
                                    "batch", low=0.0, high=1.0)


@dataclass(frozen=True)
class Config:
    """Every setting, by section; build it with :func:`preset`, :func:`load_config` or :func:`from_dict`."""

    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    node: NodeConfig = field(default_factory=NodeConfig)

    def validate(self) -> Config:
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
        parse_class_map(seg.class_map)
        # Names only: no implementation is imported until it is built.
        _check_name("segmentation.kind", seg.kind, SEGMENTERS.names(), what="segmenter")
        _check_name("inference.backend", self.inference.backend, ["auto", *BACKENDS.names()], what="inference backend")
        for cue in self.tracker.cues:
            _check_name(f"tracker.cues.{cue}", cue, CUES.names(), what="association cue")
        return self

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted-key overrides, e.g. ``replace(**{"tracker.max_age_frames": 5})``."""
        return from_dict(_merge(to_dict(self), _nest(overrides)))


_CAR_PUBLISHED = {
    "segmentation": {"class_id": 1, "seed_threshold": 0.94, "min_pixel": 160},
    "tracker": {"cues": PUBLISHED_CAR_CUES, "threshold": 0.8165986526897969, "age_unit": "frames", "max_age_frames": 30},
}
_PEDESTRIAN_PUBLISHED = {
    "segmentation": {"class_id": 2, "seed_threshold": 0.94, "min_pixel": 160},
    "tracker": {"cues": PUBLISHED_PEDESTRIAN_CUES, "threshold": 0.47985540892434836, "age_unit": "frames",
                "max_age_frames": 30},
}
# The measured presets add to the published cues what won on real pedestrians (MOTS20, leave one
# sequence out, README "Association on real video") and on the held-out synthetic drives alike:
# the embedding as a moving average, the motion cue with its gate, a threshold raised by the most
# the motion cue adds, and DIS flow. Pedestrian tracks also live 1 s instead of 30 frames.
_MEASURED_ADDITIONS = {"embedding": {"ema": 0.8}, "motion": {"weight": 1.0, "gate": 3.0}}
_THRESHOLD_RAISE = 0.5


def _measured(published: dict[str, Any], **tracker: Any) -> dict[str, Any]:
    cues = copy.deepcopy(published["tracker"]["cues"])
    for name, options in _MEASURED_ADDITIONS.items():
        cues[name] = {**cues.get(name, {}), **options}
    return {"segmentation": published["segmentation"], "flow": {"source": "dis"},
            "tracker": {**published["tracker"], "cues": cues,
                        "threshold": published["tracker"]["threshold"] + _THRESHOLD_RAISE, **tracker}}


#: ``*-published`` are the paper's constants, exactly. ``car`` and ``pedestrian`` are the best settings
#: measured on development data.
PRESETS: dict[str, dict[str, Any]] = {
    "car-published": _CAR_PUBLISHED,
    "pedestrian-published": _PEDESTRIAN_PUBLISHED,
    "car": _measured(_CAR_PUBLISHED),
    "pedestrian": _measured(_PEDESTRIAN_PUBLISHED, age_unit="seconds", max_age_s=1.0),
}

#: Flat tracker keys of v0.1 and where they live now; they still load, with a deprecation warning.
DEPRECATED_TRACKER_KEYS = {
    "reid_scale": ("cues", "embedding", "weight"),
    "reid_offset": ("cues", "embedding", "offset"),
    "mask_iou_weight": ("cues", "mask_iou", "weight"),
    "flow_iou_weight": ("cues", "flow_iou", "weight"),
}


def preset(name: str) -> Config:
    """The settings of a preset: ``car``, ``pedestrian``, ``car-published`` or ``pedestrian-published``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return from_dict(copy.deepcopy(PRESETS[name]))


def from_dict(values: dict[str, Any], *, source: str = "config") -> Config:
    """Builds and validates a Config from nested ``{section: {field: value}}``; unset fields keep defaults."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
    sections = {}
    known_sections = {f.name: f for f in dataclasses.fields(Config)}
    for name, section_values in values.items():
        if name not in known_sections:
            raise ConfigError(f"{source}: unknown section {name!r}{_did_you_mean(name, known_sections)}; "
                              f"known sections are {sorted(known_sections)}")
        if not isinstance(section_values, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping, got {type(section_values).__name__}")
        if name == "tracker":
            section_values = _upgrade_tracker_keys(section_values, source)
        section_type: Any = known_sections[name].default_factory
        known_fields = {f.name: f for f in dataclasses.fields(section_type)}
        for key, value in section_values.items():
            if key not in known_fields:
                raise ConfigError(f"{source}: unknown key {name}.{key}"
                                  f"{_did_you_mean(key, known_fields, prefix=name + '.')}; known keys are {sorted(known_fields)}")
            check_value(f"{name}.{key}", value, known_fields[key])
        sections[name] = section_type(**{k: _coerce(v, known_fields[k]) for k, v in section_values.items()})
    return Config(**sections).validate()


def _check_name(key: str, name: str, known: list[str], what: str) -> None:
    if name not in known:
        raise ConfigError(f"{key}: unknown {what} {name!r}{_did_you_mean(name, known)}; known: {', '.join(known)}")


def parse_class_map(text: str) -> dict[int, int]:
    """``"0:2,2:1"`` -> ``{0: 2, 2: 1}`` (model class index -> KITTI MOTS class id)."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        model_class, sep, kitti_class = item.partition(":")
        try:
            if not sep:
                raise ValueError
            mapping[int(model_class)] = int(kitti_class)
        except ValueError:
            raise ConfigError(f"segmentation.class_map: {item!r} is not 'model_class:kitti_class' (e.g. '0:2,2:1')") from None
    return mapping


def _did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(prefix + c for c in close)}?)" if close else ""


def _upgrade_tracker_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Maps the v0.1 flat keys (``reid_scale``, ``max_age``, ...) onto today's, warning once per key."""
    if not any(k in values for k in (*DEPRECATED_TRACKER_KEYS, "max_age")):
        return values
    values = copy.deepcopy(values)
    for old, (_, cue, key) in DEPRECATED_TRACKER_KEYS.items():
        if old in values:
            value = values.pop(old)
            cues = values.setdefault("cues", {})
            if not isinstance(cues, dict):
                break  # check_value reports the malformed mapping
            cues.setdefault(cue, {})[key] = value
            logger.warning("%s: tracker.%s is deprecated; use tracker.cues.%s.%s", source, old, cue, key)
    if "max_age" in values:
        new = "max_age_s" if values.get("age_unit", "frames") == "seconds" else "max_age_frames"
        values[new] = values.pop("max_age")
        logger.warning("%s: tracker.max_age is deprecated; use tracker.%s (the unit is in the name)", source, new)
    return values


def load_config(path: str | os.PathLike[str] | None = None, *, preset_name: str | None = None) -> Config:
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


def ros_parameters(document: Any, *, source: str = "config") -> dict[str, Any]:
    """The parameter mapping of a ROS parameter file (``<node or /**>: ros__parameters:``), or the document itself."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(document).__name__}")
    wrapped = [v for v in document.values() if isinstance(v, dict) and "ros__parameters" in v]
    if not wrapped:
        return document
    merged: dict[str, Any] = {}
    for node_entry in wrapped:
        merged = _merge(merged, node_entry["ros__parameters"] or {})
    return merged


def to_dict(config: Config) -> dict[str, Any]:
    """``{section: {field: value}}``, the form :func:`from_dict` reads."""
    return dataclasses.asdict(config)


def flat_fields(config: Config | None = None) -> list[tuple[str, Any, dataclasses.Field[Any]]]:
    """``(dotted_name, value, field)`` for every field, in declaration order."""
    config = config or Config()
    rows = []
    for section in dataclasses.fields(config):
        section_value = getattr(config, section.name)
        for item in dataclasses.fields(section_value):
            rows.append((f"{section.name}.{item.name}", getattr(section_value, item.name), item))
    return rows


def leaf_values(config: Config | None = None) -> list[tuple[str, Any]]:
    """``(dotted_name, value)`` of every scalar setting: the node's parameter names.

    ``tracker.cues`` is spelled out, one name per option (``tracker.cues.embedding.weight``).
    """
    rows = []
    for name, value, _ in flat_fields(config):
        if isinstance(value, dict):
            rows += [(f"{name}.{cue}.{key}", option) for cue, options in value.items() for key, option in options.items()]
        else:
            rows.append((name, value))
    return rows


def resolve_path(path: str, *, base: Path | None = None) -> Path:
    """Expands ``~`` and makes relative paths relative to ``base`` (the config file's folder)."""
    expanded = Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() or base is None else base / expanded


def check_value(key: str, value: Any, item: dataclasses.Field[Any]) -> None:
    """Raises ConfigError unless ``value`` fits the field's type, range and choices."""
    expected: type = dict if item.default is dataclasses.MISSING else type(item.default)
    meta = item.metadata
    if expected is dict:
        _check_cues(key, value)
        return
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


def _check_cues(key: str, cues: Any) -> None:
    """``{name: {weight: w >= 0, option: scalar, ...}}``; names are checked when the tracker is built."""
    if not isinstance(cues, dict):
        raise ConfigError(f"{key}: expected a mapping of cue names to their options, got {cues!r}")
    for name, options in cues.items():
        where = f"{key}.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}: cue names must be non-empty strings, got {name!r}")
        if not isinstance(options, dict):
            raise ConfigError(f"{where}: expected a mapping such as {{weight: 1.0}}, got {options!r}")
        if "weight" not in options:
            raise ConfigError(f"{where}: every cue needs a weight (0 disables it)")
        for option, value in options.items():
            if not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"{where}.{option}: expected a number, string or boolean, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where}.{option}: {value!r} is not finite")
        weight = options["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1e6:
            raise ConfigError(f"{where}.weight: expected a number in [0, 1e6], got {weight!r}")


def _coerce(value: Any, item: dataclasses.Field[Any]) -> Any:
    if item.default is dataclasses.MISSING:
        return copy.deepcopy(value)
    return type(item.default)(value)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"tracker.cues.embedding.weight": 1}`` -> ``{"tracker": {"cues": {"embedding": {"weight": 1}}}}``."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        parts = key.split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"override {key!r} must be of the form section.key")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {key!r} conflicts with another override of {part!r}")
        target[parts[-1]] = value
    return nested
