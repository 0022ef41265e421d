"""`polyhead study freezing`: the freezing strategies side by side, on the same data and budget.

Every scenario is the run config plus a few overrides (the same `key=value` syntax as `--set`), written as
its own YAML under <study>/configs/ and trained by `polyhead train` in a separate process, so that each
scenario's peak memory is its own: the child writes its VmHWM (peak resident memory of its own address
space) when it exits. The Trainer's summary value is ru_maxrss, which is process-wide and only grows, so it
cannot separate runs made in one process, and on Linux it also starts from the parent's size at fork.

Scenarios (names as in the table):
    frozen-encoder       freeze: backbone, heads trained on encoder features cached once
    frozen-encoder-long  the same with 30x the steps and a higher head lr: cheap on cached features
    full                 freeze: none, one learning rate for every layer
    full-llrd            freeze: none, layer-wise LR decay (lr * llrd ** depth from the top)
    bottom-K             freeze: layers:K (embeddings + bottom K transformer layers frozen), for each K
    eval-only            freeze: all on the `full` model: no training, evaluation only (inference cost)
    stage-a              every task but the added one, trained jointly (freeze: none)
    add-frozen-head      from stage-a: train the added task (and the others), the watched head frozen,
                         encoder moving: how much the moving encoder costs the frozen head
    add-frozen-head+enc  the same with the encoder frozen too (freeze: backbone; the watched head gets no
                         training data, so it does not move either)
Outputs in the study folder: study.md (table), study.csv, study.json, metric_vs_params.png,
metric_vs_time.png, configs/<scenario>.yaml, logs/<scenario>.log, and one run folder per scenario.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from polyhead.config import RunConfig, apply_override, config_to_dict, load_config, resolve_data_path
from polyhead.errors import ConfigError

PEAK_FILE_ENV = "POLYHEAD_PEAK_FILE"
TRAIN_ENTRY = ("from polyhead.study import record_peak_at_exit; record_peak_at_exit(); "
               "from polyhead.cli import main; main()")


def _vmhwm_mb() -> float | None:
    """This process's own peak resident memory (Linux VmHWM): unlike ru_maxrss it does not inherit the
    parent's size at fork/exec, so a child started by a big parent still reports only its own peak."""
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def record_peak_at_exit() -> None:
    """In a study child: write the process's own peak memory to $POLYHEAD_PEAK_FILE when it exits."""
    import atexit
    import resource

    target = os.environ.get(PEAK_FILE_ENV)
    if not target:
        return

    def write() -> None:
        unit = 1024 * 1024 if sys.platform == "darwin" else 1024
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit
        Path(target).write_text(json.dumps({"vmhwm_mb": _vmhwm_mb(), "ru_maxrss_mb": maxrss}), encoding="utf-8")

    atexit.register(write)


@dataclass
class Scenario:
    name: str
    title: str
    overrides: list[str] = field(default_factory=list)  # `--set` assignments on the study config
    drop_tasks: list[str] = field(default_factory=list)  # tasks removed from the config (not expressible by --set)
    depends_on: str | None = None  # init_from <study>/<depends_on>/best
    watch_head: str | None = None  # report this head's dev metric before (in depends_on) and after


def default_heads(tasks: list[str]) -> tuple[str, str]:
    """(head to freeze, task to add): topic and sentiment when present, else the first and the last task."""
    frozen = "topic" if "topic" in tasks else tasks[0]
    added = "sentiment" if "sentiment" in tasks and frozen != "sentiment" else tasks[-1]
    return frozen, added


LONG_FACTOR = 30  # frozen-encoder-long: this many times the step budget, affordable on cached features
LONG_HEAD_LR = 3e-3


