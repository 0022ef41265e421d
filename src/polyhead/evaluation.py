"""Metrics. Sentence tasks: accuracy, macro-F1, per-class report. NER: entity-level P/R/F1 (seqeval, strict IOB2)."""
from __future__ import annotations

import numpy as np
import torch

from polyhead import runtime
from polyhead.data.batching import pad_batch, plan_batches


def sentence_metrics(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    present = [lab for lab in labels if lab in set(gold) | set(pred)]
    report = classification_report(gold, pred, labels=present, output_dict=True, zero_division=0)
    return {
        "accuracy": float(np.mean([g == p for g, p in zip(gold, pred)])) if gold else 0.0,
        "macro_f1": float(f1_score(gold, pred, labels=present, average="macro", zero_division=0)),
        "n": len(gold),
        "per_class": {lab: {k: round(float(v), 4) for k, v in report[lab].items()} for lab in present},
        "confusion": {"labels": present, "matrix": confusion_matrix(gold, pred, labels=present).tolist()},
    }


def token_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    kwargs = dict(mode="strict", scheme=IOB2, zero_division=0)
    report = classification_report(gold, pred, output_dict=True, **kwargs)
    return {
        "precision": float(precision_score(gold, pred, **kwargs)),
        "recall": float(recall_score(gold, pred, **kwargs)),
        "f1": float(f1_score(gold, pred, **kwargs)),
        "n": len(gold),
        "per_class": {k: {m: round(float(v), 4) for m, v in row.items()} for k, row in report.items()
                      if not k.endswith("avg")},
        "confusion": tag_confusion(gold, pred),
    }


def tag_confusion(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Word-level tag confusion (gold rows, predicted columns): O first, then B-/I- of each entity type."""
    from sklearn.metrics import confusion_matrix

    flat_gold = [t for tags in gold for t in tags]
    flat_pred = [t for g, tags in zip(gold, pred) for t in list(tags)[: len(g)]]
    labels = sorted(set(flat_gold) | set(flat_pred), key=lambda t: (t != "O", t[2:], t[:2]))
    if not flat_gold:
        return {"labels": labels, "matrix": []}
    return {"labels": labels, "matrix": confusion_matrix(flat_gold, flat_pred, labels=labels).tolist()}


def main_metric(task_type: str, metrics: dict) -> float:
    return metrics["f1"] if task_type == "token_classification" else metrics["accuracy"]


@torch.no_grad()
def predict_set(model, task: str, encoded, batch_size: int = 64) -> list:
    """Predicted labels for an EncodedSet: strings for sentence tasks, word tag lists for token tasks."""
    head = model.heads[task]
    enc = model.encoder
    predictions: list = [None] * len(encoded)
    was_training = model.training
    model.eval()
    with runtime.inference(enc.precision, enc.device_):
        for batch in plan_batches([len(x) for x in encoded.ids], batch_size, enc.resolve_max_tokens("auto")):
            ids, mask = pad_batch([encoded.ids[i] for i in batch], enc.text_tokenizer.pad_id)
            shapes = encoded.batch_shapes(batch) if head.case_features else None
            best = model(ids.to(enc.device_), mask.to(enc.device_), [task], shapes)[task].argmax(-1).cpu().numpy()
            for row, i in enumerate(batch):
                predictions[i] = _decode(head, best[row], encoded, i)
    model.train(was_training)
    return predictions


def _decode(head, best, encoded, i):
    if not head.reads_tokens:
        return head.labels[int(best)]
    # words cut off by max_length get "O": they count as missed entities, never silently dropped from gold
    return [head.labels[int(best[f])] if f >= 0 else "O" for f in encoded.first_token[i]]


def score_set(task_type: str, gold: list, pred: list, labels: list[str]) -> dict:
    if task_type == "token_classification":
        return token_metrics(gold, pred)
    return sentence_metrics(gold, pred, labels)


def evaluate_set(model, task: str, encoded, batch_size: int = 64) -> dict:
    pred = predict_set(model, task, encoded, batch_size)
    return score_set(encoded.task_type, encoded.gold, pred, model.heads[task].labels)
