"""Backbone resolution: aliases, folders, random shapes, the offline default and hub errors."""
from __future__ import annotations

import time

import numpy as np
import pytest

from polyhead import SentenceEncoder
from polyhead.backbones import load_backbone
from polyhead.errors import BackboneError


def test_minilm_alias_loads_packaged_weights():
    backbone = load_backbone("minilm-l6")
    assert backbone.pretrained and backbone.hidden_size == 384
    assert backbone.source.endswith("model")
    # 22.7M in the checkpoint, less the 148k-parameter pooler that polyhead never uses and does not load
    assert sum(p.numel() for p in backbone.model.parameters()) == 22_713_216 - 384 * 384 - 384


def test_random_distilmbert_has_the_real_shape():
    backbone = load_backbone("random:distilmbert")
    config = backbone.model.config
    assert (config.n_layers, config.dim, config.n_heads, config.vocab_size) == (6, 768, 12, 119547)
    assert not backbone.pretrained and "RANDOM" in backbone.describe()
    total = sum(p.numel() for p in backbone.model.parameters())
    assert 134_000_000 < total < 136_000_000  # 134M, as the model card says (not 66M)


def test_unknown_random_shape_is_a_clear_error():
    with pytest.raises(BackboneError, match="unknown random shape"):
        load_backbone("random:nope")


def test_hub_id_offline_fails_fast_with_clear_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(BackboneError, match="not in the local Hugging Face cache"):
        load_backbone("distilbert-base-multilingual-cased")
    assert time.perf_counter() - start < 10


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="not a folder"):
        load_backbone(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match="no config.json"):
        load_backbone(str(tmp_path / "empty"))


def test_default_falls_back_offline_and_says_so(capsys):
    backbone = load_backbone(None)
    err = capsys.readouterr().err
    assert backbone.pretrained
    assert "distilbert-base-multilingual-cased" in err and "using backbone" in err
    assert len(err.strip().splitlines()) == 1


def test_tiny_distilbert_path_encodes_and_round_trips(tmp_path):
    enc = SentenceEncoder(load_backbone("random:distilmbert-tiny"), precision="fp32")
    emb = enc.encode(["EU rejects German call.", ""])
    assert emb.shape == (2, 32)
    folder = enc.save(tmp_path / "tiny")
    again = SentenceEncoder.from_pretrained(str(folder), precision="fp32")
    assert np.abs(again.encode(["EU rejects German call.", ""]) - emb).max() == 0.0
    assert "random" in again.backbone.source or not again.backbone.pretrained
