"""The `polyhead` command line, run for real in subprocesses: outputs, and one clear line for bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need_data, run_cli


def assert_clean_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("polyhead: error")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_help_is_complete():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("encode", "similarity", "train", "eval", "predict", "demo"):
        assert command in result.stdout
    encode_help = run_cli("encode", "--help").stdout
    for option in ("--input", "--column", "--model", "--pooling", "--normalize", "--batch-size", "--output"):
        assert option in encode_help


def test_encode_1000_real_sentences_to_npy(tmp_path, minilm_fp32):
    source = need_data("topic", "sib200", "eng_Latn", "train.tsv")
    out = tmp_path / "x.npy"
    result = run_cli("encode", "--model", "minilm-l6", "--input", str(source), "--column", "text",
                     "--precision", "fp32", "--output", str(out))
    assert result.returncode == 0, result.stderr
    array = np.load(out)
    from polyhead.data.text_input import iter_texts

    texts = list(iter_texts(str(source), "text"))
    assert array.shape == (len(texts), 384) and array.dtype == np.float32
    expected = minilm_fp32.encode(texts[:20])
    assert np.abs(array[:20] - expected).max() < 1e-5
    assert not list(tmp_path.glob("*.partial"))


def test_encode_jsonl_output_stdin_and_summary(tmp_path):
    out = tmp_path / "x.jsonl"
    result = run_cli("encode", "-m", "minilm-l6", "--input", "-", "--output", str(out),
                     input="first line\nsecond line\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["first line", "second line"]
    assert len(rows[0]["embedding"]) == 384
    summary = run_cli("encode", "-m", "minilm-l6", "EU rejects German call.", "Hello")
    assert summary.returncode == 0
    assert "embeddings: 2 x 384" in summary.stdout and "norms:" in summary.stdout
    assert "precision" in summary.stderr  # the chosen precision is visible


def test_similarity_prints_a_matrix():
    result = run_cli("similarity", "-m", "minilm-l6", "A man plays guitar.", "Someone plays music.", "Stocks fell.")
    assert result.returncode == 0, result.stderr
    assert "1.000" in result.stdout and "cosine similarity" in result.stdout


def test_empty_file_gives_empty_array(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "e.npy"
    result = run_cli("encode", "-m", "minilm-l6", "--input", str(empty), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert np.load(out).shape == (0, 384)


def test_bad_inputs_give_one_clear_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\nbroken \xff here\n")
    assert_clean_error(run_cli("encode", "-m", "minilm-l6", "--input", str(bad)), "bad.txt:3")
    assert_clean_error(run_cli("encode", "-m", "minilm-l6", "--input", str(tmp_path / "missing.txt")),
                       "missing.txt")
    assert_clean_error(run_cli("encode", "-m", str(tmp_path / "nomodel"), "hi"), "nomodel")
    assert_clean_error(run_cli("encode", "-m", "no-such-org/no-such-model", "hi", env={"HF_HUB_OFFLINE": "1"}),
                       "no-such-org/no-such-model")
    assert_clean_error(run_cli("encode", "-m", "minilm-l6", "hi", "--output", str(tmp_path / "x.csv")), ".npy")
    assert_clean_error(run_cli("encode", "-m", "minilm-l6", "hi", "--pooling", "median"), "pooling")
    assert_clean_error(run_cli("encode"), "--input")


def test_train_config_errors_are_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("tasks:\n  t:\n    type: sentence_classification\n    train: {path: nowhere.tsv, format: tsv}\n"
                      "training:\n  epochs: 1\n  bogus: 3\n")
    assert_clean_error(run_cli("train", str(config)), "training.bogus", "c.yaml:7")
    assert_clean_error(run_cli("train", str(config), "--set", "training.bogus=", "--set", "training.lr=fast"),
                       "training.lr")
    config.write_text("tasks:\n  t:\n    type: sentence_classification\n    train: {path: nowhere.tsv, format: tsv}\n")
    assert_clean_error(run_cli("train", str(config), "--set", "backbone=random:bert-tiny"), "nowhere.tsv")
    assert_clean_error(run_cli("train", str(tmp_path / "none.yaml")), "none.yaml")
