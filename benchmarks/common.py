"""Shared helpers for the benchmarks: data, models, interleaved timing, FLOP counts, machine peak, tables.

Every benchmark measures polyhead and its anchor in the same process, interleaved (A B A B ...), and reports
the median of each, so that noise from other work on the machine hits both sides alike.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MODELS = ("minilm-l6", "random:distilmbert")


def quiet() -> None:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def data_dir() -> Path:
    """$POLYHEAD_DATA, else ../shared/data beside the repository (the layout of /work/shared/data)."""
    return Path(os.environ.get("POLYHEAD_DATA") or REPO.parent / "shared" / "data")


def need(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (set POLYHEAD_DATA to the shared data folder)")
    return path


def sst2_sentences(n: int, split: str = "train") -> list[str]:
    lines = need("sentiment", "sst2", f"{split}.txt").read_text(encoding="utf-8").splitlines()
    return [line.split(" ", 1)[1] for line in lines if " " in line][:n]


def sib_sentences(n: int, lang: str = "eng_Latn") -> list[str]:
    import csv

    rows = []
    for split in ("train", "dev", "test"):
        path = data_dir() / "topic" / "sib200" / lang / f"{split}.tsv"
        if path.exists():
            with open(path, encoding="utf-8", newline="") as fh:
                rows += [r["text"] for r in csv.DictReader(fh, delimiter="\t")]
    return rows[:n]


def conll_path(split: str = "train") -> Path:
    folder = need("ner", "conll2003")
    for name in (f"{split}.txt", f"eng.{split}", f"{split}"):
        if (folder / name).exists():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if split in p.name and p.is_file())
    if not candidates:
        sys.exit(f"no CoNLL-2003 {split} file in {folder}")
    return candidates[0]


# -- models -----------------------------------------------------------------------------------------------
_FOLDERS: dict[str, str] = {}


def model_folder(name: str) -> str:
    """A Hugging Face folder for `name` that every library here can load: the packaged MiniLM folder, or a
    random-init model of the real shape saved once to a temporary folder (same weights for all sides)."""
    if name in _FOLDERS:
        return _FOLDERS[name]
    from polyhead.backbones import load_backbone

    if name.startswith("random:"):
        backbone = load_backbone(name)
        folder = Path(tempfile.mkdtemp(prefix="polyhead-bench-")) / name.split(":", 1)[1]
        backbone.model.save_pretrained(folder)
        backbone.tokenizer.save_pretrained(folder)
        _FOLDERS[name] = str(folder)
    else:
        _FOLDERS[name] = load_backbone(name).source
    return _FOLDERS[name]


# -- timing ---------------------------------------------------------------------------------------------------
def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: bool = True) -> dict[str, dict]:
    """Run every variant `repeats` times in A B C A B C order; median seconds and the last result of each."""
    out: dict[str, dict] = {name: {"times": [], "result": None} for name in variants}
    if warmup:
        for name, fn in variants.items():
            fn_warm = getattr(fn, "warmup", None)
            if fn_warm is not None:
                fn_warm()
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            out[name]["result"] = fn()
            out[name]["times"].append(time.perf_counter() - start)
    for rec in out.values():
        rec["median_s"] = statistics.median(rec["times"])
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(1)


# -- FLOPs ------------------------------------------------------------------------------------------------------
def encoder_shape(hf_model) -> tuple[int, int, int]:
    """(layers, hidden, non-embedding matmul parameters) of a BERT/DistilBERT-style encoder."""
    config = hf_model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    hidden = getattr(config, "hidden_size", None) or config.dim
    matmul = sum(m.weight.numel() for name, m in hf_model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "embed" not in name)
    return layers, hidden, matmul


def forward_flops(lengths: list[int], layers: int, hidden: int, matmul_params: int) -> float:
    """2 x matmul parameters per token, plus attention scores and weighted sum (4 T^2 H per layer)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(2.0 * matmul_params * lengths.sum() + 4.0 * layers * hidden * (lengths ** 2).sum())


def machine() -> dict:
    """CPU, cores, clock, relevant ISA flags, a theoretical peak and a measured GEMM peak per dtype."""
    from polyhead import runtime

    flags = runtime.cpu_flags()
    model, mhz, vendor = "unknown", None, ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":", 1)[1])
            elif line.startswith("vendor_id") and not vendor:
                vendor = line.split(":", 1)[1].strip()
    except OSError:
        pass
    cores = runtime.physical_cores()
    ghz = (mhz or 2000.0) / 1000
    # FLOP per cycle per core. AVX-512 on AMD Zen 4: two 256-bit FMA pipes (a 512-bit op takes both) = 32 fp32;
    # Intel server cores: two 512-bit FMA ports = 64 fp32. AVX512_BF16 (vdpbf16ps) doubles that; AMX-BF16 on
    # Sapphire Rapids: 1024 bf16 FLOP/cycle/core. Int8 VNNI (vpdpbusd) is 4x fp32.
    fp32 = 32 if vendor == "AuthenticAMD" else (64 if "avx512f" in flags else 16)
    bf16 = 1024 if "amx_bf16" in flags else (2 * fp32 if "avx512_bf16" in flags else fp32)
    peak = {"fp32": cores * ghz * fp32 * 1e9, "bf16": cores * ghz * bf16 * 1e9}
    return {"cpu": f"{vendor} {model}".strip(), "cores": cores, "threads": torch.get_num_threads(), "ghz": ghz,
            "flags": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512_vnni", "avx512f"))),
            "peak_flops": peak, "platform": platform.platform(), "torch": torch.__version__,
            "load_avg": os.getloadavg()}


def measured_gemm_flops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times)


# -- output ---------------------------------------------------------------------------------------------------
def gflops(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e9:.0f}"


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print(f"\n## {title}")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def write_json(path: str | None, record: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")


def goal(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x ({'met' if ratio >= target else 'NOT met'}, goal >= {target}x)"
