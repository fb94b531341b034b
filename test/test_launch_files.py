"""Launch files are checked statically: `launch`/`launch_ros` cannot be installed here.

Every parameter they set exists, every file they name exists, every executable and CLI flag they
run exists, every launch argument they read is declared, and remapped topics are the node's.
"""

import ast

import pytest

from conftest import REPO
from mots_ros.cli import build_parser
from mots_ros.config import flat_fields

LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
PARAMETERS = {name for name, _, _ in flat_fields()}


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _strings(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.fixture(params=LAUNCH_FILES, ids=lambda p: p.name)
def launch_tree(request):
    return ast.parse(request.param.read_text())


def test_there_are_launch_files():
    assert {p.name for p in LAUNCH_FILES} >= {"mots.launch.py", "replay_eval.launch.py"}


def test_parameters_they_set_exist(launch_tree):
    for call in _calls(launch_tree, "Node"):
        for item in _keyword(call, "parameters").elts:
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    assert key.value in PARAMETERS, f"unknown parameter {key.value}"


def test_files_they_name_exist(launch_tree):
    named = 0
    for call in _calls(launch_tree, "PathJoinSubstitution"):
        first, *rest = call.args[0].elts
        if isinstance(first, ast.Call) and getattr(first.func, "id", None) == "FindPackageShare":
            parts = [p.value for p in rest]  # share/mots_ros/<parts> is installed from the repo's folders
            assert (REPO.joinpath(*parts)).is_file(), f"{parts} is not in the package"
            named += 1
    assert named, "each launch file defaults to a params file of the package"


def test_executables_and_remapped_topics_are_the_nodes(launch_tree):
    cmake = (REPO / "CMakeLists.txt").read_text()
    node_source = (REPO / "mots_ros" / "nodes" / "mots_node.py").read_text()
    for call in _calls(launch_tree, "Node"):
        assert _keyword(call, "package").value == "mots_ros"
        assert f"RENAME {_keyword(call, 'executable').value}" in cmake
        for pair in getattr(_keyword(call, "remappings"), "elts", []):
            assert f'"{pair.elts[0].value}", self._on_' in node_source, f"the node has no topic {pair.elts[0].value}"


def test_cli_commands_they_run_exist(launch_tree):
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    for call in _calls(launch_tree, "ExecuteProcess"):
        words = [w for w in _strings(_keyword(call, "cmd")) if w not in (".txt",)]
        if not words or words[0] != "mots-ros":
            continue  # built by a function (checked below) or not ours
        command = subcommands[words[1]]
        flags = {s for action in command._actions for s in action.option_strings}
        for word in words[2:]:
            if word.startswith("--"):
                assert word in flags, f"mots-ros {words[1]} has no {word}"


def test_launch_arguments_they_read_are_declared(launch_tree):
    declared = {c.args[0].value for c in _calls(launch_tree, "DeclareLaunchArgument")}
    used = {c.args[0].value for c in _calls(launch_tree, "LaunchConfiguration")}
    assert used <= declared, used - declared


def test_names_they_import_from_the_package_exist(launch_tree):
    import importlib

    for node in ast.walk(launch_tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mots_ros"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


def test_the_shared_process_command_is_a_valid_mots_ros_run():
    from mots_ros.cli import run_command_line

    command = run_command_line("config/car.yaml", ["front", "rear"], ["-p", "node.mode:=replay", "-r", "image:=image_raw"])
    assert command[0] == "mots-ros"
    split = command.index("--ros-args")
    args = build_parser().parse_args(command[1:split])
    assert args.command == "run" and args.namespace == ["front", "rear"] and str(args.params_file) == "config/car.yaml"
    assert command[split + 1 :] == ["-p", "node.mode:=replay", "-r", "image:=image_raw"]
    assert "--ros-args" not in run_command_line("config/car.yaml", ["front"], [])
    launch_file = (REPO / "launch" / "mots.launch.py").read_text()
    assert "run_command_line(" in launch_file and '"shared_process"' in launch_file
