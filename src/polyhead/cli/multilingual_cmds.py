"""`polyhead eval-crosslingual` (language x task table) and `polyhead eval-retrieval` (SIB-200 bitext)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from polyhead.cli import app, fail, quiet_libraries


@app.command("eval-crosslingual",
             help="Evaluate a saved model on every language of a config (main split = source language, `eval` "
                  "sets named by language) and print one language x task table with shares of the source.")
def eval_crosslingual(
    model: Path = typer.Option(..., "--model", "-m", help="A saved polyhead model folder."),
    config: Path = typer.Option(..., "--config", "-c", help="YAML config whose `eval` sets are named by language "
                                                           "(e.g. configs/crosslingual.yaml)."),
    split: str = typer.Option("test", help="dev | test: the source-language split of each task."),
    source: str = typer.Option("en", help="Language of each task's main split (unless its spec has a `name`)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="JSON report path (Markdown beside it, .md); default "
                                               "<model>/crosslingual_<split>.json."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16."),
) -> None:
    from polyhead.config import load_config

    if split not in ("dev", "test"):
        fail(f"--split must be dev or test, got {split!r}")
    run_config = load_config(config, set_)
    if not model.is_dir():
        fail(f"--model {model}: not a folder")
    quiet_libraries()
    from polyhead import crosslingual as xl
    from polyhead.evaluation_runner import evaluate_model

    results = evaluate_model(model, run_config, split, precision)
    report = xl.crosslingual_report(results, run_config, split, source)
    report.update(model=str(model), config=str(config), overrides=list(set_), metrics=results)
    header, rows = xl.crosslingual_rows(report)
    xl.print_table(f"cross-lingual transfer ({split}; scores in %, share of {source})", header, rows,
                   xl.crosslingual_summary_lines(report))
    markdown = xl.crosslingual_markdown(report, f"Cross-lingual transfer: {model}")
    json_path, md_path = xl.write_report(report, markdown, output or model / f"crosslingual_{split}.json")
    typer.echo(f"report written to {json_path} and {md_path}")


@app.command("eval-retrieval",
             help="Bitext retrieval on SIB-200: embed the source language and every other language, report top-1 "
                  "accuracy in both directions.")
def eval_retrieval(
    model: str = typer.Option("multilingual-e5-small", "--model", "-m",
                              help="Backbone alias, HF folder or saved polyhead model."),
    data: Optional[Path] = typer.Option(None, "--data", help="SIB-200 folder (one sub-folder per language); "
                                                             "default $POLYHEAD_DATA/topic/sib200."),
    source: str = typer.Option("eng_Latn", help="Source language folder."),
    lang: List[str] = typer.Option([], "--lang", help="Target language folder (repeatable); default: all others."),
    split: str = typer.Option("all", help="train | dev | test | all (all = the 1004 sentences)."),
    prefix: Optional[str] = typer.Option(None, help="Text prepended to every sentence (default: the model's)."),
    batch_size: int = typer.Option(64, min=1),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the JSON report here (and Markdown "
                                                                        "beside it, .md)."),
) -> None:
    from polyhead.data.readers import default_data_dir

    root = data if data is not None else default_data_dir() / "topic" / "sib200"
    if not root.is_dir():
        fail(f"SIB-200 folder not found: {root} (use --data or set POLYHEAD_DATA)")
    if split not in ("train", "dev", "test", "all"):
        fail(f"--split must be train, dev, test or all, got {split!r}")
    if output is not None and output.suffix.lower() != ".json":
        fail(f"--output {output}: use a .json path (the Markdown table goes beside it)")
    quiet_libraries()
    from polyhead import crosslingual as xl
    from polyhead.encoder import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(model, prefix=prefix, precision=precision)
    report = xl.bitext_retrieval(encoder, root, source, lang or None, split, batch_size)
    report.update(model=model, backbone=encoder.backbone.describe(), prefix=encoder.prefix,
                  precision=encoder.precision, data=str(root))
    header, rows = xl.retrieval_rows(report)
    xl.print_table(f"bitext retrieval, top-1 accuracy in % ({encoder.backbone.name}, SIB-200 {split})", header, rows,
                   [f"lowest: {100 * report['min']:.1f}%"])
    if output is not None:
        json_path, md_path = xl.write_report(report, xl.retrieval_markdown(report, f"Bitext retrieval: {model}"),
                                             output)
        typer.echo(f"report written to {json_path} and {md_path}")
