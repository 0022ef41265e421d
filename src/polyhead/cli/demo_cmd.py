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
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    quiet_libraries()
    from polyhead.config import RunConfig, apply_override
    from polyhead.demo import DEMO_SENTENCES, demo_config
    from polyhead.model import MultiTaskModel
    from polyhead.reporting import print_summary
    from polyhead.training.loop import Trainer

    if output.exists() and not output.is_dir():
        fail(f"--output {output}: is a file, not a folder")
    config = demo_config(output, backbone)
    if set_:
        from pydantic import ValidationError

        from polyhead.config import describe_validation_error

        data = config.model_dump(mode="json")
        overridden = {}
        for assignment in set_:
            apply_override(data, assignment)
            overridden[tuple(assignment.split("=", 1)[0].strip().split("."))] = assignment
        try:
            config = RunConfig.model_validate(data)
        except ValidationError as exc:
            fail(describe_validation_error(exc, output / "demo_config.json", "", overridden))
    typer.echo(f"polyhead demo: training topic (BBC news), ner (tweets) and sentiment (tweets) on {backbone}; "
               f"data and config in {output}", err=True)
    summary = Trainer(config, output, show_progress=progress).run()
    print_summary(summary)
    model = MultiTaskModel.from_pretrained(output / "best")
    typer.echo("\npredictions:")
    for record in model.predict(text or DEMO_SENTENCES):
        typer.echo(json.dumps(record, ensure_ascii=False))
    typer.echo(f"\nsaved model: {output / 'best'}  (try: polyhead predict --model {output / 'best'} \"some text\")")
