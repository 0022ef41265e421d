"""Randomly initialised backbones of real shapes, for tests and speed benchmarks (speed does not depend on weights).

`random:distilmbert` has the exact distilbert-base-multilingual-cased shape (6 layers, 768 hidden, 12 heads,
vocab 119547). The mBERT vocabulary is not installable here, so its tokenizer is a cased WordPiece built from
the packaged MiniLM vocabulary padded with unused tokens up to 119547 ids: token ids stay in range and sequence
lengths are realistic, but it is not the real mBERT tokenizer. Never used in place of pretrained weights silently.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from polyhead.errors import BackboneError

SHAPES: dict[str, dict[str, Any]] = {
    # the real distilbert-base-multilingual-cased config
    "distilmbert": dict(model_type="distilbert", vocab_size=119547, n_layers=6, dim=768, n_heads=12,
                        hidden_dim=3072, max_position_embeddings=512),
    "distilmbert-tiny": dict(model_type="distilbert", vocab_size=119547, n_layers=2, dim=32, n_heads=2,
                             hidden_dim=64, max_position_embeddings=512),
    "bert-tiny": dict(model_type="bert", vocab_size=30522, num_hidden_layers=2, hidden_size=32,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=512),
}


def _wordpiece_tokenizer(vocab_size: int) -> Any:
    from transformers import BertTokenizerFast

    from polyhead.backbones import _minilm_dir

    vocab = (_minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab += [f"[unused_pad{i}]" for i in range(max(0, vocab_size - len(vocab)))]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab[:vocab_size]) + "\n", encoding="utf-8")
        return BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=False, model_max_length=512)


def build_random_backbone(name: str, seed: int = 0):
    from transformers import AutoConfig, AutoModel

    from polyhead.backbones import Backbone

    shape = name.split(":", 1)[1]
    if shape not in SHAPES:
        raise BackboneError(f"unknown random shape {shape!r} in {name!r}; choose one of: {', '.join(SHAPES)}")
    params = dict(SHAPES[shape])
    config = AutoConfig.for_model(params.pop("model_type"), **params)
    torch.manual_seed(seed)
    from polyhead.backbones import POOLER_MODEL_TYPES

    kwargs = {"add_pooling_layer": False} if config.model_type in POOLER_MODEL_TYPES else {}
    try:
        model = AutoModel.from_config(config, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError):
        model = AutoModel.from_config(config, **kwargs)
    tokenizer = _wordpiece_tokenizer(config.vocab_size)
    print(f"polyhead: backbone {name} has RANDOM weights (for tests and benchmarks only)", file=sys.stderr)
    return Backbone(model, tokenizer, name, f"random init of shape {shape}", False, {"random_shape": shape})
