"""`polyhead study freezing` on a tiny synthetic config: every scenario in the table, the CSV and the plots."""
from __future__ import annotations

import csv
import json
import sys

import pytest
import yaml

from polyhead.errors import ConfigError
from polyhead.study import freezing_scenarios, run_freezing_study, run_process, scenario_config
from test_plots import assert_png
from test_training import NER, TOPICS, write_jsonl

SCENARIOS = ["frozen-encoder", "frozen-encoder-long", "full", "full-llrd", "bottom-1", "eval-only", "stage-a",
             "add-frozen-head", "add-frozen-head+enc"]


def tiny_study_config(tmp_path):
    """topic + ner + sentiment on random:bert-tiny, data paths relative to the YAML's folder."""
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "topic.jsonl", [{"text": t, "label": l} for t, l in TOPICS])
    write_jsonl(data / "ner.jsonl", [{"tokens": t, "tags": g} for t, g in NER])
    write_jsonl(data / "sentiment.jsonl", [{"text": t, "label": l} for t, l in
                                           [("what a lovely film", "pos"), ("dull and far too long", "neg"),
                                            ("a joy to watch", "pos"), ("i want my money back", "neg")]])
    config = {
        "backbone": "random:bert-tiny",
        "tasks": {
            "topic": {"type": "sentence_classification", "train": {"path": "data/topic.jsonl", "format": "jsonl"},
                      "dev": {"path": "data/topic.jsonl", "format": "jsonl"}},
            "ner": {"type": "token_classification", "train": {"path": "data/ner.jsonl", "format": "jsonl"},
                    "dev": {"path": "data/ner.jsonl", "format": "jsonl"}},
            "sentiment": {"type": "sentence_classification",
                          "train": {"path": "data/sentiment.jsonl", "format": "jsonl"},
                          "dev": {"path": "data/sentiment.jsonl", "format": "jsonl"}},
        },
        "training": {"max_steps": 3, "batch_size": 2, "lr": 1e-3, "precision": "fp32", "warmup_ratio": 0.0,
                     "seed": 5},
        "output": "runs/tiny-study",
    }
    path = tmp_path / "cfg" / "tiny.yaml"
    path.parent.mkdir()
    # the YAML sits one folder below the data: relative paths must resolve against the YAML's folder
    for task in config["tasks"].values():
        for split in ("train", "dev"):
            task[split]["path"] = "../" + task[split]["path"]
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_freezing_study_table_csv_and_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data paths must resolve against the YAML, not the working folder
    config = tiny_study_config(tmp_path)
    out = tmp_path / "study"
    result = run_freezing_study(config, ["training.seed=7"], out, layers=[1], llrd=0.5, isolate=False,
                                echo=lambda message: None)
    rows = {r["scenario"]: r for r in result["rows"]}
    assert list(rows) == SCENARIOS
    assert all(r["status"] == "ok" for r in rows.values()), {n: r["status"] for n, r in rows.items()}

    # the written outputs hold every scenario
    md = (out / "study.md").read_text(encoding="utf-8")
    for name in SCENARIOS:
        assert f"| {name} |" in md
        assert (out / "configs" / f"{name}.yaml").is_file() and (out / name / "summary.json").is_file()
        assert_png(out / name / "loss.png" if name != "eval-only" else out / name / "dev_metrics.png", 1500)
    assert "Frozen head: cost of a moving encoder" in md
    with open(out / "study.csv", encoding="utf-8") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["scenario"] for r in csv_rows] == SCENARIOS
    assert {"trainable_parameters", "wall_seconds", "peak_rss_mb", "topic_accuracy", "ner_f1",
            "sentiment_accuracy"} <= set(csv_rows[0])
    for name in ("metric_vs_params.png", "metric_vs_time.png"):
        assert_png(out / name)
    saved = json.loads((out / "study.json").read_text(encoding="utf-8"))
    assert saved["meta"]["command"].startswith("polyhead study freezing")

    # the scenarios are what they claim to be
    full, frozen = rows["full"], rows["frozen-encoder"]
    assert 0 < frozen["trainable_parameters"] < rows["bottom-1"]["trainable_parameters"] \
        < full["trainable_parameters"] == rows["full-llrd"]["trainable_parameters"]
    assert rows["full-llrd"]["llrd"] == 0.5 and full["llrd"] == 1.0
    long = rows["frozen-encoder-long"]
    assert long["trainable_parameters"] == frozen["trainable_parameters"] and long["steps"] == 30 * frozen["steps"]
    evaluation = rows["eval-only"]
    assert evaluation["trainable_parameters"] == 0 and evaluation["steps"] == 0
    for metric in ("topic_accuracy", "ner_f1", "sentiment_accuracy"):
        assert evaluation[metric] == pytest.approx(full[metric])  # the `full` model, only evaluated
    assert rows["stage-a"]["trained_tasks"] == "topic,ner" and rows["stage-a"]["sentiment_accuracy"] is None
    moving, still = rows["add-frozen-head"], rows["add-frozen-head+enc"]
    assert moving["trained_tasks"] == still["trained_tasks"] == "ner,sentiment"
    assert moving["watched_head"] == "topic"
    stage_a_topic = rows["stage-a"]["topic_accuracy"]
    assert moving["watched_before"] == pytest.approx(stage_a_topic)
    assert still["watched_before"] == pytest.approx(stage_a_topic)
    assert still["watched_after"] == pytest.approx(stage_a_topic)  # nothing under the topic head moved
    for name in ("stage-a", "add-frozen-head"):
        used = yaml.safe_load((out / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert used["training"]["seed"] == 7  # --set overrides reach every scenario
    used = yaml.safe_load((out / "configs" / "add-frozen-head.yaml").read_text(encoding="utf-8"))
    assert used["init_from"] == str(out / "stage-a" / "best") and used["tasks"]["topic"]["train"] is None


def test_scenarios_validate_choices(tmp_path):
    names = [s.name for s in freezing_scenarios(["topic", "ner"], [2, 4], 0.8)]
    assert names[:6] == ["frozen-encoder", "frozen-encoder-long", "full", "full-llrd", "bottom-2", "bottom-4"]
    stage_b = {s.name: s for s in freezing_scenarios(["topic", "ner"], [2], 0.8)}["add-frozen-head"]
    assert stage_b.watch_head == "topic" and "training.freeze=heads:[topic]" in stage_b.overrides
    assert "stage-a" not in [s.name for s in freezing_scenarios(["topic"], [2], 0.8)]
    with pytest.raises(ConfigError, match="--frozen-head"):
        freezing_scenarios(["topic", "ner"], [2], 0.8, frozen_head="nope")
    with pytest.raises(ConfigError, match="must differ"):
        freezing_scenarios(["topic", "ner"], [2], 0.8, frozen_head="ner", added_task="ner")
    with pytest.raises(ConfigError, match="--only"):
        run_freezing_study(tiny_study_config(tmp_path), only=["nope"], output=tmp_path / "s", isolate=False)


def test_scenario_config_makes_paths_absolute(tmp_path):
    from polyhead.config import config_to_dict, load_config

    path = tiny_study_config(tmp_path)
    base_config = load_config(path)
    scenario = {s.name: s for s in freezing_scenarios(["topic", "ner", "sentiment"], [1], 0.8)}["stage-a"]
    data = scenario_config(config_to_dict(base_config), base_config, scenario, tmp_path / "study")
    assert list(data["tasks"]) == ["topic", "ner"]
    assert data["tasks"]["topic"]["train"]["path"] == str((tmp_path / "data" / "topic.jsonl").resolve())


def test_run_process_measures_the_childs_own_peak(tmp_path):
    """The child's own peak: not the (large, torch-importing) parent's RSS, which ru_maxrss inherits at fork."""
    prelude = "from polyhead.study import record_peak_at_exit; record_peak_at_exit(); "
    grab = prelude + "b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('ok')"
    big = run_process([sys.executable, "-c", grab], tmp_path / "big.log")
    small = run_process([sys.executable, "-c", prelude + "print('ok')"], tmp_path / "small.log")
    assert big["rc"] == small["rc"] == 0 and (tmp_path / "big.log").read_text().strip() == "ok"
    if small["peak_source"] != "VmHWM":
        pytest.skip("no /proc/self/status VmHWM on this platform")
    assert big["child_peak_rss_mb"] > 290
    assert small["child_peak_rss_mb"] < big["child_peak_rss_mb"] - 250
    failing = run_process([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "fail.log")
    assert failing["rc"] == 3 and failing["peak_source"] == "wait4 ru_maxrss"


def test_study_cli_in_process(tmp_path):
    from typer.testing import CliRunner

    from polyhead.cli import app

    config = tiny_study_config(tmp_path)
    result = CliRunner().invoke(app, ["study", "freezing", str(config), "-o", str(tmp_path / "s"), "--in-process",
                                      "--only", "eval-only"])
    assert result.exit_code == 0, result.output
    assert "| full |" in result.output and "| eval-only |" in result.output  # eval-only needs full: it ran too
    bad = CliRunner().invoke(app, ["study", "freezing", str(config), "--layers", "two"])
    assert bad.exit_code == 2 and "--layers" in bad.output
