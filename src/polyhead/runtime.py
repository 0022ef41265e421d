"""Device, precision and thread choices shared by encoding, training and prediction.

precision (everywhere: SentenceEncoder, MultiTaskModel, training config, CLI):
  auto  bf16 where the hardware runs it fast (AMX or AVX-512 BF16 on CPU, a bf16 GPU), else fp32
  fp32  exact
  bf16  inference runs a bf16 copy of the weights (every matmul, norm and activation in bf16, like
        `SentenceTransformer(..., model_kwargs={"torch_dtype": torch.bfloat16})`); training uses bf16
        autocast over fp32 master weights. Cosine to fp32 >= 0.999 per sentence (see docs/performance.md).
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
from typing import Any, Iterator, Literal

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


def explain_precision(precision: str, device: torch.device | str | None = None) -> str:
    """One line that says what `precision` becomes here and why, e.g. 'bf16 (auto: CPU has avx512_bf16)'."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return f"{chosen} (asked for)"
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        why = "GPU supports bf16" if chosen == "bf16" else "GPU lacks bf16"
    else:
        found = sorted(f for f in ("amx_bf16", "avx512_bf16") if f in cpu_flags())
        why = f"CPU has {', '.join(found)}" if found else "CPU has neither AMX nor AVX-512 BF16"
    return f"{chosen} (auto: {why})"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Training under bf16: autocast keeps layer norms, softmax and the loss in fp32 over fp32 master weights."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once (GEMMs gain nothing from a core's 2nd thread)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores = set()
    try:
        for cpu in allowed:
            path = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
            with open(path + "physical_package_id") as pkg, open(path + "core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
    except OSError:
        return max(1, len(allowed))
    return max(1, len(cores))


_threads_configured = False


def configure_threads() -> int:
    """One intra-op thread per physical core this process may use, unless the user already chose
    (OMP_NUM_THREADS / MKL_NUM_THREADS or an earlier torch.set_num_threads win). Done once per process."""
    global _threads_configured
    if not _threads_configured:
        _threads_configured = True
        user_set = any(v in os.environ for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
        if not user_set and torch.get_num_threads() == (os.cpu_count() or 1):  # still torch's default
            torch.set_num_threads(physical_cores())
    return torch.get_num_threads()


@contextlib.contextmanager
def inference(precision: str, device: torch.device | str) -> Iterator[None]:
    """No autograd. Under bf16 the encoder runs its bf16 weight copy (see LowPrecisionWeights), so autocast
    only covers what is left in fp32 (heads, projection)."""
    with torch.inference_mode(), autocast(precision, device):
        yield


class LowPrecisionWeights:
    """A bf16 copy of a module's floating-point parameters and buffers, for inference through
    `torch.func.functional_call`. The fp32 module stays the one that trains and saves; the copy is rebuilt
    when a parameter was replaced or its version moved (load_state_dict, plain optimizer steps), and dropped
    by `clear()`, which SentenceEncoder.train() calls: torch's fused AdamW does NOT bump tensor versions."""

    def __init__(self, dtype: torch.dtype = torch.bfloat16) -> None:
        self.dtype = dtype
        self._key: tuple | None = None
        self._tensors: dict[str, torch.Tensor] = {}

    @staticmethod
    def _state_key(module: torch.nn.Module) -> tuple:
        return tuple((t.data_ptr(), t._version, t.dtype, t.device)
                     for t in itertools.chain(module.parameters(), module.buffers()))

    def tensors(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        key = self._state_key(module)
        if key != self._key:
            self._tensors = {}  # free the old copy before making the new one
            with torch.no_grad():
                named = dict(module.named_parameters(remove_duplicate=False))
                named.update(module.named_buffers(remove_duplicate=False))
                cast: dict[int, torch.Tensor] = {}  # tied weights stay tied
                for name, tensor in named.items():
                    if tensor.is_floating_point():
                        if id(tensor) not in cast:
                            cast[id(tensor)] = tensor.detach().to(self.dtype)
                        self._tensors[name] = cast[id(tensor)]
            self._key = key
        return self._tensors

    def __call__(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        return torch.func.functional_call(module, self.tensors(module), args, kwargs, strict=False)

    def clear(self) -> None:
        self._key, self._tensors = None, {}

