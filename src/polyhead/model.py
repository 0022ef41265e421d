"""MultiTaskModel: one shared SentenceEncoder plus any number of named heads; one encoder pass feeds them all."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from polyhead import runtime
from polyhead.data.batching import pad_batch, plan_batches
from polyhead.encoder import DEFAULT_MAX_TOKENS, SentenceEncoder, check_texts
from polyhead.errors import PolyheadError
from polyhead.heads import ClassificationHead
from polyhead.saving import read_polyhead_config

HEADS_FILE = "heads.safetensors"


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, heads: dict[str, ClassificationHead]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    # -- forward --------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Logits per task: (B, C) for sentence heads, (B, T, C) for token heads, from ONE encoder pass."""
        states = self.encoder.token_states(input_ids, attention_mask)
        pooled = None
        logits = {}
        for name in tasks or list(self.heads):
            head = self.heads[name]
            if head.reads_tokens:
                logits[name] = head(states)
            else:
                pooled = self.encoder.pool(states, attention_mask) if pooled is None else pooled
                logits[name] = head(pooled)
        return logits

    # -- prediction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, texts: Iterable[str], batch_size: int = 32, tasks: Sequence[str] | None = None,
                max_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[dict]:
        """One dict per text: {"text", <sentence task>: {"label", "score"}, <token task>: [entities]}."""
        texts = check_texts(texts)
        tasks = list(tasks or self.heads)
        unknown = [t for t in tasks if t not in self.heads]
        if unknown:
            raise PolyheadError(f"unknown task(s) {unknown}; this model has {list(self.heads)}")
        enc = self.encoder
        tokens = enc.text_tokenizer(enc._with_prefix(texts, None))
        shift = len(enc.prefix or "")
        results: list[dict] = [{"text": t} for t in texts]
        was_training = self.training
        self.eval()
        with runtime.inference(enc.precision, enc.device_):
            for batch in plan_batches([len(x) for x in tokens.ids], batch_size, max_tokens):
                ids, mask = pad_batch([tokens.ids[i] for i in batch], enc.text_tokenizer.pad_id)
                logits = self(ids.to(enc.device_), mask.to(enc.device_), tasks)
                for name in tasks:
                    probs = logits[name].float().softmax(-1).cpu().numpy()
                    labels = self.heads[name].labels
                    for row, index in enumerate(batch):
                        if self.heads[name].reads_tokens:
                            results[index][name] = decode_entities(
                                texts[index], probs[row], labels, tokens.word_ids[index],
                                tokens.offsets[index], shift)
                        else:
                            best = int(probs[row].argmax())
                            results[index][name] = {"label": labels[best], "score": round(float(probs[row][best]), 6)}
        self.train(was_training)
        return results

    # -- saving ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra_config: dict | None = None) -> Path:
        heads = {name: head.spec() for name, head in self.heads.items()}
        tensors = {f"{name}.{key}": value.detach().float().cpu().contiguous()
                   for name, head in self.heads.items() for key, value in head.state_dict().items()}
        config = {"heads": heads, **(extra_config or {})}
        return self.encoder.save(directory, {"config": config, HEADS_FILE: tensors})

    @classmethod
    def from_pretrained(cls, directory: str | Path, precision: str = "auto",
                        device: str | torch.device | None = None) -> "MultiTaskModel":
        from safetensors.torch import load_file

        folder = Path(directory)
        config = read_polyhead_config(folder) if folder.is_dir() else None
        if not config or "heads" not in config:
            raise PolyheadError(f"{directory} is not a saved polyhead multi-task model (no heads in polyhead.json)")
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


def word_spans(word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]) -> dict[int, tuple[int, int, int]]:
    """word id -> (first token index, char start, char end) over the tokens the model saw."""
    spans: dict[int, tuple[int, int, int]] = {}
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[position]
        if word not in spans:
            spans[word] = (position, start, end)
        else:
            first, s, e = spans[word]
            spans[word] = (first, min(s, start), max(e, end))
    return spans


def decode_entities(text: str, probs: np.ndarray, labels: list[str], word_ids, offsets, shift: int) -> list[dict]:
    """BIO tags on each word's first sub-word -> entity spans with offsets into the caller's string."""
    entities: list[dict] = []
    current: dict | None = None
    for word, (first, start, end) in sorted(word_spans(word_ids, offsets).items()):
        best = int(probs[first].argmax())
        tag, score = labels[best], float(probs[first][best])
        start, end = max(start - shift, 0), max(end - shift, 0)
        while start < end and text[start].isspace():  # some tokenizers count the space before a word
            start += 1
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
