"""The DistilmBERT path end to end: encode, train all three heads, save, load, predict.

`random:distilmbert-tiny` (the fast suite) and `random:distilmbert` (the exact distilbert-base-multilingual-cased
shape, marked slow) stand in for the real weights, which need the hub. With real weights in a local folder,
POLYHEAD_DISTILMBERT_DIR=/path/to/distilbert-base-multilingual-cased runs the integration test too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from polyhead import MultiTaskModel, SentenceEncoder
from polyhead.backbones import load_backbone
from polyhead.config import RunConfig
from polyhead.heads import ClassificationHead
from polyhead.training.loop import Trainer

TOPICS = [("The striker scored twice in the final", "sport"), ("Parliament passed the new budget law", "politics"),
          ("Der Stürmer traf zweimal im Finale", "sport"), ("El parlamento aprobó la nueva ley", "politics")]
SENTIMENT = [("What a wonderful day, I love it", "2"), ("This is the worst service ever", "0"),
             ("The meeting is at noon", "1"), ("C'est vraiment génial !", "2")]
NER = [(["Peter", "Blackburn", "visited", "London"], ["B-PER", "I-PER", "O", "B-LOC"]),
       (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
       (["Angela", "Merkel", "besuchte", "Paris"], ["B-PER", "I-PER", "O", "B-LOC"])]
TEXTS = ["Peter Blackburn flew from London to Paris.", "Ein kurzer deutscher Satz über München.",
         "北京是中国的首都。", "ذهب محمد إلى القاهرة", ""]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def three_task_config(tmp_path: Path, backbone: str, steps: int = 3) -> RunConfig:
    topic = write_jsonl(tmp_path / "topic.jsonl", [{"text": t, "label": lab} for t, lab in TOPICS])
    sentiment = write_jsonl(tmp_path / "sentiment.jsonl", [{"text": t, "label": lab} for t, lab in SENTIMENT])
    ner = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": t, "tags": g} for t, g in NER])
    return RunConfig.model_validate({
        "backbone": backbone,
        "tasks": {
            "topic": {"type": "sentence_classification", "train": {"path": topic, "format": "jsonl"},
                      "dev": {"path": topic, "format": "jsonl"}},
            "sentiment": {"type": "sentence_classification", "train": {"path": sentiment, "format": "jsonl"}},
            "ner": {"type": "token_classification", "train": {"path": ner, "format": "jsonl"},
                    "dev": {"path": ner, "format": "jsonl"}},
        },
        # round robin: `steps` = 3 gives each head exactly one optimisation step
        "training": {"max_steps": steps, "batch_size": 2, "lr": 1e-3, "precision": "fp32", "seed": 5,
                     "sampling": "round_robin", "warmup_ratio": 0.0},
        "output": str(tmp_path / "run"),
    })


def check_predictions(results: list[dict]) -> None:
    assert [r["text"] for r in results] == TEXTS
    for text, record in zip(TEXTS, results):
        assert set(record) == {"text", "topic", "sentiment", "ner"}
        assert record["topic"]["label"] in {"sport", "politics"}
        assert record["sentiment"]["label"] in {"0", "1", "2"}
        for entity in record["ner"]:
            assert text[entity["start"]:entity["end"]] == entity["text"] != ""
            assert entity["label"] in {"PER", "LOC", "ORG", "MISC"}


def run_three_heads(tmp_path: Path, backbone: str, hidden: int) -> None:
    # encode
    encoder = SentenceEncoder(load_backbone(backbone), precision="fp32")
    emb = encoder.encode(TEXTS)
    assert emb.shape == (len(TEXTS), hidden) and np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    # one training step per head, through the real trainer; it saves best/ and last/
    config = three_task_config(tmp_path, backbone)
    trainer = Trainer(config, show_progress=False)
    summary = trainer.run()
    assert summary["steps"] == 3 and summary["total_parameters"] > 0
    losses = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = {task for record in losses if record["type"] == "train" for task in record["loss"]}
    assert trained == {"topic", "sentiment", "ner"}
    # load, predict, save again, load again: identical predictions
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "best", precision="fp32")
    assert not model.encoder.backbone.pretrained and "RANDOM" in model.encoder.backbone.describe()
    assert model.encoder.backbone.hidden_size == hidden
    first = model.predict(TEXTS)
    check_predictions(first)
    again = MultiTaskModel.from_pretrained(model.save(tmp_path / "copy"), precision="fp32")
    assert again.predict(TEXTS) == first


def test_tiny_distilmbert_one_step_updates_backbone_and_all_three_heads():
    encoder = SentenceEncoder(load_backbone("random:distilmbert-tiny"), precision="fp32")
    torch.manual_seed(0)
    heads = {"topic": ClassificationHead("sentence_classification", encoder.dimension, ["politics", "sport"]),
             "sentiment": ClassificationHead("sentence_classification", encoder.dimension, ["0", "1", "2"]),
             "ner": ClassificationHead("token_classification", encoder.backbone.hidden_size, ["O", "B-PER", "I-PER"])}
    model = MultiTaskModel(encoder, heads)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tokens = encoder.text_tokenizer(["Peter Blackburn visited London", "Angela Merkel"])
    from polyhead.data.batching import pad_batch

    ids, mask = pad_batch(tokens.ids, encoder.text_tokenizer.pad_id)
    logits = model(ids, mask)  # one encoder pass feeds all three heads
    ner_targets = torch.where(mask.bool(), torch.randint(0, 3, ids.shape), torch.full_like(ids, -100))
    loss = (torch.nn.functional.cross_entropy(logits["topic"], torch.tensor([0, 0]))
            + torch.nn.functional.cross_entropy(logits["sentiment"], torch.tensor([1, 2]))
            + torch.nn.functional.cross_entropy(logits["ner"].reshape(-1, 3), ner_targets.reshape(-1), ignore_index=-100))
    loss.backward()
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    after = model.state_dict()
    for prefix in ("heads.topic.", "heads.sentiment.", "heads.ner.", "encoder.transformer.transformer.layer.1."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix


def test_tiny_distilmbert_encode_train_save_load_predict(tmp_path):
    run_three_heads(tmp_path, "random:distilmbert-tiny", 32)


@pytest.mark.slow
def test_full_shape_distilmbert_encode_train_save_load_predict(tmp_path):
    start = time.perf_counter()
    run_three_heads(tmp_path, "random:distilmbert", 768)
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["dim"] == 768
    print(f"full-shape DistilmBERT path: {time.perf_counter() - start:.1f} s")


# ------------------------------------------------------------------------------- real weights, offline
DISTILMBERT_DIR = os.environ.get("POLYHEAD_DISTILMBERT_DIR")


@pytest.mark.skipif(not DISTILMBERT_DIR, reason="set POLYHEAD_DISTILMBERT_DIR to a local "
                                               "distilbert-base-multilingual-cased folder")
def test_real_distilmbert_weights_from_a_local_folder(tmp_path):
    backbone = load_backbone(DISTILMBERT_DIR)
    config = backbone.model.config
    assert backbone.pretrained and config.model_type == "distilbert"
    assert (config.n_layers, config.dim, config.vocab_size) == (6, 768, 119547)
    assert backbone.tokenizer.tokenize("München")[0] != backbone.tokenizer.unk_token
    encoder = SentenceEncoder(backbone, precision="fp32")
    emb = encoder.encode(["The cat sleeps.", "Die Katze schläft.", "北京是中国的首都。"])
    assert emb.shape == (3, 768) and np.isfinite(emb).all()
    assert np.abs(emb[0] - emb[1]).max() > 1e-3  # real, distinct embeddings
    run_three_heads_pretrained(tmp_path, DISTILMBERT_DIR)


def run_three_heads_pretrained(tmp_path: Path, folder: str) -> None:
    Trainer(three_task_config(tmp_path, folder), show_progress=False).run()
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "best", precision="fp32")
    assert model.encoder.backbone.pretrained
    check_predictions(model.predict(TEXTS))


def test_hub_id_offline_is_one_clear_line_from_the_cli(tmp_path):
    """`polyhead encode --model distilbert-base-multilingual-cased hi` without the hub: exit 2, one line, fast."""
    for offline in ("1", None):  # HF_HUB_OFFLINE set, and unset (a 2-second connect probe decides)
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
        env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache: the weights are certainly not there
        if offline:
            env["HF_HUB_OFFLINE"] = offline
        cmd = [sys.executable, "-c", "from polyhead.cli import main; main()", "encode", "--model",
               "distilbert-base-multilingual-cased", "hi"]
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        elapsed = time.perf_counter() - start
        if offline is None and result.returncode == 0:
            pytest.skip("the hub is reachable from here")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith("polyhead: error: cannot load backbone 'distilbert-base-multilingual-cased'")
        assert "offline" in lines[0] and "multilingual-e5-small" in lines[0]  # says what works instead
        # 10 s on an idle machine (the hub client alone would retry for ~26 s); scaled when the CPUs are shared
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        assert elapsed < 10 * max(1.0, load), (elapsed, load)
