"""Resumable training state without pickle (optimizer tensors and RNG in safetensors, the rest in JSON), the
checks that a --resume continues the same run, and a clean stop on Ctrl-C / SIGTERM."""
from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from polyhead.config import RunConfig, config_to_dict
from polyhead.errors import ConfigError

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


def save_trainer_state(folder: Path, optimizer: torch.optim.Optimizer, scheduler, info: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {"rng.torch": torch.get_rng_state()}
    scalars: dict[str, dict] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    info = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in info.items()}
    meta = {**info, "param_groups": groups, "scalars": scalars, "scheduler": scheduler.state_dict()["last_epoch"],
            "rng_python": _jsonable(random.getstate()), "rng_numpy": _jsonable(np.random.get_state())}
    tmp_tensors, tmp_json = folder / (STATE_TENSORS + ".tmp"), folder / (STATE_JSON + ".tmp")
    save_file(tensors, str(tmp_tensors))
    tmp_json.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp_tensors, folder / STATE_TENSORS)
    os.replace(tmp_json, folder / STATE_JSON)  # written last: its presence means the state is complete


def load_trainer_state(folder: Path, optimizer: torch.optim.Optimizer, scheduler) -> dict:
    from safetensors.torch import load_file

    meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / STATE_TENSORS))
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.last_epoch = int(meta["scheduler"])
    # LambdaLR's rate at the saved step, computed directly (get_lr() outside step() warns)
    rates = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(optimizer.param_groups, rates):
        group["lr"] = lr
    scheduler._last_lr = list(rates)
    torch.set_rng_state(tensors["rng.torch"])
    random.setstate(_tuples(meta["rng_python"]))
    np.random.set_state(tuple(_np_state(meta["rng_numpy"])))
    return meta


def has_trainer_state(folder: Path) -> bool:
    return (folder / STATE_JSON).is_file() and (folder / STATE_TENSORS).is_file()


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _np_state(value):
    name, keys, pos, has_gauss, cached = value
    return name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached


def check_resumable(config: RunConfig, output: Path) -> None:
    """--resume continues the same run: the same backbone, tasks and settings as its saved config.json."""
    saved_path = output / "config.json"
    try:
        full = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"--resume: {saved_path} is missing or unreadable, so {output} cannot be "
                          f"resumed; train into a new folder") from None
    saved = full.get("tasks", {})
    if full.get("backbone") != config.backbone:
        raise ConfigError(f"--resume: {output} was trained on backbone {full.get('backbone')!r}, but this "
                          f"config names {config.backbone!r}; resume with the run's own config "
                          f"({saved_path}) or train into a new folder")
    had = {name: task.get("type") for name, task in saved.items()}
    has = {name: task.type for name, task in config.tasks.items()}
    if had != has:
        show = lambda tasks: ", ".join(f"{n} ({t})" for n, t in tasks.items()) or "none"  # noqa: E731
        raise ConfigError(f"--resume: {output} was trained with tasks {show(had)}, but this config has "
                          f"{show(has)}; resume with the run's own config ({saved_path}) or train into a new "
                          f"folder")
    try:  # the saved config read as this version reads configs, so keys added since take their defaults
        was = _flatten(config_to_dict(RunConfig.model_validate(full)))
    except ValueError:
        return
    now = _flatten(config_to_dict(config))
    changed = [k for k in sorted(set(was) | set(now)) if k.split(".")[0] not in ("output", "init_from")
               and was.get(k) != now.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {was.get(k)!r} in the run, {now.get(k)!r} now" for k in changed[:4])
        more = f" (and {len(changed) - 4} more)" if len(changed) > 4 else ""
        raise ConfigError(f"--resume: this config differs from the one {output} was trained with: "
                          f"{shown}{more}; give the same --set overrides, or resume with the run's own config: "
                          f"polyhead train {saved_path} -o {output} --resume")


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class StopRequest:
    """While training: SIGINT (Ctrl-C) or SIGTERM only asks to stop at the next step boundary, so the state saved
    is a whole step's; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            print("polyhead: second Ctrl-C: stopping now, without saving this step; checkpoints already written "
                  "are kept whole (--resume continues from last/ if there is one)", file=sys.stderr)
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
