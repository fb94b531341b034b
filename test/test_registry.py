"""Registries: lazy built-ins, run-time additions, clear errors for unknown or broken names."""

import sys

import pytest

from mots_ros.errors import ConfigError
from mots_ros.registry import Registry


def test_builtins_load_lazily_and_only_when_used():
    registry = Registry("widget", "mots_ros.test_widgets", {"json": "json:dumps", "colorsys": "colorsys:hsv_to_rgb"})
    sys.modules.pop("colorsys", None)
    assert registry.names() == ["json", "colorsys"]
    assert "colorsys" not in sys.modules  # listing names imports nothing
    import json

    assert registry.load("json") is json.dumps


def test_unknown_name_lists_the_known_ones():
    registry = Registry("widget", "mots_ros.test_widgets", {"a": "json:dumps", "b": "json:loads"})
    with pytest.raises(ConfigError, match="unknown widget 'c'; known: a, b"):
        registry.load("c")


def test_broken_target_names_the_entry():
    registry = Registry("widget", "mots_ros.test_widgets", {"gone": "no_such_module_here:Thing"})
    with pytest.raises(ConfigError, match="widget 'gone' cannot be loaded from no_such_module_here:Thing"):
        registry.load("gone")


def test_run_time_registration_takes_objects_or_paths():
    registry = Registry("widget", "mots_ros.test_widgets", {})
    registry.register("thing", object)
    registry.register("path", "json:loads")
    assert registry.load("thing") is object and registry.names() == ["thing", "path"]


def test_the_three_registries_hold_the_built_ins():
    from mots_ros.backends import BACKENDS
    from mots_ros.cues import CUES
    from mots_ros.segmenters import SEGMENTERS

    assert CUES.names()[:3] == ["embedding", "mask_iou", "flow_iou"]
    assert SEGMENTERS.names()[:3] == ["spatial_embedding", "onnx_instances", "ground_truth"]
    assert BACKENDS.names()[:3] == ["torch", "onnxruntime", "tensorrt"]
    assert (CUES.group, SEGMENTERS.group, BACKENDS.group) == ("mots_ros.cues", "mots_ros.segmenters", "mots_ros.backends")
