"""With a frozen encoder its outputs never change: compute them once per data split, then train heads on them.

Sentence heads get the pooled embedding of each text; token heads get the state of each word's first
sub-word (the only positions that carry a label), so the cache is compact: one vector per word.
"""
from __future__ import annotations

import numpy as np
import torch

from polyhead import runtime
from polyhead.data.batching import pad_batch, plan_batches
from polyhead.encoder import DEFAULT_MAX_TOKENS
from polyhead.training.data_prep import IGNORE, EncodedSet


class CachedSet:
    def __init__(self, encoded: EncodedSet, features: torch.Tensor, targets: torch.Tensor,
                 rows_per_example: list[int], shapes: torch.Tensor | None = None) -> None:
        self.encoded = encoded
        self.shapes = shapes  # token tasks: word-shape id of each row (heads with case_features read it)
        self.features = features  # (rows, H)
        self.targets = targets  # (rows,)
        self.rows_per_example = rows_per_example  # token tasks: labelled words kept per example

    def __len__(self) -> int:
        return len(self.encoded)

    def example_rows(self) -> list[slice]:
        bounds = np.concatenate([[0], np.cumsum(self.rows_per_example)]).astype(int)
        return [slice(bounds[i], bounds[i + 1]) for i in range(len(self.rows_per_example))]


@torch.no_grad()
def compute_features(model, encoded: EncodedSet, batch_size: int | None = None) -> CachedSet:
    """One inference pass over a split (bf16 weights under precision bf16), in length-sorted batches of at most
    DEFAULT_MAX_TOKENS tokens and, when given, `batch_size` examples."""
    enc = model.encoder
    token_task = encoded.task_type == "token_classification"
    per_example: list[torch.Tensor | None] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    with runtime.inference(enc.precision, enc.device_):
        for batch in plan_batches([len(x) for x in encoded.ids], batch_size, DEFAULT_MAX_TOKENS):
            ids, mask = pad_batch([encoded.ids[i] for i in batch], enc.text_tokenizer.pad_id)
            ids, mask = ids.to(enc.device_), mask.to(enc.device_)
            states = enc.token_states(ids, mask)
            if not token_task:
                pooled = enc.pool(states, mask).float().cpu()
                for row, i in enumerate(batch):
                    per_example[i] = pooled[row]
                continue
            for row, i in enumerate(batch):
                positions = [f for f in encoded.first_token[i] if f >= 0]
                per_example[i] = states[row, positions].float().cpu()
    model.train(was_training)
    if not token_task:
        features = torch.stack(per_example) if per_example else torch.zeros(0, enc.dimension)
        targets = torch.tensor(encoded.targets, dtype=torch.long)
        return CachedSet(encoded, features, targets, [1] * len(encoded))
    targets, shapes = [], []
    for i in range(len(encoded)):
        targets.extend(encoded.targets[i][f] for f in encoded.first_token[i] if f >= 0)
        if encoded.shapes:
            shapes.extend(encoded.shapes[i][f] for f in encoded.first_token[i] if f >= 0)
    features = torch.cat(per_example) if per_example else torch.zeros(0, enc.backbone.hidden_size)
    rows = [int(t.shape[0]) for t in per_example]
    return CachedSet(encoded, features, torch.tensor(targets, dtype=torch.long), rows,
                     torch.tensor(shapes, dtype=torch.long) if encoded.shapes else None)


def gather(cached: CachedSet, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(features, targets, word shapes or None) of the batch's rows."""
    if cached.encoded.task_type != "token_classification":
        index = torch.as_tensor(batch, dtype=torch.long)
        return cached.features[index], cached.targets[index], None
    rows = cached.example_rows()
    index = torch.as_tensor(np.concatenate([np.arange(rows[i].start, rows[i].stop) for i in batch]),
                            dtype=torch.long)
    shapes = cached.shapes[index] if cached.shapes is not None else None
    return cached.features[index], cached.targets[index], shapes


@torch.no_grad()
def predict_cached(model, task: str, cached: CachedSet) -> list:
    head = model.heads[task]
    was_training = head.training
    head.eval()
    best = head(cached.features, cached.shapes).argmax(-1).numpy() if len(cached.features) else np.zeros(0, dtype=int)
    head.train(was_training)
    if not head.reads_tokens:
        return [head.labels[int(b)] for b in best]
    out = []
    for i, rows in enumerate(cached.example_rows()):
        words = iter(best[rows])
        out.append([head.labels[int(next(words))] if f >= 0 else "O" for f in cached.encoded.first_token[i]])
    return out


def ignore_count(cached: CachedSet) -> int:
    return int((cached.targets == IGNORE).sum())
