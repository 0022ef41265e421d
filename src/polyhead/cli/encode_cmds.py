"""`polyhead encode` and `polyhead similarity`."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np
import typer

from polyhead.cli import app, fail, quiet_libraries
from polyhead.cli.outputs import unique_sibling

CHUNK = 4096  # texts embedded per step while streaming a file: memory stays flat in the file's length


def _chunks(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _NpyWriter:
    """Streams rows to `<out>.partial`, then writes the .npy header (which needs N) and moves it in place."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path, self.dim, self.rows = path, dim, 0
        self.raw = unique_sibling(path, ".partial")  # a fresh name: never an existing file of the user's
        self.fh = open(self.raw, "wb")

    def write(self, block: np.ndarray, texts: list[str]) -> None:
        self.fh.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self.fh.close()
        final = unique_sibling(self.path, ".tmp")
        with open(final, "wb") as out, open(self.raw, "rb") as raw:
            header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim)}
            np.lib.format.write_array_header_1_0(out, header)
            while data := raw.read(1 << 24):
                out.write(data)
        os.replace(final, self.path)
        self.raw.unlink()

    def abort(self) -> None:
        self.fh.close()
        self.raw.unlink(missing_ok=True)


class _JsonlWriter:
    def __init__(self, path: Path, dim: int) -> None:
        self.path, self.rows = path, 0
        self.tmp = unique_sibling(path, ".partial")
        self.fh = open(self.tmp, "w", encoding="utf-8")

    def write(self, block: np.ndarray, texts: list[str]) -> None:
        for text, row in zip(texts, block):
            self.fh.write(json.dumps({"text": text, "embedding": [round(float(v), 7) for v in row]},
                                     ensure_ascii=False) + "\n")
        self.rows += len(block)

    def close(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


class _SummaryWriter:
    def __init__(self, dim: int) -> None:
        self.blocks: list[np.ndarray] = []
        self.texts: list[str] = []
        self.dim = dim

    def write(self, block: np.ndarray, texts: list[str]) -> None:
        self.blocks.append(block)
        self.texts.extend(texts)

    def result(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros((0, self.dim), np.float32)


def _open_writer(output: Optional[Path], dim: int):
    if output is None:
        return _SummaryWriter(dim)
    suffix = output.suffix.lower()
    if suffix not in {".npy", ".jsonl"}:
        fail(f"--output {output}: unsupported extension {suffix or '(none)'}; use .npy or .jsonl")
    if output.parent and not output.parent.exists():
        fail(f"--output {output}: folder {output.parent} does not exist")
    return (_NpyWriter if suffix == ".npy" else _JsonlWriter)(output, dim)


def _print_summary(emb: np.ndarray, texts: list[str]) -> None:
    norms = np.linalg.norm(emb, axis=1) if len(emb) else np.zeros(0)
    typer.echo(f"embeddings: {emb.shape[0]} x {emb.shape[1]} float32")
    if len(emb):
        typer.echo(f"norms: min {norms.min():.4f}  mean {norms.mean():.4f}  max {norms.max():.4f}")
    for text, row in list(zip(texts, emb))[:5]:
        shown = text if len(text) <= 50 else text[:47] + "..."
        values = " ".join(f"{v:+.4f}" for v in row[:6])
        typer.echo(f"  {shown!r:54} [{values} ...]")
    if len(emb) > 5:
        typer.echo(f"  ... {len(emb) - 5} more")


@app.command(help="Turn sentences into fixed-length embeddings (texts as arguments, --input FILE, or - for stdin).")
def encode(
    texts: List[str] = typer.Argument(None, help="Texts to embed (or use --input)."),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="File: .txt (one text a line), .jsonl, .csv, .tsv, or - for stdin."),
    column: Optional[str] = typer.Option(None, help="Field (.jsonl) or column (.csv/.tsv) holding the text; default 'text'."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Alias (minilm-l6, multilingual-e5-small), local folder, HF id, or random:<shape>. Default: distilbert-base-multilingual-cased, falling back offline."),
    pooling: Optional[str] = typer.Option(None, help="mean | cls | max | mean_sqrt_len (default: the model's, else mean)."),
    normalize: Optional[bool] = typer.Option(None, "--normalize/--no-normalize", help="L2-normalise embeddings (default: the model's, else on)."),
    prefix: Optional[str] = typer.Option(None, help="Text prepended to every input (e5 models default to 'query: ')."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Maximum texts per forward pass (default: as many as fit the token budget; batches are always capped by tokens)."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 (auto = bf16 where the CPU/GPU runs it fast)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write .npy (float32 N x D) or .jsonl ({text, embedding} a line)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
) -> None:
    from polyhead.cli.outputs import check_output_file
    from polyhead.data.text_input import count_texts, iter_texts

    if input is None and not texts:
        fail("give texts as arguments, or --input FILE (or - for stdin)")
    if input is not None and texts:
        fail("give texts as arguments or --input, not both")
    if output is not None:
        check_output_file(output, "--output", (".npy", ".jsonl"), overwrite, [input])
    quiet_libraries()
    from polyhead.encoder import SentenceEncoder

    if texts:
        from polyhead.encoder import check_texts

        check_texts(texts)
    total = len(texts) if texts else count_texts(input, column)  # checks the file before the model loads
    encoder = SentenceEncoder.from_pretrained(model, pooling=pooling, normalize=normalize, prefix=prefix,
                                              precision=precision)
    source = iter(texts) if texts else iter_texts(input, column)
    writer = _open_writer(output, encoder.dimension)
    start, count, truncated = time.perf_counter(), 0, 0
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="text", file=sys.stderr, delay=2.0, mininterval=0.5, disable=None)
    try:
        for chunk in _chunks(source, CHUNK):
            block = encoder.encode(chunk, batch_size=batch_size)
            truncated += encoder.last_truncated
            writer.write(block, chunk)
            count += len(chunk)
            bar.update(len(chunk))
    except BaseException:
        bar.close()
        if hasattr(writer, "abort"):
            writer.abort()
        raise
    bar.close()
    if count == 0:
        typer.echo(f"polyhead: note: {input} holds no texts; the output has 0 rows", err=True)
    seconds = time.perf_counter() - start
    if isinstance(writer, _SummaryWriter):
        _print_summary(writer.result(), writer.texts)
    else:
        writer.close()
        typer.echo(f"wrote {count} x {encoder.dimension} embeddings to {output}")
    rate = f"; {count / seconds:.0f} texts/s" if seconds > 0 and count >= 100 else ""  # tiny runs time warm-up
    typer.echo(f"backbone: {encoder.backbone.describe()}; pooling {encoder.pooling.mode}, "
               f"normalize {encoder.normalize}, max_length {encoder.max_length}, precision {encoder.precision}"
               f"{rate}", err=True)
    if truncated:
        typer.echo(f"note: {truncated} of {count} texts were longer than {encoder.max_length} tokens and were "
                   f"truncated", err=True)


@app.command(help="Print the cosine similarity matrix of two or more texts.")
def similarity(
    texts: List[str] = typer.Argument(..., help="Two or more texts."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Backbone alias, folder or HF id (as in encode)."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16."),
) -> None:
    if len(texts) < 2:
        fail("similarity needs at least two texts")
    quiet_libraries()
    from rich.console import Console
    from rich.table import Table

    from polyhead.encoder import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(model, precision=precision)
    matrix = encoder.similarity(texts)
    table = Table(title=f"cosine similarity ({encoder.backbone.name})")
    table.add_column("#", justify="right")
    table.add_column("text")
    for j in range(len(texts)):
        table.add_column(str(j + 1), justify="right")
    for i, text in enumerate(texts):
        shown = text if len(text) <= 40 else text[:37] + "..."
        table.add_row(str(i + 1), shown, *[f"{matrix[i, j]:.3f}" for j in range(len(texts))])
    Console(width=200).print(table)
