"""The docs build strictly, their generated pages are current, and what they tell a user works."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from i2i.plugins import make_plugin_manager
from i2i.reference import docs_pages, hook_signature, hookspecs
from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
EXAMPLES = REPO_ROOT / "examples"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced code block of a Markdown page, in order."""
    return FENCE.findall(page.read_text())


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "I2I_LOAD_PLUGINS": "",
        "OMP_NUM_THREADS": "2",
        **extra,
    }


def test_docs_build_in_strict_mode(tmp_path):
    """Any Sphinx warning (a broken link, a missing figure, a bad docstring) fails the build."""
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        + ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"sphinx-build -W failed:\n{done.stdout}\n{done.stderr}"
    html = tmp_path / "html"
    pages = ("quickstart", "concepts", "tasks/facades", "plugins/tutorial", "plugins/recipe")
    for page in (*pages, "reference/api"):
        assert (html / f"{page}.html").is_file(), page
    api = (html / "reference" / "api.html").read_text()
    assert 'id="i2i.load"' in api and 'id="i2i.Task"' in api  # autodoc ran
    tutorial = (html / "plugins" / "tutorial.html").read_text()
    assert '<span class="nc">DnCNN</span>' in tutorial  # included from the real file
    recipe = (html / "plugins" / "recipe.html").read_text()
    assert '<span class="nf">train_step</span>' in recipe  # the example recipe's real code


def test_generated_pages_are_current():
    stale = [rel for rel, text in docs_pages(REPO_ROOT).items() if (DOCS / rel).read_text() != text]
    assert not stale, f"stale generated docs pages {stale}: run `python -m i2i.reference`"


def test_every_hook_is_documented_with_its_exact_signature():
    page = (DOCS / "plugins" / "hooks.md").read_text()
    pm = make_plugin_manager(load_entrypoints=False)
    specs = {name: caller.spec for name, caller in vars(pm.hook).items() if hasattr(caller, "spec")}
    assert {h.__name__ for h in hookspecs()} == set(specs)
    for hook in hookspecs():
        args = ", ".join(specs[hook.__name__].argnames)
        assert hook_signature(hook) == f"{hook.__name__}({args})"
        assert f"def {hook_signature(hook)}: ..." in page, hook.__name__
        assert f"## {hook.__name__}" in page


def test_every_example_is_included_in_the_docs_and_run_by_a_test():
    included = " ".join(p.read_text() for p in DOCS.rglob("*.md"))
    run_by = (REPO_ROOT / "tests" / "test_examples.py").read_text()
    scripts = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".sh", ".py"))
    assert scripts
    for script in scripts:
        assert f"{{literalinclude}} ../examples/{script.name}" in included, script.name
        assert f'"{script.name}"' in run_by, f"{script.name} is not run by tests/test_examples.py"
    assert "../../examples/i2i-denoise/i2i_denoise/__init__.py" in included
    assert "../../examples/i2i-regression/i2i_regression/__init__.py" in included


def test_quickstart_first_command_is_the_readme_first_command():
    readme = _blocks(REPO_ROOT / "README.md")
    quick = _blocks(DOCS / "quickstart.md")
    assert quick[0] == readme[0]
    assert any("pytest" in code for _, code in quick) and readme[1] in quick


def _as_test_command(line: str) -> str | None:
    """A quickstart line as the test runs it: installed already, and 3 training steps."""
    parts = [p.strip() for p in line.split("&&")]
    parts = [p for p in parts if not p.startswith(("python3 -m venv", "source "))]
    parts = [p for p in parts if "pip install" not in p]
    # `i2i demo` serves until Ctrl-C: tests/test_demo.py runs it and drives its page
    parts = [p for p in parts if not p.startswith("i2i demo ")]
    parts = [p.replace(".venv/bin/", "") for p in parts]
    parts = [p + " --max-steps 3" if p.startswith("i2i run ") else p for p in parts]
    return " && ".join(parts) or None


