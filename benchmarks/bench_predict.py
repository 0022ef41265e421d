"""P2: three heads (topic, sentiment, NER) predicted in ONE encoder pass by `MultiTaskModel.predict` (defaults,
precision=auto) vs three separate single-task Hugging Face models (2 x AutoModelForSequenceClassification,
1 x AutoModelForTokenClassification, built on the same backbone folder, fp32 defaults) run one after the other
in a plain batched loop (batch 32, padding per batch), on the same texts. Heads are randomly initialised on both
sides: speed does not depend on their weights.

    python benchmarks/bench_predict.py [--models ...] [--quick] [--json out.jsonl]
"""
from __future__ import annotations

import argparse

import torch

import common

TOPIC = ["entertainment", "geography", "health", "politics", "science/technology", "sports", "travel"]
SENTIMENT = ["0", "1"]
NER = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def hf_models(folder: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    topic = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(TOPIC)).eval()
    sentiment = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(SENTIMENT)).eval()
    ner = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(NER)).eval()
    return tokenizer, {"topic": (topic, TOPIC, False), "sentiment": (sentiment, SENTIMENT, False),
                       "ner": (ner, NER, True)}


def hf_predict(tokenizer, models: dict, texts: list[str], batch_size: int = 32) -> list[dict]:
    """The anchor: each single-task model over all texts, batch by batch, in input order."""
    results = [{"text": t} for t in texts]
    with torch.inference_mode():
        for task, (model, labels, token_task) in models.items():
            for start in range(0, len(texts), batch_size):
                batch = texts[start:start + batch_size]
                enc = tokenizer(batch, padding=True, truncation=True, max_length=512, return_tensors="pt")
                probs = model(**enc).logits.softmax(-1)
                best = probs.argmax(-1)
                for row in range(len(batch)):
                    if token_task:
                        keep = enc["attention_mask"][row].bool()
                        results[start + row][task] = [labels[i] for i in best[row][keep].tolist()]
                    else:
                        results[start + row][task] = {"label": labels[int(best[row])],
                                                      "score": float(probs[row, best[row]])}
    return results


def polyhead_model(folder: str, precision: str):
    from polyhead import SentenceEncoder
    from polyhead.heads import ClassificationHead
    from polyhead.model import MultiTaskModel

    encoder = SentenceEncoder.from_pretrained(folder, precision=precision)
    torch.manual_seed(0)
    heads = {"topic": ClassificationHead("sentence_classification", encoder.dimension, TOPIC),
             "sentiment": ClassificationHead("sentence_classification", encoder.dimension, SENTIMENT),
             "ner": ClassificationHead("token_classification", encoder.backbone.hidden_size, NER)}
    return MultiTaskModel(encoder, heads).eval()


def run(model_name: str, n: int, repeats: int, json_path: str | None) -> dict:
    folder = common.model_folder(model_name)
    texts = common.sib_sentences(n // 2) + common.sst2_sentences(n - n // 2)
    tokenizer, models = hf_models(folder)
    ours = polyhead_model(folder, "auto")
    ours32 = polyhead_model(folder, "fp32")
    ours32.load_state_dict(ours.state_dict())
    variants = {
        "3 separate HF models fp32 (anchor)": lambda: hf_predict(tokenizer, models, texts),
        f"polyhead 3 heads, auto = {ours.encoder.precision}": lambda: ours.predict(texts),
        "polyhead 3 heads, fp32": lambda: ours32.predict(texts),
    }
    variants["3 separate HF models fp32 (anchor)"].warmup = lambda: hf_predict(tokenizer, models, texts[:32])
    variants[f"polyhead 3 heads, auto = {ours.encoder.precision}"].warmup = lambda: ours.predict(texts[:32])
    res = common.interleaved(variants, repeats)
    base = res["3 separate HF models fp32 (anchor)"]["median_s"]
    auto_name = f"polyhead 3 heads, auto = {ours.encoder.precision}"
    fast, exact = res[auto_name]["result"], res["polyhead 3 heads, fp32"]["result"]
    agree = {t: sum(a[t]["label"] == b[t]["label"] for a, b in zip(fast, exact)) / len(texts)
             for t in ("topic", "sentiment")}
    spans = lambda ents: [(e["label"], e["start"], e["end"]) for e in ents]  # noqa: E731
    agree["ner"] = sum(spans(a["ner"]) == spans(b["ner"]) for a, b in zip(fast, exact)) / len(texts)
    rows = [[name, f"{n / r['median_s']:.0f}", f"{base / r['median_s']:.2f}x"] for name, r in res.items()]
    common.print_table(f"P2 three heads in one pass: {model_name}, {n} texts (SIB-200 + SST-2), median of {repeats}",
                       ["variant", "texts/s", "vs anchor"], rows)
    p2 = base / res[auto_name]["median_s"]
    print(f"P2 polyhead vs 3 separate HF models: {common.goal(p2, 2.8)}; auto vs fp32 agreement "
          + ", ".join(f"{t} {100 * v:.1f}%" for t, v in agree.items()) + " (NER: identical entity spans per text)")
    record = {"bench": "predict", "model": model_name, "n": n, "p2": p2, "agreement": agree,
              "variants": {k: {"texts_per_s": n / r["median_s"], "times": r["times"]} for k, r in res.items()},
              "peak_rss_mb": common.peak_rss_mb()}
    common.write_json(json_path, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(common.MODELS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.quiet()
    for model in args.models:
        big = "distilmbert" in model
        n = args.n or ((100 if big else 300) if args.quick else (300 if big else 1000))
        run(model, n, args.repeats or (2 if args.quick or big else 3), args.json)


if __name__ == "__main__":
    main()
