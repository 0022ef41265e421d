"""P1 / P1b: `SentenceEncoder.encode` (defaults, precision=auto) vs `SentenceTransformer.encode` (defaults: fp32,
batch 32) and vs sentence-transformers in bf16 (its best CPU setting), same model, same sentences, interleaved.

    python benchmarks/bench_encode.py [--models minilm-l6 random:distilmbert] [--quick] [--json out.jsonl]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import common


def run(model_name: str, n: int, repeats: int, json_path: str | None) -> dict:
    from sentence_transformers import SentenceTransformer

    from polyhead import SentenceEncoder, runtime

    folder = common.model_folder(model_name)
    sentences = common.sst2_sentences(n)
    st32 = SentenceTransformer(folder, device="cpu")
    st16 = SentenceTransformer(folder, device="cpu", model_kwargs={"dtype": torch.bfloat16})
    ours = SentenceEncoder.from_pretrained(folder, precision="auto")
    ours32 = SentenceEncoder.from_pretrained(folder, precision="fp32")
    lengths = [len(ids) for ids in ours.text_tokenizer(sentences).ids]
    flops = common.forward_flops(lengths, *common.encoder_shape(ours.transformer))

    variants = {
        "sentence-transformers fp32 (anchor)": lambda: st32.encode(sentences),
        "sentence-transformers bf16": lambda: st16.encode(sentences),
        f"polyhead auto = {ours.precision}": lambda: ours.encode(sentences),
        "polyhead fp32": lambda: ours32.encode(sentences),
    }
    for fn, model in zip(variants.values(), (st32, st16, ours, ours32)):  # warm-up: first-call allocations
        fn.warmup = (lambda m=model: m.encode(sentences[:64]))
    res = common.interleaved(variants, repeats)
    reference = res["sentence-transformers fp32 (anchor)"]["result"]
    base = res["sentence-transformers fp32 (anchor)"]["median_s"]
    base16 = res["sentence-transformers bf16"]["median_s"]
    peak = common.machine()["peak_flops"]
    rows, record = [], {"bench": "encode", "model": model_name, "n": n, "tokens": int(sum(lengths)),
                        "precision_auto": runtime.explain_precision("auto", "cpu"), "variants": {}}
    for name, r in res.items():
        cos = common.cosine_rows(np.asarray(r["result"], dtype=np.float32), reference)
        rate = n / r["median_s"]
        dtype = "bf16" if "bf16" in name else "fp32"
        achieved = flops / r["median_s"]
        rows.append([name, f"{rate:.0f}", f"{base / r['median_s']:.2f}x", f"{base16 / r['median_s']:.2f}x",
                     f"{cos.min():.5f}", f"{common.gflops(achieved)} / {common.gflops(peak[dtype])} "
                     f"({100 * achieved / peak[dtype]:.0f}%)"])
        record["variants"][name] = {"sentences_per_s": rate, "times": r["times"], "min_cosine": float(cos.min()),
                                    "flops_per_s": achieved}
    ours_name = f"polyhead auto = {ours.precision}"
    p1 = base / res[ours_name]["median_s"]
    p1b = base16 / res[ours_name]["median_s"]
    record.update(p1=p1, p1b=p1b, peak_rss_mb=common.peak_rss_mb())
    common.print_table(f"P1 encode: {model_name}, {n} SST-2 sentences, {sum(lengths)} tokens, median of {repeats} "
                       f"interleaved runs; precision auto -> {runtime.explain_precision('auto', 'cpu')}",
                       ["variant", "sentences/s", "vs ST fp32", "vs ST bf16", "min cosine to ST fp32",
                        "GFLOP/s achieved / peak"], rows)
    print(f"P1  polyhead vs ST fp32: {common.goal(p1, 3.0)}; min cosine "
          f"{record['variants'][ours_name]['min_cosine']:.5f} (goal >= 0.999)")
    print(f"P1b polyhead vs ST bf16: {common.goal(p1b, 1.3)}; process peak RSS {record['peak_rss_mb']:.0f} MB")
    common.write_json(json_path, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(common.MODELS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None, help="sentences (default 2000 for MiniLM, 500 for distilmbert)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.quiet()
    for model in args.models:
        big = "distilmbert" in model
        n = args.n or ((300 if big else 1000) if args.quick else (500 if big else 2000))
        run(model, n, args.repeats or (2 if args.quick else 3), args.json)


if __name__ == "__main__":
    main()
