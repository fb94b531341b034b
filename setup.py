"""setuptools entry point: installs the package data that colcon would install."""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent


def share_files(folder: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).glob("*") if p.is_file())


setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/mots_ros"]),
        ("share/mots_ros", ["package.xml"]),
        ("share/mots_ros/config", share_files("config")),
        ("share/mots_ros/launch", share_files("launch")),
        ("share/mots_ros/models", share_files("models")),
    ],
)
