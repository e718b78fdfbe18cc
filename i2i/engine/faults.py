"""What a run does about NaN losses and bad image files, apart from the loop that meets them.

Non-finite losses. Every step's losses feed a flag kept on the device (no sync); it is read
when the loop reads values anyway: before logging, validating, drawing samples and saving.
With ``on_nonfinite="stop"`` a NaN or infinite loss ends the run there with
:class:`TrainingDiverged`, which names the step where it first appeared; nothing is saved after
it (a checkpoint is also refused when the weights themselves are not finite), so the last
checkpoint written is good. With ``"skip"`` the step drops the update of a non-finite loss and
:class:`SkippedSteps` counts it; :data:`MAX_CONSECUTIVE_NONFINITE` in a row stop the run all
the same. Image files skipped with ``on_bad_image="skip"`` are counted by :class:`SkippedFiles`.

>>> import torch
>>> watch = NonFiniteWatch()
>>> watch.watch({"l1": torch.tensor(0.5)}, step=1)
>>> watch.watch({"l1": torch.tensor(float("nan"))}, step=2)
>>> watch.first_bad()
(2, ['l1'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: With ``on_nonfinite="skip"``, this many skipped steps in a row stop the run.
MAX_CONSECUTIVE_NONFINITE = 100
#: Skipped steps and skipped files reported one by one on the console before going quiet.
REPORT_FIRST = 5


class TrainingDiverged(RuntimeError):
    """A loss (or the weights) became NaN or infinite; the message names the step.

    Raised before anything is saved from the bad state: ``checkpoint`` is the last (good)
    checkpoint of the run, or None.
    """

    def __init__(self, message: str, *, step: int, checkpoint: Path | None):
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(message)


def _kept(checkpoint: Path | None, good: str = "last good ") -> str:
    if checkpoint is None:
        return "no checkpoint was saved before it"
    return f"the {good}checkpoint, {checkpoint}, is kept"


def weights_finite(modules: Iterable[nn.Module]) -> bool:
    """Whether every parameter of ``modules`` is finite (one device sync)."""
    params = [p.detach() for m in modules for p in m.parameters()]
    if not params:
        return True
    return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


class NonFiniteWatch:
    """The first step whose losses were not finite, remembered on the device without a sync."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] | None = None
        self._step: torch.Tensor | None = None  # first bad step, or -1
        self._keys: torch.Tensor | None = None  # which losses were bad at that step

    def watch(self, losses: Mapping[str, Any], step: int) -> None:
        if not losses:
            return
        names = tuple(losses)
        values = torch.stack(
            [torch.as_tensor(v).detach().float().reshape(()) for v in losses.values()]
        )
        bad_keys = ~torch.isfinite(values)
        if self._step is None or names != self.names:
            if self._step is not None and self.first_bad() is not None:
                return  # keep the first bad step when the loss names change
            self.names = names
            self._step = torch.full((), -1, dtype=torch.long, device=values.device)
            self._keys = torch.zeros_like(bad_keys)
        newly = bad_keys.any() & (self._step < 0)
        self._step = torch.where(newly, step, self._step)
        self._keys = torch.where(newly, bad_keys, self._keys)

    def first_bad(self) -> tuple[int, list[str]] | None:
        """``(step, loss names)`` of the first non-finite step, or None (reads the flag)."""
        if self._step is None or int(self._step) < 0:
            return None
        keys = self._keys.tolist()
        return int(self._step), [n for n, b in zip(self.names or (), keys, strict=True) if b]

    def check(
        self,
        *,
        step: int,
        modules: Callable[[], Iterable[nn.Module]],
        weights: bool,
        agree: Callable[[bool], bool] | None,
        last_checkpoint: Path | None,
        may_skip: bool,
    ) -> None:
        """Raise :class:`TrainingDiverged` when a loss (or, with ``weights``, a weight) is not
        finite. ``agree`` makes distributed ranks decide together (a collective)."""
        found = self.first_bad()
        bad_weights = weights and found is None and not weights_finite(modules())
        bad = found is not None or bad_weights
        if agree is not None:
            bad = agree(bad)
        if not bad:
            return
        if found is not None:
            what = f"non-finite loss ({', '.join(found[1])}) at step {found[0]}"
        elif bad_weights:
            what = f"non-finite weights at step {step} (the losses were finite)"
        else:
            what = f"a non-finite loss on another process by step {step}"
        hint = " or pass --on-nonfinite skip to skip such steps" if may_skip else ""
        raise TrainingDiverged(
            f"Training diverged: {what}; stopped at step {step} without saving, "
            f"{_kept(last_checkpoint)}. Try a lower --lr, check the data{hint}.",
            step=found[0] if found is not None else step,
            checkpoint=last_checkpoint,
        )


