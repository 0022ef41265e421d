"""Word shapes: the capitalisation an uncased tokenizer throws away, as one small id per token.

An uncased model (all-MiniLM-L6-v2, bert-base-uncased) sees "EU" and "eu" as the same token, yet in news text
a short all-capitals word is usually an organisation. Token heads with `case_features` read these ids next to
the token states. A word in a text written mostly in capitals (a headline) gets its own id, since there the
capitals say nothing about the word.
"""
from __future__ import annotations

from typing import Sequence

NONE, LOWER, TITLE, UPPER, CAPS_TEXT, DIGIT, PUNCT, MIXED, UNCASED = range(9)
NUM_SHAPES = 9


def word_shape(word: str, caps_text: bool = False) -> int:
    letters = [ch for ch in word if ch.isalpha()]
    if not letters:
        return DIGIT if any(ch.isdigit() for ch in word) else PUNCT
    cased = [ch for ch in letters if ch.isupper() or ch.islower()]
    if not cased:
        return UNCASED  # scripts without case (Chinese, Arabic, ...)
    if any(ch.isdigit() for ch in word):
        return DIGIT
    if all(ch.islower() for ch in cased):
        return LOWER
    if caps_text:
        return CAPS_TEXT
    if len(cased) >= 2 and all(ch.isupper() for ch in cased):
        return UPPER
    if cased[0].isupper() and all(ch.islower() for ch in cased[1:]):
        return TITLE
    return MIXED


def is_caps_text(words: Sequence[str]) -> bool:
    """More than half of the words with cased letters are written in capitals only (a headline)."""
    cased = [w for w in words if any(ch.isupper() or ch.islower() for ch in w)]
    upper = sum(1 for w in cased if not any(ch.islower() for ch in w))
    return len(cased) > 1 and upper * 2 > len(cased)


def word_shapes(words: Sequence[str]) -> list[int]:
    caps = is_caps_text(words)
    return [word_shape(w, caps) for w in words]


def token_shapes(word_ids: Sequence[int | None], words: Sequence[str]) -> list[int]:
    """One shape id per token position: its word's shape, NONE for special tokens."""
    shapes = word_shapes(words)
    return [shapes[w] if w is not None and w < len(shapes) else NONE for w in word_ids]


def words_from_offsets(text: str, word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The words of raw `text` as its tokenizer split them (word id -> the characters its tokens cover)."""
    spans: dict[int, list[int]] = {}
    for word, (start, end) in zip(word_ids, offsets):
        if word is None:
            continue
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    count = max(spans) + 1 if spans else 0
    return [text[spans[w][0]:spans[w][1]].strip() if w in spans else "" for w in range(count)]
