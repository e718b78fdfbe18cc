"""The training loop: epochs, the learning-rate schedule, logging, validation, checkpoints.

The loop drives any :class:`~i2i.engine.step.TrainStep`; it knows nothing of pix2pix.

Schedule (as the official pix2pix code, ``lr_policy=linear``): the learning rate stays at
``lr`` for ``epochs`` epochs, then decays linearly over ``epochs_decay`` epochs:
``lr * (1 - max(0, epoch + 1 - epochs) / (epochs_decay + 1))`` for 0-based ``epoch``.

>>> rule = lr_factor(epochs=2, epochs_decay=2)
>>> [round(rule(e), 3) for e in range(4)]
[1.0, 1.0, 0.667, 0.333]

Data order is a permutation per epoch drawn from ``(seed, epoch)``, each item's augmentation
is drawn from ``(seed, epoch, index)``, and validation and sample grids run with their own
seeded random state, so a run resumed from a checkpoint (even mid-epoch) continues exactly
the run that was interrupted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import save_image

from i2i.config import RunConfig
from i2i.engine import checkpoint as ckpt_io
from i2i.engine.distributed import DistInfo, any_rank, barrier, local_copy
from i2i.engine.rng import capture_rng_state, derive_seed, isolated_rng, restore_rng_state
from i2i.engine.sampling import EpochSampler
from i2i.engine.step import TrainStep
from i2i.engine.tracking import Console, MetricsLog, TensorBoardSink, truncate_metrics
from i2i.engine.validate import evaluate, metric_record, sample_grid
from i2i.task import Task

METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
SAMPLE_COUNT = 4
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: Under torchrun, ranks agree on a stop request every this many steps (a collective each time).
STOP_CHECK_EVERY = 10
#: A folder where every rank writes hashes of its final weights (to check DDP keeps them equal).
DUMP_WEIGHTS_ENV = "I2I_DEBUG_DUMP_WEIGHTS"


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM; ``exit_code`` is 130 or 143."""

    def __init__(self, signum: int, checkpoint: Path | None):
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))
        self.checkpoint = checkpoint
        where = f"saved {checkpoint}" if checkpoint else "no checkpoint saved for this step"
        super().__init__(f"training interrupted by {signal.Signals(signum).name}; {where}")


def lr_factor(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """The multiplier of the learning rate in 0-based ``epoch`` (constant, then linear decay)."""

    def rule(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1))

    return rule


def dump_weight_hashes(modules: dict[str, torch.nn.Module], folder: Path, rank: int) -> Path:
    """Write ``rank{rank}.json``: a SHA-256 of each module's parameters and of its buffers."""
    record: dict[str, str] = {}
    for role, module in modules.items():
        for kind, named in (
            ("params", module.named_parameters()),
            ("buffers", module.named_buffers()),
        ):
            digest = hashlib.sha256()
            for name, tensor in named:
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            record[f"{role}.{kind}"] = digest.hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{rank}.json"
    path.write_text(json.dumps(record, indent=2))
    return path


