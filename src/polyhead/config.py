"""One validated config object describes a run: a YAML file plus `--set key=value` overrides.

Errors name the key, and the file and line where it was written.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from polyhead.errors import ConfigError

FREEZE_PATTERN = re.compile(r"^(none|all|backbone|heads:\[?\s*[\w\-]+(\s*,\s*[\w\-]+)*\s*\]?|layers:\d+)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(Strict):
    path: str
    format: Literal["conll", "tsv", "csv", "label_text", "parallel", "jsonl", "snips"]
    text: str = "text"
    label: str = "label"
    tokens: str = "tokens"
    tags: str = "tags"
    labels_path: Optional[str] = None
    limit: Optional[int] = Field(default=None, ge=1)
    encoding: Optional[str] = None
    name: Optional[str] = None  # a label for this eval set in reports, e.g. "es"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown text encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value


class HeadOptions(Strict):
    hidden_dim: Optional[int] = Field(default=None, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    # token heads: also read each word's capitalisation (polyhead.data.word_shape); auto = when the tokenizer
    # lowercases (an uncased model cannot see "EU" vs "eu" otherwise)
    case_features: Union[bool, Literal["auto"]] = "auto"


class TaskConfig(Strict):
    type: Literal["sentence_classification", "token_classification"]
    train: Optional[DataSpec] = None
    dev: Optional[DataSpec] = None
    test: Optional[DataSpec] = None
    eval: list[DataSpec] = Field(default_factory=list)  # more eval sets (other languages) reported with dev
    head: HeadOptions = Field(default_factory=HeadOptions)
    unseen_labels: Literal["error", "skip"] = "error"
    # sentence tasks: names for the labels as the files write them, e.g. SST-2's {0: negative, 1: positive};
    # applied to every split when read, so the head, reports and predictions use the names
    label_names: dict[str, str] = Field(default_factory=dict)

    @field_validator("label_names", mode="before")
    @classmethod
    def _label_keys_as_text(cls, value: Any) -> Any:
        # YAML reads `{0: negative}` with an int key; labels in data files are text
        if isinstance(value, dict):
            return {str(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k: v
                    for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _label_names_for_sentence_tasks(self) -> "TaskConfig":
        if self.label_names and self.type != "sentence_classification":
            raise ValueError("label_names: only for sentence_classification tasks (token tags keep their names)")
        if any(not name.strip() for name in self.label_names.values()):
            raise ValueError("label_names: a label name is empty")
        seen: dict[str, str] = {}
        for raw, name in self.label_names.items():
            if name in seen:
                raise ValueError(f"label_names: {seen[name]!r} and {raw!r} are both named {name!r}; each label needs "
                                 f"its own name")
            seen[name] = raw
        return self

    @property
    def metric(self) -> str:
        return "f1" if self.type == "token_classification" else "accuracy"


# dev metrics a checkpoint can be chosen by (polyhead.evaluation computes them)
SELECTABLE_METRICS = {"sentence_classification": ("accuracy", "macro_f1"),
                      "token_classification": ("f1", "precision", "recall")}


class TrainingConfig(Strict):
    epochs: float = Field(default=3, gt=0)
    max_steps: Optional[int] = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=5e-5, gt=0)
    head_lr: Optional[float] = Field(default=None, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    llrd: float = Field(default=1.0, gt=0, le=1)
    freeze: str = "none"
    sampling: Literal["proportional", "temperature", "round_robin"] = "proportional"
    temperature: float = Field(default=2.0, gt=0)
    loss_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 13
    eval_every: int = Field(default=0, ge=0)  # steps; 0 = at the end of each epoch
    grad_clip: float = Field(default=1.0, ge=0)
    select_metric: str = "mean"  # "mean" of every task's main metric, or "<task>.<metric>"
    cache_features: bool = True  # with freeze: backbone, train heads on encoder outputs computed once

    @field_validator("freeze")
    @classmethod
    def _freeze_syntax(cls, value: str) -> str:
        value = value.strip()
        if not FREEZE_PATTERN.match(value):
            raise ValueError("must be none | all | backbone | heads:[name,...] | layers:K")
        return value


class RunConfig(Strict):
    backbone: Optional[str] = None  # None = the default (distilbert-base-multilingual-cased, offline fallback)
    pooling: Literal["mean", "cls", "max", "mean_sqrt_len"] = "mean"
    normalize: bool = True
    projection_dim: Optional[int] = Field(default=None, ge=1)
    max_length: Optional[int] = Field(default=None, ge=8)
    prefix: Optional[str] = None
    init_from: Optional[str] = None  # a saved polyhead model: encoder and matching heads start from it
    tasks: dict[str, TaskConfig]
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: str = "runs/run"
    _base_dir: Optional[Path] = PrivateAttr(default=None)  # folder of the YAML file, for relative data paths
    _source: Optional[tuple] = PrivateAttr(default=None)  # (YAML path, its text, --set overrides by key)

    def where(self, *loc: str | int) -> str:
        """'file:line: ' (or '--set key=value: ') of where a key was given, for later errors; '' if unknown."""
        if self._source is None:
            return ""
        path, text, overridden = self._source
        for key, assignment in overridden.items():
            if tuple(str(p) for p in loc[:len(key)]) == key:
                return f"--set {assignment}: "
        line = _line_of(text, loc)
        return f"{path}:{line}: " if line else ""

    @model_validator(mode="after")
    def _cross_checks(self) -> "RunConfig":
        if not self.tasks:
            raise ValueError("tasks: at least one task is needed")
        for name in self.training.loss_weights:
            if name not in self.tasks:
                raise ValueError(f"training.loss_weights names unknown task {name!r}; tasks are {list(self.tasks)}")
        weights = self.training.loss_weights
        if weights and all(weights.get(name, 1.0) == 0 for name in self.tasks):
            raise ValueError("training.loss_weights: every task's weight is 0, so nothing would learn")
        self._check_select_metric()
        return self

    def _check_select_metric(self) -> None:
        # checked here, not at the first evaluation: a typo must not cost a run
        select = self.training.select_metric
        if select == "mean":
            return
        task, _, metric = select.partition(".")
        if task not in self.tasks:
            raise ValueError(f"training.select_metric {select!r}: no task {task!r}; use 'mean' or <task>.<metric> "
                             f"with a task of {list(self.tasks)}")
        allowed = SELECTABLE_METRICS[self.tasks[task].type]
        if metric not in allowed:
            raise ValueError(f"training.select_metric {select!r}: {task} is a {self.tasks[task].type} task; its "
                             f"metrics are {', '.join(f'{task}.{m}' for m in allowed)}")
        if self.tasks[task].dev is None:
            raise ValueError(f"training.select_metric {select!r}: tasks.{task} has no dev set to measure it on")

    def frozen_heads(self) -> list[str]:
        freeze = self.training.freeze
        if not freeze.startswith("heads:"):
            return []
        return [n.strip() for n in freeze[6:].strip("[] ").split(",") if n.strip()]


def _line_of(text: str, dotted: tuple) -> int | None:
    """Line (1-based) where a dotted key path is written in the YAML text, if it is there."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in dotted:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def override_key(assignment: str) -> tuple[str, ...]:
    """The dotted key of a `--set key=value`, as a tuple of parts."""
    return tuple(assignment.split("=", 1)[0].strip().split("."))


