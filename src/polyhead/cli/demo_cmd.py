"""`polyhead demo`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from polyhead.cli import app, fail, quiet_libraries


@app.command(help="Train a real model jointly on packaged real data (topics, NER, sentiment) and predict; offline.")
def demo(
    output: Path = typer.Option(Path("runs/demo-packaged"), "--output", "-o", help="Run folder."),
    backbone: str = typer.Option("minilm-l6", help="Backbone alias, folder or HF id."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set training.epochs=1."),
    text: Optional[List[str]] = typer.Option(None, "--text", help="Sentences to predict afterwards (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Train into --output even if it holds other files."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with per-task loss."),
) -> None:
    quiet_libraries()
    from polyhead.config import RunConfig, apply_override
    from polyhead.demo import DEMO_SENTENCES, demo_config
    from polyhead.model import MultiTaskModel
    from polyhead.reporting import print_summary
    from polyhead.training.loop import Trainer

    if text:
        from polyhead.encoder import check_texts

        check_texts(text, what="--text")
    if output.exists() and not output.is_dir():
        fail(f"--output {output}: is a file, not a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / "demo_config.json").is_file() and not overwrite:
        fail(f"--output {output}: holds files that are not an earlier demo run; pass --overwrite to train there "
             f"anyway, or choose another folder")  # an earlier demo run in its own folder is simply replaced
    from pydantic import ValidationError

    from polyhead.config import describe_validation_error, override_key

    overridden = {override_key(a): a for a in set_}

    def build(write: bool) -> RunConfig:
        data = demo_config(output, backbone, write=write)
        for assignment in set_:
            apply_override(data, assignment)
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            fail(describe_validation_error(exc, Path("demo config"), "", overridden))

    build(write=False)  # bad --set values are reported before anything is written
    config = build(write=True)
    typer.echo(f"polyhead demo: training topic (BBC news), ner (tweets) and sentiment (tweets) on {backbone}; "
               f"data and config in {output}", err=True)
    summary = Trainer(config, output, show_progress=progress).run()
    print_summary(summary)
    model = MultiTaskModel.from_pretrained(output / "best")
    typer.echo("\npredictions:")
    for record in model.predict(text or DEMO_SENTENCES):
        typer.echo(json.dumps(record, ensure_ascii=False))
    typer.echo(f"\nsaved model: {output / 'best'}  (try: polyhead predict --model {output / 'best'} \"some text\")")
