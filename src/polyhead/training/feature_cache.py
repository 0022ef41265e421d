"""With a frozen encoder its outputs never change: compute them once per data split, then train heads on them.

Sentence heads get the pooled embedding of each text; token heads get the state of each word's first
sub-word (the only positions that carry a label), so the cache is compact: one vector per word, kept in the
encoder's compute precision (bf16 under bf16: half of fp32, and exactly what the heads would have read).
A cache larger than `POLYHEAD_FEATURE_CACHE_RAM_MB` (default 2048) is written to a memory-mapped file in the
run folder instead of RAM, and read back batch by batch.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from polyhead import runtime
from polyhead.data.batching import pad_batch, plan_batches
from polyhead.training.data_prep import IGNORE, EncodedSet

DEFAULT_RAM_LIMIT_MB = 2048


class FeatureStore:
    """(rows, width) features in a torch tensor, or in a memory-mapped file (bf16 kept as its int16 bits)."""

    def __init__(self, rows: int, width: int, dtype: torch.dtype, spill_path: Path | None) -> None:
        self.dtype = dtype
        self.path = spill_path
        if spill_path is None:
            self.tensor: torch.Tensor | None = torch.empty(rows, width, dtype=dtype)
            self.array = None
        else:
            spill_path.parent.mkdir(parents=True, exist_ok=True)
            np_dtype = np.int16 if dtype == torch.bfloat16 else np.float32
            self.tensor = None
            self.array = np.lib.format.open_memmap(spill_path, mode="w+", dtype=np_dtype, shape=(rows, width))

    @property
    def on_disk(self) -> bool:
        return self.array is not None

    def __len__(self) -> int:
        return len(self.tensor) if self.tensor is not None else len(self.array)

    def put(self, start: int, values: torch.Tensor) -> None:
        values = values.to(self.dtype).cpu()
        if self.tensor is not None:
            self.tensor[start:start + len(values)] = values
        else:
            raw = values.view(torch.int16) if self.dtype == torch.bfloat16 else values
            self.array[start:start + len(values)] = raw.numpy()

    def take(self, index: torch.Tensor | slice) -> torch.Tensor:
        if self.tensor is not None:
            return self.tensor[index]
        rows = np.asarray(self.array[index.numpy() if isinstance(index, torch.Tensor) else index])
        out = torch.from_numpy(rows)
        return out.view(torch.bfloat16) if self.dtype == torch.bfloat16 else out


class CachedSet:
    def __init__(self, encoded: EncodedSet, features: FeatureStore, targets: torch.Tensor,
                 rows_per_example: list[int], shapes: torch.Tensor | None = None) -> None:
        self.encoded = encoded
        self.features = features  # (rows, H)
        self.targets = targets  # (rows,)
        self.rows_per_example = rows_per_example  # token tasks: labelled words kept per example
        self.shapes = shapes  # token tasks: word-shape id of each row (heads with case_features read it)
        self.bounds = np.concatenate([[0], np.cumsum(rows_per_example)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.encoded)

    def example_rows(self) -> list[slice]:
        return [slice(int(self.bounds[i]), int(self.bounds[i + 1])) for i in range(len(self.rows_per_example))]


def _ram_limit_bytes() -> int:
    raw = os.environ.get("POLYHEAD_FEATURE_CACHE_RAM_MB", str(DEFAULT_RAM_LIMIT_MB))
    try:
        return int(float(raw) * 2 ** 20)
    except ValueError:
        return DEFAULT_RAM_LIMIT_MB * 2 ** 20


@torch.no_grad()
def compute_features(model, encoded: EncodedSet, batch_size: int | None = None,
                     spill_dir: str | Path | None = None) -> CachedSet:
    """One inference pass over a split (bf16 weights under precision bf16), in length-sorted batches of at most
    the encoder's default token budget and, when given, `batch_size` examples. With `spill_dir`, a cache over the RAM
    limit goes to `<spill_dir>/<task>-<split>.npy`."""
    enc = model.encoder
    token_task = encoded.task_type == "token_classification"
    if token_task:
        rows_per_example = [sum(1 for f in firsts if f >= 0) for firsts in encoded.first_token]
        width = enc.backbone.hidden_size
    else:
        rows_per_example = [1] * len(encoded)
        width = enc.dimension
    dtype = torch.bfloat16 if enc.precision == "bf16" else torch.float32
    rows = int(sum(rows_per_example))
    size = rows * width * (2 if dtype == torch.bfloat16 else 4)
    spill = Path(spill_dir) / f"{encoded.task}-{encoded.name}.npy" if spill_dir and size > _ram_limit_bytes() else None
    store = FeatureStore(rows, width, dtype, spill)
    cached_targets = []
    shapes = []
    for i in range(len(encoded)):
        if token_task:
            cached_targets.extend(encoded.targets[i][f] for f in encoded.first_token[i] if f >= 0)
            if encoded.shapes:
                shapes.extend(encoded.shapes[i][f] for f in encoded.first_token[i] if f >= 0)
        else:
            cached_targets.append(encoded.targets[i])
    cached = CachedSet(encoded, store, torch.tensor(cached_targets, dtype=torch.long), rows_per_example,
                       torch.tensor(shapes, dtype=torch.long) if token_task and encoded.shapes else None)
    was_training = model.training
    model.eval()
    with runtime.inference(enc.precision, enc.device_):
        for batch in plan_batches([len(x) for x in encoded.ids], batch_size, enc.resolve_max_tokens("auto")):
            ids, mask = pad_batch([encoded.ids[i] for i in batch], enc.text_tokenizer.pad_id)
            ids, mask = ids.to(enc.device_), mask.to(enc.device_)
            states = enc.token_states(ids, mask)
            if not token_task:
                pooled = enc.pool(states, mask)
                for row, i in enumerate(batch):
                    store.put(int(cached.bounds[i]), pooled[row:row + 1])
                continue
            for row, i in enumerate(batch):
                positions = [f for f in encoded.first_token[i] if f >= 0]
                if positions:
                    store.put(int(cached.bounds[i]), states[row, positions])
    model.train(was_training)
    return cached


def gather(cached: CachedSet, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(features, targets, word shapes or None) of the batch's rows."""
    if cached.encoded.task_type != "token_classification":
        index = torch.as_tensor(batch, dtype=torch.long)
        return cached.features.take(index), cached.targets[index], None
    index = torch.as_tensor(np.concatenate([np.arange(cached.bounds[i], cached.bounds[i + 1]) for i in batch]),
                            dtype=torch.long)
    shapes = cached.shapes[index] if cached.shapes is not None else None
    return cached.features.take(index), cached.targets[index], shapes


@torch.no_grad()
def predict_cached(model, task: str, cached: CachedSet, chunk: int = 65536) -> list:
    head = model.heads[task]
    was_training = head.training
    head.eval()
    best = np.zeros(len(cached.features), dtype=np.int64)
    for start in range(0, len(cached.features), chunk):
        part = slice(start, min(start + chunk, len(cached.features)))
        shapes = cached.shapes[part] if cached.shapes is not None else None
        best[part] = head(cached.features.take(part), shapes).argmax(-1).numpy()
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
