"""Child processes for the demo, the soak and the benchmark: ``mots-ros`` subcommands on private DDS.

Every child gets the shared-memory-only Fast DDS profile and a random ``ROS_DOMAIN_ID``, so that its
traffic never leaves this machine, and every wait on it has a timeout.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mots_ros.errors import MotsError


def package_file(*parts: str) -> Path:
    """A file shipped with the package (config/, launch/, ...), from the source tree or the install."""
    for root in (Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / "mots_ros"):
        if (root.joinpath(*parts)).is_file():
            return root.joinpath(*parts)
    raise MotsError(f"{'/'.join(parts)} is missing from the installation")


def dds_environment() -> dict[str, str]:
    """Shared memory only, in a random domain: the demo's DDS traffic never leaves this machine."""
    env = dict(os.environ)
    env.update(
        FASTDDS_DEFAULT_PROFILES_FILE=str(package_file("config", "fastdds_shm_only.xml")),
        ROS_DOMAIN_ID=str(random.SystemRandom().randint(1, 100)),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
    )
    return env


class ChildProcess:
    """A ``mots-ros`` subcommand in its own process (and process group), logging to ``<logs>/<name>.log``."""

    def __init__(self, name: str, args: list[str], logs: Path, env: dict):
        self.name, self.log_path = name, logs / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "mots_ros.cli", *args], stdout=self._log,
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log_path.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise MotsError(f"{self.name} did not report '{text}' within {timeout_s:.0f} s; see {self.log_path}")

    def wait_reporting(self, timeout_s: float, prefix: str, report) -> int:
        """Waits like :meth:`wait`, calling ``report(line)`` for each new log line that starts with ``prefix``."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            lines = [line for line in self.log_path.read_text().splitlines() if line.startswith(prefix)]
            for line in lines[seen:]:
                report(line)
            seen = len(lines)
            if self.process.poll() is not None:
                return self.process.returncode
            if time.monotonic() > deadline:
                raise MotsError(f"{self.name} did not finish within {timeout_s:.0f} s; see {self.log_path}")
            time.sleep(0.5)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            raise MotsError(f"{self.name} did not finish within {timeout_s:.0f} s; see {self.log_path}") from err

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()
