"""P4: `training.freeze: backbone` for 5 epochs: heads trained on cached encoder features (the default,
`cache_features: true`) vs recomputing the frozen encoder every step (`cache_features: false`). Whole
`Trainer.run()` wall time on both sides (model load, data, training, per-epoch dev evaluation, checkpoints,
final evaluation), and the dev metric of each.

    python benchmarks/bench_cache.py [--models ...] [--quick] [--json out.jsonl]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import common


def run_once(folder: str, n_train: int, n_dev: int, epochs: int, cache: bool) -> dict:
    from polyhead.config import RunConfig
    from polyhead.training.loop import Trainer

    sst2 = common.need("sentiment", "sst2")
    with tempfile.TemporaryDirectory(prefix="polyhead-bench-cache-") as out:
        config = RunConfig.model_validate({
            "backbone": folder,
            "tasks": {"sentiment": {
                "type": "sentence_classification",
                "train": {"path": str(sst2 / "train.txt"), "format": "label_text", "limit": n_train},
                "dev": {"path": str(sst2 / "dev.txt"), "format": "label_text", "limit": n_dev}}},
            "training": {"freeze": "backbone", "cache_features": cache, "epochs": epochs, "batch_size": 32,
                         "lr": 1e-3, "seed": 13, "precision": "auto"},
            "output": out})
        start = time.perf_counter()
        summary = Trainer(config, show_progress=False).run()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "accuracy": 100 * summary["dev"]["sentiment"]["accuracy"],
            "training_seconds": summary["train_seconds"] + summary["feature_cache_seconds"],
            "step_sentences_per_s": summary["step_sentences_per_s"],
            "feature_cache_seconds": summary["feature_cache_seconds"],
            "steps": summary["steps"], "precision": summary["precision"]}


def run(model_name: str, n_train: int, n_dev: int, epochs: int, json_path: str | None) -> dict:
    folder = common.model_folder(model_name)
    cached = run_once(folder, n_train, n_dev, epochs, cache=True)
    plain = run_once(folder, n_train, n_dev, epochs, cache=False)
    ratio = plain["seconds"] / cached["seconds"]
    phase = plain["training_seconds"] / cached["training_seconds"]
    rows = [["recompute frozen encoder every step (anchor)", f"{plain['seconds']:.1f}", "1.00x",
             f"{plain['training_seconds']:.1f}", "1.00x", f"{plain['accuracy']:.2f}"],
            ["cached features (default)", f"{cached['seconds']:.1f}", f"{ratio:.2f}x",
             f"{cached['training_seconds']:.1f}", f"{phase:.2f}x", f"{cached['accuracy']:.2f}"]]
    common.print_table(f"P4 freeze: backbone, {epochs} epochs: {model_name}, SST-2 {n_train} train / {n_dev} dev, "
                       f"{cached['steps']} steps, precision {cached['precision']}",
                       ["variant", "whole run s", "speed-up", "training phase s", "speed-up", "dev accuracy"], rows)
    steps = cached["step_sentences_per_s"] / plain["step_sentences_per_s"]
    print(f"P4 optimisation steps alone (what each further epoch costs): {cached['step_sentences_per_s']:,.0f} vs "
          f"{plain['step_sentences_per_s']:,.0f} sentences/s = {steps:,.0f}x; the one feature pass took "
          f"{cached['feature_cache_seconds']:.1f} s. Whole-run bound: the anchor runs the encoder over train + dev "
          f"once per epoch, the cache once in all, so with {epochs} epochs the whole run cannot gain more than "
          f"about {epochs}x over the encoder passes")
    delta = abs(cached["accuracy"] - plain["accuracy"])
    print(f"P4 cached vs recomputed, whole run: {common.goal(ratio, 10.0)}; training phase (feature cache + "
          f"steps + per-epoch dev evaluations + checkpoints): {common.goal(phase, 10.0)}; dev accuracy difference {delta:.2f} points "
          f"({'met' if delta <= 0.5 else 'NOT met'}, goal <= 0.5)")
    record = {"bench": "cache", "model": model_name, "p4": ratio, "p4_training_phase": phase, "p4_steps": steps,
              "cached": cached, "plain": plain,
              "peak_rss_mb": common.peak_rss_mb()}
    common.write_json(json_path, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(common.MODELS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--train", type=int, default=None)
    parser.add_argument("--dev", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.quiet()
    for model in args.models:
        big = "distilmbert" in model
        n_train = args.train or ((200 if big else 500) if args.quick else (500 if big else 2000))
        n_dev = args.dev or ((100 if big else 200) if args.quick else (200 if big else 872))
        run(model, n_train, n_dev, args.epochs, args.json)


if __name__ == "__main__":
    main()
