"""ROS parameters from the config dataclasses: same names, defaults, ranges and descriptions.

Parameter names are the dotted config paths (``tracker.max_age_s``); the cues' options are one
parameter each (``tracker.cues.embedding.weight``), and cues or options that a params file adds
(a plugin cue, say) are declared from the file. A value from a params file that is out of range
or of the wrong type must not crash node construction; it is recorded and refused at configure,
with the key and the reason. The v0.1 flat tracker keys (``tracker.reid_scale``, ...) still load,
with a deprecation warning.
"""

from __future__ import annotations

import difflib

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from mots_ros.config import DEPRECATED_TRACKER_KEYS, Config, check_value, flat_fields, from_dict, leaf_values
from mots_ros.errors import ConfigError

CUES_PREFIX = "tracker.cues."
DEPRECATED = {f"tracker.{key}" for key in (*DEPRECATED_TRACKER_KEYS, "max_age")}


def _descriptor(name: str, default, item) -> ParameterDescriptor:
    if item is None:  # a cue option: any scalar; the cue checks it when the tracker is built
        return ParameterDescriptor(name=name, description="option of an association cue (see tracker.cues)",
                                   dynamic_typing=True)
    meta = item.metadata
    description = meta["description"]
    # Float parameters also take integers ("max_age_s: 3"); the config check then validates them.
    descriptor = ParameterDescriptor(name=name, description=description, dynamic_typing=isinstance(default, float))
    if meta["choices"] is not None:
        descriptor.additional_constraints = "one of: " + ", ".join(map(str, meta["choices"]))
    low, high = meta["low"], meta["high"]
    if low is not None and high is not None and not isinstance(default, bool):
        if isinstance(default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        elif isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    return descriptor


def _parameters_to_declare(node: Node) -> list[tuple[str, object, object]]:
    """``(name, default, field or None)``: every config leaf, plus cue options and v0.1 keys given as overrides."""
    fields = {name: item for name, _, item in flat_fields(Config())}
    rows = [(name, value, None if name.startswith(CUES_PREFIX) else fields[name]) for name, value in leaf_values(Config())]
    known = {name for name, _, _ in rows}
    # rclpy keeps the params file and -p values of undeclared names here; it has no public accessor.
    for name, parameter in node._parameter_overrides.items():
        if name not in known and (name.startswith(CUES_PREFIX) or name in DEPRECATED):
            rows.append((name, parameter.value, None))
    return rows


def declare_config_parameters(node: Node) -> dict[str, str]:
    """Declares one parameter per config leaf; returns ``{name: reason}`` for refused overrides.

    The dict stays live: setting a refused parameter to a valid value removes its entry, so the
    next configure can succeed.
    """
    refused: dict[str, str] = {}
    for name, default, item in _parameters_to_declare(node):
        descriptor = _descriptor(name, default, item)
        try:
            node.declare_parameter(name, default, descriptor)
        except (InvalidParameterValueException, InvalidParameterTypeException) as err:
            refused[name] = str(err)
            node.declare_parameter(name, default, descriptor, ignore_override=True)
    node.add_on_set_parameters_callback(lambda parameters: _validate_changes(parameters, refused))
    return refused


def _validate_changes(parameters, refused: dict[str, str]) -> SetParametersResult:
    fields = {name: item for name, _, item in flat_fields(Config())}
    for parameter in parameters:
        item = fields.get(parameter.name)
        if item is None:
            continue
        try:
            check_value(parameter.name, parameter.value, item)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
    for parameter in parameters:
        refused.pop(parameter.name, None)  # corrected: the next configure reads the new value
    return SetParametersResult(successful=True, reason="applies at the next configure")


#: Parameters every rclpy node may have that are not ours.
_ROS_PARAMETERS = ("use_sim_time", "start_type_description_service")


def unknown_parameters(node: Node) -> list[str]:
    """Names given in a params file or ``-p`` that are no setting (typos: ``tracker.max_agee``)."""
    declared = {name for name, _, _ in _parameters_to_declare(node)}
    return sorted(name for name in node._parameter_overrides
                  if name not in declared and name not in _ROS_PARAMETERS and not name.startswith("qos_overrides."))


def config_from_parameters(node: Node, refused: dict[str, str]) -> Config:
    """Builds and validates the Config from the node's parameters.

    Raises:
        ConfigError: naming the parameter and the reason (including overrides refused at declaration).
    """
    if refused:
        name, reason = next(iter(refused.items()))
        raise ConfigError(f"parameter {name}: {reason}")
    unknown = unknown_parameters(node)
    if unknown:
        known = [name for name, _ in leaf_values(Config())]
        hints = [name + (f" (did you mean {' or '.join(close)}?)" if (close := difflib.get_close_matches(name, known, 2))
                         else "") for name in unknown]
        raise ConfigError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                          "every setting is listed in config/car.yaml")
    values: dict[str, dict] = {}
    for name, _, _ in _parameters_to_declare(node):
        value = node.get_parameter(name).value
        parts = name.split(".")
        target = values
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return from_dict(values, source=f"parameters of {node.get_fully_qualified_name()}")
