"""Shared fixtures. Data under ../shared is found by path, never copied into the project."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOTS_SHARED_DIR", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
MOTS20 = Path(os.environ.get("MOTS20_DIR", SHARED / "data" / "mots20"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def mots20() -> Path:
    if not (MOTS20 / "instances_txt").is_dir():
        pytest.skip(f"MOTS20 data not found at {MOTS20} (set MOTS20_DIR)")
    return MOTS20


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Random-weight checkpoints (SE width 0.25 as se.pth, PointTrack as pt.pth) for node tests."""
    import torch

    from mots_ros.checkpoints import save_checkpoint
    from mots_ros.embedding import PointTrackNet
    from mots_ros.segmentation import SpatialEmbeddingNet

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_checkpoint(SpatialEmbeddingNet(width=0.25), folder / "se.pth", build={})
    save_checkpoint(PointTrackNet(), folder / "pt.pth", build={})
    return folder


def load_manifest(name: str) -> list[tuple[str, list[int]]]:
    """``(key without 'module.', shape)`` of a reference state-dict manifest, in order."""
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference manifest {path} not found")
    params = json.loads(path.read_text())["params"]
    return [(key.removeprefix("module."), shape) for key, shape in params.items()]


def pytest_configure(config):
    # Any rclpy use inside the pytest process must stay on shared memory in this run's domain.
    from ros_support import use_dds_environment_here

    use_dds_environment_here()
