"""Run plots: loss and dev curves, confusion matrices, written as real PNG files next to metrics.jsonl."""
from __future__ import annotations

import json
import struct

from polyhead.evaluation import tag_confusion, token_metrics
from polyhead.plots import plot_run, plot_study
from polyhead.training.loop import Trainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=3000, min_side=200):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) >= min_bytes, f"{path} is only {len(data)} bytes"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= min_side and height >= min_side, (path, width, height)


def fake_run(folder):
    folder.mkdir(parents=True, exist_ok=True)
    topic = {"accuracy": 0.5, "macro_f1": 0.4, "n": 6,
             "confusion": {"labels": ["politics", "sport"], "matrix": [[2, 1], [2, 1]]}}
    ner = token_metrics([["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]],
                        [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]])
    records = []
    for step in range(10, 101, 10):
        records.append({"type": "train", "step": step, "epoch": 0,
                        "loss": {"topic": 2.0 / step ** 0.3, "ner": 1.5 / step ** 0.5}, "lr": 1e-4})
        if step % 50 == 0:
            records.append({"type": "eval", "step": step, "epoch": 0, "tasks": {"topic": topic, "ner": ner}})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"type": "tra',
                                          encoding="utf-8")  # a line cut by an interrupted run is skipped
    (folder / "summary.json").write_text(json.dumps({"dev": {"topic": topic, "ner": ner}}), encoding="utf-8")
    return folder


def test_plot_run_writes_pngs(tmp_path):
    folder = fake_run(tmp_path / "run")
    written = plot_run(folder)
    names = sorted(p.name for p in written)
    assert names == ["confusion_ner.png", "confusion_topic.png", "dev_metrics.png", "loss.png"]
    for path in written:
        assert path.parent == folder
        assert_png(path)


def test_plot_run_without_summary_uses_last_eval(tmp_path):
    folder = fake_run(tmp_path / "run")
    (folder / "summary.json").unlink()
    assert {p.name for p in plot_run(folder)} >= {"loss.png", "confusion_topic.png"}
    assert plot_run(tmp_path / "empty") == []  # nothing logged: nothing drawn, no error


def test_tag_confusion_counts_words():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    pred = [["B-PER", "O", "O"], ["B-PER"]]
    confusion = tag_confusion(gold, pred)
    assert confusion["labels"] == ["O", "B-LOC", "B-PER", "I-PER"]
    matrix = {(g, p): confusion["matrix"][i][j] for i, g in enumerate(confusion["labels"])
              for j, p in enumerate(confusion["labels"])}
    assert matrix[("B-PER", "B-PER")] == 1 and matrix[("I-PER", "O")] == 1 and matrix[("B-LOC", "B-PER")] == 1
    assert sum(map(sum, confusion["matrix"])) == 4


def test_trainer_writes_plots_and_survives_a_plot_failure(tmp_path, monkeypatch, capsys):
    from test_training import tiny_config

    config = tiny_config(tmp_path)
    Trainer(config, show_progress=False).run()
    out = tmp_path / "run"
    for name in ("loss.png", "dev_metrics.png", "confusion_topic.png", "confusion_ner.png"):
        assert_png(out / name, min_bytes=2000)

    import polyhead.plots

    def broken(folder):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(polyhead.plots, "plot_run", broken)
    config.output = str(tmp_path / "run2")
    summary = Trainer(config, show_progress=False).run()
    assert summary["steps"] == 4 and (tmp_path / "run2" / "summary.json").is_file()
    assert "plots not written (RuntimeError: no fonts today)" in capsys.readouterr().err


def test_plot_study_one_panel_per_task(tmp_path):
    rows = [{"scenario": "a", "status": "ok", "trainable_parameters": 0, "wall_seconds": 3.0,
             "topic_accuracy": 0.5, "ner_f1": 0.2},
            {"scenario": "b", "status": "ok", "trainable_parameters": 10**6, "wall_seconds": 30.0,
             "topic_accuracy": 0.8, "ner_f1": None},
            {"scenario": "c", "status": "failed (exit 1)"}]
    path = plot_study(rows, [("topic", "accuracy"), ("ner", "f1")], "trainable_parameters", "params",
                      tmp_path / "p.png", log_x=True)
    assert_png(path)
    assert plot_study([], [("topic", "accuracy")], "wall_seconds", "s", tmp_path / "none.png") is None