def apply_override(data: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. training.epochs=1")
    key, raw = assignment.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {assignment!r}: empty key; expected key=value, e.g. training.epochs=1")
    parts = list(override_key(assignment))
    target = data
    for part in parts[:-1]:
        existing = target.get(part)
        if existing is None:
            existing = target[part] = {}
        if not isinstance(existing, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        target = existing
    try:
        target[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML") from exc


def select_tasks(data: dict, only: list[str]) -> None:
    """Keep only the named tasks (and their loss weights): single-task baselines from a joint config."""
    tasks = data.get("tasks") or {}
    unknown = [name for name in only if name not in tasks]
    if unknown:
        raise ConfigError(f"--only {','.join(unknown)}: no such task; the config has {', '.join(tasks)}")
    data["tasks"] = {name: tasks[name] for name in only}
    weights = (data.get("training") or {}).get("loss_weights")
    if isinstance(weights, dict):
        data["training"]["loss_weights"] = {k: v for k, v in weights.items() if k in only}


def load_config(path: str | Path, overrides: list[str] | None = None, only: list[str] | None = None) -> RunConfig:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the run's YAML config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the config as "
                          f"UTF-8") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    for assignment in overrides or []:
        apply_override(data, assignment)
    overridden = {override_key(a): a for a in overrides or []}
    if only:
        select_tasks(data, only)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path, text, overridden)) from None
    config._base_dir = path.resolve().parent
    config._source = (path, text, overridden)
    return config


_LEADING_KEY = re.compile(r"^((?:training|tasks)\.[\w\-]+(?:\.[\w\-]+)*)[ :]")


def describe_validation_error(exc: ValidationError, path: Path, text: str, overridden: dict[tuple, str] | None = None) -> str:
    messages = []
    for error in exc.errors()[:3]:
        loc = tuple(error["loc"])
        msg = error["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        named = _LEADING_KEY.match(msg) if not loc else None
        if named:  # a whole-config check whose message starts with the key it is about: point at that key
            loc = tuple(named.group(1).split("."))
        key = ".".join(str(p) for p in loc) or "(top level)"
        assignment = next((a for k, a in (overridden or {}).items() if loc[:len(k)] == k), None)
        if assignment is None and not loc:  # a whole-config check: blame an override that the message names
            assignment = next((a for k, a in (overridden or {}).items() if ".".join(k[:2]) in error["msg"]), None)
        if assignment is not None:
            where = f"--set {assignment}"
        else:
            line = _line_of(text, loc)
            where = f"{path}:{line}" if line else str(path)
        if error["type"] == "extra_forbidden":
            msg = "unknown key"
        elif error["type"] == "missing":
            msg = "required key is missing"
        messages.append(f"{where}: {msg}" if named else f"{where}: config key '{key}': {msg}")
    more = f" (and {len(exc.errors()) - 3} more)" if len(exc.errors()) > 3 else ""
    return "; ".join(messages) + more


def resolve_data_path(config: RunConfig, raw: str) -> Path:
    """Expand $VARS and ~; a relative path is tried against the working folder, then the config's folder."""
    expanded = Path(os.path.expanduser(os.path.expandvars(raw)))
    if expanded.is_absolute() or expanded.exists():
        return expanded
    base = config._base_dir
    if base is not None and (base / expanded).exists():
        return base / expanded
    return expanded


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
