"""The bookkeeping both training loops share: set-up, resuming, progress and checkpoints.

Checkpoints are written in the official wrapper format (``model_state_dict`` with ``module.``
keys, ``optim_state_dict``, ``epoch``), so ``last.pth`` resumes a run and ``final.pth`` loads
anywhere ``load_checkpoint`` does. ``epoch`` counts steps here.

With ``average_from`` > 0 the run also keeps the equal-weight average of the weights after each
step from that share of the steps on (stochastic weight averaging, Izmailov et al. 2018), and
writes it beside the last weights as ``final_average.pth`` (``last_average.pth`` while running).
One run thus gives both, for an ablation on the same training.
"""

from __future__ import annotations

import copy
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
    average_from: float = 0.0  # share of the steps after which weights are averaged too; 0: off
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
        if not 0.0 <= config.average_from < 1.0:
            raise ValueError(f"average_from must be in [0, 1), got {config.average_from}")
        self.average = WeightAverage(model) if config.average_from else None
        self.average_from_step = int(config.average_from * config.steps)

    def resume(self) -> None:
        """Continues from ``last.pth`` when the config asks for it and the file exists."""
        if not (self.config.resume and self.last.is_file()):
            return
        state, metadata = read_checkpoint(self.last)
        self.model.load_state_dict(state)
        wrapper = torch.load(self.last, map_location=self.config.device, weights_only=True)
        self.optimizer.load_state_dict(wrapper["optim_state_dict"])
        self.step = int(metadata["epoch"])
        average_file = self.last.with_name("last_average.pth")
        if self.average is not None and average_file.is_file():
            state, average_metadata = read_checkpoint(average_file)
            self.average.model.load_state_dict(state)
            self.average.count = int(average_metadata["epoch"])
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
        if self.average is not None and self.step > self.average_from_step:
            self.average.update(self.model)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{self.mean_loss():.4f}")
        if self.step % self.config.checkpoint_every == 0 or self.done:
            extra = {"training": asdict(self.config), "loss_history": self.history[-self.config.checkpoint_every:],
                     "seconds": time.perf_counter() - self._start}
            save_checkpoint(self.model, self.last, build=self.build, epoch=self.step, optimizer=self.optimizer, extra=extra)
            if self.average is not None and self.average.count:
                save_checkpoint(self.average.model, self.last.with_name("last_average.pth"), build=self.build,
                                epoch=self.average.count)

    def mean_loss(self, last: int = 50) -> float:
        return float(np.mean(self.history[-last:])) if self.history else float("nan")

    def finish(self, **extra) -> Path:
        """Writes ``final.pth`` (model on the CPU, no optimiser state) and returns its path."""
        if self._bar is not None:
            self._bar.close()
        final = Path(self.config.out) / "final.pth"
        save_checkpoint(self.model.cpu(), final, build=self.build, epoch=self.step,
                        extra={"training": asdict(self.config), "loss_history": self.history[-200:], **extra})
        if self.average is not None and self.average.count:
            save_checkpoint(self.average.model.cpu(), final.with_name("final_average.pth"), build=self.build, epoch=self.step,
                            extra={"training": asdict(self.config), "averaged_steps": self.average.count, **extra})
            logger.info("weights averaged over the last %d steps: %s", self.average.count, final.with_name("final_average.pth"))
        logger.info("%s training finished: %d steps, mean loss of the last 50: %.4f", self.name, self.step, self.mean_loss())
        return final


class WeightAverage:
    """The equal-weight running average of a model's state over the steps it was given.

    BatchNorm statistics are averaged like the weights (the average's own statistics are not
    re-estimated; PointTrack's and ERFNet's BatchNorms see the same kind of batches all along).
    """

    def __init__(self, model: torch.nn.Module):
        self.model = copy.deepcopy(model)
        self.count = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Adds ``model``'s current state to the average."""
        self.count += 1
        for average, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if average.is_floating_point():
                average += (current.detach() - average) / self.count
            else:
                average.copy_(current)
