"""The training loop: epochs, the learning-rate schedule, logging, validation, checkpoints.

The loop drives any recipe's step (:class:`i2i.recipe.RecipeStep`); it knows no recipe and no
role: it saves every role the step names, schedules every optimizer it has, and asks the step
what validation measures and what the sample grids show.

The learning-rate schedule: :mod:`i2i.engine.schedule`.

Data order is a permutation per epoch drawn from ``(seed, epoch)``, each item's augmentation
is drawn from ``(seed, epoch, index)``, and validation and sample grids run with their own
seeded random state, so a run resumed from a checkpoint (even mid-epoch) continues exactly
the run that was interrupted. Non-finite losses and bad files: :mod:`i2i.engine.faults`;
Ctrl-C and SIGTERM: :mod:`i2i.engine.signals`; throughput: :mod:`i2i.engine.throughput`.
"""

from __future__ import annotations

import functools
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from i2i.config import RunConfig
from i2i.data.datasets import skipped_in_batch
from i2i.data.io import DataError
from i2i.engine import checkpoint as ckpt_io
from i2i.engine.distributed import (
    DUMP_WEIGHTS_ENV,
    DistInfo,
    any_rank,
    barrier,
    dump_weight_hashes,
)
from i2i.engine.faults import MAX_CONSECUTIVE_NONFINITE, RunFaults, SkippedFiles, TrainingDiverged
from i2i.engine.reporting import METRICS_FILE, SAMPLES_DIR, TENSORBOARD_DIR, RunReport
from i2i.engine.sampling import EpochSampler, epoch_loader
from i2i.engine.schedule import end_epoch, lr_factor, make_schedulers
from i2i.engine.signals import StopRequests, TrainingInterrupted
from i2i.engine.step import NonFiniteLossError, TrainStep
from i2i.engine.throughput import LossMeter
from i2i.engine.tracking import drop_torn_line
from i2i.engine.train_state import ResumableState
from i2i.engine.validate import RunEvaluation, metric_record
from i2i.task import Task

# what callers import from here, wherever it lives now
__all__ = ["DUMP_WEIGHTS_ENV", "MAX_CONSECUTIVE_NONFINITE", "METRICS_FILE", "SAMPLES_DIR"]
__all__ += ["TENSORBOARD_DIR", "Trainer", "TrainingDiverged", "TrainingInterrupted"]
__all__ += ["drop_torn_line", "dump_weight_hashes", "lr_factor"]


