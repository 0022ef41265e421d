"""P5: `polyhead encode --input FILE --output X.npy` streams: peak RSS of the command stays flat in the number of
lines (the embeddings go to disk chunk by chunk). Runs the real CLI in a subprocess per file size and reads that
process's peak RSS (getrusage at exit).

    python benchmarks/bench_stream.py [--lines 20000 200000] [--model minilm-l6] [--quick] [--json out.jsonl]
"""
from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common

WRAPPER = """
import resource, sys
from polyhead.cli import main
sys.argv = ["polyhead"] + sys.argv[1:]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def make_file(path: Path, lines: int) -> None:
    """SST-2 and SIB-200 sentences, shuffled once with a fixed seed, then repeated: every file size has the same
    mix of lengths (a first-N cut of the files in order would give the larger file longer texts)."""
    import random

    pool = common.sst2_sentences(10 ** 6) + common.sib_sentences(10 ** 6)
    random.Random(0).shuffle(pool)
    with open(path, "w", encoding="utf-8") as fh:
        for text in itertools.islice(itertools.cycle(pool), lines):
            fh.write(text.replace("\n", " ") + "\n")


def encode_file(model: str, path: Path, out: Path) -> dict:
    cmd = [sys.executable, "-c", WRAPPER, "encode", "--input", str(path), "--output", str(out), "--model", model]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"polyhead encode failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    shape = np.load(out, mmap_mode="r").shape
    return {"seconds": seconds, "peak_rss_mb": rss_kb / 1024, "shape": shape}


def run(model: str, sizes: list[int], json_path: str | None) -> dict:
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="polyhead-bench-stream-") as tmp:
        for lines in sizes:
            path = Path(tmp) / f"lines{lines}.txt"
            make_file(path, lines)
            result = encode_file(model, path, Path(tmp) / f"emb{lines}.npy")
            assert result["shape"][0] == lines, result
            results[lines] = result
            rows.append([f"{lines:,}", f"{path.stat().st_size / 2 ** 20:.1f}", f"{result['seconds']:.1f}",
                         f"{lines / result['seconds']:.0f}", f"{result['peak_rss_mb']:.0f}",
                         f"{lines * result['shape'][1] * 4 / 2 ** 20:.0f}"])
            path.unlink()
    common.print_table(f"P5 polyhead encode --input FILE --output X.npy ({model}): peak RSS of the command",
                       ["lines", "input MB", "wall s (incl. start-up)", "texts/s", "peak RSS MB", "output MB"], rows)
    peaks = [results[n]["peak_rss_mb"] for n in sizes]
    growth = peaks[-1] - peaks[0]
    flat = growth < 0.1 * peaks[0] + 50
    print(f"P5 peak RSS {peaks[0]:.0f} MB at {sizes[0]:,} lines -> {peaks[-1]:.0f} MB at {sizes[-1]:,} lines "
          f"({'flat' if flat else 'NOT flat'}; {'met' if flat and max(peaks) < 1536 else 'NOT met'}, "
          f"goal flat and < 1.5 GB)")
    record = {"bench": "stream", "model": model, "results": {str(k): v for k, v in results.items()}}
    common.write_json(json_path, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--lines", nargs="+", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.quiet()
    sizes = args.lines or ([5000, 15000] if args.quick else [20000, 200000])
    run(args.model, sizes, args.json)


if __name__ == "__main__":
    main()
