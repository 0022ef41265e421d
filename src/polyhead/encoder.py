"""Task 1: SentenceEncoder = backbone -> pooling -> optional projection -> optional L2 normalisation.

Saved folders follow the sentence-transformers layout (Transformer at the root, 1_Pooling, 2_Dense,
3_Normalize, modules.json), so `SentenceTransformer(dir)` loads them, plus `polyhead.json`, which records
the exact backbone and every choice made outside it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from polyhead import runtime
from polyhead.backbones import Backbone, load_backbone
from polyhead.data.batching import TextTokenizer, pad_batch, plan_batches
from polyhead.errors import BackboneError
from polyhead.pooling import Pooling
from polyhead.saving import POLYHEAD_CONFIG, read_polyhead_config, save_encoder_folder

# Tokens per batch, padding included ("auto"): bounds memory on long inputs and, with batch_size=None, sets the
# batch size. Large batches keep the matmuls efficient, but past a point the activations (tokens x hidden x 4
# for the feed-forward layer) fall out of the CPU caches: measured on this 2-core AMX CPU, the best budget is
# about 4096 tokens in bf16 and 2048 in fp32 at hidden size 384 (MiniLM, e5-small), half that at 768
# (DistilmBERT); 8192 was 20-40% slower (benchmarks/sweep_token_budget.py, docs/performance.md).
DEFAULT_MAX_TOKENS = "auto"
TOKEN_BUDGET_AT_384 = {"bf16": 4096, "fp32": 2048}


def token_budget(hidden_size: int, precision: str) -> int:
    """The default tokens per batch for a model of this width and compute precision."""
    base = TOKEN_BUDGET_AT_384["bf16" if precision == "bf16" else "fp32"]
    return max(512, int(base * 384 / max(1, hidden_size)) // 128 * 128)


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not a single string (wrap it in a list)")
    if texts is None or isinstance(texts, (bytes, int, float)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: e.g. invalid UTF-8 bytes in a command-line argument
            where = f"texts[{position}]" if what == "texts" else what
            raise ValueError(f"{where}: not valid Unicode text (invalid UTF-8 byte or lone surrogate at "
                             f"character {exc.start})") from None
    return texts


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"{name} must be a positive whole number or None, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{name} must be >= 1, got {batch_size}")
    return int(batch_size)


class SentenceEncoder(nn.Module):
    def __init__(
        self,
        backbone: Backbone,
        pooling: str = "mean",
        normalize: bool = True,
        projection_dim: int | None = None,
        max_length: int | None = None,
        prefix: str | None = None,
        precision: str = "auto",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        if prefix is not None:
            check_texts([prefix], what="prefix")
        self.backbone = backbone
        self.transformer = backbone.model
        self.tokenizer = backbone.tokenizer
        self.pooling = Pooling(pooling)
        self.projection = nn.Linear(backbone.hidden_size, projection_dim) if projection_dim else None
        self.normalize = normalize
        self.max_length = min(int(max_length or backbone.max_length), backbone.max_length)
        self.prefix = backbone.meta.get("query_prefix") if prefix is None else prefix
        self.device_ = torch.device(device) if device is not None else runtime.default_device()
        self.precision = runtime.resolve_precision(precision, self.device_)
        self.text_tokenizer = TextTokenizer(self.tokenizer, self.max_length)
        self.last_truncated = 0
        self._bf16_weights = runtime.LowPrecisionWeights(torch.bfloat16)
        runtime.configure_threads()
        self.to(self.device_)
        self.eval()

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | None = None,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        projection_dim: int | None = None,
        max_length: int | None = None,
        prefix: str | None = None,
        precision: str = "auto",
        device: str | torch.device | None = None,
    ) -> "SentenceEncoder":
        """Load an alias, hub id, HF folder, sentence-transformers folder or polyhead folder (None = default)."""
        if name_or_dir is not None and not isinstance(name_or_dir, (str, os.PathLike)):
            raise TypeError(f"name_or_dir must be a model name or folder path (str), got {type(name_or_dir).__name__}")
        if isinstance(name_or_dir, os.PathLike):
            name_or_dir = os.fspath(name_or_dir)
        if isinstance(name_or_dir, str) and not name_or_dir.strip():
            raise ValueError("name_or_dir is empty: give a model alias, Hugging Face id or folder (None = default)")
        backbone = load_backbone(name_or_dir)
        folder = Path(backbone.source) if Path(backbone.source).is_dir() else None
        saved = read_polyhead_config(folder) if folder else None
        settings = folder_settings(backbone)
        for key, value in (("pooling", pooling), ("normalize", normalize), ("projection_dim", projection_dim),
                           ("max_length", max_length), ("prefix", prefix)):
            if value is not None:
                settings[key] = value
        if saved:
            backbone.name, backbone.meta = saved["backbone"]["name"], saved["backbone"].get("meta", {})
            backbone.pretrained = saved["backbone"].get("pretrained", True)
        encoder = cls(backbone, precision=precision, device=device, **settings)
        if saved and encoder.projection is not None and (folder / "2_Dense").is_dir():
            encoder.load_projection(folder)
        return encoder

    def train(self, mode: bool = True) -> "SentenceEncoder":
        # Entering training drops the bf16 inference copy: the next inference rebuilds it from the trained
        # weights. Tensor versions alone cannot tell, since torch's fused AdamW updates in place without
        # bumping them.
        if mode:
            self._bf16_weights.clear()
        return super().train(mode)

    # -- forward --------------------------------------------------------------------------------------
    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.precision == "bf16" and torch.is_inference_mode_enabled():
            # inference in bf16 runs a bf16 copy of the weights (pure bf16, no autocast casts per op); the fp32
            # weights stay the ones that train and save
            with torch.autocast(self.device_.type, enabled=False):
                return self._bf16_weights(self.transformer, input_ids=input_ids,
                                          attention_mask=attention_mask).last_hidden_state
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def pool(self, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.pooling(token_states, attention_mask)
        if self.projection is not None:
            pooled = self.projection(pooled.to(self.projection.weight.dtype)).float()
        return pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        states = self.token_states(input_ids, attention_mask)
        return {"token_states": states, "sentence_embedding": self.pool(states, attention_mask)}

    # -- encoding -------------------------------------------------------------------------------------
    def _with_prefix(self, texts: list[str], prefix: str | None) -> list[str]:
        prefix = self.prefix if prefix is None else prefix
        return [prefix + t for t in texts] if prefix else texts

    def encode(
        self,
        texts: Iterable[str],
        batch_size: int | None = None,
        normalize: bool | None = None,
        show_progress: bool = False,
        max_tokens: int | None | str = DEFAULT_MAX_TOKENS,
        prefix: str | None = None,
    ) -> np.ndarray:
        """Embed texts; returns float32 (N, D) in input order. Inside, texts are sorted by length and grouped
        into batches of at most `max_tokens` tokens (padding included) and, when given, `batch_size` texts."""
        texts = check_texts(texts)
        batch_size = check_batch_size(batch_size)
        max_tokens = self.resolve_max_tokens(max_tokens)
        if normalize is not None and not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be True, False or None, got {normalize!r}")
        normalize = self.normalize if normalize is None else bool(normalize)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            self.last_truncated = 0
            return out
        tokens = self.text_tokenizer(self._with_prefix(texts, prefix))
        self.last_truncated = tokens.truncated
        if batch_size is None and max_tokens is None:
            batch_size = 64
        batches = plan_batches([len(ids) for ids in tokens.ids], batch_size, max_tokens)
        progress = _progress(len(texts), show_progress)
        was_training = self.training
        self.eval()  # dropout off, whatever mode a surrounding training loop left the module in
        with runtime.inference(self.precision, self.device_):
            for batch in batches:
                ids, mask = pad_batch([tokens.ids[i] for i in batch], self.text_tokenizer.pad_id)
                ids, mask = ids.to(self.device_), mask.to(self.device_)
                emb = self.pool(self.token_states(ids, mask), mask)
                if normalize:
                    emb = nn.functional.normalize(emb, p=2, dim=-1)
                out[batch] = emb.float().cpu().numpy()
                if progress is not None:
                    progress.update(len(batch))
        self.train(was_training)
        if progress is not None:
            progress.close()
        return out

    def similarity(self, a: Sequence[str], b: Sequence[str] | None = None) -> np.ndarray:
        """Cosine similarity matrix between texts `a` and `b` (or `a` with itself)."""
        ea = self.encode(a, normalize=True)
        eb = ea if b is None else self.encode(b, normalize=True)
        return ea @ eb.T

    def resolve_max_tokens(self, max_tokens: int | None | str) -> int | None:
        """'auto' -> the tuned budget for this model's width and precision; None -> no token cap."""
        if max_tokens == "auto":
            return token_budget(self.backbone.hidden_size, self.precision)
        return check_batch_size(max_tokens, "max_tokens")

    @property
    def dimension(self) -> int:
        return self.projection.out_features if self.projection is not None else self.backbone.hidden_size

    def settings(self) -> dict:
        return {"pooling": self.pooling.mode, "normalize": self.normalize,
                "projection_dim": self.projection.out_features if self.projection is not None else None,
                "max_length": self.max_length, "prefix": self.prefix}

    # -- saving ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra_config: dict | None = None,
             reuse_weights_from: str | Path | None = None, finish: Callable[[Path], None] | None = None) -> Path:
        return save_encoder_folder(self, Path(directory), extra_config or {},
                                   Path(reuse_weights_from) if reuse_weights_from else None, finish)

    def load_projection(self, directory: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(directory / "2_Dense" / "model.safetensors"))
        self.projection.load_state_dict({"weight": state["linear.weight"], "bias": state["linear.bias"]})


