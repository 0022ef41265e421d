"""P3: joint-training throughput of `polyhead.training.loop.Trainer` (defaults, precision=auto) vs a plain Hugging
Face training loop (AutoModelForTokenClassification + AdamW + linear warm-up schedule + grad clipping, random
batches of 32, fp32 and bf16 autocast), same model, same CoNLL-2003 sentences, batch size, steps and schedule.
Throughput counts optimisation steps only (the Trainer's `step_sentences_per_s`: no evaluations, no checkpoints).
The loss curves are printed side by side (mean loss over each block of 10 steps).

    python benchmarks/bench_train.py [--models ...] [--steps 40] [--quick] [--json out.jsonl]
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import common

LR, BATCH, WARMUP, WEIGHT_DECAY, CLIP, SEED = 5e-5, 32, 0.1, 0.01, 1.0, 13


def conll_examples(n: int):
    from polyhead.data.readers import read_token_examples

    return read_token_examples(common.conll_path("train"), "conll", limit=n)


def hf_loop(folder: str, examples, labels: list[str], steps: int, bf16: bool) -> dict:
    """The anchor: what a user writes from the Hugging Face token-classification docs."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(labels))
    index = {lab: i for i, lab in enumerate(labels)}
    features = []
    for ex in examples:
        enc = tokenizer(ex.tokens, is_split_into_words=True, truncation=True, max_length=tokenizer.model_max_length)
        previous, row = None, []
        for word in enc.word_ids():
            row.append(-100 if word is None or word == previous else index[ex.tags[word]])
            previous = word
        features.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": row})
    no_decay = lambda n: n.endswith("bias") or "norm" in n.lower()  # noqa: E731
    groups = [{"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": WEIGHT_DECAY},
              {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    rng = random.Random(SEED)
    order: list[int] = []
    losses, seen = [], 0
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        if len(order) < BATCH:
            order = list(range(len(features)))
            rng.shuffle(order)
        batch = [features[order.pop()] for _ in range(BATCH)]
        width = max(len(f["input_ids"]) for f in batch)
        pad = tokenizer.pad_token_id or 0
        ids = torch.tensor([f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in batch])
        mask = torch.tensor([f["attention_mask"] + [0] * (width - len(f["attention_mask"])) for f in batch])
        target = torch.tensor([f["labels"] + [-100] * (width - len(f["labels"])) for f in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=target).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
        seen += len(batch)
    seconds = time.perf_counter() - start
    return {"sentences_per_s": seen / seconds, "losses": block_means(losses)}


def block_means(losses: list[float], block: int = 10) -> list[float]:
    return [round(float(np.mean(losses[i:i + block])), 4) for i in range(0, len(losses), block)]


def polyhead_run(folder: str, n: int, steps: int, precision: str) -> dict:
    from polyhead.config import RunConfig
    from polyhead.training.loop import Trainer

    with tempfile.TemporaryDirectory(prefix="polyhead-bench-train-") as out:
        config = RunConfig.model_validate({
            "backbone": folder,
            "tasks": {"ner": {"type": "token_classification",
                              "train": {"path": str(common.conll_path("train")), "format": "conll", "limit": n}}},
            "training": {"max_steps": steps, "batch_size": BATCH, "lr": LR, "warmup_ratio": WARMUP,
                         "weight_decay": WEIGHT_DECAY, "grad_clip": CLIP, "seed": SEED, "precision": precision,
                         "eval_every": 10 ** 9},
            "output": out})
        summary = Trainer(config, show_progress=False).run()
        records = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"]["ner"] for r in records if r["type"] == "train"]
    return {"sentences_per_s": summary["step_sentences_per_s"], "losses": losses, "precision": summary["precision"]}


def run(model_name: str, steps: int, repeats: int, json_path: str | None) -> dict:
    from polyhead.training.data_prep import build_labels

    folder = common.model_folder(model_name)
    n = steps * BATCH  # one epoch of distinct sentences for both sides
    examples = conll_examples(n)
    labels = build_labels("token_classification", examples)
    variants = {
        "plain HF loop fp32 (anchor)": lambda: hf_loop(folder, examples, labels, steps, bf16=False),
        "plain HF loop bf16 autocast": lambda: hf_loop(folder, examples, labels, steps, bf16=True),
        "polyhead Trainer, auto": lambda: polyhead_run(folder, n, steps, "auto"),
    }
    results: dict[str, list[dict]] = {k: [] for k in variants}
    for _ in range(repeats):  # A B C A B C: machine noise hits every side alike
        for name, fn in variants.items():
            results[name].append(fn())
    rate = {k: float(np.median([r["sentences_per_s"] for r in v])) for k, v in results.items()}
    base, base16 = rate["plain HF loop fp32 (anchor)"], rate["plain HF loop bf16 autocast"]
    rows = []
    for name, runs in results.items():
        curve = runs[0]["losses"]
        label = name + (f" = {runs[0]['precision']}" if "precision" in runs[0] else "")
        rows.append([label, f"{rate[name]:.1f}", f"{rate[name] / base:.2f}x", f"{rate[name] / base16:.2f}x",
                     " ".join(f"{x:.3f}" for x in curve)])
    common.print_table(f"P3 training: {model_name}, CoNLL-2003 NER, {steps} steps of {BATCH}, median of {repeats}",
                       ["variant", "sentences/s", "vs HF fp32", "vs HF bf16", "loss per 10 steps (first run)"], rows)
    p3 = rate["polyhead Trainer, auto"] / base
    p3b = rate["polyhead Trainer, auto"] / base16
    print(f"P3 polyhead vs plain HF loop fp32: {common.goal(p3, 1.5)}; vs HF bf16 autocast: {p3b:.2f}x")
    record = {"bench": "train", "model": model_name, "steps": steps, "p3": p3, "p3_vs_bf16": p3b,
              "variants": {k: v for k, v in results.items()}, "peak_rss_mb": common.peak_rss_mb()}
    common.write_json(json_path, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(common.MODELS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.quiet()
    for model in args.models:
        big = "distilmbert" in model
        steps = args.steps or ((10 if big else 20) if args.quick else (10 if big else 30))
        run(model, steps, args.repeats or (1 if args.quick or big else 2), args.json)


if __name__ == "__main__":
    main()
