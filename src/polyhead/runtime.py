"""Device, precision and thread choices shared by encoding, training and prediction."""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterator, Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """AMX tiles or AVX-512 BF16 make bf16 matmuls faster than fp32 on CPU; without them bf16 is slower."""
    flags = cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_precision(precision: str, device: torch.device | str | None = None) -> str:
    """Turn `auto` into `bf16` or `fp32` for this device; validate explicit choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast keeps layer norms and softmax in fp32, which is what keeps cosine to fp32 >= 0.999."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_threads() -> int:
    """Use every physical core for intra-op work unless the user already chose (OMP/torch settings win)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    return torch.get_num_threads()


@contextlib.contextmanager
def inference(precision: str, device: torch.device | str) -> Iterator[None]:
    with torch.inference_mode(), autocast(precision, device):
        yield
