"""``mots-ros soak``: thousands of frames through the real node, in replay and in live mode.

A synthetic bag is looped (each loop's stamps jump back, so the tracker resets as on a looped
bag). Replay mode plays frame by frame (``--wait-for-tracks``) and must drop nothing; live mode
plays at the recorded 10 Hz and counts what the node drops. The node writes every frame's stage
latencies to a CSV, and this tool samples the node's resident memory from /proc. The report gives
median and p95 per stage, drops, and memory at the start, after warm-up and at the end, as JSON
and as a table. Like the demo, it only orchestrates processes.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import numpy as np

from mots_ros.benchmark import machine_description
from mots_ros.processes import ChildProcess, dds_environment, package_file
from mots_ros.errors import MotsError

WARMUP_FRACTION = 0.1  # memory growth is measured from here to the end


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class _MemorySampler(threading.Thread):
    def __init__(self, pid: int, period_s: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.period_s, self.samples = pid, period_s, []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.period_s):
            value = _rss_mib(self.pid)
            if value is not None:
                self.samples.append((time.monotonic(), value))


def _node_pid(child: ChildProcess) -> int:
    return child.process.pid  # `python -m mots_ros.cli run` is the node process itself


def soak_mode(mode: str, bag: Path, loops: int, frames_per_loop: int, out: Path, params_file: Path,
              parameters: tuple[str, ...] = ()) -> dict:
    """Runs one mode; returns its statistics. ``parameters`` are extra ``name:=value`` node overrides."""
    logs = out / f"logs_{mode}"
    logs.mkdir(parents=True, exist_ok=True)
    latency_csv = out / f"latency_{mode}.csv"
    latency_csv.unlink(missing_ok=True)
    env = dds_environment()
    overrides = [item for parameter in parameters for item in ("-p", parameter)]
    node = ChildProcess("node", ["run", "--params-file", str(params_file), "--namespace", "camera", "--ros-args",
                           "-p", f"node.mode:={mode}", "-p", f"node.latency_log:={latency_csv}", *overrides], logs, env)
    sampler = None
    try:
        node.wait_for("active:", 120)
        sampler = _MemorySampler(_node_pid(node))
        sampler.start()
        replay_args = ["bag", "replay", str(bag), "--loops", str(loops), "--topics", "/camera/image"]
        replay_args += ["--fast", "--wait-for-tracks", "/camera/tracks"] if mode == "replay" else ["--rate", "1.0"]
        started = time.monotonic()
        player = ChildProcess("replay", replay_args, logs, env)
        if player.wait(6 * 3600) != 0:
            raise MotsError(f"bag replay failed; see {player.log_path}")
        time.sleep(3.0)  # let the node finish its last frame
        seconds = time.monotonic() - started
    finally:
        if sampler is not None:
            sampler.stop_event.set()
        node.stop()
    with open(latency_csv) as handle:
        rows = list(csv.DictReader(handle))
    published = loops * frames_per_loop
    memory = [value for _, value in sampler.samples]
    warm = memory[int(len(memory) * WARMUP_FRACTION)] if memory else float("nan")
    stages = {
        stage: {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95))}
        for stage in rows[0] if stage not in ("stamp_ns", "finished_s")
        for values in [[float(r[stage]) for r in rows]]
    } if rows else {}
    finished = [float(r["finished_s"]) for r in rows]
    # Throughput between the first and the last processed frame: process start-up is not in it.
    processed_per_s = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else 0.0
    return {
        "mode": mode,
        "frames_published": published,
        "frames_processed": len(rows),
        "frames_dropped": published - len(rows),
        "seconds": seconds,
        "processed_per_s": processed_per_s,
        "stages": stages,
        "rss_mib": {"start": memory[0] if memory else None, "after_warmup": warm, "end": memory[-1] if memory else None,
                    "growth_after_warmup_percent": (memory[-1] / warm - 1) * 100 if memory else None},
    }


def synthetic_bag(out: Path, frames: int, seed: int = 77) -> Path:
    """A KITTI-sized synthetic drive as a bag (reused when it exists)."""
    from mots_ros.bags import images_to_bag
    from mots_ros.synthetic.driving import DrivingConfig, write_sequence

    data, bag = out / "data", out / "bag"
    if not bag.exists():
        write_sequence(data, "0000", DrivingConfig(frames=frames, seed=seed))
        images_to_bag(data / "images" / "0000", bag, fps=10)
    return bag


def node_end_to_end(out: Path, threads: int, frames: int = 40) -> dict:
    """Median/p95 of the node's decode-to-publish time and frames per second, replaying frame by frame."""
    bag = synthetic_bag(out, frames)
    stats = soak_mode("replay", bag, 1, frames, out / f"threads_{threads}", package_file("config", "car.yaml"),
                      parameters=(f"inference.num_threads:={threads}",))
    total = stats["stages"]["total"]
    return {"total_median_ms": total["median_ms"], "total_p95_ms": total["p95_ms"],
            "fps": stats["processed_per_s"], "frames": stats["frames_processed"]}


def run_soak(out: Path, *, frames: int = 2000, modes: tuple[str, ...] = ("replay", "live"),
             frames_per_loop: int = 100, params_file: Path | None = None) -> str:
    out.mkdir(parents=True, exist_ok=True)
    bag = synthetic_bag(out, frames_per_loop)
    loops = -(-frames // frames_per_loop)
    params_file = params_file or package_file("config", "car.yaml")
    report = {"machine": machine_description(), "modes": [soak_mode(m, bag, loops, frames_per_loop, out, params_file)
                                                          for m in modes]}
    (out / "soak.json").write_text(json.dumps(report, indent=2))
    return format_soak(report) + f"\nJSON: {out / 'soak.json'}"


def format_soak(report: dict) -> str:
    lines = []
    for mode in report["modes"]:
        rss = mode["rss_mib"]
        lines.append(f"{mode['mode']} mode: {mode['frames_processed']}/{mode['frames_published']} frames processed "
                     f"({mode['processed_per_s']:.1f}/s), {mode['frames_dropped']} dropped, {mode['seconds']:.0f} s; "
                     f"resident memory {rss['start']:.0f} MiB "
                     f"at start, {rss['after_warmup']:.0f} after warm-up, {rss['end']:.0f} at end "
                     f"({rss['growth_after_warmup_percent']:+.1f}% after warm-up)")
        lines.append(f"  {'stage':<24}{'median ms':>11}{'p95 ms':>10}")
        for stage, values in mode["stages"].items():
            lines.append(f"  {stage:<24}{values['median_ms']:>11.1f}{values['p95_ms']:>10.1f}")
    lines.append(f"machine: {report['machine']['cpu']} ({report['machine']['logical_cpus']} logical CPUs)")
    return "\n".join(lines)
