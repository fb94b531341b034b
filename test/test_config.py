import pytest
import yaml

from mots_ros.config import Config, flat_fields, from_dict, load_config, preset
from mots_ros.errors import ConfigError


def test_presets_hold_the_published_constants():
    car, pedestrian = preset("car"), preset("pedestrian")
    assert car.tracker.reid_scale == 1.0090931467228708 and car.tracker.threshold == 0.8165986526897969
    assert car.tracker.mask_iou_weight == 0.74 and car.tracker.max_age == 30
    assert pedestrian.tracker.reid_offset == 9.447084376750222 and pedestrian.tracker.mask_iou_weight == 0.54
    assert pedestrian.segmentation.class_id == 2 and car.segmentation.seed_threshold == 0.94


@pytest.mark.parametrize(
    "values, message",
    [
        ({"tracker": {"max_age": -1}}, "tracker.max_age: -1 is out of range"),
        ({"tracker": {"max_agee": 1}}, "unknown key tracker.max_agee"),
        ({"trackers": {}}, "unknown section 'trackers'"),
        ({"tracker": {"age_unit": "hours"}}, "tracker.age_unit: 'hours' is not one of"),
        ({"segmentation": {"min_pixel": 1.5}}, "segmentation.min_pixel: expected a whole number"),
        ({"segmentation": {"input_height": 380, "input_width": 1248}}, "input_height: 380 is not a multiple of 8"),
        ({"segmentation": {"input_height": 384}}, "must both be 0 or both be set"),
        ({"node": {"use_flow": "yes"}}, "node.use_flow: expected true or false"),
        ({"tracker": {"threshold": float("nan")}}, "not finite"),
    ],
)
def test_invalid_values_name_the_key_and_reason(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(")):
        from_dict(values)


def test_ros_parameter_files_load_over_a_preset(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n    tracker:\n      max_age: 3.0\n      age_unit: seconds\n")
    config = load_config(path, preset_name="pedestrian")
    assert config.tracker.max_age == 3.0 and config.tracker.age_unit == "seconds"
    assert config.tracker.reid_scale == preset("pedestrian").tracker.reid_scale
    (tmp_path / "broken.yaml").write_text("tracker: [1, 2")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_shipped_config_files_are_valid():
    from conftest import REPO

    files = sorted((REPO / "config").glob("*.yaml"))
    assert files, "config/ holds the presets"
    for path in files:
        load_config(path)
        # the presets double as the parameter reference, so each lists every parameter
        parameters = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
        listed = {f"{section}.{key}" for section, values in parameters.items() for key in values}
        assert listed == {name for name, _, _ in flat_fields()}, path.name


def test_every_field_is_described_and_replace_works():
    for name, _, item in flat_fields():
        assert item.metadata["description"], name
    assert Config().replace(**{"tracker.max_age": 5}).tracker.max_age == 5