def folder_settings(backbone: Backbone) -> dict:
    """The encoder settings the backbone's folder declares: a polyhead folder's own, else those of a
    sentence-transformers folder (pooling, normalize, max_seq_length); {} for a plain HF model."""
    folder = Path(backbone.source) if Path(backbone.source).is_dir() else None
    saved = read_polyhead_config(folder) if folder else None
    return dict(saved["encoder"]) if saved else _settings_from_sentence_transformers(folder)


def _settings_from_sentence_transformers(folder: Path | None) -> dict:
    """Read pooling/normalize/max length from a plain sentence-transformers folder, if that is what we got."""
    if folder is None:
        return {}
    settings: dict = {}
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        types = [m.get("type", "") for m in modules]
        settings["normalize"] = any(t.endswith("Normalize") for t in types)
        for module in modules:
            if module.get("type", "").endswith("Pooling"):
                pooling_cfg = json.loads((folder / module["path"] / "config.json").read_text(encoding="utf-8"))
                settings["pooling"] = Pooling.mode_from_sentence_transformers(pooling_cfg)
            if module.get("type", "").endswith("Dense"):
                raise BackboneError(f"{folder}: sentence-transformers Dense modules are only read from polyhead folders")
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        max_len = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if max_len:
            settings["max_length"] = int(max_len)
    return settings


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", file=sys.stderr, mininterval=0.5, delay=2.0)
