"""Run every benchmark (each in its own process: clean peak RSS, memory returned between them) and print the
goal table. `make bench` runs this; `--quick` shrinks every workload (a smoke run, ratios are noisier).

    python benchmarks/run_all.py [--quick] [--only encode predict train cache stream] [--json results.jsonl]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import common

HERE = Path(__file__).resolve().parent
BENCHES = ("encode", "predict", "train", "cache", "stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--models", nargs="+", default=list(common.MODELS))
    parser.add_argument("--json", default=None, help="also append every record to this .jsonl file")
    args = parser.parse_args()
    common.quiet()
    from polyhead import runtime

    runtime.configure_threads()
    info = common.machine()
    gemm = {d: common.measured_gemm_flops(getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[d]))
            for d in ("fp32", "bf16")}
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['threads']} torch threads, {info['ghz']:.2f} GHz "
          f"(cpuinfo), flags {' '.join(info['flags'])}; torch {info['torch']}")
    print("peak estimate: " + ", ".join(f"{d} {common.gflops(v)} GFLOP/s" for d, v in info["peak_flops"].items())
          + " (cores x GHz x FLOP/cycle); measured 2048^3 GEMM: "
          + ", ".join(f"{d} {common.gflops(v)} GFLOP/s" for d, v in gemm.items()))
    print(f"precision auto -> {runtime.explain_precision('auto', 'cpu')}; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="polyhead-bench-") as tmp:
        records_path = Path(args.json) if args.json else Path(tmp) / "records.jsonl"
        for bench in args.only:
            cmd = [sys.executable, str(HERE / f"bench_{bench}.py"), "--json", str(records_path)]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--models", *args.models] if bench != "stream" else []
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            sys.stdout.write(proc.stdout)
            if proc.returncode != 0:
                sys.stdout.write(proc.stderr[-4000:])
                sys.exit(f"bench_{bench}.py failed with exit code {proc.returncode}")
            print(f"[bench_{bench}: {time.perf_counter() - t0:.0f} s]", flush=True)
        records = [json.loads(line) for line in records_path.read_text().splitlines()] if records_path.exists() else []
    summary(records)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def summary(records: list[dict]) -> None:
    rows = []
    for r in records:
        if r["bench"] == "encode":
            cos = min(v["min_cosine"] for k, v in r["variants"].items() if k.startswith("polyhead auto"))
            rows.append(["P1 encode vs ST fp32", r["model"], f"{r['p1']:.2f}x", ">= 3.0x",
                         "met" if r["p1"] >= 3.0 and cos >= 0.999 else "NOT met", f"min cosine {cos:.5f}"])
            rows.append(["P1b encode vs ST bf16", r["model"], f"{r['p1b']:.2f}x", ">= 1.3x",
                         "met" if r["p1b"] >= 1.3 else "NOT met", f"peak RSS {r['peak_rss_mb']:.0f} MB (process)"])
        elif r["bench"] == "predict":
            rows.append(["P2 3 heads, one pass", r["model"], f"{r['p2']:.2f}x", ">= 2.8x",
                         "met" if r["p2"] >= 2.8 else "NOT met",
                         "auto vs fp32 labels agree " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["agreement"].items())])
        elif r["bench"] == "train":
            ours = r["variants"]["polyhead Trainer, auto"][0]["losses"]
            ref = r["variants"]["plain HF loop fp32 (anchor)"][0]["losses"]
            rows.append(["P3 training vs HF loop fp32", r["model"], f"{r['p3']:.2f}x", ">= 1.5x",
                         "met" if r["p3"] >= 1.5 else "NOT met",
                         f"vs HF bf16 {r['p3_vs_bf16']:.2f}x; last-10-step loss {ours[-1]:.3f} vs {ref[-1]:.3f}"])
        elif r["bench"] == "cache":
            delta = abs(r["cached"]["accuracy"] - r["plain"]["accuracy"])
            rows.append(["P4 frozen backbone, cached", r["model"], f"{r['p4']:.2f}x", ">= 10x",
                         "met" if r["p4"] >= 10 and delta <= 0.5 else "NOT met",
                         f"training phase {r['p4_training_phase']:.2f}x; steps alone {r.get('p4_steps', 0):,.0f}x; "
                         f"dev acc diff {delta:.2f} pt"])
        elif r["bench"] == "stream":
            sizes = sorted(r["results"], key=int)
            peaks = [r["results"][s]["peak_rss_mb"] for s in sizes]
            flat = peaks[-1] - peaks[0] < 0.1 * peaks[0] + 50
            rows.append(["P5 encode file -> .npy", r["model"], f"{peaks[-1]:.0f} MB", "flat, < 1536 MB",
                         "met" if flat and max(peaks) < 1536 else "NOT met",
                         " -> ".join(f"{int(s):,} lines {p:.0f} MB" for s, p in zip(sizes, peaks))])
    if rows:
        common.print_table("Goals", ["goal", "model", "measured", "target", "status", "notes"], rows)


if __name__ == "__main__":
    main()
