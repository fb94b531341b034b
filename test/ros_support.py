"""Helpers for tests that start DDS: shared-memory-only transport, a random domain, timeouts everywhere."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

DDS_PROFILE = REPO / "config" / "fastdds_shm_only.xml"
# One random domain per test run; every process of the run shares it and nothing else does.
DOMAIN_ID = str(random.SystemRandom().randint(1, 100))


def dds_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FASTDDS_DEFAULT_PROFILES_FILE=str(DDS_PROFILE),
        ROS_DOMAIN_ID=DOMAIN_ID,
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        PYTHONUNBUFFERED="1",
    )
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)  # let child interpreters set up their own libraries
    return env


def use_dds_environment_here() -> None:
    """Applies the same DDS settings to this test process (before its rclpy.init)."""
    for key, value in dds_environment().items():
        if key.startswith(("FASTDDS", "ROS_", "RMW_")):
            os.environ[key] = value


class Process:
    """A ``mots-ros`` subprocess in its own process group, with its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None):
        self.log = log
        self._file = open(log, "w")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mots_ros.cli", *args], cwd=REPO, env=env or dds_environment(),
            stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text()

    def wait_for_output(self, text: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.popen.poll() is not None:
                return text in self.output()
            time.sleep(0.1)
        return False

    def wait(self, timeout_s: float) -> int:
        return self.popen.wait(timeout=timeout_s)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._file.close()


def synthetic_drive_bag(root: Path, frames: int, seed: int = 31) -> Path:
    """A synthetic drive under ``root/data`` (KITTI MOTS layout) and its bag at ``root/bag``; returns ``root``."""
    from mots_ros.bags import images_to_bag
    from mots_ros.synthetic.driving import DrivingConfig, write_sequence

    write_sequence(root / "data", "0000", DrivingConfig(frames=frames, seed=seed))
    images_to_bag(root / "data" / "images" / "0000", root / "bag", fps=10)
    return root


def replay_through_node(node: Process, bag: Path, out: Path, *, frames: int, logs: Path,
                        env: dict | None = None) -> Process:
    """Once ``node`` is active, replays ``bag`` frame by frame into it while ``/camera/tracks`` is
    recorded to ``out``; stops all three processes and returns the recorder."""
    recorder = player = None
    try:
        assert node.wait_for_output("active:", 120), node.output()
        recorder = Process(["record", "--topic", "/camera/tracks", "--fps", "10", "--out", str(out),
                            "--frames", str(frames), "--idle-timeout", "60", "--timeout", "300"], logs / "record.log", env=env)
        assert recorder.wait_for_output("ready:", 60), recorder.output()
        player = Process(["bag", "replay", str(bag), "--fast", "--wait-for-tracks", "/camera/tracks"],
                         logs / "replay.log", env=env)
        assert player.wait(300) == 0, player.output()
        assert recorder.wait(120) == 0, recorder.output()
    finally:
        for process in (player, recorder, node):
            if process is not None:
                process.stop()
    return recorder
