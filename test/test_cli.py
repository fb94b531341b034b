"""The ``mots-ros`` command line: every subcommand documents itself; config options; errors in one line."""

import pytest

from mots_ros.cli import _config_from_args, build_parser, main

SUBCOMMANDS = [["track"], ["oracle"], ["eval"], ["synth"], ["train"], ["run"], ["bag", "from-images"],
               ["bag", "replay"], ["bag", "eval"], ["record"], ["export", "onnx"], ["export", "engine"], ["demo"],
               ["soak"], ["bench"]]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: mots-ros " + " ".join(command) in capsys.readouterr().out


def test_presets_and_backends_come_from_their_registries(capsys):
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = capsys.readouterr().out
    assert "car-published" in text and "pedestrian-published" in text and "onnxruntime" in text


def test_config_options_map_onto_config_keys(caplog):
    parser = build_parser()
    args = parser.parse_args(["track", "--out", "x", "--preset", "pedestrian", "--embedding-weights", "pt.pth",
                              "--backend", "torch", "--set", "tracker.cues.mask_iou.weight=0.25",
                              "--set", "tracker.max_age_frames=5"])
    config = _config_from_args(args)
    assert config.embedding.weights == "pt.pth" and config.inference.backend == "torch"
    assert config.tracker.cues["mask_iou"] == {"weight": 0.25} and config.tracker.max_age_frames == 5
    old = _config_from_args(parser.parse_args(["track", "--out", "x", "--tracker-weights", "old.pth"]))
    assert old.embedding.weights == "old.pth" and "--tracker-weights is deprecated" in caplog.text


@pytest.mark.parametrize("extra, message", [
    (["--set", "tracker.max_agee=1"], "unknown key tracker.max_agee (did you mean tracker.max_age_s"),
    (["--set", "tracker.cues.motoin.weight=1"], "tracker.cues.motoin: unknown association cue 'motoin' (did you mean motion?)"),
    (["--set", "nokey"], "--set expects KEY=VALUE"),
])
def test_errors_are_one_line_with_status_2(extra, message, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code = main(["oracle", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *extra])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error


def test_a_params_file_that_is_not_yaml_is_one_line(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("/**:\n  ros__parameters:\n    node: {mode: [live\n")
    code = main(["run", "--params-file", str(tmp_path / "params.yaml")])
    error = capsys.readouterr().err
    assert code == 2 and "params.yaml is not valid YAML at line" in error and "Traceback" not in error
