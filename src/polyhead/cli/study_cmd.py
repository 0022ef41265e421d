"""`polyhead study freezing`: training strategies compared on the same data and budget."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from polyhead.cli import app, fail, quiet_libraries

study_app = typer.Typer(help="Compare training strategies on the same data and budget.", no_args_is_help=True)
app.add_typer(study_app, name="study")


def _int_list(raw: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        fail(f"{option} {raw!r}: expected comma-separated integers, e.g. 2,4")
    if not values or any(v < 1 for v in values):
        fail(f"{option} {raw!r}: expected positive layer counts, e.g. 2,4")
    return values


@study_app.command(help="Freezing strategies side by side: frozen encoder + cached features, full fine-tuning "
                   "with and without layer-wise LR decay, bottom-k layers frozen, evaluation only, and one head "
                   "frozen while a task is added. Each scenario runs `polyhead train` in its own process; "
                   "writes study.md, study.csv, study.json and PNG plots into the study folder.")
def freezing(
    config: Path = typer.Argument(..., help="The run's YAML config (see configs/study.yaml)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Study folder (default: the config's `output`)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key for every scenario (repeatable)."),
    layers: str = typer.Option("2,4", help="Bottom-k scenarios: how many transformer layers to freeze, e.g. 2,4."),
    llrd: float = typer.Option(0.8, min=0.01, max=1.0, help="Layer-wise LR decay of the full-llrd scenario."),
    frozen_head: Optional[str] = typer.Option(None, help="Head frozen in stage B (default: topic, else the "
                                                          "first task)."),
    added_task: Optional[str] = typer.Option(None, help="Task added in stage B (default: sentiment, else the "
                                                         "last task)."),
    only: Optional[str] = typer.Option(None, help="Comma-separated scenarios to run (their dependencies run too)."),
    reuse: bool = typer.Option(False, "--reuse/--no-reuse", help="Keep finished scenarios whose config is "
                                                                  "unchanged (to continue an interrupted study)."),
    in_process: bool = typer.Option(False, "--in-process", help="Train every scenario in this process: faster "
                                                                "start, but no per-scenario peak memory."),
) -> None:
    from polyhead.study import run_freezing_study

    quiet_libraries()

    layer_list = _int_list(layers, "--layers")
    only_list = [part.strip() for part in only.split(",") if part.strip()] if only else None
    result = run_freezing_study(config, set_, output, layer_list, llrd, frozen_head, added_task, only_list, reuse,
                                isolate=not in_process)
    study_dir = result["study_dir"]
    typer.echo((study_dir / "study.md").read_text(encoding="utf-8"))
    typer.echo(f"study folder: {study_dir} (study.md, study.csv, study.json, metric_vs_params.png, "
               f"metric_vs_time.png)")
    failed = [r["scenario"] for r in result["rows"] if r["status"] != "ok"]
    if failed:
        typer.echo(f"polyhead: {len(failed)} scenario(s) did not finish: {', '.join(failed)} "
                   f"(logs in {study_dir / 'logs'})", err=True)
        raise typer.Exit(1)