def freezing_scenarios(tasks: list[str], layers: list[int], llrd: float, frozen_head: str | None = None,
                       added_task: str | None = None, training: dict | None = None) -> list[Scenario]:
    training = training or {}
    long_budget = [f"training.epochs={float(training.get('epochs', 3)) * LONG_FACTOR:g}"]
    if training.get("max_steps"):
        long_budget.append(f"training.max_steps={int(training['max_steps']) * LONG_FACTOR}")
    scenarios = [
        Scenario("frozen-encoder", "pretrained encoder as is; heads trained on cached features",
                 ["training.freeze=backbone", "training.cache_features=true"]),
        Scenario("frozen-encoder-long", f"as frozen-encoder, {LONG_FACTOR}x the steps at head lr {LONG_HEAD_LR:g} "
                 "(each step costs microseconds on cached features); evaluated at the end only",
                 ["training.freeze=backbone", "training.cache_features=true", *long_budget,
                  f"training.head_lr={LONG_HEAD_LR:g}", "training.eval_every=1000000000"]),
        Scenario("full", "full fine-tuning, one learning rate", ["training.freeze=none", "training.llrd=1.0"]),
        Scenario("full-llrd", f"full fine-tuning, layer-wise LR decay {llrd} per layer",
                 ["training.freeze=none", f"training.llrd={llrd}"]),
    ]
    for k in layers:
        scenarios.append(Scenario(f"bottom-{k}", f"embeddings + bottom {k} layers frozen, the rest fine-tuned",
                                  [f"training.freeze=layers:{k}", "training.llrd=1.0"]))
    scenarios.append(Scenario("eval-only", "whole network frozen (the `full` model): evaluation only",
                              ["training.freeze=all"], depends_on="full"))
    if len(tasks) >= 2:
        default_frozen, default_added = default_heads(tasks)
        frozen, added = frozen_head or default_frozen, added_task or default_added
        for name, role in ((frozen, "--frozen-head"), (added, "--added-task")):
            if name not in tasks:
                raise ConfigError(f"{role} {name!r} is not a task of the config ({', '.join(tasks)})")
        if frozen == added:
            raise ConfigError(f"--frozen-head and --added-task must differ (both {frozen!r})")
        others = [t for t in tasks if t != added]
        scenarios += [
            Scenario("stage-a", f"stage A: {' + '.join(others)} jointly, without {added}", ["training.freeze=none"],
                     drop_tasks=[added]),
            Scenario("add-frozen-head", f"stage B: add {added}, head {frozen} frozen, encoder trains",
                     [f"training.freeze=heads:[{frozen}]", f"tasks.{frozen}.train="], depends_on="stage-a",
                     watch_head=frozen),
            Scenario("add-frozen-head+enc", f"stage B: add {added}, head {frozen} and encoder frozen",
                     ["training.freeze=backbone", f"tasks.{frozen}.train="], depends_on="stage-a",
                     watch_head=frozen),
        ]
    return scenarios


# -- configs --------------------------------------------------------------------------------------------
def _absolute_paths(data: dict, config: RunConfig) -> dict:
    """Data paths and init_from made absolute, so a scenario's YAML works from any folder."""
    data = copy.deepcopy(data)
    for task in data["tasks"].values():
        specs = [task.get(split) for split in ("train", "dev", "test")] + list(task.get("eval") or [])
        for spec in specs:
            if spec:
                spec["path"] = str(resolve_data_path(config, spec["path"]).resolve())
                if spec.get("labels_path"):
                    spec["labels_path"] = str(resolve_data_path(config, spec["labels_path"]).resolve())
    if data.get("init_from"):
        data["init_from"] = str(resolve_data_path(config, data["init_from"]).resolve())
    return data


def scenario_config(base: dict, base_config: RunConfig, scenario: Scenario, study_dir: Path) -> dict:
    """The scenario's full config as a plain dict, validated."""
    data = copy.deepcopy(base)
    for assignment in scenario.overrides:
        apply_override(data, assignment)
    for name in scenario.drop_tasks:
        data["tasks"].pop(name, None)
        data["training"].get("loss_weights", {}).pop(name, None)
    if scenario.depends_on:
        data["init_from"] = str((study_dir / scenario.depends_on / "best").resolve())
    data["output"] = str((study_dir / scenario.name).resolve())
    try:
        config = RunConfig.model_validate(data)
    except Exception as exc:  # noqa: BLE001 - name the scenario, then the pydantic message
        raise ConfigError(f"study scenario {scenario.name}: invalid config ({exc})") from exc
    config._base_dir = base_config._base_dir
    return _absolute_paths(config_to_dict(config), base_config)


