"""The frozen-encoder feature cache: compact (bf16 under bf16), spilled to a memory-mapped file when over the RAM
limit, and training on a spilled cache gives the same heads as on one in RAM."""
from __future__ import annotations

import torch
from safetensors.torch import load_file

from polyhead.model import MultiTaskModel
from polyhead.training import feature_cache as fc
from polyhead.training.loop import FEATURE_SPILL_DIR, Trainer
from test_training import tiny_config


def _encoded_ner(config):
    trainer = Trainer(config, show_progress=False)
    from polyhead.training.loop import build_model

    trainer.model = build_model(config)
    trainer._prepare_data()
    return trainer.model, trainer.train_sets["ner"]


def test_spilled_store_holds_the_same_bf16_features_as_ram(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, precision="bf16")
    model, encoded = _encoded_ner(config)
    in_ram = fc.compute_features(model, encoded, spill_dir=tmp_path / "spill")
    assert not in_ram.features.on_disk and in_ram.features.dtype == torch.bfloat16
    monkeypatch.setenv("POLYHEAD_FEATURE_CACHE_RAM_MB", "0")
    on_disk = fc.compute_features(model, encoded, spill_dir=tmp_path / "spill")
    assert on_disk.features.on_disk and (tmp_path / "spill" / "ner-train.npy").is_file()
    rows = sum(1 for firsts in encoded.first_token for f in firsts if f >= 0)
    assert len(on_disk.features) == rows == len(on_disk.targets)
    assert torch.equal(on_disk.features.take(slice(0, rows)), in_ram.features.take(slice(0, rows)))
    feats, targets, shapes = fc.gather(on_disk, [1, 0])
    want, _, _ = fc.gather(in_ram, [1, 0])
    assert torch.equal(feats, want) and len(targets) == len(feats)


def test_training_on_a_spilled_cache_matches_ram_and_cleans_up(tmp_path, monkeypatch):
    (tmp_path / "ram").mkdir()
    (tmp_path / "disk").mkdir()
    ram = tiny_config(tmp_path / "ram", freeze="backbone", max_steps=5)
    disk = tiny_config(tmp_path / "disk", freeze="backbone", max_steps=5)
    Trainer(ram, show_progress=False).run()
    monkeypatch.setenv("POLYHEAD_FEATURE_CACHE_RAM_MB", "0")
    summary = Trainer(disk, show_progress=False).run()
    a = load_file(ram.output + "/last/heads.safetensors")
    b = load_file(disk.output + "/last/heads.safetensors")
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    assert not (tmp_path / "disk" / "run" / FEATURE_SPILL_DIR).exists()  # temporary: removed after the run
    assert summary["dev"]["ner"]["f1"] >= 0.0
    MultiTaskModel.from_pretrained(disk.output + "/best")  # the saved model does not depend on the cache


def test_frozen_encoder_checkpoints_link_one_copy_of_the_weights(tmp_path):
    import os

    import numpy as np

    from polyhead import SentenceEncoder

    config = tiny_config(tmp_path, freeze="backbone", max_steps=6, eval_every=2)
    Trainer(config, show_progress=False).run()
    best, last = tmp_path / "run" / "best", tmp_path / "run" / "last"
    assert os.path.samefile(best / "model.safetensors", last / "model.safetensors")
    original = SentenceEncoder.from_pretrained("random:bert-tiny", precision="fp32")
    saved = SentenceEncoder.from_pretrained(str(last), precision="fp32")
    texts = ["EU rejects German call", "Peter Blackburn"]
    assert np.abs(original.encode(texts) - saved.encode(texts)).max() < 1e-6
    MultiTaskModel.from_pretrained(best).predict(texts)
