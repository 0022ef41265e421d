"""Correctness of the speed paths (docs/performance.md): bf16 weight copy for inference, token-budget batches,
vectorised padding, fused AdamW, thread and precision choices. No timings here: speed lives in benchmarks/."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from conftest import FALLBACK_SENTENCES, real_sentences
from polyhead import SentenceEncoder, runtime
from polyhead.backbones import load_backbone
from polyhead.data.batching import pad_batch, plan_batches


def _pad_batch_reference(sequences, pad_id):
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def test_pad_batch_matches_row_by_row_reference():
    rng = random.Random(0)
    for trial in range(50):
        seqs = [[rng.randrange(1, 30000) for _ in range(rng.randrange(0, 40))] for _ in range(rng.randrange(0, 9))]
        got, want = pad_batch(seqs, 7), _pad_batch_reference(seqs, 7)
        for g, w in zip(got, want):
            assert g.dtype == torch.long and g.shape == w.shape and torch.equal(g, w), (trial, seqs)


def test_token_budget_batches_cover_everything_once_and_respect_budget():
    rng = random.Random(1)
    lengths = [rng.randrange(1, 300) for _ in range(1000)]
    batches = plan_batches(lengths, None, 4096)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 4096
    assert len(batches) < 1000 / 8  # far larger than 32-text batches when texts are short on average
    with pytest.raises(ValueError):
        plan_batches(lengths, None, None)


@pytest.fixture(scope="module")
def tiny_bf16():
    return SentenceEncoder(load_backbone("random:bert-tiny"), precision="bf16")


def test_bf16_inference_uses_a_bf16_copy_and_keeps_fp32_master(tiny_bf16):
    enc = tiny_bf16
    enc.encode(FALLBACK_SENTENCES)
    assert all(p.dtype == torch.float32 for p in enc.parameters())
    copy = enc._bf16_weights._tensors
    assert copy and all(t.dtype == torch.bfloat16 for t in copy.values())
    with torch.inference_mode():
        ids, mask = pad_batch(enc.text_tokenizer(["a test"]).ids, enc.text_tokenizer.pad_id)
        assert enc.token_states(ids, mask).dtype == torch.bfloat16
    # outside inference mode (training) the fp32 weights run and receive gradients
    ids, mask = pad_batch(enc.text_tokenizer(["a test"]).ids, enc.text_tokenizer.pad_id)
    states = enc.token_states(ids, mask)
    assert states.dtype == torch.float32
    states.sum().backward()
    assert enc.transformer.embeddings.word_embeddings.weight.grad is not None
    enc.zero_grad(set_to_none=True)


def test_bf16_copy_follows_weight_updates(tiny_bf16):
    enc = tiny_bf16
    before = enc.encode(FALLBACK_SENTENCES)
    optimizer = torch.optim.SGD(enc.transformer.parameters(), lr=0.5)
    ids, mask = pad_batch(enc.text_tokenizer(FALLBACK_SENTENCES).ids, enc.text_tokenizer.pad_id)
    enc.token_states(ids, mask).pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after = enc.encode(FALLBACK_SENTENCES)
    fp32 = SentenceEncoder(enc.backbone, precision="fp32").encode(FALLBACK_SENTENCES)
    assert np.abs(after - before).max() > 1e-3  # the copy was rebuilt
    assert (after * fp32).sum(1).min() > 0.99  # and tracks the updated fp32 weights


def test_bf16_copy_follows_fused_adamw_training(tiny_bf16):
    # fused AdamW (the trainer's optimizer) updates weights without bumping tensor versions: the copy must
    # still be rebuilt after a train() -> step -> eval() cycle, or training-time evaluation sees old weights
    enc = tiny_bf16
    before = enc.encode(FALLBACK_SENTENCES)
    optimizer = torch.optim.AdamW(enc.transformer.parameters(), lr=0.05, fused=True)
    enc.train()
    ids, mask = pad_batch(enc.text_tokenizer(FALLBACK_SENTENCES).ids, enc.text_tokenizer.pad_id)
    enc.token_states(ids, mask).pow(2).mean().backward()
    optimizer.step()
    enc.eval()
    after = enc.encode(FALLBACK_SENTENCES)
    fp32 = SentenceEncoder(enc.backbone, precision="fp32").encode(FALLBACK_SENTENCES)
    assert np.abs(after - before).max() > 1e-3
    assert (after * fp32).sum(1).min() > 0.99


def test_bf16_encode_is_close_to_fp32_per_sentence_on_real_text(minilm_fp32):
    sentences = real_sentences(300) + FALLBACK_SENTENCES
    bf16 = SentenceEncoder.from_pretrained("minilm-l6", precision="bf16")
    cosine = (bf16.encode(sentences) * minilm_fp32.encode(sentences)).sum(1)
    assert cosine.min() >= 0.999, cosine.min()
    small = (bf16.encode(sentences, batch_size=4) * minilm_fp32.encode(sentences)).sum(1)
    assert small.min() >= 0.999, small.min()


def test_default_token_budget_batches_equal_fixed_batches_in_fp32(minilm_fp32):
    sentences = real_sentences(120) + FALLBACK_SENTENCES
    default = minilm_fp32.encode(sentences)
    fixed = minilm_fp32.encode(sentences, batch_size=64, max_tokens=None)
    assert np.abs(default - fixed).max() <= 1e-5


def test_multitask_predict_bf16_agrees_with_fp32(minilm_fp32):
    from polyhead.heads import ClassificationHead
    from polyhead.model import MultiTaskModel

    sentences = real_sentences(100)
    torch.manual_seed(0)
    heads = {"s": ClassificationHead("sentence_classification", 384, ["a", "b", "c"]),
             "t": ClassificationHead("token_classification", 384, ["O", "B-X", "I-X"])}
    fast = MultiTaskModel(SentenceEncoder.from_pretrained("minilm-l6", precision="bf16"), heads).eval()
    exact = MultiTaskModel(minilm_fp32, heads).eval()
    a, b = fast.predict(sentences), exact.predict(sentences)
    agree = np.mean([x["s"]["label"] == y["s"]["label"] for x, y in zip(a, b)])
    assert agree >= 0.95
    assert max(abs(x["s"]["score"] - y["s"]["score"]) for x, y in zip(a, b)) < 0.05


def test_fused_adamw_updates_like_plain_adamw():
    from polyhead.training.loop import make_adamw

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 4))
    b = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 4))
    b.load_state_dict(a.state_dict())
    groups = lambda m: [{"params": list(m.parameters()), "lr": 1e-2, "weight_decay": 0.01}]  # noqa: E731
    fused, plain = make_adamw(groups(a)), torch.optim.AdamW(groups(b))
    x = torch.randn(8, 16)
    for _ in range(5):
        for model, opt in ((a, fused), (b, plain)):
            model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_precision_choice_is_visible_and_threads_are_sane():
    line = runtime.explain_precision("auto", "cpu")
    assert line.startswith(runtime.resolve_precision("auto", "cpu"))
    assert "auto" in line
    assert runtime.explain_precision("fp32", "cpu") == "fp32 (asked for)"
    assert 1 <= runtime.physical_cores() <= 4096
    assert runtime.configure_threads() >= 1
