"""Task 1: the sentence encoder on the real all-MiniLM-L6-v2 weights."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from conftest import FALLBACK_SENTENCES, real_sentences
from polyhead import SentenceEncoder
from polyhead.pooling import POOLING_MODES, Pooling


def test_encode_shape_order_and_norm(minilm_fp32):
    emb = minilm_fp32.encode(FALLBACK_SENTENCES)
    assert emb.shape == (len(FALLBACK_SENTENCES), 384)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # output order equals input order although batches are sorted by length inside
    for i in (0, 3, 7):
        single = minilm_fp32.encode([FALLBACK_SENTENCES[i]])[0]
        assert np.abs(single - emb[i]).max() < 1e-5


@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_embedding_does_not_depend_on_batch(pooling):
    sentences = real_sentences(40) + FALLBACK_SENTENCES
    enc = SentenceEncoder.from_pretrained("minilm-l6", pooling=pooling, precision="fp32")
    alone = np.stack([enc.encode([s])[0] for s in sentences])
    worst = 0.0
    for batch_size, seed in ((1, 0), (3, 1), (16, 2), (64, 3)):
        order = list(range(len(sentences)))
        random.Random(seed).shuffle(order)
        shuffled = enc.encode([sentences[i] for i in order], batch_size=batch_size)
        worst = max(worst, float(np.abs(shuffled[np.argsort(order)] - alone).max()))
    assert worst <= 1e-5, f"{pooling}: max abs difference {worst}"


def test_padding_never_counts_in_pooling():
    states = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    for mode in POOLING_MODES:
        pooled = Pooling(mode)(states, mask)
        states2 = states.clone()
        states2[0, 3:] = 1e6  # garbage in the padding
        assert torch.allclose(Pooling(mode)(states2, mask)[0], pooled[0]), mode
    mean = Pooling("mean")(states, mask)[0]
    assert torch.allclose(mean, states[0, :3].mean(0))
    assert torch.allclose(Pooling("mean_sqrt_len")(states, mask)[0], states[0, :3].sum(0) / 3 ** 0.5)
    assert torch.allclose(Pooling("max")(states, mask)[0], states[0, :3].max(0).values)


def test_equals_sentence_transformers_on_1000_real_sentences(minilm_fp32):
    from sentence_transformers import SentenceTransformer

    sentences = real_sentences(1000)
    ours = minilm_fp32.encode(sentences, batch_size=64)
    reference = SentenceTransformer(minilm_fp32.backbone.source, device="cpu").encode(sentences, batch_size=64)
    cosine = (ours * reference).sum(1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.99999, f"worst cosine {cosine.min()}"


def test_saved_folder_round_trips_and_loads_in_sentence_transformers(minilm_fp32, tmp_path):
    from sentence_transformers import SentenceTransformer

    sentences = real_sentences(50) + FALLBACK_SENTENCES
    before = minilm_fp32.encode(sentences)
    folder = minilm_fp32.save(tmp_path / "enc")
    again = SentenceEncoder.from_pretrained(str(folder), precision="fp32")
    assert np.abs(again.encode(sentences) - before).max() == 0.0
    st = SentenceTransformer(str(folder), device="cpu").encode(sentences)
    assert np.abs(st - before).max() < 1e-5


def test_projection_and_pooling_choices_survive_save(tmp_path):
    enc = SentenceEncoder.from_pretrained("minilm-l6", pooling="max", projection_dim=64, normalize=False,
                                          precision="fp32")
    sentences = FALLBACK_SENTENCES
    before = enc.encode(sentences)
    assert before.shape == (len(sentences), 64)
    folder = enc.save(tmp_path / "proj")
    again = SentenceEncoder.from_pretrained(str(folder), precision="fp32")
    assert again.settings() == enc.settings()
    assert np.abs(again.encode(sentences) - before).max() == 0.0


def test_bad_inputs(minilm_fp32):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm_fp32.encode(["ok", None])
    with pytest.raises(TypeError, match=r"texts\[0\] is int"):
        minilm_fp32.encode([3])
    with pytest.raises(TypeError, match="single string"):
        minilm_fp32.encode("not a list")
    assert minilm_fp32.encode([]).shape == (0, 384)
    empty = minilm_fp32.encode([""])
    assert np.isfinite(empty).all() and abs(np.linalg.norm(empty) - 1) < 1e-5
    long = minilm_fp32.encode(["word " * 20000, "short"])
    assert long.shape == (2, 384) and np.isfinite(long).all()
    assert minilm_fp32.last_truncated == 1


def test_similarity_ranks_paraphrase_above_unrelated(minilm_fp32):
    sims = minilm_fp32.similarity(["A man is playing a guitar.", "Someone plays an instrument.",
                                   "The stock market fell today."])
    assert sims.shape == (3, 3)
    assert sims[0, 1] > sims[0, 2] + 0.3


def test_bf16_is_close_to_fp32(minilm_fp32):
    sentences = real_sentences(200)
    bf16 = SentenceEncoder.from_pretrained("minilm-l6", precision="bf16")
    cosine = (bf16.encode(sentences) * minilm_fp32.encode(sentences)).sum(1)
    assert cosine.min() >= 0.999, cosine.min()


def test_token_budget_scales_with_width_and_precision():
    from polyhead.encoder import token_budget

    assert token_budget(384, "bf16") == 4096 and token_budget(384, "fp32") == 2048
    assert token_budget(768, "bf16") == 2048 and token_budget(768, "fp32") == 1024
    assert token_budget(10**6, "fp32") == 512  # never below one long sequence
