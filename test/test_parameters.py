"""The node's ROS parameters: one per config leaf, cue options from params files, v0.1 keys, refusals."""

import pytest
import rclpy
from rclpy.parameter import Parameter

from mots_ros.config import Config, leaf_values
from mots_ros.errors import ConfigError
from mots_ros.nodes.parameters import config_from_parameters, declare_config_parameters

pytestmark = pytest.mark.ros


@pytest.fixture
def make_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(**overrides):
        node = rclpy.create_node("parameters_test", context=context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_every_config_leaf_is_a_parameter_with_its_default(make_node):
    node = make_node()
    refused = declare_config_parameters(node)
    assert refused == {}
    for name, value in leaf_values(Config()):
        assert node.get_parameter(name).value == value, name
    assert node.get_parameter("tracker.cues.embedding.offset").value == 8.810218833503743
    assert config_from_parameters(node, refused) == Config()


class LanePriorCue:
    name, weight = "lane_prior", 0.0

    def __init__(self, weight, lane_width_px):
        self.weight, self.lane_width_px = weight, lane_width_px


def test_cues_and_options_from_a_params_file_are_declared_and_used(make_node):
    from mots_ros.registry import CUES

    CUES.register("lane_prior", LanePriorCue)
    node = make_node(**{"tracker.cues.lane_prior.weight": 0.5, "tracker.cues.lane_prior.lane_width_px": 80,
                        "tracker.cues.mask_iou.weight": 1.0})
    config = config_from_parameters(node, declare_config_parameters(node))
    assert config.tracker.cues["lane_prior"] == {"weight": 0.5, "lane_width_px": 80}
    assert config.tracker.cues["mask_iou"] == {"weight": 1.0}


def test_v0_1_flat_keys_still_apply(make_node, caplog):
    node = make_node(**{"tracker.reid_scale": 2.0, "tracker.max_age": 4.0, "tracker.age_unit": "seconds"})
    config = config_from_parameters(node, declare_config_parameters(node))
    assert config.tracker.cues["embedding"]["weight"] == 2.0 and config.tracker.max_age_s == 4.0
    assert "tracker.reid_scale is deprecated" in caplog.text


def test_out_of_range_overrides_are_refused_at_configure_with_the_key(make_node):
    node = make_node(**{"tracker.max_age_s": -1.0})
    refused = declare_config_parameters(node)
    assert "tracker.max_age_s" in refused
    with pytest.raises(ConfigError, match="parameter tracker.max_age_s"):
        config_from_parameters(node, refused)


@pytest.mark.parametrize("overrides, message", [
    ({"tracker.max_agee": 3.0}, "unknown parameter tracker.max_agee \\(did you mean tracker.max_age_s"),
    ({"trackr.max_age_s": 3.0}, "unknown parameter trackr.max_age_s \\(did you mean tracker.max_age_s"),
    ({"node.mdoe": "replay"}, "unknown parameter node.mdoe \\(did you mean node.mode"),
])
def test_typos_are_refused_at_configure_with_the_closest_names(make_node, overrides, message):
    node = make_node(**overrides)
    with pytest.raises(ConfigError, match=message):
        config_from_parameters(node, declare_config_parameters(node))


def test_qos_overrides_and_ros_parameters_are_not_typos(make_node):
    node = make_node(**{"qos_overrides./camera/image.subscription.reliability": "reliable", "use_sim_time": False})
    config_from_parameters(node, declare_config_parameters(node))


def test_a_refused_parameter_can_be_corrected_and_configure_then_succeeds(make_node):
    node = make_node(**{"tracker.max_age_s": -1.0})
    refused = declare_config_parameters(node)
    with pytest.raises(ConfigError, match="parameter tracker.max_age_s"):
        config_from_parameters(node, refused)
    assert not node.set_parameters([Parameter("tracker.max_age_s", value=-2.0)])[0].successful  # still out of range
    assert node.set_parameters([Parameter("tracker.max_age_s", value=2.0)])[0].successful
    assert config_from_parameters(node, refused).tracker.max_age_s == 2.0