def equivalent_command(config_path: str, scenario: Scenario, study_dir: Path, user_sets: list[str]) -> str:
    parts = ["polyhead", "train", config_path]
    for assignment in list(user_sets) + scenario.overrides:
        parts += ["--set", assignment]
    if scenario.depends_on:
        parts += ["--set", f"init_from={study_dir / scenario.depends_on / 'best'}"]
    parts += ["-o", str(study_dir / scenario.name)]
    command = shlex.join(parts)
    if scenario.drop_tasks:
        command += f"   # with task(s) {', '.join(scenario.drop_tasks)} removed from the YAML"
    return command


# -- running ----------------------------------------------------------------------------------------------
def run_process(command: list[str], log_path: Path, env: dict | None = None) -> dict:
    """Run a command, its output into log_path; returns rc, wall seconds and the child's own peak RSS.

    The peak is the child's VmHWM, written at exit by record_peak_at_exit (see TRAIN_ENTRY). Without it,
    the fallback is ru_maxrss from os.wait4, which on Linux is at least the parent's RSS at fork time.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    peak_file = log_path.with_suffix(".peak.json")
    peak_file.unlink(missing_ok=True)
    env = {**(os.environ if env is None else env), PEAK_FILE_ENV: str(peak_file)}
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait4_mb = cpu = None
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime  # the child's own CPU time: comparable under shared CPUs
                # Linux reports ru_maxrss in KiB, macOS in bytes
                wait4_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
            else:
                proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    seconds = round(time.perf_counter() - started, 2)
    own = None
    if peak_file.is_file():
        try:
            own = json.loads(peak_file.read_text(encoding="utf-8")).get("vmhwm_mb")
        except (OSError, json.JSONDecodeError):
            own = None
    peak, source = (own, "VmHWM") if own is not None else (wait4_mb, "wait4 ru_maxrss")
    return {"rc": proc.returncode, "process_seconds": seconds,
            "cpu_seconds": round(cpu, 1) if cpu is not None else None,
            "child_peak_rss_mb": round(peak, 1) if peak is not None else None, "peak_source": source,
            "wait4_maxrss_mb": round(wait4_mb, 1) if wait4_mb is not None else None}


def run_in_process(yaml_path: Path, run_dir: Path, log_path: Path) -> dict:
    """The same training in this process: no per-scenario peak memory (ru_maxrss only grows)."""
    import traceback

    from polyhead.training.loop import Trainer

    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        Trainer(load_config(yaml_path), run_dir, show_progress=False).run()
        rc, message = 0, "ok (in process)\n"
    except Exception:  # noqa: BLE001 - recorded as a failed scenario, like a failing subprocess
        rc, message = 1, traceback.format_exc()
    log_path.write_text(message, encoding="utf-8")
    return {"rc": rc, "process_seconds": round(time.perf_counter() - started, 2), "child_peak_rss_mb": None,
            "in_process": True}


def _main_metric(task_type: str) -> str:
    return "f1" if task_type == "token_classification" else "accuracy"


def _row(scenario: Scenario, config: dict, summary: dict | None, proc: dict, tasks: dict[str, str],
         results: dict[str, dict], command: str, status: str) -> dict:
    training = config["training"]
    row = {"scenario": scenario.name, "title": scenario.title, "status": status, "freeze": training["freeze"],
           "llrd": training["llrd"], "init_from": scenario.depends_on or "",
           "trained_tasks": ",".join(t for t, spec in config["tasks"].items()
                                     if spec.get("train") and training["freeze"] != "all"),
           "process_seconds": proc.get("process_seconds"), "cpu_seconds": proc.get("cpu_seconds"),
           "peak_rss_mb": proc.get("child_peak_rss_mb"),
           "command": command}
    if summary is None:
        return row
    row.update(trainable_parameters=summary.get("trainable_parameters"),
               total_parameters=summary.get("total_parameters"), steps=summary.get("steps"),
               wall_seconds=summary.get("wall_seconds"), train_sentences_per_s=summary.get("train_sentences_per_s"),
               precision=summary.get("precision"))
    scores = []
    for task, metric in tasks.items():
        value = (summary.get("dev") or {}).get(task, {}).get(metric)
        row[f"{task}_{metric}"] = value
        scores.append(value)
    row["mean_metric"] = float(sum(scores) / len(scores)) if all(isinstance(s, (int, float)) for s in scores) \
        else None
    if scenario.watch_head:
        head = scenario.watch_head
        metric = tasks[head]
        trainer_view = (summary.get("frozen_heads") or {}).get(head)
        before = trainer_view["before"] if trainer_view else \
            (results.get(scenario.depends_on, {}).get("summary") or {}).get("dev", {}).get(head, {}).get(metric)
        after = (summary.get("dev") or {}).get(head, {}).get(metric)
        row.update(watched_head=head, watched_before=before, watched_after=after,
                   watched_change=(after - before) if isinstance(before, (int, float))
                   and isinstance(after, (int, float)) else None)
    return row


def run_freezing_study(config_path: str | Path, overrides: list[str] | None = None,
                       output: str | Path | None = None, layers: list[int] | None = None, llrd: float = 0.8,
                       frozen_head: str | None = None, added_task: str | None = None, only: list[str] | None = None,
                       reuse: bool = False, echo=None, isolate: bool = True) -> dict:
    """Run every scenario (or `only` these, plus what they depend on); write the table, CSV and plots.

    isolate=False trains in this process (fast, for tests): peak memory is then not measured per scenario.
    """
    echo = echo or (lambda message: print(message, file=sys.stderr, flush=True))
    overrides = list(overrides or [])
    base_config = load_config(config_path, overrides)
    base = config_to_dict(base_config)
    study_dir = Path(output or base_config.output).resolve()
    tasks = {name: _main_metric(task.type) for name, task in base_config.tasks.items()}
    layer_count = _layers(layers)
    scenarios = freezing_scenarios(list(tasks), layer_count, llrd, frozen_head, added_task, base["training"])
    by_name = {s.name: s for s in scenarios}
    if only:
        unknown = [n for n in only if n not in by_name]
        if unknown:
            raise ConfigError(f"--only: unknown scenario(s) {unknown}; scenarios are {list(by_name)}")
        wanted = set(only)
        for name in list(only):
            dep = by_name[name].depends_on
            while dep:
                wanted.add(dep)
                dep = by_name[dep].depends_on
        scenarios = [s for s in scenarios if s.name in wanted]
    study_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    results: dict[str, dict] = {}
    rows = []
    started = time.perf_counter()
    for index, scenario in enumerate(scenarios, 1):
        config = scenario_config(base, base_config, scenario, study_dir)
        yaml_path = study_dir / "configs" / f"{scenario.name}.yaml"
        yaml_path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# study scenario {scenario.name}: {scenario.title}\n" + yaml.safe_dump(config, sort_keys=False)
        run_dir = study_dir / scenario.name
        command = [sys.executable, "-c", TRAIN_ENTRY, "train", str(yaml_path), "-o", str(run_dir), "--no-progress",
                   "--overwrite"]
        shown = equivalent_command(str(config_path), scenario, study_dir, overrides)
        process_file = run_dir / "study_process.json"
        dep = scenario.depends_on
        if dep and results.get(dep, {}).get("status") != "ok":
            echo(f"[{index}/{len(scenarios)}] {scenario.name}: skipped ({dep} did not finish)")
            rows.append(_row(scenario, config, None, {}, tasks, results, shown, f"skipped: {dep} failed"))
            results[scenario.name] = {"status": "skipped"}
            continue
        reusable = reuse and yaml_path.is_file() and yaml_path.read_text(encoding="utf-8") == text \
            and (run_dir / "summary.json").is_file() and process_file.is_file()
        if reusable:
            proc = json.loads(process_file.read_text(encoding="utf-8"))
            echo(f"[{index}/{len(scenarios)}] {scenario.name}: reusing the finished run in {run_dir}")
        else:
            yaml_path.write_text(text, encoding="utf-8")
            (run_dir / "summary.json").unlink(missing_ok=True)
            echo(f"[{index}/{len(scenarios)}] {scenario.name}: {scenario.title}\n    {shown}")
            log_path = study_dir / "logs" / f"{scenario.name}.log"
            proc = run_process(command, log_path, env) if isolate else run_in_process(yaml_path, run_dir, log_path)
            if proc["rc"] == 0 and (run_dir / "summary.json").is_file():
                process_file.write_text(json.dumps(proc, indent=2), encoding="utf-8")
        summary_path = run_dir / "summary.json"
        if proc["rc"] != 0 or not summary_path.is_file():
            tail = _tail(study_dir / "logs" / f"{scenario.name}.log")
            echo(f"    FAILED (exit {proc['rc']}); log {study_dir / 'logs' / f'{scenario.name}.log'}:\n{tail}")
            rows.append(_row(scenario, config, None, proc, tasks, results, shown, f"failed (exit {proc['rc']})"))
            results[scenario.name] = {"status": "failed"}
            continue
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        results[scenario.name] = {"status": "ok", "summary": summary}
        row = _row(scenario, config, summary, proc, tasks, results, shown, "ok")
        rows.append(row)
        scores = ", ".join(f"{t} {row[f'{t}_{m}']:.4f}" for t, m in tasks.items()
                           if isinstance(row.get(f"{t}_{m}"), (int, float)))
        echo(f"    done: {row['wall_seconds']} s in the trainer, peak RSS {row['peak_rss_mb']} MB, "
             f"{row['trainable_parameters']:,} trainable; dev {scores}")
    meta = {"config": str(config_path), "overrides": overrides, "study_dir": str(study_dir),
            "command": study_command(config_path, overrides, output, layers, llrd, frozen_head, added_task, only),
            "tasks": tasks, "isolated": isolate, "machine": machine_description(),
            "study_seconds": round(time.perf_counter() - started, 1),
            "base_config": _absolute_paths(base, base_config)}
    write_outputs(study_dir, rows, meta)
    return {"rows": rows, "meta": meta, "study_dir": study_dir}


def _layers(layers: list[int] | None) -> list[int]:
    return sorted(set(layers)) if layers else [2, 4]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join("      " + line for line in path.read_text(encoding="utf-8").splitlines()[-lines:])
    except OSError:
        return ""


def study_command(config_path, overrides, output, layers, llrd, frozen_head, added_task, only) -> str:
    parts = ["polyhead", "study", "freezing", str(config_path)]
    for assignment in overrides or []:
        parts += ["--set", assignment]
    if output:
        parts += ["-o", str(output)]
    if layers and sorted(set(layers)) != [2, 4]:
        parts += ["--layers", ",".join(str(k) for k in sorted(set(layers)))]
    if llrd != 0.8:
        parts += ["--llrd", str(llrd)]
    if frozen_head:
        parts += ["--frozen-head", frozen_head]
    if added_task:
        parts += ["--added-task", added_task]
    if only:
        parts += ["--only", ",".join(only)]
    return shlex.join(parts)


def machine_description() -> str:
    import torch

    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads, CUDA {'yes' if torch.cuda.is_available() else 'no'}")


# -- outputs ----------------------------------------------------------------------------------------------
def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: list[dict], tasks: dict[str, str]) -> str:
    metric_names = {"f1": "entity F1", "accuracy": "acc"}
    head = ["scenario", "freeze", "trained tasks", "trainable params", "steps", "wall s", "process s", "CPU s",
            "peak RSS MB"]
    head += [f"{t} {metric_names.get(m, m)}" for t, m in tasks.items()] + ["mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['scenario']} | `{row['freeze']}` | {row['trained_tasks']} | "
                         f"{row['status']} |" + " |" * (len(head) - 4))
            continue
        cells = [row["scenario"], f"`{row['freeze']}`" + (f", llrd {row['llrd']}" if row["llrd"] != 1.0 else ""),
                 row["trained_tasks"] or "none", _fmt(row.get("trainable_parameters")), _fmt(row.get("steps")),
                 _fmt(row.get("wall_seconds"), 1), _fmt(row.get("process_seconds"), 1),
                 _fmt(row.get("cpu_seconds"), 0), _fmt(row.get("peak_rss_mb"), 0)]
        cells += [_fmt(row.get(f"{t}_{m}")) for t, m in tasks.items()] + [_fmt(row.get("mean_metric"))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def frozen_head_table(rows: list[dict]) -> str:
    watched = [r for r in rows if r.get("watched_head") and r["status"] == "ok"]
    if not watched:
        return ""
    lines = ["| scenario | frozen head | dev before (stage A) | dev after | change |", "|---|---|---:|---:|---:|"]
    for r in watched:
        lines.append(f"| {r['scenario']} | {r['watched_head']} | {_fmt(r['watched_before'])} | "
                     f"{_fmt(r['watched_after'])} | {_fmt(r['watched_change'])} |")
    return "\n".join(lines)


def write_outputs(study_dir: Path, rows: list[dict], meta: dict) -> dict[str, Path]:
    from polyhead.plots import plot_study

    tasks = meta["tasks"]
    files = {"json": study_dir / "study.json", "csv": study_dir / "study.csv", "md": study_dir / "study.md"}
    files["json"].write_text(json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8")
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(files["csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    task_list = list(tasks.items())
    plots = {
        "params": plot_study(rows, task_list, "trainable_parameters", "trainable parameters (symlog)",
                             study_dir / "metric_vs_params.png", log_x=True),
        "time": plot_study(rows, task_list, "wall_seconds", "wall seconds (trainer: load, train, evaluate)",
                           study_dir / "metric_vs_time.png"),
    }
    files.update({f"png_{k}": v for k, v in plots.items() if v is not None})
    frozen = frozen_head_table(rows)
    text = [f"# Freezing study: {meta['config']}", "",
            f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
            f"Study wall time: {meta['study_seconds']} s", "",
            markdown_table(rows, tasks), "",
            "wall s: the trainer's own clock (model load, data, feature cache, training, evaluations, saving); "
            "process s: the whole `polyhead train` process, Python and torch imports included; "
            "CPU s: that process's user + system CPU time (steadier than wall time when the CPUs are shared). "
            + ("peak RSS MB: the scenario's own process (each scenario runs in a separate `polyhead train` "
               "process, which writes its VmHWM, the peak resident set of its own address space, when it "
               "exits; Python, torch and the tokenizer account for a few hundred MB of it)."
               if meta.get("isolated", True) else
               "Scenarios ran in one process (--in-process): peak memory is not measured per scenario."), ""]
    if frozen:
        text += ["## Frozen head: cost of a moving encoder", "", frozen, ""]
    text += ["## Scenarios and commands", ""]
    for row in rows:
        text += [f"- **{row['scenario']}**: {row['title']}  ", f"  `{row['command']}`"]
    text += ["", "Plots: `metric_vs_params.png`, `metric_vs_time.png`; each scenario's folder has its own "
             "loss.png, dev_metrics.png and confusion_<task>.png.", ""]
    files["md"].write_text("\n".join(text), encoding="utf-8")
    return files
