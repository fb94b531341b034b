import pytest
import yaml

from mots_ros.config import Config, flat_fields, from_dict, load_config, preset
from mots_ros.errors import ConfigError

BUILT_IN_CUES = {"embedding", "mask_iou", "flow_iou", "motion", "points"}




def test_published_presets_hold_the_published_constants():
    car, pedestrian = preset("car-published"), preset("pedestrian-published")
    assert car.tracker.cues["embedding"] == {"weight": 1.0090931467228708, "offset": 8.810218833503743}
    assert car.tracker.threshold == 0.8165986526897969
    assert car.tracker.cues["mask_iou"] == {"weight": 0.74} and car.tracker.max_age_frames == 30
    assert car.tracker.age_unit == "frames" and car.tracker.cues["flow_iou"]["weight"] == 0.0
    assert pedestrian.tracker.cues["embedding"] == {"weight": 1.3437965549876354, "offset": 9.447084376750222}
    assert pedestrian.tracker.cues["mask_iou"] == {"weight": 0.54} and pedestrian.tracker.threshold == 0.47985540892434836
    assert pedestrian.segmentation.class_id == 2 and car.segmentation.seed_threshold == 0.94
    assert set(car.tracker.cues) == set(pedestrian.tracker.cues) == {"embedding", "mask_iou", "flow_iou"}
    assert car.tracker.assignment == "hungarian" and car.flow.source == "topic"


def test_measured_presets_add_the_embedding_average_and_motion_to_the_published_ones():
    for name, published in (("car", preset("car-published")), ("pedestrian", preset("pedestrian-published"))):
        measured = preset(name)
        assert measured.segmentation == published.segmentation
        assert measured.tracker.cues == {**published.tracker.cues,
                                         "embedding": {**published.tracker.cues["embedding"], "ema": 0.8},
                                         "motion": {"weight": 1.0, "gate": 3.0}}
        assert measured.tracker.threshold == published.tracker.threshold + 0.5 and measured.flow.source == "dis"
    assert preset("pedestrian").tracker.age_unit == "seconds" and preset("pedestrian").tracker.max_age_s == 1.0
    assert preset("car").tracker.max_age_frames == 30


def test_the_node_config_files_hold_their_presets():
    from conftest import REPO

    for name in ("car", "pedestrian"):
        tracker = load_config(REPO / "config" / f"{name}.yaml").tracker
        assert tracker.cues == {**preset(name).tracker.cues, "points": {"weight": 0.0}}
        assert tracker.threshold == preset(name).tracker.threshold


@pytest.mark.parametrize(
    "values, message",
    [
        ({"tracker": {"max_age_s": -1}}, "tracker.max_age_s: -1 is out of range"),
        ({"tracker": {"max_age": -1}}, "tracker.max_age_frames: -1 is out of range"),
        ({"tracker": {"max_agee": 1}}, "unknown key tracker.max_agee"),
        ({"tracker": {"max_age_sx": 1}}, "did you mean tracker.max_age_s"),
        ({"trackers": {}}, "unknown section 'trackers' \\(did you mean tracker\\?\\)"),
        ({"tracker": {"cues": {"mask_iou": {}}}}, "tracker.cues.mask_iou: every cue needs a weight"),
        ({"tracker": {"cues": {"mask_iou": {"weight": -1}}}}, "tracker.cues.mask_iou.weight: expected a number in"),
        ({"tracker": {"cues": {"mask_iou": {"weight": 1, "x": [1]}}}}, "tracker.cues.mask_iou.x: expected a number"),
        ({"tracker": {"cues": [1]}}, "tracker.cues: expected a mapping"),
        ({"inference": {"backend": "tensorflow"}}, "inference.backend: unknown inference backend 'tensorflow' \\(did you mean tensorrt\\?\\); known: auto"),
        ({"segmentation": {"kind": "spatial_embeding"}}, "unknown segmenter 'spatial_embeding' \\(did you mean spatial_embedding"),
        ({"tracker": {"cues": {"mask_iuo": {"weight": 1}}}}, "tracker.cues.mask_iuo: unknown association cue 'mask_iuo' \\(did"),
        ({"segmentation": {"class_map": "0-2"}}, "segmentation.class_map: '0-2' is not"),
        ({"tracker": {"age_unit": "hours"}}, "tracker.age_unit: 'hours' is not one of"),
        ({"segmentation": {"min_pixel": 1.5}}, "segmentation.min_pixel: expected a whole number"),
        ({"segmentation": {"input_height": 380, "input_width": 1248}}, "input_height: 380 is not a multiple of 8"),
        ({"segmentation": {"input_height": 384}}, "must both be 0 or both be set"),
        ({"node": {"use_flow": "yes"}}, "node.use_flow: expected true or false"),
        ({"tracker": {"threshold": float("nan")}}, "not finite"),
    ],
)
def test_invalid_values_name_the_key_and_reason(values, message):
    with pytest.raises(ConfigError, match=message if "\\" in message else message.replace("(", "\\(")):
        from_dict(values)


def test_ros_parameter_files_load_over_a_preset(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n    tracker:\n      max_age_s: 3.0\n      age_unit: seconds\n"
                    "      cues:\n        mask_iou: {weight: 0.25}\n        flow_iou: {weight: 1.0}\n")
    config = load_config(path, preset_name="pedestrian-published")
    assert config.tracker.max_age_s == 3.0 and config.tracker.age_unit == "seconds"
    # cues merge over the preset's by name: untouched ones and untouched options stay
    assert config.tracker.cues == {"embedding": preset("pedestrian-published").tracker.cues["embedding"],
                                   "mask_iou": {"weight": 0.25}, "flow_iou": {"weight": 1.0}}
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
        assert set(parameters["tracker"]["cues"]) == BUILT_IN_CUES, path.name


def test_every_field_is_described_and_replace_works():
    for name, _, item in flat_fields():
        assert item.metadata["description"], name
    assert Config().replace(**{"tracker.max_age_frames": 5}).tracker.max_age_frames == 5
    assert Config().replace(**{"tracker.cues.embedding.weight": 2}).tracker.cues["embedding"] == {
        "weight": 2, "offset": 8.810218833503743}


def test_old_flat_tracker_keys_map_onto_cues_with_a_warning(caplog):
    old = from_dict({"tracker": {"reid_scale": 2.0, "reid_offset": 3.0, "mask_iou_weight": 0.5, "flow_iou_weight": 0.25,
                                 "age_unit": "seconds", "max_age": 4.0}})
    assert old.tracker.cues == {"embedding": {"weight": 2.0, "offset": 3.0}, "mask_iou": {"weight": 0.5},
                                "flow_iou": {"weight": 0.25}}
    assert old.tracker.max_age_s == 4.0
    for key, new in [("reid_scale", "cues.embedding.weight"), ("max_age", "max_age_s")]:
        assert f"tracker.{key} is deprecated; use tracker.{new}" in caplog.text
