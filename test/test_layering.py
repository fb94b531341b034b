"""The core stays ROS-free, and torch-free where a deployment may lack torch."""

import ast
import subprocess
import sys

import pytest

from conftest import REPO

PACKAGE = REPO / "mots_ros"
ROS_ADAPTERS = {"nodes", "ros_conversions.py"}
# Modules a torch-less deployment (ONNX Runtime, TensorRT) runs.
TORCH_FREE = [
    "mots_ros.config",
    "mots_ros.datasets",
    "mots_ros.embedding",
    "mots_ros.embedding.embedder",
    "mots_ros.evaluation",
    "mots_ros.images",
    "mots_ros.masks",
    "mots_ros.offline_tracking",
    "mots_ros.overlay",
    "mots_ros.pipeline",
    "mots_ros.segmentation",
    "mots_ros.segmenters",
    "mots_ros.segmenters.spatial_embedding",
    "mots_ros.segmenters.ground_truth",
    "mots_ros.segmenters.onnx_instances",
    "mots_ros.cues",
    "mots_ros.cues.embedding",
    "mots_ros.cues.flow_iou",
    "mots_ros.backends",
    "mots_ros.registry",
    "mots_ros.streaming",
    "mots_ros.optical_flow",
    "mots_ros.tracker",
]


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _core_files():
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] not in ROS_ADAPTERS and relative.parts[0] != "msg":
            yield path


def test_the_core_files_are_checked():
    names = {p.name for p in _core_files()}
    assert {"pipeline.py", "cli.py", "bags.py", "tracker.py"} <= names and "mots_node.py" not in names


def test_only_the_ros_adapters_import_rclpy_or_messages():
    offenders = []
    for path in _core_files():
        for name in _imports(path):
            if name.split(".")[0] in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs") or name.startswith("mots_ros.msg"):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders


def _module_level_imports(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_nothing_imports_the_nodes_or_the_cli():
    """STYLE.md: nothing imports nodes/ or cli.py. One exception, kept on purpose: the CLI is the
    process entry point, and ``run``, ``bag replay``, ``record`` and ``bench`` must start rclpy. They
    import ``mots_ros.nodes.commands`` inside their handlers, never at module level, so every other
    subcommand (and ``import mots_ros.cli``) runs without ROS."""
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _imports(path)
        if (name.startswith("mots_ros.nodes") and "nodes" not in path.parts
            and not (path.name == "cli.py" and name == "mots_ros.nodes.commands"))
        or name == "mots_ros.cli"
    ]
    assert not offenders
    assert not [n for n in _module_level_imports(PACKAGE / "cli.py") if n.startswith(("mots_ros.nodes", "rclpy"))]


#: Lower layers that must not import what is built on them (STYLE.md's rows: imports go upward only).
FORBIDDEN_UPWARD = {
    "errors.py": ("mots_ros.",),
    "registry.py": ("mots_ros.config", "mots_ros.cues", "mots_ros.segmenters", "mots_ros.backends", "mots_ros.tracker"),
    "config.py": ("mots_ros.cues", "mots_ros.segmenters", "mots_ros.backends", "mots_ros.tracker", "mots_ros.pipeline"),
    "backends": ("mots_ros.datasets", "mots_ros.pipeline", "mots_ros.segmenters", "mots_ros.offline_tracking",
                 "mots_ros.tracker", "mots_ros.cues", "mots_ros.evaluation", "mots_ros.streaming"),
    "cues": ("mots_ros.pipeline", "mots_ros.segmenters", "mots_ros.backends", "mots_ros.offline_tracking"),
    "tracker.py": ("mots_ros.pipeline", "mots_ros.segmenters", "mots_ros.backends"),
    "segmenters": ("mots_ros.pipeline", "mots_ros.tracker", "mots_ros.offline_tracking"),
    "streaming.py": ("mots_ros.",),
}


@pytest.mark.parametrize("part, forbidden", FORBIDDEN_UPWARD.items())
def test_no_import_runs_back_up(part, forbidden):
    paths = [PACKAGE / part] if part.endswith(".py") else list((PACKAGE / part).rglob("*.py"))
    offenders = [f"{path.relative_to(REPO)} imports {name}" for path in paths for name in _imports(path)
                 if name.startswith(forbidden) and name != "mots_ros.errors"]
    assert not offenders


@pytest.mark.parametrize("module", TORCH_FREE)
def test_runtime_modules_do_not_load_torch_or_ros(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('torch', 'rclpy', 'onnxruntime', 'tensorrt') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"{module} loaded {run.stdout.strip()}"