def _untimed(method: Callable[..., Any]) -> Callable[..., Any]:
    """Leave the time ``method`` takes out of the throughput measurement."""

    @functools.wraps(method)
    def wrapper(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._meter_start += time.perf_counter() - start

    return wrapper


class Trainer:
    """Runs a :class:`TrainStep` over a dataset for the epochs and steps of a :class:`RunConfig`.

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
        checkpoint_extra: dict[str, Any] | None = None,
        quiet: bool = False,
        bar: bool | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.step = step
        self.config = config
        self.run_dir = Path(run_dir)
        self.task = task
        self.train_data = train_data
        self.val_data = val_data
        self.sample_data = sample_data if sample_data is not None else val_data
        self.device = torch.device(device)
        self.precision = precision
        self.dist = dist or DistInfo()
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.quiet, self.bar, self.echo = quiet, bar, echo
        self.sampler = EpochSampler(
            len(train_data),
            seed=config.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        self.steps_per_epoch = math.ceil(self.sampler.per_rank / config.batch_size)
        rule = lr_factor(config.epochs, config.epochs_decay)
        self.schedulers = {k: LambdaLR(opt, rule) for k, opt in step.optimizers().items()}
        self.global_step = 0
        self.epoch = 0  # the epoch in progress (0-based) = epochs completed
        self.batch_in_epoch = 0  # batches of that epoch already trained on (this rank)
        self._stop_signal: int | None = None
        self._in_step = False
        self._last_saved: int | None = None
        self._last_validated: int | None = None
        self._last_sampled: int | None = None
        self.last_checkpoint: Path | None = None

    # ------------------------------------------------------------------ state

    @property
    def total_epochs(self) -> int:
        return self.config.total_epochs

    @property
    def planned_steps(self) -> int:
        """Steps this run will have done in total when it ends (without interruption)."""
        by_epochs = self.total_epochs * self.steps_per_epoch
        return min(by_epochs, self.config.max_steps) if self.config.max_steps else by_epochs

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights needed to continue: counters, optimizers, RNG."""
        return {
            "step": self.global_step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "batch_size": self.config.batch_size,
            "recipe": self.step.state_dict(),
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": capture_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state.get("world_size", 1), state.get("batch_size")) != (
            self.dist.world_size,
            self.config.batch_size,
        ):
            # the position inside an epoch means another thing: restart the epoch
            self.batch_in_epoch = 0
        else:
            self.batch_in_epoch = int(state["batch_in_epoch"])
        self.global_step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.step.load_state_dict(state["recipe"])
        rule = lr_factor(self.config.epochs, self.config.epochs_decay)
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
            sched.lr_lambdas = [rule] * len(sched.optimizer.param_groups)
            for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base * rule(self.epoch)  # the schedule may have changed
        restore_rng_state(state["rng"])
        if self.dist.rank > 0:
            torch.manual_seed(derive_seed(self.config.seed, self.global_step, self.dist.rank))
        self._last_saved = self.global_step

    def restore(self, checkpoint: ckpt_io.Checkpoint) -> None:
        """Load weights and training state from ``checkpoint`` (before any wrapping)."""
        modules = self.step.modules()
        states = {
            "generator": checkpoint.generator_state,
            "discriminator": checkpoint.discriminator_state,
        }
        for role, module in modules.items():
            if states.get(role) is None:
                raise ckpt_io.CheckpointError(f"Checkpoint {checkpoint.path} has no {role} weights")
            module.load_state_dict(states[role], strict=True)
        self.load_state_dict(checkpoint.train_state())
        self.last_checkpoint = checkpoint.path

    # ------------------------------------------------------------------ running

    def fit(self) -> Path:
        """Train until the epochs or ``max_steps`` run out; returns the run folder.

        Raises :class:`TrainingInterrupted` after saving a checkpoint on SIGINT/SIGTERM.
        """
        main = self.dist.is_main
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE) if main else None
        self.tb = TensorBoardSink.create(self.run_dir / TENSORBOARD_DIR) if main else None
        self.console = Console(
            total=self.planned_steps,
            initial=self.global_step,
            quiet=self.quiet or not main,
            bar=self.bar,
            echo=self.echo,
        )
        previous = self._install_signal_handlers()
        try:
            self._run()
        except KeyboardInterrupt:
            # Without our handler (not the main thread) or on a second Ctrl-C. Between steps the
            # state is whole and worth saving; inside a step it is half-updated.
            if self._in_step or self._stop_signal is not None:
                raise TrainingInterrupted(signal.SIGINT, None) from None
            self._interrupt(signal.SIGINT)
        finally:
            self._restore_signal_handlers(previous)
            self.console.close()
            if self.metrics is not None:
                self.metrics.close()
            if self.tb is not None:
                self.tb.close()
        return self.run_dir

    def _run(self) -> None:
        cfg = self.config
        if self.dist.is_main and self.global_step:
            truncate_metrics(self.run_dir / METRICS_FILE, self.global_step)
        self.console.message(
            f"training {cfg.task}: {len(self.train_data)} images, {self.steps_per_epoch} steps "
            f"per epoch, {self.total_epochs} epochs"
            + (f", max {cfg.max_steps} steps" if cfg.max_steps else "")
            + f", from step {self.global_step}; writing to {self.run_dir}"
        )
        self._reset_meter()
        while self.epoch < self.total_epochs and not self._max_steps_reached():
            self._train_epoch()
            if self.batch_in_epoch >= self.steps_per_epoch:
                self._end_epoch()
        self._end_run()

    def _max_steps_reached(self) -> bool:
        return bool(self.config.max_steps) and self.global_step >= self.config.max_steps

    def _loader(self) -> DataLoader:
        cfg = self.config
        self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch * cfg.batch_size)
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(self.epoch)
        return DataLoader(
            self.train_data,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(derive_seed(cfg.seed, self.epoch, 1)),
        )

    def _train_epoch(self) -> None:
        cfg = self.config
        for batch in self._loader():
            self._in_step = True
            losses = self.step.train_step(batch)
            self._in_step = False
            self.global_step += 1
            self.batch_in_epoch += 1
            for key, value in losses.items():
                self._sums[key] = self._sums.get(key, 0.0) + value
            self._count += 1
            self.console.advance()
            if self.global_step % cfg.log_every == 0:
                self._log_train()
            if cfg.val_every and self.global_step % cfg.val_every == 0:
                self._validate()
            if cfg.save_every and self.global_step % cfg.save_every == 0:
                self._save()
            if self._should_stop():
                self._interrupt(self._stop_signal or signal.SIGTERM)
            if self._max_steps_reached():
                return

    def _should_stop(self) -> bool:
        """Whether a stop signal arrived (on any rank: ranks agree every few steps)."""
        if not self.dist.enabled:
            return self._stop_signal is not None
        if self.global_step % STOP_CHECK_EVERY:
            return False
        return any_rank(self._stop_signal is not None, self.dist, self.device)

    def _end_epoch(self) -> None:
        for sched in self.schedulers.values():
            sched.step()
        self.epoch += 1
        self.batch_in_epoch = 0
        cfg = self.config
        self.console.message(
            f"epoch {self.epoch}/{self.total_epochs} done at step {self.global_step}"
        )
        self._samples()
        if not cfg.val_every:
            self._validate()
        self._save(keep=bool(cfg.keep_every) and self.epoch % cfg.keep_every == 0)

    def _end_run(self) -> None:
        if self._count:
            self._log_train()
        if self._last_sampled != self.global_step:
            self._samples()
        if self._last_validated != self.global_step:
            self._validate()
        if self._last_saved != self.global_step:
            self._save()
        if os.environ.get(DUMP_WEIGHTS_ENV):
            dump_weight_hashes(
                self.step.modules(), Path(os.environ[DUMP_WEIGHTS_ENV]), self.dist.rank
            )
        self.console.message(f"finished at step {self.global_step}; run folder {self.run_dir}")

    def _interrupt(self, signum: int) -> None:
        self.console.message(f"{signal.Signals(signum).name}: saving a checkpoint, then stopping")
        path = self._save() if self._last_saved != self.global_step else self.last_checkpoint
        raise TrainingInterrupted(signum, path)

    # ------------------------------------------------------------------ reporting

    def _reset_meter(self) -> None:
        self._sums: dict[str, Any] = {}
        self._count = 0
        self._meter_start = time.perf_counter()

    def _log_train(self) -> None:
        elapsed = max(time.perf_counter() - self._meter_start, 1e-9)
        record: dict[str, Any] = {"step": self.global_step, "epoch": self.epoch, "kind": "train"}
        for key, value in self._sums.items():
            record[f"train/{key}"] = float(value / self._count)
        for key, opt in self.step.optimizers().items():
            record[f"lr/{key}"] = opt.param_groups[0]["lr"]
        it_s = self._count / elapsed
        record["speed/it_s"] = it_s
        record["speed/img_s"] = it_s * self.config.batch_size * self.dist.world_size
        record["time"] = time.time()
        if self.metrics is not None:
            self.metrics.write(record)
            if self.tb is not None:
                self.tb.scalars(record)
            self.console.report(record)
        self._reset_meter()

    def _eval_generator(self) -> torch.nn.Module:
        return local_copy(self.step.modules()["generator"])

    @_untimed
    def _validate(self) -> None:
        self._last_validated = self.global_step
        if self.dist.is_main and self.val_data is not None:
            cfg = self.config
            with isolated_rng(derive_seed(cfg.seed, self.global_step, 2)):
                values = evaluate(
                    self._eval_generator(),
                    self.val_data,
                    self.task,
                    device=self.device,
                    precision=self.precision,
                    mode=cfg.test_mode,
                    batch_size=cfg.batch_size,
                    channels_last=cfg.channels_last,
                )
            record = {"step": self.global_step, "epoch": self.epoch, "kind": "val"}
            record.update(metric_record(values))
            record["time"] = time.time()
            self.metrics.write(record)
            if self.tb is not None:
                self.tb.scalars(record)
            self.console.message(
                f"validation at step {self.global_step}: "
                f"L1 {values['l1']:.4f}  PSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.4f}"
                f"  ({values['images']} images, {cfg.test_mode} mode)"
            )
        barrier(self.dist)

    @_untimed
    def _samples(self) -> None:
        self._last_sampled = self.global_step
        if self.dist.is_main and self.sample_data is not None and len(self.sample_data):
            cfg = self.config
            indices = list(range(min(SAMPLE_COUNT, len(self.sample_data))))
            with isolated_rng(derive_seed(cfg.seed, self.global_step, 3)):
                grid = sample_grid(
                    self._eval_generator(),
                    self.sample_data,
                    self.task,
                    indices=indices,
                    device=self.device,
                    precision=self.precision,
                    mode=cfg.test_mode,
                    channels_last=cfg.channels_last,
                )
            path = (
                self.run_dir / SAMPLES_DIR / f"epoch{self.epoch:04d}_step{self.global_step:08d}.png"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(grid, path)
            if self.tb is not None:
                self.tb.image("samples", grid, self.global_step)
        barrier(self.dist)

    @_untimed
    def _save(self, keep: bool = False) -> Path | None:
        self._last_saved = self.global_step
        path = None
        if self.dist.is_main:
            modules = self.step.modules()
            disc = modules.get("discriminator")
            path = ckpt_io.save_checkpoint(
                self.run_dir,
                step=self.global_step,
                epoch=self.epoch,
                config=self.config.to_dict(),
                generator_state=modules["generator"].state_dict(),
                discriminator_state=disc.state_dict() if disc is not None else None,
                train_state=self.state_dict(),
                extra=self.checkpoint_extra,
                keep=keep,
                keep_last=self.config.keep_last,
            )
            self.last_checkpoint = path
        barrier(self.dist)
        return path

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> dict[int, Any] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {}

        def handler(signum, frame):
            if signum == signal.SIGINT and self._stop_signal is not None:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
            self._stop_signal = signum
            self.console.message(
                f"{signal.Signals(signum).name} received: stopping after this step "
                "(Ctrl-C again to quit without saving)"
            )

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any] | None) -> None:
        for signum, old in (previous or {}).items():
            signal.signal(signum, old)
