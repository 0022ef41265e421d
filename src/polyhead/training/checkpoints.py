"""Resumable training state without pickle: optimizer tensors and RNG in safetensors, the rest in JSON."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

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
