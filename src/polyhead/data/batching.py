"""Tokenisation with the fast backend, length-sorted batches under a token budget, and padding."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass
class Tokenized:
    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    word_ids: list[list[int | None]]
    truncated: int  # how many inputs lost tokens to max_length


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
        )


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped longest-first so that each batch pads little; a batch holds at most `batch_size`
    items and, when `max_tokens` is set, at most that many tokens including padding."""
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
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
