"""Tokenisation with the fast backend, length-sorted batches under a token budget, and padding."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class Tokenized:
    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    word_ids: list[list[int | None]]
    truncated: int  # how many inputs lost tokens to max_length
    cut_words: list[int | None]  # per input: the word that truncation split (its first pieces kept), else None


class TextTokenizer:
    """Wraps a HF fast tokenizer's Rust backend: one call gives ids, offsets, word ids and truncation counts."""

    def __init__(self, hf_tokenizer: Any, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.hf_tokenizer = hf_tokenizer
        self.max_length = int(max_length)
        self.backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
        self.backend.no_padding()
        self.backend.enable_truncation(self.max_length)
        pad_id = hf_tokenizer.pad_token_id
        self.pad_id = int(pad_id) if pad_id is not None else 0

    def __call__(self, texts: Sequence[str] | Sequence[Sequence[str]], pretokenized: bool = False) -> Tokenized:
        encodings = self.backend.encode_batch(list(texts), is_pretokenized=pretokenized, add_special_tokens=True)
        return Tokenized(
            ids=[e.ids for e in encodings],
            offsets=[e.offsets for e in encodings],
            word_ids=[e.word_ids for e in encodings],
            truncated=sum(1 for e in encodings if e.overflowing),
            cut_words=[_cut_word(e) for e in encodings],
        )


def _cut_word(encoding: Any) -> int | None:
    """The word id whose sub-words straddle the truncation point: the last word kept is also the first of the
    overflow (word ids are those of the whole input in both)."""
    if not encoding.overflowing:
        return None
    kept = next((w for w in reversed(encoding.word_ids) if w is not None), None)
    rest = next((w for w in encoding.overflowing[0].word_ids if w is not None), None)
    return kept if kept is not None and kept == rest else None


def plan_batches(lengths: Sequence[int], batch_size: int | None, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped longest-first so that each batch pads little; a batch holds at most `batch_size`
    items (None: no cap on items) and, when `max_tokens` is set, at most that many tokens including padding."""
    if batch_size is None:
        if max_tokens is None:
            raise ValueError("plan_batches needs batch_size or max_tokens")
        batch_size = max(1, int(max_tokens))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        too_many_tokens = max_tokens is not None and current and longest * (len(current) + 1) > max_tokens
        if current and (len(current) >= batch_size or too_many_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Built in numpy and handed to torch once: per-row tensor copies cost more than the model on small batches.
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if len(lengths) else 0
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    if width:
        ids[mask] = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))
