"""The ``i2i eval`` command: score a checkpoint on a dataset, or folders of images.

>>> from i2i.plugins import make_plugin_manager
>>> from i2i.cli import build_cli
>>> "eval" in build_cli(make_plugin_manager(load_entrypoints=False)).commands
True
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from i2i import hookimpl
from i2i.cli import ComponentName
from i2i.inference.commands import direction_option
from i2i.inference.options import MODES, PRECISIONS

_EXISTS = click.Path(exists=True, file_okay=False, path_type=Path)


def _format_summary(summary: dict[str, float]) -> str:
    width = max((len(k) for k in summary), default=0)
    return "\n".join(
        f"{k:<{width}}  {'n/a' if math.isnan(v) else f'{v:.4f}'}" for k, v in summary.items()
    )


@click.command("eval")
@click.option(
    "--checkpoint",
    "-c",
    type=click.Path(exists=True, path_type=Path),
    help="Checkpoint (or run folder) to evaluate on --data.",
)
@click.option("--data", type=_EXISTS, help="Dataset folder (default: the task's built-in data).")
@click.option("--split", default="val", show_default=True, help="Dataset split.")
@click.option("--pred", type=_EXISTS, help="Folder of translated images (instead of --checkpoint).")
@click.option("--target", type=_EXISTS, help="Folder of ground-truth images, matched by name.")
@click.option(
    "--input",
    "input_dir",
    type=_EXISTS,
    help="With --pred: folder of the model inputs (label maps for --segmenter).",
)
@click.option(
    "--metrics",
    "metric_names",
    default=None,
    help="Comma-separated metric names. Default: the task's, plus seg_score with "
    "--segmenter (l1,psnr,ssim with --pred).",
)
@click.option(
    "--segmenter",
    type=click.Path(exists=True, path_type=Path),
    help="Segmenter folder (`i2i segmenter train`), or the checkpoint of a photo -> label-colour "
    "model: enables the segmentation score (FCN-score).",
)
@click.option(
    "--palette",
    type=ComponentName("tasks"),
    default=None,
    help="Task whose label colours decode the label maps [the segmenter's classes, else the "
    "checkpoint's task].",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="Write metrics.json, index.html and images/ into this folder. A file the report would "
    "write that exists already is refused before anything is written (see --overwrite).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=None,
    help="Test mode of the checkpoint. Default: its recorded test_mode.",
)
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate the first N images only.")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier i2i eval report in --out: the files its metrics.json lists, "
    "removing its thumbnails the new report does not show. Other files are never replaced.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=True)
@direction_option
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    checkpoint: Path | None,
    data: Path | None,
    split: str,
    pred: Path | None,
    target: Path | None,
    input_dir: Path | None,
    metric_names: str | None,
    segmenter: Path | None,
    palette: str | None,
    out: Path | None,
    mode: str | None,
    batch_size: int,
    limit: int | None,
    device: str,
    precision: str,
    overwrite: bool,
    as_json: bool,
    progress: bool,
    direction: str | None,
) -> None:
    """Score translations: L1, PSNR, SSIM and more, with a JSON and HTML report in --out.

    Either --checkpoint CKPT [--data DIR --split val] or --pred DIR --target DIR.
    """
    from i2i.cli import app
    from i2i.data import DataError, PreprocessConfig, build_dataset
    from i2i.engine.checkpoint import CheckpointError
    from i2i.engine.devices import tune_cpu_process
    from i2i.eval.report import ReportExistsError, ReportWriter, _json_number
    from i2i.eval.runner import EvalConfigError, build_metrics, default_metric_names, evaluate
    from i2i.eval.samples import EvalDataError, checkpoint_batches, folder_batches, folder_names
    from i2i.inference.translator import load
    from i2i.registry import UnknownComponentError
    from i2i.segment import SegmenterError, open_segmenter

    if (checkpoint is None) == (pred is None):
        raise click.UsageError("Pass either --checkpoint (with --data) or --pred with --target")
    if pred is not None and target is None:
        raise click.UsageError("--pred needs --target")
    if checkpoint is not None and (target is not None or input_dir is not None):
        raise click.UsageError("--target and --input go with --pred, not --checkpoint")
    catalog = app(ctx).catalog
    tune_cpu_process()
    report = None
    try:
        if out is not None:  # refuse an existing report before loading anything
            report = ReportWriter(out, replace="report" if overwrite else "nothing")
            report.check()
        context: dict = {}
        if palette is not None:
            context["palette"] = catalog.tasks.get(palette).obj.palette
            if not context["palette"]:
                raise click.BadParameter(
                    f"task {palette!r} declares no label colours", param_hint="--palette"
                )
        translator = None
        if checkpoint is not None:
            translator = load(
                checkpoint,
                catalog=catalog,
                device=device,
                mode=mode,
                precision=precision,
                direction=direction,
                bf16_weights=True,  # scored only through the Translator
            )
        if segmenter is not None:
            seg = open_segmenter(
                segmenter,
                catalog=catalog,
                device=device,
                precision=precision,
                palette=context.get("palette", ()),
                fallback_palette=translator.task.palette if translator is not None else (),
            )
            context["segmenter"] = seg
            if not context.get("palette") and not seg.palette:
                raise click.UsageError(
                    f"the classes of --segmenter {segmenter} are unknown: pass --palette TASK "
                    "(a task with label colours, such as facades)"
                )
        if checkpoint is not None:
            cfg = translator.config
            preprocess = PreprocessConfig(
                load_size=cfg.get("load_size", 286),
                crop_size=cfg.get("crop_size", 256),
                mode=cfg.get("preprocess", "resize_and_crop"),
                flip=False,
            )
            dataset = build_dataset(
                translator.task,
                data,
                split,
                direction=direction or cfg.get("direction"),
                preprocess=preprocess,
                train=False,
            )
            if not getattr(dataset, "paired", True):
                raise click.ClickException(
                    f"The {split} data of {data or 'the task'} is unpaired: every metric here "
                    "compares an output with its own target. Evaluate on paired data (e.g. A|B "
                    "files), or translate with `i2i translate` and score folders with --pred "
                    "and --target."
                )
            task_metrics = translator.task.metrics
            batches = checkpoint_batches(translator, dataset, batch_size=batch_size, limit=limit)
            total = len(dataset) if limit is None else min(limit, len(dataset))
            paths = getattr(dataset, "paths", None)
            names = None if paths is None else [Path(p).stem for p in paths[:total]]
            source = {
                "checkpoint": str(translator.checkpoint),
                "task": translator.task_name,
                "data": str(data) if data else "(task default)",
                "split": split,
                "mode": translator.mode,
                "direction": direction or cfg.get("direction"),
            }
        else:
            task_metrics = ("l1", "psnr", "ssim")
            batches = folder_batches(pred, target, input_dir, limit=limit)
            total = None
            names = folder_names(pred, limit=limit)
            source = {"pred": str(pred), "target": str(target)}
            if input_dir is not None:
                source["input"] = str(input_dir)
        if segmenter is not None:
            source["segmenter"] = str(segmenter)
        chosen = (
            [n.strip() for n in metric_names.split(",") if n.strip()]
            if metric_names
            else default_metric_names(task_metrics, context)
        )
        metrics = build_metrics(
            chosen, catalog, context, have_inputs=pred is None or input_dir is not None
        )
        if report is not None:  # every file it will write, checked before the first is
            report.check(names or (), inputs=pred is None or input_dir is not None)
            report.title = f"i2i eval: {source.get('task', 'folders')}"
            report.source = source
        result = evaluate(batches, metrics, report=report, progress=progress, total=total)
    except UnknownComponentError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    except (
        CheckpointError,
        DataError,
        EvalDataError,
        EvalConfigError,
        SegmenterError,
        ReportExistsError,
    ) as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.images:
        raise click.ClickException("No images were evaluated")
    if as_json:
        summary = _json_number(result.summary)
        click.echo(json.dumps({"num_images": len(result.images), "metrics": summary}))
    else:
        click.echo(f"{len(result.images)} images")
        click.echo(_format_summary(result.summary))
    if out is not None:
        click.echo(f"wrote {', '.join(str(p) for p in result.files)}")


@hookimpl
def i2i_register_commands(cli: click.Group) -> None:
    """Add ``eval``."""
    cli.add_command(eval_cmd)
