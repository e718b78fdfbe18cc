"""The perceptual study's protocol: image pairs, trial plans, answers on disk, the summary.

As in the pix2pix paper's "real vs fake" study (section 4.2): each trial shows a real photo and
a generated one side by side, in random left/right order, for one second; then they are hidden
and the participant says which one was real. The first trials are practice, with feedback; the
rest count. The score of a method is the share of its main trials in which the generated image
was judged real ("% judged real"), with its standard error ``sqrt(p (1 - p) / n)``.

Pairs come from result folders written by ``i2i eval --out`` (or ``i2i ablate``): their
``metrics.json`` lists each image's ``output`` (generated) and ``target`` (real) files.

>>> import random
>>> pairs = [Pair("m1", "a", Path("a_out.png"), Path("a_real.png")),
...          Pair("m2", "b", Path("b_out.png"), Path("b_real.png"))]
>>> plan = plan_trials(pairs, practice=1, main=4, rng=random.Random(0))
>>> [t.phase for t in plan], sorted({t.pair.method for t in plan[1:]})
(['practice', 'main', 'main', 'main', 'main'], ['m1', 'm2'])
>>> summarise([{"phase": "main", "method": "m1", "judged_real": True},
...            {"phase": "main", "method": "m1", "judged_real": False}])["m1"]
{'n': 2, 'judged_real': 1, 'percent': 50.0, 'stderr': 35.35533905932738}
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The paper's protocol: 10 practice trials with feedback, then 40 without.
PRACTICE_TRIALS = 10
MAIN_TRIALS = 40
#: How long both images stay on screen, in milliseconds.
SHOW_MS = 1000
SIDES = ("left", "right")
PHASES = ("practice", "main")


class StudyError(ValueError):
    """A result folder or results file that cannot be used (the message names it)."""


@dataclass(frozen=True)
class Pair:
    """One generated image and the real image it should look like."""

    method: str
    name: str
    generated: Path
    real: Path


@dataclass(frozen=True)
class Trial:
    """One trial of a participant's plan: which pair, which phase, where the real image is."""

    index: int
    phase: str
    pair: Pair
    real_side: str


def load_pairs(folder: str | os.PathLike, method: str | None = None) -> list[Pair]:
    """The (generated, real) image pairs of a result folder (``i2i eval --out``'s report).

    ``method`` names them (default: the folder's name). Files must lie inside the folder.
    """
    folder = Path(folder)
    record_path = folder / "metrics.json"
    try:
        record = json.loads(record_path.read_text())
        rows = record["images"]
    except FileNotFoundError as exc:
        raise StudyError(
            f"{folder} is not a result folder: no metrics.json (write one with i2i eval --out)"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StudyError(f"{record_path}: not an i2i eval report ({exc})") from exc
    root = folder.resolve()
    pairs = []
    for row in rows if isinstance(rows, list) else []:
        images = row.get("images", {}) if isinstance(row, dict) else {}
        if not isinstance(images, dict) or not {"output", "target"} <= set(images):
            continue
        files = []
        for key in ("output", "target"):
            path = (folder / str(images[key])).resolve()
            if not path.is_relative_to(root):
                raise StudyError(f"{record_path}: image {images[key]!r} lies outside {folder}")
            if not path.is_file():
                raise StudyError(f"{record_path}: image file {path} is missing")
            files.append(path)
        pairs.append(Pair(method or folder.name, str(row.get("name", "")), files[0], files[1]))
    if not pairs:
        raise StudyError(f"{record_path} lists no image with both an output and a target")
    return pairs


def plan_trials(
    pairs: Sequence[Pair],
    *,
    practice: int = PRACTICE_TRIALS,
    main: int = MAIN_TRIALS,
    rng: random.Random | None = None,
) -> list[Trial]:
    """``practice + main`` trials: methods in turn (shuffled each round), pairs at random, the
    real image on a random side."""
    rng = rng or random.Random()
    by_method: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_method.setdefault(pair.method, []).append(pair)
    if not by_method:
        raise StudyError("no image pairs to show")
    methods: list[str] = []
    trials = []
    for index in range(practice + main):
        if not methods:
            methods = sorted(by_method)
            rng.shuffle(methods)
        pair = rng.choice(by_method[methods.pop()])
        phase = "practice" if index < practice else "main"
        trials.append(Trial(index, phase, pair, rng.choice(SIDES)))
    return trials


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path``: one ``write`` under an exclusive lock, ``O_APPEND``.

    Participants answering at once (threads or processes) never interleave or tear lines.
    """
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def check_answers_file(path: str | os.PathLike) -> None:
    """A :class:`StudyError` unless :func:`append_record` can append to ``path``: an existing
    file must open for appending, a new one's folder must exist and be writable. Nothing is
    created or written.

    >>> check_answers_file("x/a.jsonl")
    Traceback (most recent call last):
    ...
    i2i.study.protocol.StudyError: cannot append answers to x/a.jsonl: folder x does not exist
    """
    path = Path(path)
    folder = path.parent
    where = f"cannot append answers to {path}"
    if path.is_symlink() and not path.exists():
        raise StudyError(f"{where}: it is a link to a missing file")
    if path.exists():
        if not path.is_file():
            raise StudyError(f"{where}: it is not a file")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as exc:
            raise StudyError(f"{where}: {exc.strerror}") from exc
        return
    if not folder.exists():
        raise StudyError(f"{where}: folder {folder} does not exist")
    if not folder.is_dir():
        raise StudyError(f"{where}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StudyError(f"{where}: folder {folder} is not writable")


def read_records(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """The answers in a results file, and how many lines were not answers (left out)."""
    records, bad = [], 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise StudyError(f"results file {path} does not exist") from exc
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if (
            isinstance(record, dict)
            and record.get("phase") in PHASES
            and isinstance(record.get("method"), str)
            and isinstance(record.get("judged_real"), bool)
        ):
            records.append(record)
        else:
            bad += 1
    return records, bad


def summarise(
    records: Iterable[dict[str, Any]], *, phase: str = "main"
) -> dict[str, dict[str, Any]]:
    """Per method: trials ``n``, how often the generated image was judged real, that share in
    percent and its standard error (percentage points)."""
    counts: dict[str, list[int]] = {}
    for record in records:
        if record.get("phase") != phase:
            continue
        c = counts.setdefault(record["method"], [0, 0])
        c[0] += 1
        c[1] += int(bool(record["judged_real"]))
    out = {}
    for method in sorted(counts):
        n, k = counts[method]
        p = k / n
        out[method] = {
            "n": n,
            "judged_real": k,
            "percent": 100.0 * p,
            "stderr": 100.0 * math.sqrt(p * (1 - p) / n),
        }
    return out


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """``method  % judged real +- s.e.  (n trials)`` lines.

    >>> print(format_summary({"unet": {"n": 40, "judged_real": 10, "percent": 25.0,
    ...                                "stderr": 6.85}}))
    method  % judged real        trials
    unet    25.0% +- 6.8%        40
    """
    width = max([len("method"), *map(len, summary)])
    lines = [f"{'method':<{width}}  {'% judged real':<19}  trials"]
    for method, s in summary.items():
        value = f"{s['percent']:.1f}% +- {s['stderr']:.1f}%"
        lines.append(f"{method:<{width}}  {value:<19}  {s['n']}")
    return "\n".join(lines)
