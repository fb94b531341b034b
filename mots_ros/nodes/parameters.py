"""ROS parameters from the config dataclasses: same names, defaults, ranges and descriptions.

Parameter names are the dotted config paths (``tracker.max_age``). A value from a params file that
is out of range or of the wrong type must not crash node construction; it is recorded and refused
at configure, with the key and the reason.
"""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from mots_ros.config import Config, check_value, flat_fields, from_dict
from mots_ros.errors import ConfigError


def _descriptor(name: str, default, item) -> ParameterDescriptor:
    meta = item.metadata
    description = meta["description"]
    # Float parameters also take integers ("max_age: 3"); the config check then validates them.
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


def declare_config_parameters(node: Node) -> dict[str, str]:
    """Declares one parameter per config field; returns ``{name: reason}`` for refused overrides."""
    refused: dict[str, str] = {}
    for name, default, item in flat_fields(Config()):
        descriptor = _descriptor(name, default, item)
        try:
            node.declare_parameter(name, default, descriptor)
        except (InvalidParameterValueException, InvalidParameterTypeException) as err:
            refused[name] = str(err)
            node.declare_parameter(name, default, descriptor, ignore_override=True)
    node.add_on_set_parameters_callback(_validate_changes)
    return refused


def _validate_changes(parameters) -> SetParametersResult:
    fields = {name: item for name, _, item in flat_fields(Config())}
    for parameter in parameters:
        item = fields.get(parameter.name)
        if item is None:
            continue
        try:
            check_value(parameter.name, parameter.value, item)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
    return SetParametersResult(successful=True, reason="applies at the next configure")


def config_from_parameters(node: Node, refused: dict[str, str]) -> Config:
    """Builds and validates the Config from the node's parameters.

    Raises:
        ConfigError: naming the parameter and the reason (including overrides refused at declaration).
    """
    if refused:
        name, reason = next(iter(refused.items()))
        raise ConfigError(f"parameter {name}: {reason}")
    values: dict[str, dict] = {}
    for name, _, _ in flat_fields(Config()):
        section, key = name.split(".", 1)
        values.setdefault(section, {})[key] = node.get_parameter(name).value
    return from_dict(values, source=f"parameters of {node.get_fully_qualified_name()}")
