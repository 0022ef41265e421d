"""The CLI never loses data: outputs are checked before any work, never written over an input, and an existing
file or finished run is replaced only with --overwrite. Bad values get one clear line that says where."""
from __future__ import annotations

import json

import numpy as np

from conftest import run_cli
from test_cli import assert_clean_error
from test_training import NER, TOPICS, write_jsonl


def _tiny_run_config(tmp_path, tasks=("topic", "ner")) -> str:
    topic = write_jsonl(tmp_path / "topic.jsonl", [{"text": t, "label": l} for t, l in TOPICS])
    ner = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": t, "tags": g} for t, g in NER])
    blocks = {"topic": f"  topic:\n    type: sentence_classification\n    train: {{path: {topic}, format: jsonl}}\n"
                       f"    dev: {{path: {topic}, format: jsonl}}\n",
              "ner": f"  ner:\n    type: token_classification\n    train: {{path: {ner}, format: jsonl}}\n"
                     f"    dev: {{path: {ner}, format: jsonl}}\n"}
    path = tmp_path / f"run-{'-'.join(tasks)}.yaml"
    path.write_text("backbone: random:bert-tiny\ntasks:\n" + "".join(blocks[t] for t in tasks)
                    + "training:\n  max_steps: 2\n  batch_size: 2\n  precision: fp32\n", encoding="utf-8")
    return str(path)


def test_encode_refuses_to_overwrite_or_clobber_its_input(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello", "id": 7}\n', encoding="utf-8")
    before = source.read_bytes()
    assert_clean_error(run_cli("encode", "-m", "random:bert-tiny", "-i", str(source), "-o", str(source)),
                       "also the input")
    assert source.read_bytes() == before
    out = tmp_path / "keep.npy"
    out.write_bytes(b"precious")
    assert_clean_error(run_cli("encode", "-m", "random:bert-tiny", "hi", "-o", str(out)), "--overwrite")
    assert out.read_bytes() == b"precious"
    ok = run_cli("encode", "-m", "random:bert-tiny", "hi", "-o", str(out), "--overwrite")
    assert ok.returncode == 0, ok.stderr
    assert np.load(out).shape[0] == 1
    assert_clean_error(run_cli("encode", "-m", "random:bert-tiny", "hi", "-o", str(tmp_path / "no" / "x.npy")),
                       "does not exist")
    assert_clean_error(run_cli("encode", "-m", "random:bert-tiny", "hi", "-o", str(tmp_path)), "folder")
    assert_clean_error(run_cli("encode", "-m", "random:bert-tiny", "-i", str(tmp_path)), "is a folder")


def test_train_eval_predict_protect_outputs_and_explain_resume_mismatch(tmp_path):
    config = _tiny_run_config(tmp_path)
    run = tmp_path / "run"
    first = run_cli("train", config, "-o", str(run), "--no-progress")
    assert first.returncode == 0, first.stderr
    marker = (run / "best" / "heads.safetensors").read_bytes()
    assert_clean_error(run_cli("train", config, "-o", str(run), "--no-progress"), "finished run", "--overwrite")
    assert (run / "best" / "heads.safetensors").read_bytes() == marker

    other = _tiny_run_config(tmp_path, tasks=("topic",))
    assert_clean_error(run_cli("train", other, "-o", str(run), "--resume", "--no-progress"),
                       "--resume", "ner (token_classification)")
    assert_clean_error(run_cli("train", config, "-o", str(run), "--resume", "--overwrite"), "give one of them")

    texts = tmp_path / "texts.txt"
    texts.write_text("EU rejects German call.\n", encoding="utf-8")
    assert_clean_error(run_cli("predict", "-m", str(run / "best"), "-i", str(texts), "-o", str(texts)),
                       "unsupported extension")
    same = tmp_path / "texts.jsonl"
    same.write_text('{"text": "EU rejects German call."}\n', encoding="utf-8")
    assert_clean_error(run_cli("predict", "-m", str(run / "best"), "-i", str(same), "-o", str(same)),
                       "also the input")
    assert_clean_error(run_cli("predict", "-m", str(run / "best"), "hi", "-o", str(tmp_path / "no" / "p.jsonl")),
                       "does not exist")
    out = tmp_path / "p.jsonl"
    assert run_cli("predict", "-m", str(run / "best"), "hi", "-o", str(out)).returncode == 0
    assert_clean_error(run_cli("predict", "-m", str(run / "best"), "hi", "-o", str(out)), "--overwrite")
    assert json.loads(out.read_text().splitlines()[0])["text"] == "hi"
    assert_clean_error(run_cli("eval", "-m", str(run / "best"), "-c", config, "-o", str(tmp_path)), "folder")


def test_config_errors_point_at_the_override_and_the_file(tmp_path):
    config = _tiny_run_config(tmp_path)
    assert_clean_error(run_cli("train", config, "--set", "training.epochz=3"), "--set training.epochz=3",
                       "unknown key")
    assert_clean_error(run_cli("train", config, "--set", "=3"), "empty key")
    assert_clean_error(run_cli("train", config, "--set", "training.freeze=sometimes"), "training.freeze")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"backbone: minilm-l6\ntasks: \xff\n")
    assert_clean_error(run_cli("train", str(bad)), "bad.yaml:2", "UTF-8")
    assert_clean_error(run_cli("train", str(tmp_path)), "is a folder")
    text = open(config, encoding="utf-8").read().replace("format: jsonl}", "format: jsonl, encoding: klingon}", 1)
    (tmp_path / "enc.yaml").write_text(text, encoding="utf-8")
    assert_clean_error(run_cli("train", str(tmp_path / "enc.yaml")), "encoding", "klingon", "enc.yaml:")
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}])
    (tmp_path / "one.yaml").write_text(f"backbone: random:bert-tiny\ntasks:\n  s:\n    type: sentence_classification\n"
                                       f"    train: {{path: {one}, format: jsonl}}\n", encoding="utf-8")
    assert_clean_error(run_cli("train", str(tmp_path / "one.yaml"), "-o", str(tmp_path / "r1")), "tasks.s.train",
                       "at least 2")


