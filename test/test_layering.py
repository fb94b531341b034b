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


def test_nothing_imports_the_nodes_or_the_cli():
    """Only the CLI (the outermost layer) reaches into nodes/, and nothing imports the CLI."""
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _imports(path)
        if (name.startswith("mots_ros.nodes") and "nodes" not in path.parts and path.name != "cli.py")
        or name == "mots_ros.cli"
    ]
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
