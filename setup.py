"""setuptools entry point: builds the ROS 2 messages during install and installs package data.

The messages are generated and compiled by tools/gen_msgs.py with the rosidl generators of the
``ros-*`` wheels (no ROS install needed). A regular install writes them into the build folder;
an editable install (``pip install -e .``) writes them into the source tree, where .gitignore
keeps them out of version control. colcon ignores this file and uses CMakeLists.txt instead.
"""

import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithMessages(build_py):
    def run(self):
        super().run()
        sys.path.insert(0, str(ROOT / "tools"))
        import gen_msgs

        target = ROOT if getattr(self, "editable_mode", False) else Path(self.build_lib)
        gen_msgs.build(ROOT / "msg", ROOT / "build" / "rosidl", target)


class BinaryDistribution(Distribution):
    """The compiled message libraries make this a platform wheel."""

    def has_ext_modules(self):
        return True


def share_files(folder: str, pattern: str = "*") -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).glob(pattern) if p.is_file())


setup(
    cmdclass={"build_py": BuildPyWithMessages},
    distclass=BinaryDistribution,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/mots_ros"]),
        ("share/mots_ros", ["package.xml"]),
        ("share/mots_ros/msg", share_files("msg", "*.msg")),
        ("share/mots_ros/config", share_files("config")),
        ("share/mots_ros/launch", share_files("launch")),
        ("share/mots_ros/models", share_files("models")),
    ],
)
