"""The bookkeeping both training loops share: set-up, resuming, progress and checkpoints.

Checkpoints are written in the official wrapper format (``model_state_dict`` with ``module.``
keys, ``optim_state_dict``, ``epoch``), so ``last.pth`` resumes a run and ``final.pth`` loads
anywhere ``load_checkpoint`` does. ``epoch`` counts steps here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mots_ros.checkpoints import read_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class TrainingSettings:
    """What every training run takes; each trainer's config adds its own schedule and sizes."""

    data: list[str]
    out: str
    sequences: list[str] | None = None
    class_id: int = 1
    init: str | None = None  # start from these weights (e.g. the stage-1 result)
    resume: bool = False  # continue from <out>/last.pth
    seed: int = 0
    threads: int = 0
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")


def set_up(config: TrainingSettings) -> torch.device:
    """Threads, output folder and torch seed of a training config; returns its device."""
    if config.threads:
        torch.set_num_threads(config.threads)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    return torch.device(config.device)


class TrainingRun:
    """One training run of ``model``: resume, record each step's loss, finish.

    ``config`` is a :class:`TrainingSettings` with ``steps`` and ``checkpoint_every``.
    """

    def __init__(self, name: str, config: TrainingSettings, model: torch.nn.Module, optimizer: torch.optim.Optimizer, build: dict,
                 *, progress: bool = True):
        self.name, self.config, self.model, self.optimizer, self.build = name, config, model, optimizer, build
        self.last = Path(config.out) / "last.pth"
        self.step = 0
        self.history: list[float] = []
        self._progress = progress
        self._bar = None
        self._start = time.perf_counter()

    def resume(self) -> None:
        """Continues from ``last.pth`` when the config asks for it and the file exists."""
        if not (self.config.resume and self.last.is_file()):
            return
        state, metadata = read_checkpoint(self.last)
        self.model.load_state_dict(state)
        wrapper = torch.load(self.last, map_location=self.config.device, weights_only=True)
        self.optimizer.load_state_dict(wrapper["optim_state_dict"])
        self.step = int(metadata["epoch"])
        logger.info("resumed %s training from %s at step %d", self.name, self.last, self.step)

    def rng(self) -> np.random.Generator:
        """The data generator: a resumed run draws new samples instead of repeating the first ones."""
        return np.random.default_rng(self.config.seed if self.step == 0 else [self.config.seed, self.step])

    @property
    def done(self) -> bool:
        return self.step >= self.config.steps

    def record(self, loss: float) -> None:
        """Counts one step and its loss; writes ``last.pth`` every ``checkpoint_every`` steps."""
        if self._bar is None and self._progress:
            from tqdm import tqdm

            self._bar = tqdm(total=self.config.steps, initial=self.step, unit="step", desc=self.name)
        self.step += 1
        self.history.append(loss)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{self.mean_loss():.4f}")
        if self.step % self.config.checkpoint_every == 0 or self.done:
            extra = {"training": asdict(self.config), "loss_history": self.history[-self.config.checkpoint_every:],
                     "seconds": time.perf_counter() - self._start}
            save_checkpoint(self.model, self.last, build=self.build, epoch=self.step, optimizer=self.optimizer, extra=extra)

    def mean_loss(self, last: int = 50) -> float:
        return float(np.mean(self.history[-last:])) if self.history else float("nan")

    def finish(self, **extra) -> Path:
        """Writes ``final.pth`` (model on the CPU, no optimiser state) and returns its path."""
        if self._bar is not None:
            self._bar.close()
        final = Path(self.config.out) / "final.pth"
        save_checkpoint(self.model.cpu(), final, build=self.build, epoch=self.step,
                        extra={"training": asdict(self.config), "loss_history": self.history[-200:], **extra})
        logger.info("%s training finished: %d steps, mean loss of the last 50: %.4f", self.name, self.step, self.mean_loss())
        return final
