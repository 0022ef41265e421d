"""Evaluate a saved model on the splits a config names: one table of task x data set."""
from __future__ import annotations

from pathlib import Path

from polyhead.config import RunConfig
from polyhead.errors import ConfigError
from polyhead.evaluation import evaluate_set
from polyhead.model import MultiTaskModel
from polyhead.training.data_prep import check_labels, encode_set, read_split


def evaluate_model(model_dir: Path, config: RunConfig, split: str = "dev", precision: str = "auto") -> dict:
    model = MultiTaskModel.from_pretrained(model_dir, precision=precision)
    tokenizer, prefix = model.encoder.text_tokenizer, model.encoder.prefix
    results: dict[str, dict[str, dict]] = {}
    for name, task in config.tasks.items():
        if name not in model.heads:
            raise ConfigError(f"tasks.{name}: the model at {model_dir} has no such head ({list(model.heads)})")
        if model.heads[name].task_type != task.type:
            raise ConfigError(f"tasks.{name}.type: {task.type}, but the model's head {name!r} is a "
                              f"{model.heads[name].task_type} head")
        labels = model.heads[name].labels
        specs = [(split, getattr(task, split))] + [(s.name or f"eval{i}", s) for i, s in enumerate(task.eval)]
        for set_name, spec in specs:
            if spec is None:
                continue
            examples = check_labels(name, task, read_split(config, name, task, spec), labels,
                                    f"the labels of the model's head {name!r}")
            encoded = encode_set(name, set_name, task.type, examples, labels, tokenizer, prefix)
            results.setdefault(name, {})[set_name] = evaluate_set(model, name, encoded)
    if not results:
        raise ConfigError(f"the config names no {split} set for any task")
    return results