def test_api_misuse_gets_type_errors_that_say_what(tmp_path):
    import pytest

    from polyhead import SentenceEncoder
    from polyhead.errors import PolyheadError
    from polyhead.model import MultiTaskModel

    enc = SentenceEncoder.from_pretrained("random:bert-tiny")
    for bad in (5, None):
        with pytest.raises(TypeError, match="list of strings"):
            enc.encode(bad)
    with pytest.raises(TypeError, match="batch_size"):
        enc.encode(["a"], batch_size="8")
    with pytest.raises(TypeError, match="batch_size"):
        enc.encode(["a"], batch_size=2.5)
    with pytest.raises(TypeError, match="normalize"):
        enc.encode(["a"], normalize="no")
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        enc.encode(["fine", "caf\udce9"])
    with pytest.raises(TypeError, match="name_or_dir"):
        SentenceEncoder.from_pretrained(3)
    with pytest.raises(PolyheadError, match="not found"):
        MultiTaskModel.from_pretrained(tmp_path / "nope")
    assert enc.encode(["a", "b"], batch_size=1).shape[0] == 2


def test_saved_models_user_files_and_unwritable_places_are_safe(tmp_path):
    config = _tiny_run_config(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", config, "-o", str(run), "--no-progress").returncode == 0
    best = run / "best"
    before = (best / "config.json").read_bytes()
    assert_clean_error(run_cli("train", config, "-o", str(best), "--no-progress", "--overwrite"),
                       "not a polyhead run")
    assert_clean_error(run_cli("eval", "-m", str(best), "-c", config, "-o", str(best / "polyhead.json"),
                               "--overwrite"), "inside the model folder")
    assert (best / "config.json").read_bytes() == before
    assert run_cli("eval", "-m", str(best), "-c", config).returncode == 0
    assert run_cli("eval", "-m", str(best), "-c", config, "--only", "topic").returncode == 0
    assert set(json.loads((best / "eval_dev.json").read_text())) == {"topic", "ner"}  # not replaced by --only
    assert set(json.loads((best / "eval_dev_topic.json").read_text())) == {"topic"}
    assert_clean_error(run_cli("predict", "-m", str(run), "hi"), f"use {best}")
    data = tmp_path / "topic.jsonl"
    kept = data.read_bytes()
    assert_clean_error(run_cli("eval", "-m", str(best), "-c", config, "-o", str(tmp_path / "topic.json"),
                               "--overwrite", "--set", f"tasks.topic.dev.path={tmp_path / 'topic.json'}"),
                       "topic.json")
    assert data.read_bytes() == kept
    assert_clean_error(run_cli("encode", "-m", "random:bert-tiny", "hi", "-o", "/proc/polyhead-test.npy"),
                       "cannot write")
    mine = tmp_path / "y.npy.partial"
    mine.write_text("mine")
    assert run_cli("encode", "-m", "random:bert-tiny", "hi", "-o", str(tmp_path / "y.npy")).returncode == 0
    assert mine.read_text() == "mine" and not list(tmp_path.glob(".y.npy.*"))
    other = tmp_path / "other.yaml"
    other.write_text(open(config, encoding="utf-8").read().replace("random:bert-tiny", "random:distilmbert-tiny"),
                     encoding="utf-8")
    assert_clean_error(run_cli("train", str(other), "-o", str(run), "--resume", "--no-progress"), "backbone")


def test_demo_checks_overrides_before_writing_anything(tmp_path):
    out = tmp_path / "demo"
    assert_clean_error(run_cli("demo", "-o", str(out), "--set", "training.epochz=1"), "--set training.epochz=1")
    assert not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert_clean_error(run_cli("demo", "-o", str(foreign)), "--overwrite")


def test_a_token_task_without_entity_tags_is_refused(tmp_path):
    only_o = write_jsonl(tmp_path / "o.jsonl", [{"tokens": ["a", "b"], "tags": ["O", "O"]}])
    (tmp_path / "o.yaml").write_text(f"backbone: random:bert-tiny\ntasks:\n  n:\n    type: token_classification\n"
                                     f"    train: {{path: {only_o}, format: jsonl}}\n", encoding="utf-8")
    assert_clean_error(run_cli("train", str(tmp_path / "o.yaml"), "-o", str(tmp_path / "r")), "tasks.n.train",
                       "no entity tags")
