"""MultiTaskModel: one shared SentenceEncoder plus any number of named heads; one encoder pass feeds them all."""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from polyhead import runtime
from polyhead.data.batching import pad_batch, plan_batches
from polyhead.data.word_shape import token_shapes, words_from_offsets
from polyhead.encoder import DEFAULT_MAX_TOKENS, SentenceEncoder, check_batch_size, check_texts
from polyhead.errors import PolyheadError
from polyhead.heads import ClassificationHead
from polyhead.saving import read_polyhead_config

HEADS_FILE = "heads.safetensors"


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, heads: dict[str, ClassificationHead]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        self.last_truncated = 0  # texts of the last predict() call cut at the encoder's max_length
        self.eval()  # inference mode by default, like a loaded model; the trainer switches to train()

    # -- forward --------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                tasks: Sequence[str] | None = None, shapes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits per task: (B, C) for sentence heads, (B, T, C) for token heads, from ONE encoder pass.
        `shapes` (B, T): word-shape ids, read by token heads with case_features."""
        states = self.encoder.token_states(input_ids, attention_mask)
        pooled = None
        logits = {}
        for name in tasks or list(self.heads):
            head = self.heads[name]
            if head.reads_tokens:
                logits[name] = head(states, shapes)
            else:
                pooled = self.encoder.pool(states, attention_mask) if pooled is None else pooled
                logits[name] = head(pooled)
        return logits

    def reads_shapes(self, tasks: Sequence[str] | None = None) -> bool:
        return any(self.heads[t].case_features for t in (tasks or list(self.heads)))

    # -- prediction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, texts: Iterable[str], batch_size: int | None = None, tasks: Sequence[str] | None = None,
                max_tokens: int | None | str = DEFAULT_MAX_TOKENS) -> list[dict]:
        """One dict per text: {"text", <sentence task>: {"label", "score"}, <token task>: [entities]}.
        Batches: length-sorted, at most `max_tokens` tokens and (when given) `batch_size` texts each."""
        texts = check_texts(texts)
        batch_size, max_tokens = check_batch_size(batch_size), self.encoder.resolve_max_tokens(max_tokens)
        tasks = list(tasks or self.heads)
        unknown = [t for t in tasks if t not in self.heads]
        if unknown:
            raise PolyheadError(f"unknown task(s) {unknown}; this model has {list(self.heads)}")
        enc = self.encoder
        prefixed = enc._with_prefix(texts, None)
        tokens = enc.text_tokenizer(prefixed)
        self.last_truncated = tokens.truncated  # texts cut at max_length, as SentenceEncoder.encode reports
        shift = len(enc.prefix or "")
        results: list[dict] = [{"text": t} for t in texts]
        was_training = self.training
        self.eval()
        with runtime.inference(enc.precision, enc.device_):
            for batch in plan_batches([len(x) for x in tokens.ids],
                                      32 if batch_size is None and max_tokens is None else batch_size, max_tokens):
                ids, mask = pad_batch([tokens.ids[i] for i in batch], enc.text_tokenizer.pad_id)
                shapes = None
                if self.reads_shapes(tasks):
                    shapes = pad_batch([token_shapes(tokens.word_ids[i], words_from_offsets(
                        prefixed[i], tokens.word_ids[i], tokens.offsets[i])) for i in batch], 0)[0]
                logits = self(ids.to(enc.device_), mask.to(enc.device_), tasks, shapes)
                for name in tasks:
                    probs = logits[name].float().softmax(-1).cpu().numpy()
                    labels = self.heads[name].labels
                    for row, index in enumerate(batch):
                        if self.heads[name].reads_tokens:
                            # a word cut by truncation is left out, like the words after it: never half a word
                            cut = tokens.cut_words[index]
                            word_ids = tokens.word_ids[index] if cut is None else \
                                [None if w == cut else w for w in tokens.word_ids[index]]
                            results[index][name] = decode_entities(
                                texts[index], probs[row], labels, word_ids, tokens.offsets[index], shift)
                        else:
                            best = int(probs[row].argmax())
                            results[index][name] = {"label": labels[best], "score": round(float(probs[row][best]), 6)}
        self.train(was_training)
        return results

    # -- saving ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra_config: dict | None = None,
             reuse_weights_from: str | Path | None = None, finish: Callable[[Path], None] | None = None) -> Path:
        """`reuse_weights_from`: a folder saved from the same, unchanged encoder (frozen-encoder checkpoints);
        `finish(folder)`: more files written into the folder before it replaces the old one."""
        heads = {name: head.spec() for name, head in self.heads.items()}
        tensors = {f"{name}.{key}": value.detach().float().cpu().contiguous()
                   for name, head in self.heads.items() for key, value in head.state_dict().items()}
        config = {"heads": heads, **(extra_config or {})}
        return self.encoder.save(directory, {"config": config, HEADS_FILE: tensors}, reuse_weights_from, finish)

    @classmethod
    def from_pretrained(cls, directory: str | Path, precision: str = "auto",
                        device: str | torch.device | None = None) -> "MultiTaskModel":
        from safetensors.torch import load_file

        folder = Path(directory)
        if not folder.exists():
            raise PolyheadError(f"model folder not found: {directory}")
        config = read_polyhead_config(folder) if folder.is_dir() else None
        if not config or "heads" not in config:
            hint = next((f"; it looks like a run folder: use {folder / n}" for n in ("best", "last")
                         if (folder / n / "polyhead.json").is_file()), "")
            raise PolyheadError(f"{directory} is not a saved polyhead multi-task model (no heads in polyhead.json)"
                                f"{hint}")
        encoder = SentenceEncoder.from_pretrained(str(folder), precision=precision, device=device)
        state = load_file(str(folder / HEADS_FILE))
        heads = {}
        for name, spec in config["heads"].items():
            head = ClassificationHead.from_spec(spec)
            prefix = f"{name}."
            head.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            heads[name] = head
        model = cls(encoder, heads).to(encoder.device_)
        model.eval()
        model.saved_config = config
        return model


def word_spans(word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]], text: str | None = None,
               shift: int = 0) -> dict[int, tuple[int, int, int]]:
    """word id -> (first token index, char start, char end) over the tokens the model saw.

    With `text` (the caller's string; `offsets` are `shift` characters ahead of it), a word is also cut where the
    tokenizer cut a run of a script written without spaces (Chinese, Japanese, Thai...): SentencePiece tokenizers
    (XLM-R, e5) see a whole unspaced clause as one word. Keys are then 0, 1, 2... in text order."""
    spans: dict[int, tuple[int, int, int]] = {}
    groups, last_word = 0, None
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[position]
        if text is None:
            key = word
        else:
            if word != last_word or (start >= spans[groups - 1][2] and _unspaced_cut(text, start - shift)):
                groups += 1
            key = groups - 1
        last_word = word
        if key not in spans:
            spans[key] = (position, start, end)
        else:
            first, s, e = spans[key]
            spans[key] = (first, min(s, start), max(e, end))
    return spans


# scripts written without spaces between words: Thai, Lao, Tibetan, Myanmar, Khmer, CJK punctuation, kana,
# Bopomofo, CJK ideographs (and extensions, compatibility forms), halfwidth katakana
_UNSPACED = ((0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3001, 0x30FF), (0x3100, 0x312F),
             (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF61, 0xFF9F),
             (0x20000, 0x3134F))


def _unspaced(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _UNSPACED)


def _unspaced_cut(text: str, i: int) -> bool:
    """A token starting at text[i] inside a word: a word boundary when either side is an unspaced script."""
    return 0 < i < len(text) and (_unspaced(text[i - 1]) or _unspaced(text[i]))


def _invisible(ch: str) -> bool:
    """Whitespace, and format characters (RLM/LRM, zero-width joiners, BOM) that some tokenizers keep in a word."""
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def decode_entities(text: str, probs: np.ndarray, labels: list[str], word_ids, offsets, shift: int) -> list[dict]:
    """BIO tags on each word's first sub-word -> entity spans with offsets into the caller's string.

    Spans never start or end with whitespace or format characters (RLM, ZWJ, BOM); runs of unspaced scripts
    (Chinese, Japanese, Thai) are split into the tokenizer's pieces, see `word_spans`."""
    entities: list[dict] = []
    current: dict | None = None
    for word, (first, start, end) in sorted(word_spans(word_ids, offsets, text, shift).items()):
        best = int(probs[first].argmax())
        tag, score = labels[best], float(probs[first][best])
        start, end = max(start - shift, 0), min(max(end - shift, 0), len(text))
        while start < end and _invisible(text[start]):  # some tokenizers count the space before a word
            start += 1
        while end > start and _invisible(text[end - 1]):
            end -= 1
        if end <= start:
            continue
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind and current is not None and tag.startswith("I-") and current["label"] == kind:
            current["end"] = end
            current["scores"].append(score)
            continue
        if current is not None:
            entities.append(current)
            current = None
        if kind:
            current = {"label": kind, "start": start, "end": end, "scores": [score]}
    if current is not None:
        entities.append(current)
    return [{"text": text[e["start"]:e["end"]], "label": e["label"], "start": e["start"], "end": e["end"],
             "score": round(float(np.mean(e["scores"])), 6)} for e in entities]