class SkippedSteps:
    """Steps whose update was skipped for a non-finite loss (``on_nonfinite="skip"``)."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.total = 0
        self.in_a_row = 0

    def skipped(self, exc: Exception, step: int, last_checkpoint: Path | None) -> None:
        """Count step ``step``; raise :class:`TrainingDiverged` after too many in a row."""
        self.total += 1
        self.in_a_row += 1
        if self.total <= REPORT_FIRST:
            self.say(f"step {step}: {exc} ({self.total} so far)")
        if self.in_a_row >= MAX_CONSECUTIVE_NONFINITE:
            raise TrainingDiverged(
                f"Training diverged: {self.in_a_row} steps in a row had a non-finite loss "
                f"(the last at step {step}: {exc}); stopping, "
                f"{_kept(last_checkpoint, good='')}. Try a lower --lr or check the data.",
                step=step,
                checkpoint=last_checkpoint,
            )

    def updated(self) -> None:
        """A step updated normally: the run of skipped steps is over."""
        self.in_a_row = 0


class SkippedFiles:
    """Image files left out with ``on_bad_image="skip"``: path -> reason, reported once each."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.files: dict[str, str] = {}

    def note(self, skips: Iterable[tuple[str, str]]) -> None:
        for path, reason in skips:
            if path in self.files:
                continue
            self.files[path] = reason
            if len(self.files) <= REPORT_FIRST:
                self.say(f"skipping a bad file: {reason}")

    @staticmethod
    def from_datasets(*datasets: Any) -> list[tuple[str, str]]:
        """Skips the datasets recorded in this process (pairing problems, validation reads)."""
        out: list[tuple[str, str]] = []
        for data in datasets:
            out += list(getattr(data, "skipped", ()) or ())
        return out


class RunFaults:
    """A run's fault policies in one place: ``on_nonfinite`` and ``on_bad_image``.

    It watches each step's losses, counts skipped steps and files, says what the ``summary``
    record and resume state hold, and checks before anything is read or saved.
    """

    def __init__(self, on_nonfinite: str, on_bad_image: str, say: Callable[[str], None]):
        self.on_nonfinite, self.on_bad_image = on_nonfinite, on_bad_image
        self.watch = NonFiniteWatch()
        self.steps = SkippedSteps(say)
        self.files = SkippedFiles(say)
        self.may_skip = False

    def arm(self, step: Any, agree: Callable[[bool], bool] | None) -> None:
        """Let ``step`` skip non-finite updates when the policy says so (ranks ``agree``)."""
        self.may_skip = hasattr(step, "skip_nonfinite")
        if self.on_nonfinite != "skip":
            return
        if not self.may_skip:
            raise ValueError(
                f"on_nonfinite='skip' needs a step that can skip an update; "
                f"{type(step).__name__} has no 'skip_nonfinite' attribute"
            )
        step.skip_nonfinite = True
        if agree is not None:  # ranks skip together, or DDP would wait forever
            step.agree = agree

    def stepped(self, losses: Mapping[str, Any] | None, step: int) -> None:
        """After step ``step``: its losses, or None when its update was skipped."""
        if losses is not None:
            self.steps.updated()
            self.watch.watch(losses, step)

    def check(
        self,
        *,
        step: int,
        modules: Callable[[], Iterable[nn.Module]],
        weights: bool,
        agree: Callable[[bool], bool] | None,
        last_checkpoint: Path | None,
    ) -> None:
        """Raise :class:`TrainingDiverged` when a loss (or, with ``weights``, a weight) is not
        finite."""
        self.watch.check(
            step=step,
            modules=modules,
            weights=weights,
            agree=agree,
            last_checkpoint=last_checkpoint,
            may_skip=self.on_nonfinite == "stop" and self.may_skip,
        )

    def counts(self) -> dict[str, int]:
        """The counts the run's skip policies report (none when nothing may be skipped)."""
        out = {}
        if self.on_bad_image == "skip":
            out["skipped/images"] = len(self.files.files)
        if self.on_nonfinite == "skip":
            out["skipped/nonfinite_steps"] = self.steps.total
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "skipped_files": [[k, v] for k, v in self.files.files.items()],
            "nonfinite_steps": self.steps.total,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.files.files = {str(k): str(v) for k, v in state.get("skipped_files", ())}
        self.steps.total = int(state.get("nonfinite_steps", 0))

    def closing_messages(self) -> list[str]:
        out = []
        if self.files.files:
            first = next(iter(self.files.files.values()))
            out.append(
                f"skipped {len(self.files.files)} bad image file(s) (--on-bad-image skip); "
                f"the first: {first}"
            )
        if self.steps.total:
            out.append(
                f"skipped the update of {self.steps.total} step(s) with a non-finite loss "
                "(--on-nonfinite skip)"
            )
        return out