@pytest.mark.slow
def test_following_the_quickstart_gives_a_model_and_translated_images(tmp_path):
    """Every command of the quickstart, in order (training stopped after 3 steps)."""
    photos = tmp_path / "my_photos"
    photos.mkdir()
    Image.new("RGB", (300, 200), (180, 120, 60)).save(photos / "cat.jpg")
    Image.new("L", (64, 96), 90).save(photos / "gray.png")
    for lang, code in _blocks(DOCS / "quickstart.md"):
        if "pytest" in code:
            continue  # the test command: this is it
        if lang == "python":
            cmd = [sys.executable, "-c", code]
        else:
            lines = [_as_test_command(x) for x in code.splitlines() if x.strip()]
            cmd = ["bash", "-euo", "pipefail", "-c", "\n".join(x for x in lines if x)]
        done = subprocess.run(
            cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{shlex.join(cmd)}\n{done.stdout}\n{done.stderr}"
    run = tmp_path / "runs" / "colorize"
    assert json.loads((run / "checkpoints" / "latest.json").read_text())
    assert (tmp_path / "eval" / "colorize" / "index.html").is_file()
    assert (run / "report" / "index.html").is_file()
    assert Image.open(tmp_path / "colorized" / "cat.png").size == (300, 200)
    assert Image.open(tmp_path / "colorized" / "gray.png").size == (64, 96)
    assert Image.open(tmp_path / "cat_colour.png").mode == "RGB"


def load_script(path: Path):
    """A script of docs/ as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_sample_runs_shown_are_recorded_and_their_figures_exist():
    samples = load_script(DOCS / "make_samples.py")
    recorded = sorted(p.parent.name for p in (DOCS / "_static" / "samples").glob("*/results.json"))
    assert "colorize" in recorded and "facades" in recorded
    for task in recorded:
        result = json.loads((DOCS / "_static" / "samples" / task / "results.json").read_text())
        assert result["command"] == samples.shown_command(samples.SAMPLES[task])
        assert result["steps"] > 0 and result["metrics"]
        for figure in ("samples.png", "losses.png"):
            assert Image.open(DOCS / "_static" / "samples" / task / figure).size[0] > 0
        page = (DOCS / "tasks" / f"{task}.md").read_text()
        assert result["command"] in page


@pytest.mark.slow
def test_make_samples_runs_end_to_end(tmp_path):
    """The script behind the sample figures, in its quick mode (numbers meaningless)."""
    done = subprocess.run(
        [sys.executable, str(DOCS / "make_samples.py"), "--quick", "colorize"]
        + ["--dest", str(tmp_path / "dest"), "--work", str(tmp_path / "work")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "dest" / "colorize" / "results.json").read_text())
    assert result["steps"] == 2 and result["val_images"] == 6
    assert Image.open(tmp_path / "dest" / "colorize" / "samples.png").size == (384, 384)


def test_make_samples_quick_mode_never_writes_into_the_docs():
    done = subprocess.run(
        [sys.executable, str(DOCS / "make_samples.py"), "--quick", "colorize"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--quick needs --dest" in done.stderr


def test_task_pages_tell_how_to_train_without_pairs_with_a_command_that_resolves(catalog):
    """Every aligned task's page shows a cyclegan command, and that command's run settings
    pass i2i's checks (identity term off where the two sides differ in channels)."""
    from i2i.config import resolve_config

    shown = 0
    for entry in catalog.tasks:
        page = (DOCS / "tasks" / f"{entry.name}.md").read_text()
        runs = [x for x in page.splitlines() if x.startswith("i2i run --recipe cyclegan")]
        own = catalog.recipes.get((entry.obj.defaults or {}).get("recipe", "pix2pix")).obj
        if entry.obj.layout == "single" or getattr(own, "unpaired", False):
            assert not runs, entry.name  # no pairs to drop, or its own commands show it
            continue
        assert len(runs) == 1, entry.name
        args = shlex.split(runs[0])
        options = dict(
            args[i + 1].split("=") for i, a in enumerate(args) if a == "--recipe-opt"
        )  # fmt: skip
        cfg = resolve_config(
            catalog, args[args.index("--task") + 1], recipe="cyclegan",
            unpaired="--unpaired" in args,
            recipe_options={k: float(v) for k, v in options.items()},
        )  # fmt: skip
        assert cfg.recipe == "cyclegan" and cfg.unpaired == (entry.obj.layout != "unpaired")
        shown += 1
    assert shown >= 5


def _shown_commands() -> list[tuple[str, str]]:
    """(page, line) of every command line of a bash block in the README and the docs."""
    pages = [REPO_ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [
        (str(page.relative_to(REPO_ROOT)), line.strip())
        for page in pages
        if "_build" not in page.parts
        for lang, code in _blocks(page)
        if lang == "bash"
        for line in code.splitlines()
    ]


def test_every_training_command_shown_names_data_where_the_task_has_none_built_in(catalog):
    """`i2i run --task T` without --data fails for a task without built-in data (facades):
    every such command in the docs passes --data (or --resume, which reads the run's)."""
    checked = 0
    for page, line in _shown_commands():
        words = shlex.split(line.split("#")[0]) if "i2i run " in line else []
        if "--task" not in words or "--resume" in words:
            continue
        name = words[words.index("--task") + 1]
        if name not in catalog.tasks:
            continue  # a plugin's task (denoise): its own tests cover its page
        if catalog.tasks.get(name).obj.default_data is None:
            assert "--data" in words, f"{page}: `{line}` has no --data and {name} no built-in data"
        checked += 1
    assert checked >= 10


def test_task_pages_give_no_eval_command_for_unpaired_data(catalog):
    """`i2i eval --checkpoint` refuses unpaired val data, so the pages of unpaired tasks say
    why instead of showing it; every other page shows it."""
    for entry in catalog.tasks:
        page = (DOCS / "tasks" / f"{entry.name}.md").read_text()
        shown = f"i2i eval --checkpoint runs/{entry.name}" in page
        assert shown == (entry.obj.layout != "unpaired"), entry.name
        if entry.obj.layout == "unpaired":
            assert "There is no `i2i eval --checkpoint` line" in page
