"""How many tokens per batch encode fastest: polyhead's `encode` at several token budgets (and at a fixed 32
texts a batch) in fp32 and bf16, interleaved with sentence-transformers' defaults. The measured best budgets
set polyhead's `max_tokens="auto"` (polyhead.encoder.token_budget). Not part of `make bench`.

    python benchmarks/sweep_token_budget.py [--model minilm-l6] [--n 2000] [--repeats 2]
"""
from __future__ import annotations

import argparse

import common

BUDGETS = (1024, 2048, 4096, 8192)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    common.quiet()
    from sentence_transformers import SentenceTransformer

    from polyhead import SentenceEncoder, runtime

    runtime.configure_threads()
    folder = common.model_folder(args.model)
    sentences = common.sst2_sentences(args.n)
    st = SentenceTransformer(folder, device="cpu")
    encoders = {p: SentenceEncoder.from_pretrained(folder, precision=p) for p in ("fp32", "bf16")}
    variants = {"sentence-transformers fp32 defaults": lambda: st.encode(sentences)}
    for precision, enc in encoders.items():
        for budget in BUDGETS:
            variants[f"polyhead {precision}, {budget} tokens"] = \
                (lambda e=enc, b=budget: e.encode(sentences, max_tokens=b))
        variants[f"polyhead {precision}, 32 texts a batch"] = \
            (lambda e=enc: e.encode(sentences, batch_size=32, max_tokens=None))
        variants[f"polyhead {precision}, auto ({enc.resolve_max_tokens('auto')} tokens)"] = \
            (lambda e=enc: e.encode(sentences))
    for fn in variants.values():
        fn.warmup = (lambda f=fn: f())
    res = common.interleaved(variants, args.repeats)
    rows = [[name, f"{args.n / r['median_s']:.0f}"] for name, r in res.items()]
    common.print_table(f"Token budget sweep: {args.model}, {args.n} SST-2 sentences, median of {args.repeats}",
                       ["variant", "sentences/s"], rows)


if __name__ == "__main__":
    main()