def _untimed(method: Callable[..., Any]) -> Callable[..., Any]:
    """Leave the time ``method`` takes out of the throughput measurement."""

    @functools.wraps(method)
    def wrapper(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        with self.meter.untimed():
            return method(self, *args, **kwargs)

    return wrapper


class Trainer(ResumableState):
    """Runs a recipe's step over a dataset for the epochs and steps of a :class:`RunConfig`.

    Only rank 0 logs, validates and writes files; other ranks wait at barriers.
    """

    def __init__(
        self,
        step: TrainStep,
        *,
        config: RunConfig,
        run_dir: str | Path,
        task: Task,
        train_data: Dataset,
        val_data: Dataset | None = None,
        sample_data: Dataset | None = None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        dist: DistInfo | None = None,
        metrics: Callable[[], dict[str, Any]] | None = None,
        checkpoint_extra: dict[str, Any] | None = None,
        quiet: bool = False,
        bar: bool | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.step, self.config, self.task = step, config, task
        self.run_dir = Path(run_dir)
        self.train_data, self.val_data = train_data, val_data
        self.sample_data = sample_data if sample_data is not None else val_data
        self.evaluation = RunEvaluation(
            task,
            direction=config.direction,
            mode=config.test_mode,
            batch_size=config.batch_size,
            seed=config.seed,
            val_data=val_data,
            sample_data=self.sample_data,
            metrics=metrics,
        )
        self.device = torch.device(device)
        self.precision = precision
        self.dist = dist or DistInfo()
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.quiet, self.bar, self.echo = quiet, bar, echo
        self.sampler = EpochSampler(
            len(train_data), seed=config.seed, rank=self.dist.rank, world_size=self.dist.world_size
        )
        self.steps_per_epoch = math.ceil(self.sampler.per_rank / config.batch_size)
        self.schedulers = make_schedulers(step.optimizers(), config.epochs, config.epochs_decay)
        self.global_step = 0
        self.epoch = 0  # the epoch in progress (0-based) = epochs completed
        self.batch_in_epoch = 0  # batches of that epoch already trained on (this rank)
        self._in_step = False
        #: what runs one step on a batch: the step's own ``train_step``, or a wrapper of it
        #: (:class:`i2i.engine.graphed_step.GraphedTrainStep`, set by the runner)
        self.train_step_fn: Callable[[Any], dict[str, Any] | None] = step.train_step
        self._last_saved: int | None = None
        self._last_validated: int | None = None
        self._last_sampled: int | None = None
        self.last_checkpoint: Path | None = None
        self.meter = LossMeter()
        self.faults = RunFaults(config.on_nonfinite, config.on_bad_image, self._say)
        self.faults.arm(step, self._agree)
        self.stops = StopRequests(self._say)
        self.report: RunReport | None = None

    # ------------------------------------------------------------------ state

    @property
    def total_epochs(self) -> int:
        return self.config.total_epochs

    @property
    def planned_steps(self) -> int:
        """Steps this run will have done in total when it ends (without interruption)."""
        by_epochs = self.total_epochs * self.steps_per_epoch
        return min(by_epochs, self.config.max_steps) if self.config.max_steps else by_epochs

    @property
    def _agree(self) -> Callable[[bool], bool] | None:
        """Under torchrun, "any rank?" (a collective); else None."""
        if not self.dist.enabled:
            return None
        return functools.partial(any_rank, info=self.dist, device=self.device)

    # ------------------------------------------------------------------ running

    def fit(self) -> Path:
        """Train until the epochs or ``max_steps`` run out; returns the run folder.

        Raises :class:`TrainingInterrupted` after saving a checkpoint on SIGINT/SIGTERM.
        """
        self.report = RunReport(
            self.run_dir,
            main=self.dist.is_main,
            step=self.global_step,
            total=self.planned_steps,
            quiet=self.quiet,
            bar=self.bar,
            echo=self.echo,
        )
        self.stops.install()
        try:
            self._run()
        except KeyboardInterrupt:
            # Without our handler (not the main thread) or on a second Ctrl-C. Between steps the
            # state is whole and worth saving; inside a step it is half-updated.
            if self._in_step or self.stops.received is not None:
                raise TrainingInterrupted(signal.SIGINT, None) from None
            self._interrupt(signal.SIGINT)
        finally:
            self.stops.uninstall()
            self.report.close()
        return self.run_dir

    def _say(self, message: str) -> None:
        if self.report is not None:
            self.report.say(message)

    def _run(self) -> None:
        cfg = self.config
        self._say(
            f"training {cfg.task} ({cfg.recipe}): {len(self.train_data)} images, "
            f"{self.steps_per_epoch} steps per epoch, {self.total_epochs} epochs"
            + (f", max {cfg.max_steps} steps" if cfg.max_steps else "")
            + f", from step {self.global_step}; writing to {self.run_dir}"
        )
        self.meter.reset()
        self.faults.files.note(self._dataset_skips())
        while self.epoch < self.total_epochs and not self._max_steps_reached():
            self._train_epoch()
            if self.batch_in_epoch >= self.steps_per_epoch:
                self._end_epoch()
        self._end_run()

    def _max_steps_reached(self) -> bool:
        return bool(self.config.max_steps) and self.global_step >= self.config.max_steps

    def _train_epoch(self) -> None:
        cfg = self.config
        loader = epoch_loader(
            self.train_data,
            self.sampler,
            epoch=self.epoch,
            done=self.batch_in_epoch,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            seed=cfg.seed,
            pin_memory=self.device.type == "cuda",
        )
        batches = iter(loader)
        try:
            for batch in batches:
                if self._train_batch(batch):
                    return
        except DataError as exc:
            # A bad file (its message names it). Drop the loader's frames from the traceback so
            # that ``del`` below shuts its workers down now: an iterator left to the garbage
            # collector waits 5 s per worker there.
            raise exc.with_traceback(None) from None
        finally:
            del batches

    def _train_batch(self, batch: Any) -> bool:
        """One step on ``batch`` with its logging, validation and saving; True: max_steps."""
        cfg = self.config
        if isinstance(batch, dict) and "skipped" in batch:
            self.faults.files.note(skipped_in_batch(batch))
        self._in_step = True
        try:
            losses: dict[str, Any] | None = self.train_step_fn(batch)
        except NonFiniteLossError as exc:
            losses = None
            self.faults.steps.skipped(exc, self.global_step + 1, self.last_checkpoint)
        finally:
            self._in_step = False
        self.global_step += 1
        self.batch_in_epoch += 1
        self.faults.stepped(losses, self.global_step)
        if losses is not None:
            self.meter.add(losses)
        self.report.advance()
        if self.global_step % cfg.log_every == 0:
            self._log_train()
        if cfg.val_every and self.global_step % cfg.val_every == 0:
            self._validate()
        if cfg.save_every and self.global_step % cfg.save_every == 0:
            self._save()
        if self.stops.agreed(self.global_step, self._agree):
            self._interrupt(self.stops.received or signal.SIGTERM)
        return self._max_steps_reached()

    def _check_finite(self, *, weights: bool = False) -> None:
        """Raise :class:`TrainingDiverged` when a loss (or a weight) is not finite."""
        self.faults.check(
            step=self.global_step,
            modules=lambda: self.step.modules().values(),
            weights=weights,
            agree=self._agree,
            last_checkpoint=self.last_checkpoint,
        )

    def _dataset_skips(self) -> list[tuple[str, str]]:
        return SkippedFiles.from_datasets(self.train_data, self.val_data, self.sample_data)

    def _end_epoch(self) -> None:
        end_epoch(self.schedulers)
        self.epoch += 1
        self.batch_in_epoch = 0
        cfg = self.config
        self._say(f"epoch {self.epoch}/{self.total_epochs} done at step {self.global_step}")
        # save first: a bad validation file (or any failure there) must not lose the epoch
        self._save(keep=bool(cfg.keep_every) and self.epoch % cfg.keep_every == 0)
        self._samples()
        if not cfg.val_every:
            self._validate()

    def _end_run(self) -> None:
        if self.meter.count:
            self._log_train()
        if self._last_saved != self.global_step:
            self._save()
        if self._last_sampled != self.global_step:
            self._samples()
        if self._last_validated != self.global_step:
            self._validate()
        self.faults.files.note(self._dataset_skips())
        counts = self.faults.counts()
        if counts:
            self.report.write(
                {"step": self.global_step, "epoch": self.epoch, "kind": "summary", **counts}
            )
        for message in self.faults.closing_messages():
            self._say(message)
        if os.environ.get(DUMP_WEIGHTS_ENV):
            dump_weight_hashes(
                self.step.modules(), Path(os.environ[DUMP_WEIGHTS_ENV]), self.dist.rank
            )
        self._say(f"finished at step {self.global_step}; run folder {self.run_dir}")

    def _interrupt(self, signum: int) -> None:
        self._say(f"{signal.Signals(signum).name}: saving a checkpoint, then stopping")
        path = self._save() if self._last_saved != self.global_step else self.last_checkpoint
        raise TrainingInterrupted(signum, path)

    # ------------------------------------------------------------------ reporting

    def _log_train(self) -> None:
        self._check_finite()
        # the epoch the logged steps belong to: the one just ended when the log comes after it
        epoch = self.epoch - 1 if self.batch_in_epoch == 0 and self.epoch > 0 else self.epoch
        record: dict[str, Any] = {"step": self.global_step, "epoch": epoch, "kind": "train"}
        record.update(
            self.meter.record(batch_size=self.config.batch_size, world_size=self.dist.world_size)
        )
        for key, opt in self.step.optimizers().items():
            record[f"lr/{key}"] = opt.param_groups[0]["lr"]
        record.update(self.faults.counts())
        self.report.train(record)

    @_untimed
    def _validate(self) -> None:
        self._check_finite()
        self._last_validated = self.global_step
        if self.dist.is_main and (values := self.evaluation.validate(self.step, self.global_step)):
            record = {"step": self.global_step, "epoch": self.epoch, "kind": "val"}
            self.report.validation(
                {**record, **metric_record(values)}, values, self.config.test_mode
            )
        barrier(self.dist)

    @_untimed
    def _samples(self) -> None:
        self._check_finite()
        self._last_sampled = self.global_step
        if (
            self.dist.is_main
            and (grid := self.evaluation.samples(self.step, self.global_step)) is not None
        ):
            self.report.samples(grid, epoch=self.epoch, step=self.global_step)
        barrier(self.dist)

    @_untimed
    def _save(self, keep: bool = False) -> Path | None:
        self._check_finite(weights=True)
        self._last_saved = self.global_step
        path = None
        if self.dist.is_main:
            path = ckpt_io.save_checkpoint(
                self.run_dir,
                step=self.global_step,
                epoch=self.epoch,
                config=self.config.to_dict(),
                weights={role: m.state_dict() for role, m in self.step.modules().items()},
                train_state=self.state_dict(),
                extra=self.checkpoint_extra,
                keep=keep,
                keep_last=self.config.keep_last,
            )
            self.last_checkpoint = path
        barrier(self.dist)
        return path
