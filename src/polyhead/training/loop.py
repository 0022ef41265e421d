"""The training loop, readable top to bottom: build model -> read data -> freeze -> optimise -> evaluate -> save."""
from __future__ import annotations

import json
import math
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from polyhead import runtime
from polyhead.backbones import load_backbone
from polyhead.config import RunConfig, config_to_dict
from polyhead.data.batching import pad_batch
from polyhead.encoder import SentenceEncoder, folder_settings
from polyhead.errors import ConfigError, DataError
from polyhead.evaluation import evaluate_set, main_metric, score_set
from polyhead.heads import ClassificationHead
from polyhead.model import MultiTaskModel
from polyhead.saving import read_polyhead_config, recover_folder
from polyhead.training import feature_cache as fc
from polyhead.training.checkpoints import (StopRequest, check_resumable, has_trainer_state,
                                           load_trainer_state, save_trainer_state)
from polyhead.training.data_prep import IGNORE, build_labels, check_labels, encode_set, read_split
from polyhead.training.freezing import apply_freeze, count_parameters, parameter_groups
from polyhead.training.sampling import task_probabilities, task_schedule


def build_model(config: RunConfig) -> MultiTaskModel:
    """Encoder and heads from `init_from` when given, else a fresh encoder on the configured backbone."""
    precision = config.training.precision
    if config.init_from:
        return MultiTaskModel.from_pretrained(config.init_from, precision=precision)
    backbone = load_backbone(config.backbone)
    # the folder's own max length (e.g. sentence-transformers' max_seq_length 256 for MiniLM), as
    # SentenceEncoder.from_pretrained reads it, unless the config sets one
    max_length = config.max_length or folder_settings(backbone).get("max_length")
    encoder = SentenceEncoder(backbone, pooling=config.pooling, normalize=config.normalize,
                              projection_dim=config.projection_dim, max_length=max_length,
                              prefix=config.prefix, precision=precision)
    return MultiTaskModel(encoder, {})


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, then sort by length inside windows of 50 batches: random order, little padding."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def make_adamw(groups) -> torch.optim.Optimizer:
    """AdamW with torch's fused kernel where it has one for these tensors (CPU and CUDA): one pass over memory
    per step instead of ~10 small ops per parameter tensor (about 10x faster steps on CPU), the same update."""
    groups = list(groups)
    try:
        return torch.optim.AdamW(groups, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups)


FEATURE_SPILL_DIR = "feature_cache"


