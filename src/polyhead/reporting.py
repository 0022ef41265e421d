"""Readable tables for the terminal."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _main(metrics: dict) -> tuple[str, float]:
    return ("f1", metrics["f1"]) if "f1" in metrics else ("accuracy", metrics["accuracy"])


def print_eval_table(results: dict[str, dict[str, dict]]) -> None:
    table = Table(title="evaluation")
    for column in ("task", "set", "n", "accuracy", "macro-F1", "precision", "recall", "F1"):
        table.add_column(column, justify="right" if column not in ("task", "set") else "left")
    for task, sets in results.items():
        for name, m in sets.items():
            fmt = lambda key: f"{m[key]:.4f}" if key in m else ""  # noqa: E731
            table.add_row(task, name, str(m.get("n", "")), fmt("accuracy"), fmt("macro_f1"), fmt("precision"),
                          fmt("recall"), fmt("f1"))
    Console(width=140, stderr=False).print(table)


def print_summary(summary: dict) -> None:
    results = {task: {"dev": m} for task, m in summary.get("dev", {}).items()}
    for key, m in summary.get("eval", {}).items():
        task, name = key.split("/", 1)
        results.setdefault(task, {})[name] = m
    if results:
        print_eval_table(results)
    for name, change in summary.get("frozen_heads", {}).items():
        print(f"frozen head {name}: dev {change['before']:.4f} before -> {change['after']:.4f} after training")
    print(f"steps {summary.get('steps')}, wall {summary.get('wall_seconds')} s, trainable "
          f"{summary.get('trainable_parameters'):,} / {summary.get('total_parameters'):,} parameters, "
          f"peak RSS {summary.get('peak_rss_mb')} MB")
