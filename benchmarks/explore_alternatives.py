"""Paths evaluated for `encode` that polyhead does NOT use by default, measured against the default (bf16 weight
copy + token-budget batches), interleaved, with the per-sentence cosine to fp32. Not part of `make bench`.

Needs: pip install -e ".[bench,explore]"   (onnxruntime, onnx, onnxscript: only for the ONNX Runtime rows)

    python benchmarks/explore_alternatives.py [--n 500] [--compile]
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import common


def mean_pool(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    pooled = (states.astype(np.float32) * m).sum(1) / np.maximum(m.sum(1), 1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def batched(encoder, sentences, forward) -> np.ndarray:
    from polyhead.data.batching import pad_batch, plan_batches

    tokens = encoder.text_tokenizer(sentences)
    out = np.zeros((len(sentences), encoder.dimension), dtype=np.float32)
    for batch in plan_batches([len(t) for t in tokens.ids], None, encoder.resolve_max_tokens("auto")):
        ids, mask = pad_batch([tokens.ids[i] for i in batch], encoder.text_tokenizer.pad_id)
        out[batch] = mean_pool(forward(ids, mask), mask.numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow to compile)")
    args = parser.parse_args()
    common.quiet()
    from polyhead import SentenceEncoder

    sentences = common.sst2_sentences(args.n)
    folder = common.model_folder(args.model)
    fp32 = SentenceEncoder.from_pretrained(folder, precision="fp32")
    bf16 = SentenceEncoder.from_pretrained(folder, precision="bf16")
    reference = fp32.encode(sentences)
    variants = {"polyhead default (bf16 weights, token budget)": lambda: bf16.encode(sentences)}

    def torch_forward(model):
        def run(ids, mask):
            with torch.inference_mode():
                return model(input_ids=ids, attention_mask=mask).last_hidden_state.float().numpy()
        return run

    autocast_model = fp32.transformer

    def autocast_forward(ids, mask):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return autocast_model(input_ids=ids, attention_mask=mask).last_hidden_state.float().numpy()

    variants["bf16 autocast over fp32 weights, token budget"] = lambda: batched(fp32, sentences, autocast_forward)
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32.transformer), {torch.nn.Linear},
                                                   dtype=torch.qint8)
    variants["torch int8 dynamic quantisation (Linear), token budget"] = \
        lambda: batched(fp32, sentences, torch_forward(int8))
    compile_s = None
    if args.compile:
        compiled = torch.compile(copy.deepcopy(fp32.transformer).to(torch.bfloat16), dynamic=True)
        start = time.perf_counter()
        batched(fp32, sentences[:64], torch_forward(compiled))
        compile_s = time.perf_counter() - start
        variants[f"torch.compile bf16 (compile {compile_s:.0f} s excluded)"] = \
            lambda: batched(fp32, sentences, torch_forward(compiled))
    try:
        import onnxruntime as ort

        tmp = Path(tempfile.mkdtemp(prefix="polyhead-onnx-"))
        onnx_path = tmp / "model.onnx"
        ids, mask = torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long)
        class Wrapped(torch.nn.Module):  # keyword arguments only: transformers 5's forward takes more positionals
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        torch.onnx.export(Wrapped(copy.deepcopy(fp32.transformer)).eval(), (ids, mask), str(onnx_path),
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"},
                                        "last_hidden_state": {0: "b", 1: "t"}}, dynamo=False)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(onnx_path), str(tmp / "model.int8.onnx"), weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        for label, path in (("ONNX Runtime fp32", onnx_path), ("ONNX Runtime int8 (dynamic)", tmp / "model.int8.onnx")):
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            run = (lambda s: lambda i, m: s.run(None, {"input_ids": i.numpy(), "attention_mask": m.numpy()})[0])(session)
            variants[label + ", token budget"] = (lambda r: lambda: batched(fp32, sentences, r))(run)
    except Exception as exc:  # noqa: BLE001 - optional dependency / exporter differences
        print(f"ONNX Runtime rows skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    res = common.interleaved(variants, args.repeats)
    base = res["polyhead default (bf16 weights, token budget)"]["median_s"]
    rows = []
    for name, r in res.items():
        cos = common.cosine_rows(r["result"], reference)
        rows.append([name, f"{args.n / r['median_s']:.0f}", f"{base / r['median_s']:.2f}x", f"{cos.min():.5f}",
                     f"{np.percentile(cos, 1):.5f}"])
    common.print_table(f"Alternatives for encode: {args.model}, {args.n} SST-2 sentences, median of {args.repeats}",
                       ["path", "sentences/s", "vs polyhead default", "min cosine to fp32", "1st percentile"], rows)


if __name__ == "__main__":
    main()