class Trainer:
    def __init__(self, config: RunConfig, output: str | Path | None = None, resume: bool = False,
                 show_progress: bool = True) -> None:
        self.config = config
        self.cfg = config.training
        self.output = Path(output or config.output)
        self.resume = resume
        self.show_progress = show_progress
        self.log_path = self.output / "metrics.jsonl"

    # -- setup ----------------------------------------------------------------------------------------
    def _check_freeze(self) -> None:
        freeze = self.cfg.freeze
        if freeze == "all" and not self.config.init_from:
            raise ConfigError("training.freeze: 'all' trains nothing, so the heads must come from a trained model: "
                              "set init_from: <saved polyhead model folder> (the run then only evaluates)")
        frozen = self.config.frozen_heads()
        loaded = set(self.model.heads) if self.config.init_from else set()
        for name in frozen:
            if name not in self.config.tasks:
                raise ConfigError(f"training.freeze: head {name!r} is not a task of this config ({list(self.config.tasks)})")
            if name not in loaded:
                raise ConfigError(f"training.freeze: head {name!r} would stay at its random initialisation; a frozen "
                                  f"head must come from a trained model (init_from)")

    def _prepare_data(self) -> None:
        tokenizer = self.model.encoder.text_tokenizer
        prefix = self.model.encoder.prefix
        self.train_sets, self.dev_sets, self.eval_sets = {}, {}, {}
        for name, task in self.config.tasks.items():
            existing = self.model.heads[name] if name in self.model.heads else None
            train = read_split(self.config, name, task, task.train) if task.train else None
            if train is not None and not train:
                raise DataError(f"{self.config.where('tasks', name, 'train', 'path')}tasks.{name}.train: no examples "
                                f"in {task.train.path}")
            if train is None and existing is None:
                raise ConfigError(f"tasks.{name}.train: required (the head is new, so it needs training data)")
            if existing is not None and existing.task_type != task.type:
                raise ConfigError(f"tasks.{name}.type: {task.type}, but the head {name!r} loaded from init_from is "
                                  f"a {existing.task_type} head")
            labels = existing.labels if existing is not None else build_labels(task.type, train)
            if existing is None and len(labels) < 2:
                what = "only the label(s)" if task.type == "sentence_classification" else "no entity tags, only"
                raise DataError(f"tasks.{name}.train: {task.train.path} has {what} {labels}; a classifier needs at "
                                f"least 2 labels")
            if existing is not None and train is not None:
                new = [lab for lab in build_labels(task.type, train) if lab not in existing.labels]
                if new:
                    raise DataError(f"tasks.{name}.train: labels {new} are not in the head loaded from "
                                    f"{self.config.init_from}")
            if existing is None:
                in_dim = self.model.encoder.backbone.hidden_size if task.type == "token_classification" \
                    else self.model.encoder.dimension
                case = task.head.case_features
                if case == "auto":  # on where the tokenizer lowercases: the head gets the capitals back
                    case = task.type == "token_classification" and self.model.encoder.backbone.lowercases
                self.model.heads[name] = ClassificationHead(task.type, in_dim, labels, task.head.hidden_dim,
                                                            task.head.dropout, bool(case))
            if train is not None and self.cfg.freeze != "all":
                self.train_sets[name] = encode_set(name, "train", task.type, train, labels, tokenizer, prefix)
            if task.dev:
                dev = check_labels(name, task, read_split(self.config, name, task, task.dev), labels)
                self.dev_sets[name] = encode_set(name, "dev", task.type, dev, labels, tokenizer, prefix)
            for i, spec in enumerate(task.eval):
                examples = check_labels(name, task, read_split(self.config, name, task, spec), labels)
                self.eval_sets[(name, spec.name or f"eval{i}")] = encode_set(
                    name, spec.name or f"eval{i}", task.type, examples, labels, tokenizer, prefix)
        unknown = [t for t in self.model.heads if t not in self.config.tasks]
        for name in unknown:  # heads from init_from that this config does not train or evaluate
            del self.model.heads[name]

    # -- logging --------------------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate_dev(self) -> dict[str, dict]:
        results = {}
        for name, encoded in self.dev_sets.items():
            if self.cached_dev.get(name) is not None:
                pred = fc.predict_cached(self.model, name, self.cached_dev[name])
                results[name] = score_set(encoded.task_type, encoded.gold, pred, self.model.heads[name].labels)
            else:
                results[name] = evaluate_set(self.model, name, encoded, self.cfg.batch_size * 2)
        return results

    def selection_score(self, results: dict[str, dict]) -> float:
        if not results:
            return -self.last_loss
        if self.cfg.select_metric == "mean":
            return float(np.mean([main_metric(self.dev_sets[t].task_type, m) for t, m in results.items()]))
        task, _, metric = self.cfg.select_metric.partition(".")
        if task not in results or metric not in results[task]:
            raise ConfigError(f"training.select_metric: {self.cfg.select_metric!r} is not among the dev metrics")
        return float(results[task][metric])

    # -- batches --------------------------------------------------------------------------------------
    def batch_stream(self):
        """Deterministic (task, batch) pairs for the whole run; replaying it is how --resume finds its place."""
        rngs = {name: random.Random(f"{self.cfg.seed}-{name}") for name in self.train_sets}
        pools: dict[str, list] = {name: [] for name in self.train_sets}

        def next_batch(name: str):
            if not pools[name]:  # the same batches whether or not features are cached
                lengths = [len(x) for x in self.train_sets[name].ids]
                pools[name] = bucketed_batches(lengths, self.cfg.batch_size, rngs[name])
                pools[name].reverse()
            return pools[name].pop()

        epoch = 0
        while True:
            schedule = task_schedule(self.batches_per_task, self.cfg.sampling, self.cfg.temperature,
                                     seed=self.cfg.seed * 1000 + epoch)
            for name in schedule:
                yield epoch, name, next_batch(name)
            epoch += 1

    def loss_on(self, name: str, batch) -> torch.Tensor:
        head = self.model.heads[name]
        if name in self.cached_train:
            features, targets, shapes = fc.gather(self.cached_train[name], batch)
            logits = head(features.to(self.model.encoder.device_), shapes)
        else:
            encoded = self.train_sets[name]
            ids, mask = pad_batch([encoded.ids[i] for i in batch], self.model.encoder.text_tokenizer.pad_id)
            device = self.model.encoder.device_
            shapes = encoded.batch_shapes(batch) if head.case_features else None
            logits = self.model(ids.to(device), mask.to(device), [name], shapes)[name]
            if head.reads_tokens:
                targets = torch.full(ids.shape, IGNORE, dtype=torch.long)
                for row, i in enumerate(batch):
                    targets[row, : len(encoded.targets[i])] = torch.as_tensor(encoded.targets[i])
            else:
                targets = torch.as_tensor([encoded.targets[i] for i in batch], dtype=torch.long)
        targets = targets.to(logits.device)
        return nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                           ignore_index=IGNORE)

    # -- the run --------------------------------------------------------------------------------------
    def run(self) -> dict:
        started = time.perf_counter()
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        recover_folder(self.output / "last")
        recover_folder(self.output / "best")
        resuming = self.resume and has_trainer_state(self.output / "last")
        if self.resume and not resuming:  # a mistyped folder must not quietly become a new run
            raise ConfigError(f"--resume: no checkpoint to continue from in {self.output / 'last'} (a run writes "
                              f"one at each evaluation and when stopped with Ctrl-C); without --resume "
                              f"(--overwrite for a folder that holds a run) it starts from step 0")
        original_init_from = self.config.init_from
        if resuming:
            check_resumable(self.config, self.output)
            self.config.init_from = str(self.output / "last")
        self.model = build_model(self.config)
        if resuming:  # the weights come from last/, but the run's backbone record stays the one it was built on
            record = (read_polyhead_config(self.output / "last") or {}).get("backbone", {})
            self.model.encoder.backbone.source = record.get("source", self.model.encoder.backbone.source)
        try:  # freeze errors point at the training.freeze line of the config
            self._check_freeze() if not resuming else None
            self._prepare_data()
            frozen = apply_freeze(self.model, cfg.freeze)
        except ConfigError as exc:
            if not str(exc).startswith("training.freeze"):
                raise
            raise ConfigError(f"{self.config.where('training', 'freeze')}{exc}") from None
        trainable, total = count_parameters(self.model)
        self.output.mkdir(parents=True, exist_ok=True)
        if not resuming:
            self.log_path.unlink(missing_ok=True)
        as_run = {**config_to_dict(self.config), "init_from": original_init_from}  # not last/ after a resume
        (self.output / "config.json").write_text(json.dumps(as_run, indent=2), encoding="utf-8")
        encoder = self.model.encoder
        print(f"polyhead: backbone {encoder.backbone.describe()}; precision {encoder.precision}; "
              f"trainable {trainable:,} of {total:,} parameters; frozen: {', '.join(frozen) or 'nothing'}",
              file=sys.stderr)

        use_cache = cfg.freeze == "backbone" and cfg.cache_features
        cache_started = time.perf_counter()
        spill = self.output / FEATURE_SPILL_DIR  # only caches over the RAM limit go there; removed at the end
        self.cached_train = {n: fc.compute_features(self.model, s, spill_dir=spill)
                             for n, s in self.train_sets.items()} if use_cache else {}
        self.cached_dev = {n: fc.compute_features(self.model, s, spill_dir=spill)
                           for n, s in self.dev_sets.items()} if use_cache else {}
        cache_seconds = time.perf_counter() - cache_started
        self.last_loss = math.inf
        self.batches_per_task = {n: math.ceil(len(s) / cfg.batch_size) for n, s in self.train_sets.items()}
        steps_per_epoch = len(task_schedule(self.batches_per_task, cfg.sampling, cfg.temperature, 0))
        total_steps = 0 if cfg.freeze == "all" else (cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch)))
        frozen_heads = self.config.frozen_heads()
        before = {n: m for n, m in self.evaluate_dev().items() if n in frozen_heads} if frozen_heads else {}

        summary = {"backbone": encoder.backbone.describe(), "precision": encoder.precision, "freeze": cfg.freeze,
                   "trainable_parameters": trainable, "total_parameters": total, "total_steps": total_steps,
                   "task_probabilities": task_probabilities(self.batches_per_task, cfg.sampling, cfg.temperature)
                   if self.batches_per_task else {}}
        if total_steps == 0:
            results = self.evaluate_dev()
            self.log({"type": "eval", "step": 0, "epoch": 0, "tasks": results})
            self.model.save(self.output / "best", {"training": summary})
            return self._finish(summary, results, 0, started, before)

        optimizer = make_adamw(parameter_groups(self.model, cfg.lr, cfg.llrd, cfg.weight_decay, cfg.head_lr))
        from transformers import get_linear_schedule_with_warmup

        scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
        step, best_score, best_step = 0, -math.inf, 0
        best_results: dict | None = None  # dev metrics of the best checkpoint, so it need not be re-evaluated
        if resuming:
            meta = load_trainer_state(self.output / "last", optimizer, scheduler)
            step, best_step = meta["step"], meta["best_step"]
            best_score = -math.inf if meta["best_score"] is None else meta["best_score"]
            if step >= total_steps:
                raise ConfigError(f"--resume: the run in {self.output} already reached step {step}, and this config "
                                  f"trains {total_steps} steps in all: nothing to continue")
            print(f"polyhead: resuming at step {step} of {total_steps}", file=sys.stderr)
        eval_every = cfg.eval_every or steps_per_epoch
        encoder_frozen = cfg.freeze in ("backbone", "all")
        # a resumed frozen-encoder run's last/ already holds this encoder's weights
        weights_from = self.output / "last" if encoder_frozen and resuming else None
        stream = self.batch_stream()
        for _ in range(step):
            next(stream)
        from tqdm.auto import tqdm

        # disable=None: no bar when stderr is not a terminal (a log file), where its updates would pile up
        bar = tqdm(total=total_steps, initial=step, unit="step", file=sys.stderr,
                   disable=None if self.show_progress else True, mininterval=1.0)

        def save_last() -> None:
            nonlocal weights_from
            # the trainer state goes into the same folder before it is swapped in: last/ is always whole
            self.model.save(self.output / "last", {"training": {**summary, "step": step}}, weights_from,
                            finish=lambda folder: save_trainer_state(
                                folder, optimizer, scheduler,
                                {"step": step, "best_score": best_score, "best_step": best_step}))
            weights_from = self.output / "last" if encoder_frozen else None

        running: dict[str, list[float]] = {}
        seen, step_seconds = 0, 0.0  # step_seconds: optimisation only, without evaluations and checkpoints
        train_started = time.perf_counter()
        self._train_mode()
        results: dict = {}
        stop = StopRequest()
        try:
            while step < total_steps:
                if stop.signal:  # Ctrl-C or SIGTERM: finish the step in hand, keep it in last/, then stop
                    bar.close()
                    save_last()
                    shutil.rmtree(self.output / FEATURE_SPILL_DIR, ignore_errors=True)
                    print(f"polyhead: {stop.signal} at step {step} of {total_steps}; saved {self.output / 'last'}; "
                          f"continue with the same command plus --resume", file=sys.stderr)
                    raise KeyboardInterrupt
                tick = time.perf_counter()
                epoch, name, batch = next(stream)
                with runtime.autocast(encoder.precision, encoder.device_):
                    loss = self.loss_on(name, batch) * cfg.loss_weights.get(name, 1.0)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen += len(batch)
                self.last_loss = float(loss.detach())
                running.setdefault(name, []).append(self.last_loss)
                if step % 10 == 0 or step == total_steps:
                    means = {t: round(float(np.mean(v)), 4) for t, v in running.items()}
                    lr_by_group = {g.get("name"): g["lr"] for g in optimizer.param_groups}
                    self.log({"type": "train", "step": step, "epoch": epoch, "loss": means,
                              "lr": lr_by_group.get("backbone depth 0"), "head_lr": lr_by_group.get("heads")})
                    bar.set_postfix({t: f"{v:.3f}" for t, v in means.items()})
                    running = {}
                bar.update(1)
                step_seconds += time.perf_counter() - tick
                if step % eval_every == 0 or step == total_steps:
                    results = self.evaluate_dev()
                    score = self.selection_score(results)
                    self.log({"type": "eval", "step": step, "epoch": epoch, "tasks": results, "select": score})
                    # a frozen encoder's weights never change: every checkpoint links the first one's weight files
                    if score > best_score:
                        best_score, best_step, best_results = score, step, results
                        self.model.save(self.output / "best", {"training": {**summary, "step": step}}, weights_from)
                        weights_from = self.output / "best" if encoder_frozen else None
                    save_last()
                    self._train_mode()
        finally:
            stop.restore()
        bar.close()
        train_seconds = time.perf_counter() - train_started
        summary.update(best_step=best_step, best_score=best_score,
                       train_sentences_per_s=round(seen / train_seconds, 2) if train_seconds else None,
                       step_sentences_per_s=round(seen / step_seconds, 2) if step_seconds else None,
                       train_seconds=round(train_seconds, 2), feature_cache_seconds=round(cache_seconds, 2))
        best = MultiTaskModel.from_pretrained(self.output / "best", precision=cfg.precision)
        self.model = best
        if cfg.freeze != "backbone":  # a frozen encoder reloads identical, so its cached dev features stay valid
            self.cached_dev = {}
        finished = self._finish(summary, best_results or self.evaluate_dev(), step, started, before)
        shutil.rmtree(self.output / FEATURE_SPILL_DIR, ignore_errors=True)
        return finished

    def _train_mode(self) -> None:
        self.model.train()
        if self.cfg.freeze in ("backbone", "all"):
            self.model.encoder.transformer.eval()  # frozen encoder: no dropout, it computes what a cache holds

    def _finish(self, summary: dict, results: dict, step: int, started: float, before: dict) -> dict:
        summary["dev"] = results
        summary["eval"] = {f"{t}/{s}": evaluate_set(self.model, t, enc, self.cfg.batch_size * 2)
                           for (t, s), enc in self.eval_sets.items()}
        if before:
            summary["frozen_heads"] = {n: {"before": main_metric(self.dev_sets[n].task_type, before[n]),
                                           "after": main_metric(self.dev_sets[n].task_type, results[n])}
                                       for n in before}
        summary["wall_seconds"] = round(time.perf_counter() - started, 2)
        summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        summary["steps"] = step
        (self.output / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        try:  # loss / dev-metric curves and confusion matrices as PNG next to metrics.jsonl
            from polyhead.plots import plot_run

            plot_run(self.output)
        except Exception as exc:  # noqa: BLE001 - a plotting failure must never fail a finished run
            print(f"polyhead: warning: plots not written ({type(exc).__name__}: {exc})", file=sys.stderr)
        return summary
