"""PNG plots of a training run and of a study, headless (matplotlib's Agg canvas, no pyplot global state).

plot_run(run_folder) reads metrics.jsonl + summary.json and writes, next to them:
    loss.png              per-task training loss over steps
    dev_metrics.png       per-task main dev metric (accuracy / entity F1) over steps
    confusion_<task>.png  dev confusion matrix of each classification head (token heads: word-level tags)
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI)
    return path


def read_log(folder: str | Path) -> list[dict]:
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
    return records


def main_metric_of(metrics: dict) -> tuple[str, float] | None:
    """The task's main metric: entity F1 for token tasks, accuracy for sentence tasks."""
    for key in ("f1", "accuracy"):
        if isinstance(metrics.get(key), (int, float)):
            return key, float(metrics[key])
    return None


def plot_losses(records: list[dict], path: Path) -> Path | None:
    series: dict[str, tuple[list[int], list[float]]] = {}
    for rec in records:
        if rec.get("type") == "train":
            for task, value in (rec.get("loss") or {}).items():
                xs, ys = series.setdefault(task, ([], []))
                xs.append(rec["step"])
                ys.append(value)
    if not series:
        return None
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    for task, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=task)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (mean over logged window)")
    ax.set_title("training loss per task")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_dev_metrics(records: list[dict], path: Path) -> Path | None:
    series: dict[str, tuple[list[int], list[float], str]] = {}
    for rec in records:
        if rec.get("type") == "eval":
            for task, metrics in (rec.get("tasks") or {}).items():
                found = main_metric_of(metrics)
                if found is None:
                    continue
                xs, ys, _ = series.setdefault(task, ([], [], found[0]))
                xs.append(rec["step"])
                ys.append(found[1])
    if not series:
        return None
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    for task, (xs, ys, name) in sorted(series.items()):
        ax.plot(xs, ys, marker="o", label=f"{task} ({'entity F1' if name == 'f1' else name})")
    ax.set_xlabel("step")
    ax.set_ylabel("dev metric")
    ax.set_ylim(0, 1.02)
    ax.set_title("dev metric per task")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str, path: Path) -> Path:
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)  # colour: recall per gold row
    n = len(labels)
    side = min(9.0, 2.6 + 0.55 * n)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of gold row")
    ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=list(labels), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.6 else "black")
    return _save(fig, path)


def plot_run(folder: str | Path) -> list[Path]:
    """Write the run's PNGs next to its metrics.jsonl; returns the files written."""
    folder = Path(folder)
    records = read_log(folder)
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    written = [p for p in (plot_losses(records, folder / "loss.png"),
                           plot_dev_metrics(records, folder / "dev_metrics.png")) if p is not None]
    dev = summary.get("dev") or {}
    if not dev:  # no summary (interrupted run): the last evaluation in the log
        evals = [r for r in records if r.get("type") == "eval"]
        dev = evals[-1]["tasks"] if evals else {}
    for task, metrics in dev.items():
        confusion = metrics.get("confusion") if isinstance(metrics, dict) else None
        if not confusion or not confusion.get("labels"):
            continue
        found = main_metric_of(metrics)
        score = f", {'entity F1' if found[0] == 'f1' else found[0]} {found[1]:.3f}" if found else ""
        count = f"{metrics.get('n', '?')} sentences"
        if "f1" in metrics:  # token task: one row per word (the tag read on its first sub-word)
            count += f", {sum(map(sum, confusion['matrix'])):,} words"
        title = f"{task}: dev confusion ({count}{score})"
        written.append(plot_confusion(confusion["labels"], confusion["matrix"], title,
                                      folder / f"confusion_{_safe(task)}.png"))
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# -- study plots --------------------------------------------------------------------------------------
def plot_study(rows: list[dict], tasks: list[tuple[str, str]], x_key: str, x_label: str, path: Path,
               log_x: bool = False) -> Path | None:
    """One panel per task: each scenario's dev metric against `x_key` (trainable parameters, wall seconds)."""
    points = [r for r in rows if r.get("status") == "ok" and isinstance(r.get(x_key), (int, float))]
    if not points or not tasks:
        return None
    cols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / cols)
    fig = _figure(4.6 * cols, 3.8 * nrows)
    markers = "osD^v<>ph*X"
    for index, (task, metric) in enumerate(tasks):
        ax = fig.add_subplot(nrows, cols, index + 1)
        for k, row in enumerate(points):
            y = row.get(f"{task}_{metric}")
            if not isinstance(y, (int, float)):
                continue
            ax.scatter([row[x_key]], [y], marker=markers[k % len(markers)], s=50, label=row["scenario"],
                       color=f"C{k % 10}", alpha=0.85)
        if log_x:
            ax.set_xscale("symlog", linthresh=1e4)  # 0 trainable parameters (evaluation only) stays on the axis
        ax.set_xlabel(x_label)
        ax.set_ylabel(f"dev {'entity F1' if metric == 'f1' else metric}")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.axes[-1].legend(handles, labels, fontsize=7, loc="best")
    return _save(fig, path)
