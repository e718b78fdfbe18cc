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

Faults. Every step's losses feed a flag kept on the device (no sync); it is read when the loop
reads values anyway: before logging, validating, drawing samples and saving. With
``on_nonfinite="stop"`` a NaN or infinite loss ends the run there with :class:`TrainingDiverged`,
which names the step where it first appeared; nothing is saved after it (a checkpoint is also
refused when the weights themselves are not finite), so the last checkpoint written is good.
With ``"skip"`` the step drops the update of a non-finite loss and the loop counts it (in the
train records of ``metrics.jsonl``, in the ``summary`` record at the end and on the console);
:data:`MAX_CONSECUTIVE_NONFINITE` skipped steps in a row stop the run all the same. Image files
skipped with ``on_bad_image="skip"`` are counted and reported the same way.
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
from i2i.data.datasets import skipped_in_batch
from i2i.data.io import DataError
from i2i.engine import checkpoint as ckpt_io
from i2i.engine.distributed import DistInfo, any_rank, barrier, local_copy
from i2i.engine.rng import capture_rng_state, derive_seed, isolated_rng, restore_rng_state
from i2i.engine.sampling import EpochSampler
from i2i.engine.step import NonFiniteLossError, TrainStep
from i2i.engine.tracking import Console, MetricsLog, TensorBoardSink, truncate_metrics
from i2i.engine.validate import metric_record, pixel_metrics
from i2i.recipe import ValidationContext
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
#: With ``on_nonfinite="skip"``, this many skipped steps in a row stop the run.
MAX_CONSECUTIVE_NONFINITE = 100
#: Skipped steps and skipped files reported one by one on the console before going quiet.
REPORT_FIRST = 5


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM; ``exit_code`` is 130 or 143."""

    def __init__(self, signum: int, checkpoint: Path | None):
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))
        self.checkpoint = checkpoint
        where = f"saved {checkpoint}" if checkpoint else "no checkpoint saved for this step"
        super().__init__(f"training interrupted by {signal.Signals(signum).name}; {where}")


class TrainingDiverged(RuntimeError):
    """A loss (or the weights) became NaN or infinite; the message names the step.

    Raised before anything is saved from the bad state: ``checkpoint`` is the last (good)
    checkpoint of the run, or None.
    """

    def __init__(self, message: str, *, step: int, checkpoint: Path | None):
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(message)


def lr_factor(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """The multiplier of the learning rate in 0-based ``epoch`` (constant, then linear decay)."""

    def rule(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1))

    return rule


def drop_torn_line(path: Path) -> bool:
    """Cut a last line that lacks its newline: a write torn by a crash or a full disk.

    Records are whole lines, so such a line is never a complete record. Returns whether one
    was cut.
    """
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return False
            f.truncate(data.rfind(b"\n") + 1)
            return True
    except FileNotFoundError:
        return False


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
        metrics: Callable[[], dict[str, Any]] | None = None,
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
        self.make_metrics = metrics or pixel_metrics
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
        self.skipped_files: dict[str, str] = {}  # path -> reason, with on_bad_image="skip"
        self.nonfinite_steps = 0  # steps whose update was skipped, with on_nonfinite="skip"
        self._nonfinite_run = 0  # of them, in a row up to now
        self._watch_names: tuple[str, ...] | None = None
        self._bad_step: torch.Tensor | None = None  # on the device: first bad step, or -1
        self._bad_keys: torch.Tensor | None = None  # which losses were bad at that step
        if config.on_nonfinite == "skip":
            if not hasattr(step, "skip_nonfinite"):
                raise ValueError(
                    f"on_nonfinite='skip' needs a step that can skip an update; "
                    f"{type(step).__name__} has no 'skip_nonfinite' attribute"
                )
            step.skip_nonfinite = True
            if self.dist.enabled:  # ranks skip together, or DDP would wait forever
                step.agree = functools.partial(any_rank, info=self.dist, device=self.device)

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
            "skipped_files": [[k, v] for k, v in self.skipped_files.items()],
            "nonfinite_steps": self.nonfinite_steps,
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
        self.skipped_files = {str(k): str(v) for k, v in state.get("skipped_files", ())}
        self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
        if self.dist.rank > 0:
            torch.manual_seed(derive_seed(self.config.seed, self.global_step, self.dist.rank))
        self._last_saved = self.global_step

    def restore(self, checkpoint: ckpt_io.Checkpoint) -> None:
        """Load weights and training state from ``checkpoint`` (before any wrapping)."""
        for role, module in self.step.modules().items():
            if role not in checkpoint.weights:
                raise ckpt_io.CheckpointError(f"Checkpoint {checkpoint.path} has no {role} weights")
            module.load_state_dict(checkpoint.weights[role], strict=True)
        self.load_state_dict(checkpoint.train_state())
        self.last_checkpoint = checkpoint.path

    # ------------------------------------------------------------------ running

    def fit(self) -> Path:
        """Train until the epochs or ``max_steps`` run out; returns the run folder.

        Raises :class:`TrainingInterrupted` after saving a checkpoint on SIGINT/SIGTERM.
        """
        main = self.dist.is_main
        if main and self.global_step:  # before opening it: truncation replaces the file
            drop_torn_line(self.run_dir / METRICS_FILE)
            truncate_metrics(self.run_dir / METRICS_FILE, self.global_step)
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
        self.console.message(
            f"training {cfg.task}: {len(self.train_data)} images, {self.steps_per_epoch} steps "
            f"per epoch, {self.total_epochs} epochs"
            + (f", max {cfg.max_steps} steps" if cfg.max_steps else "")
            + f", from step {self.global_step}; writing to {self.run_dir}"
        )
        self._reset_meter()
        self._note_skipped(self._dataset_skips())
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
        batches = iter(self._loader())
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
            self._note_skipped(skipped_in_batch(batch))
        self._in_step = True
        try:
            losses: dict[str, Any] | None = self.step.train_step(batch)
        except NonFiniteLossError as exc:
            losses = None
            self._skipped_step(exc)
        finally:
            self._in_step = False
        self.global_step += 1
        self.batch_in_epoch += 1
        if losses is not None:
            self._nonfinite_run = 0
            self._watch(losses)
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
        return self._max_steps_reached()

    # ------------------------------------------------------------------ faults

    def _watch(self, losses: dict[str, Any]) -> None:
        """Remember, on the device and without a sync, the first step with a non-finite loss."""
        if not losses:
            return
        names = tuple(losses)
        values = torch.stack(
            [torch.as_tensor(v).detach().float().reshape(()) for v in losses.values()]
        )
        bad_keys = ~torch.isfinite(values)
        if self._bad_step is None or names != self._watch_names:
            if self._bad_step is not None:
                self._check_finite()  # the loss names changed: settle the old flags first
            self._watch_names = names
            self._bad_step = torch.full((), -1, dtype=torch.long, device=values.device)
            self._bad_keys = torch.zeros_like(bad_keys)
        newly = bad_keys.any() & (self._bad_step < 0)
        self._bad_step = torch.where(newly, self.global_step, self._bad_step)
        self._bad_keys = torch.where(newly, bad_keys, self._bad_keys)

    def _check_finite(self, *, weights: bool = False) -> None:
        """Raise :class:`TrainingDiverged` when a loss (or, with ``weights``, a weight) is not
        finite. Reads the device flag: one sync, and a collective under torchrun."""
        bad_step = -1 if self._bad_step is None else int(self._bad_step)
        bad_weights = False
        if weights and bad_step < 0:
            params = [p.detach() for m in self.step.modules().values() for p in m.parameters()]
            if params:
                finite = torch.stack([torch.isfinite(p).all() for p in params])
                bad_weights = not bool(finite.all())
        bad = bad_step >= 0 or bad_weights
        if self.dist.enabled:
            bad = any_rank(bad, self.dist, self.device)
        if not bad:
            return
        kept = (
            f"the last good checkpoint, {self.last_checkpoint}, is kept"
            if self.last_checkpoint is not None
            else "no checkpoint was saved before it"
        )
        if bad_step >= 0:
            names = [
                n
                for n, b in zip(self._watch_names or (), self._bad_keys.tolist(), strict=True)
                if b
            ]
            what = f"non-finite loss ({', '.join(names)}) at step {bad_step}"
        elif bad_weights:
            what = f"non-finite weights at step {self.global_step} (the losses were finite)"
        else:
            what = f"a non-finite loss on another process by step {self.global_step}"
        step = bad_step if bad_step >= 0 else self.global_step
        hint = " or pass --on-nonfinite skip to skip such steps" if self._may_skip() else ""
        raise TrainingDiverged(
            f"Training diverged: {what}; stopped at step {self.global_step} without saving, "
            f"{kept}. Try a lower --lr, check the data{hint}.",
            step=step,
            checkpoint=self.last_checkpoint,
        )

    def _may_skip(self) -> bool:
        """Whether ``on_nonfinite="skip"`` would help: it is off and the step supports it."""
        return self.config.on_nonfinite == "stop" and hasattr(self.step, "skip_nonfinite")

    def _skipped_step(self, exc: NonFiniteLossError) -> None:
        """Count a step whose update the step skipped (``on_nonfinite="skip"``)."""
        self.nonfinite_steps += 1
        self._nonfinite_run += 1
        step = self.global_step + 1
        if self.nonfinite_steps <= REPORT_FIRST:
            self.console.message(f"step {step}: {exc} ({self.nonfinite_steps} so far)")
        if self._nonfinite_run >= MAX_CONSECUTIVE_NONFINITE:
            kept = (
                f"the last checkpoint, {self.last_checkpoint}, is kept"
                if self.last_checkpoint is not None
                else "no checkpoint was saved"
            )
            raise TrainingDiverged(
                f"Training diverged: {self._nonfinite_run} steps in a row had a non-finite loss "
                f"(the last at step {step}: {exc}); stopping, {kept}. Try a lower --lr or check "
                "the data.",
                step=step,
                checkpoint=self.last_checkpoint,
            )

    def _dataset_skips(self) -> list[tuple[str, str]]:
        """Skips the datasets recorded in this process (pairing problems, validation reads)."""
        out: list[tuple[str, str]] = []
        for data in (self.train_data, self.val_data, self.sample_data):
            out += list(getattr(data, "skipped", ()) or ())
        return out

    def _note_skipped(self, skips: list[tuple[str, str]]) -> None:
        for path, reason in skips:
            if path in self.skipped_files:
                continue
            self.skipped_files[path] = reason
            if len(self.skipped_files) <= REPORT_FIRST:
                self.console.message(f"skipping a bad file: {reason}")

    def _skip_counts(self) -> dict[str, int]:
        """The counts the run's skip policies report (none when nothing may be skipped)."""
        counts = {}
        if self.config.on_bad_image == "skip":
            counts["skipped/images"] = len(self.skipped_files)
        if self.config.on_nonfinite == "skip":
            counts["skipped/nonfinite_steps"] = self.nonfinite_steps
        return counts

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
        # save first: a bad validation file (or any failure there) must not lose the epoch
        self._save(keep=bool(cfg.keep_every) and self.epoch % cfg.keep_every == 0)
        self._samples()
        if not cfg.val_every:
            self._validate()

    def _end_run(self) -> None:
        if self._count:
            self._log_train()
        if self._last_saved != self.global_step:
            self._save()
        if self._last_sampled != self.global_step:
            self._samples()
        if self._last_validated != self.global_step:
            self._validate()
        self._note_skipped(self._dataset_skips())
        counts = self._skip_counts()
        if counts and self.metrics is not None:
            record = {"step": self.global_step, "epoch": self.epoch, "kind": "summary", **counts}
            self.metrics.write({**record, "time": time.time()})
        if self.skipped_files:
            first = next(iter(self.skipped_files.values()))
            self.console.message(
                f"skipped {len(self.skipped_files)} bad image file(s) "
                f"(--on-bad-image skip); the first: {first}"
            )
        if self.nonfinite_steps:
            self.console.message(
                f"skipped the update of {self.nonfinite_steps} step(s) with a non-finite loss "
                "(--on-nonfinite skip)"
            )
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
        self._check_finite()
        elapsed = max(time.perf_counter() - self._meter_start, 1e-9)
        record: dict[str, Any] = {"step": self.global_step, "epoch": self.epoch, "kind": "train"}
        for key, value in self._sums.items():
            record[f"train/{key}"] = float(value / self._count)
        for key, opt in self.step.optimizers().items():
            record[f"lr/{key}"] = opt.param_groups[0]["lr"]
        it_s = self._count / elapsed
        record["speed/it_s"] = it_s
        record["speed/img_s"] = it_s * self.config.batch_size * self.dist.world_size
        record.update(self._skip_counts())
        record["time"] = time.time()
        if self.metrics is not None:
            self.metrics.write(record)
            if self.tb is not None:
                self.tb.scalars(record)
            self.console.report(record)
        self._reset_meter()

    def _context(self) -> ValidationContext:
        cfg = self.config
        return ValidationContext(
            task=self.task,
            direction=cfg.direction,
            mode=cfg.test_mode,
            batch_size=cfg.batch_size,
            metrics=self.make_metrics,
            local=local_copy,
        )

    @_untimed
    def _validate(self) -> None:
        self._check_finite()
        self._last_validated = self.global_step
        if self.dist.is_main and self.val_data is not None:
            cfg = self.config
            with isolated_rng(derive_seed(cfg.seed, self.global_step, 2)):
                values = self.step.validate(self.val_data, self._context())
            if values:
                record = {"step": self.global_step, "epoch": self.epoch, "kind": "val"}
                record.update(metric_record(values))
                record["time"] = time.time()
                self.metrics.write(record)
                if self.tb is not None:
                    self.tb.scalars(record)
                shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, float))
                self.console.message(
                    f"validation at step {self.global_step}: {shown}"
                    f"  ({values.get('images', '?')} images, {cfg.test_mode} mode)"
                )
        barrier(self.dist)

    @_untimed
    def _samples(self) -> None:
        self._check_finite()
        self._last_sampled = self.global_step
        if self.dist.is_main and self.sample_data is not None and len(self.sample_data):
            cfg = self.config
            indices = list(range(min(SAMPLE_COUNT, len(self.sample_data))))
            with isolated_rng(derive_seed(cfg.seed, self.global_step, 3)):
                grid = self.step.sample_grid(self.sample_data, self._context(), indices)
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
