"""Examples -> label maps -> token ids with aligned labels (HF run_ner convention: a word's label on its first
sub-word, -100 on the others and on special tokens)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from polyhead.config import DataSpec, RunConfig, TaskConfig, resolve_data_path
from polyhead.data.batching import TextTokenizer, pad_batch
from polyhead.data.readers import SentenceExample, TokenExample, read_sentence_examples, read_token_examples
from polyhead.data.word_shape import token_shapes
from polyhead.errors import DataError

if TYPE_CHECKING:
    import torch

IGNORE = -100


@dataclass
class EncodedSet:
    """One data split of one task, tokenised. Gold labels are kept as strings for evaluation."""
    task: str
    name: str  # "train", "dev", "test" or an eval set's name
    task_type: str
    ids: list[list[int]]
    targets: list  # sentence: class index; token: per-token class index or -100
    gold: list  # sentence: label string; token: list of word tags
    first_token: list[list[int]] = field(default_factory=list)  # token tasks: first sub-word per word, -1 if cut
    sources: list[str] = field(default_factory=list)
    shapes: list[list[int]] = field(default_factory=list)  # token tasks: word-shape id per token position

    def __len__(self) -> int:
        return len(self.ids)

    def batch_shapes(self, batch: Sequence[int]) -> torch.Tensor:
        """(B, T) word-shape ids of these examples, padded with NONE like the token ids."""
        return pad_batch([self.shapes[i] for i in batch], 0)[0]


def spec_key(task: TaskConfig, spec: DataSpec) -> tuple:
    """Where a data spec sits under its task: ("train",), ("dev",), ("test",) or ("eval", i)."""
    for key in ("train", "dev", "test"):
        if getattr(task, key) is spec:
            return (key,)
    return ("eval", next((i for i, s in enumerate(task.eval) if s is spec), 0))


def read_split(config: RunConfig, task_name: str, task: TaskConfig, spec: DataSpec):
    path = resolve_data_path(config, spec.path)
    labels_path = str(resolve_data_path(config, spec.labels_path)) if spec.labels_path else None
    at = ("tasks", task_name, *spec_key(task, spec))
    if not path.exists():
        raise DataError(f"{config.where(*at, 'path')}tasks.{task_name}: data file not found: {spec.path}")
    if labels_path and not Path(labels_path).exists():
        raise DataError(f"{config.where(*at, 'labels_path')}tasks.{task_name}: labels_path not found: "
                        f"{spec.labels_path}")
    if task.type == "token_classification":
        return read_token_examples(path, spec.format, tokens=spec.tokens, tags=spec.tags, labels_path=labels_path,
                                   limit=spec.limit, encoding=spec.encoding)
    examples = read_sentence_examples(path, spec.format, text=spec.text, label=spec.label, labels_path=labels_path,
                                      limit=spec.limit, encoding=spec.encoding)
    return rename_labels(config, task_name, task, spec, examples)


def rename_labels(config: RunConfig, task_name: str, task: TaskConfig, spec: DataSpec, examples: list) -> list:
    """Apply `tasks.NAME.label_names`; in the training split every named label must occur (a typo shows)."""
    names = task.label_names
    if not names:
        return examples
    if spec is task.train:
        found = {ex.label for ex in examples}
        missing = [raw for raw in names if raw not in found]
        where = config.where('tasks', task_name, 'label_names')
        if missing and examples:
            raise DataError(f"{where}tasks.{task_name}.label_names: {missing} never occur as labels in {spec.path} "
                            f"(labels there: {', '.join(sorted(found, key=_natural)[:12])})")
        unnamed = sorted((lab for lab in found if lab is not None and lab not in names), key=_natural)
        if unnamed:
            raise DataError(f"{where}tasks.{task_name}.label_names: no name for label(s) {unnamed[:12]} of "
                            f"{spec.path}; name every label (or none)")
    return [replace(ex, label=names.get(ex.label, ex.label)) if ex.label is not None else ex for ex in examples]


def build_labels(task_type: str, examples: Sequence) -> list[str]:
    if task_type == "token_classification":
        tags = {t for ex in examples for t in (ex.tags or [])}
        tags.add("O")
        # O first, then entity types with B before I: readable confusion matrices and reports
        return ["O"] + sorted(tags - {"O"}, key=lambda t: (t[2:], t[:2]))
    return sorted({ex.label for ex in examples if ex.label is not None}, key=_natural)


def _natural(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


def check_labels(task_name: str, task: TaskConfig, examples: list, labels: list[str],
                 labels_from: str = "its training data") -> list:
    """Unseen-label policy: `error` (default) names the file:line; `skip` drops those examples."""
    known = set(labels)
    kept = []
    for ex in examples:
        found = ex.tags if isinstance(ex, TokenExample) else [ex.label]
        unseen = [t for t in (found or []) if t not in known]
        if not unseen:
            kept.append(ex)
        elif task.unseen_labels == "error":
            rename = (f"; if this file names the labels differently, map them with tasks.{task_name}.label_names"
                      if task.type == "sentence_classification" else "")
            raise DataError(f"{ex.source}: label {unseen[0]!r} of task {task_name!r} does not occur in {labels_from} "
                            f"(known: {', '.join(labels[:12])}{'...' if len(labels) > 12 else ''}); set "
                            f"tasks.{task_name}.unseen_labels: skip to drop such examples{rename}")
    return kept


def encode_set(task_name: str, split: str, task_type: str, examples: list, labels: list[str],
               tokenizer: TextTokenizer, prefix: str | None) -> EncodedSet:
    index = {label: i for i, label in enumerate(labels)}
    if task_type == "sentence_classification":
        texts = [(prefix or "") + ex.text for ex in examples]
        tokens = tokenizer(texts)
        return EncodedSet(task_name, split, task_type, tokens.ids, [index.get(ex.label, IGNORE) for ex in examples],
                          [ex.label for ex in examples], sources=[ex.source for ex in examples])
    prefix_words = (prefix or "").split()
    words = [prefix_words + list(ex.tokens) for ex in examples]
    tokens = tokenizer(words, pretokenized=True)
    targets, firsts, shapes = [], [], []
    for ex, word_ids, ex_words in zip(examples, tokens.word_ids, words):
        shapes.append(token_shapes(word_ids, ex_words))
        first = [-1] * len(ex.tokens)
        row = [IGNORE] * len(word_ids)
        previous = None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous and word >= len(prefix_words):
                w = word - len(prefix_words)
                first[w] = position
                if ex.tags is not None:
                    row[position] = index.get(ex.tags[w], IGNORE)
            previous = word
        targets.append(row)
        firsts.append(first)
    return EncodedSet(task_name, split, task_type, tokens.ids, targets, [ex.tags for ex in examples], firsts,
                      [ex.source for ex in examples], shapes)
