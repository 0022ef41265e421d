"""`polyhead train`, `eval`, `predict`: the multi-task model from the command line."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from polyhead.cli import app, fail, quiet_libraries
from polyhead.cli.outputs import unique_sibling


def data_paths(run_config) -> list[Path]:
    """Every data file a config reads (they must never be written over)."""
    from polyhead.config import resolve_data_path

    paths = []
    for task in run_config.tasks.values():
        for spec in [task.train, task.dev, task.test, *task.eval]:
            if spec is not None:
                paths.append(resolve_data_path(run_config, spec.path))
                if spec.labels_path:
                    paths.append(resolve_data_path(run_config, spec.labels_path))
    return paths


@app.command(help="Train a multi-task model from one YAML config plus --set key=value overrides.")
def train(
    config: Path = typer.Argument(..., help="The run's YAML config (see configs/)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (overrides the config's `output`)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set training.epochs=1 (repeatable)."),
    only: Optional[str] = typer.Option(None, "--only", help="Train only these tasks (comma-separated): single-task baselines."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from <output>/last."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished run in the run folder."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with per-task loss."),
) -> None:
    from polyhead.cli.outputs import check_run_folder
    from polyhead.config import load_config

    if only is not None and not only.strip(","):
        fail("--only: give one or more task names, comma-separated")
    if resume and overwrite:
        fail("--resume continues the run in the output folder and --overwrite replaces it: give one of them")
    run_config = load_config(config, set_, only.split(",") if only else None)
    check_run_folder(Path(output or run_config.output), "--output" if output else "output", overwrite, resume,
                     [config])
    quiet_libraries()
    from polyhead.reporting import print_summary
    from polyhead.training.loop import Trainer

    trainer = Trainer(run_config, output, resume=resume, show_progress=progress)
    summary = trainer.run()
    print_summary(summary)
    typer.echo(f"run folder: {trainer.output} (best model in {trainer.output / 'best'}, log metrics.jsonl)")


@app.command("eval", help="Evaluate a saved model on the dev or test sets (and extra eval sets) of a config.")
def eval_(
    model: Path = typer.Option(..., "--model", "-m", help="A saved polyhead model folder."),
    config: Path = typer.Option(..., "--config", "-c", help="The YAML config naming the data sets."),
    split: str = typer.Option("dev", help="dev | test: which split of each task (plus its extra `eval` sets)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key (repeatable)."),
    only: Optional[str] = typer.Option(None, "--only", help="Evaluate only these tasks (comma-separated)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the metrics JSON here (default: "
                                          "<model>/eval_<split>[_<tasks>].json, replaced by the same eval)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16."),
) -> None:
    from polyhead.cli.outputs import check_output_file
    from polyhead.config import load_config

    if split not in ("dev", "test"):
        fail(f"--split must be dev or test, got {split!r}")
    if only is not None and not only.strip(","):
        fail("--only: give one or more task names, comma-separated")
    run_config = load_config(config, set_, only.split(",") if only else None)
    if not model.is_dir():
        fail(f"--model {model}: not a folder")
    if output is not None:
        check_output_file(output, "--output", (".json",), overwrite, [config, *data_paths(run_config)], [model])
    quiet_libraries()
    from polyhead.evaluation_runner import evaluate_model
    from polyhead.reporting import print_eval_table

    results = evaluate_model(model, run_config, split, precision)
    print_eval_table(results)
    # --only results get their own default file, so they never replace the all-task one
    suffix = "".join(f"_{t}" for t in run_config.tasks) if only else ""
    target = output or (model / f"eval_{split}{suffix}.json")
    target.write_text(json.dumps(results, indent=2), encoding="utf-8")
    typer.echo(f"metrics written to {target}")


@app.command(help="Predict every head of a saved model on raw texts, one JSON object per text.")
def predict(
    texts: List[str] = typer.Argument(None, help="Texts (or use --input)."),
    model: Path = typer.Option(..., "--model", "-m", help="A saved polyhead model folder."),
    input: Optional[str] = typer.Option(None, "--input", "-i", help=".txt/.jsonl/.csv/.tsv file, or - for stdin."),
    column: Optional[str] = typer.Option(None, help="Field or column holding the text."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write JSONL here instead of stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    batch_size: int = typer.Option(32, min=1, help="Maximum texts per forward pass (batches are also capped by tokens)."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16."),
) -> None:
    from polyhead.cli.outputs import check_output_file
    from polyhead.data.text_input import iter_texts

    if input is None and not texts:
        fail("give texts as arguments, or --input FILE (or - for stdin)")
    if input is not None and texts:
        fail("give texts as arguments or --input, not both")
    if not model.is_dir():
        fail(f"--model {model}: not a folder")
    if output is not None:
        check_output_file(output, "--output", (".jsonl",), overwrite, [input], [model])
    if texts:
        from polyhead.encoder import check_texts

        check_texts(texts)
    quiet_libraries()
    from polyhead.model import MultiTaskModel

    mtl = MultiTaskModel.from_pretrained(model, precision=precision)
    source = list(texts) if texts else list(iter_texts(input, column))
    if not source:
        typer.echo(f"polyhead: note: {input} holds no texts; nothing to predict", err=True)
    partial = unique_sibling(output, ".partial") if output else None  # the old file stays until we are done
    out = open(partial, "w", encoding="utf-8") if partial else sys.stdout
    truncated = 0
    try:
        for start in range(0, len(source), 1024):
            for record in mtl.predict(source[start:start + 1024], batch_size=batch_size):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            truncated += mtl.last_truncated
    except BaseException:
        if partial:
            out.close()
            partial.unlink(missing_ok=True)
        raise
    if partial:
        out.close()
        os.replace(partial, output)
    if output:
        typer.echo(f"wrote {len(source)} predictions to {output}", err=True)
    if truncated:
        typer.echo(f"note: {truncated} of {len(source)} texts reached the model's {mtl.encoder.max_length} tokens "
                   f"and were truncated: labels and entities come from their beginning only", err=True)
