"""Texts to encode (``polyhead encode``), streamed one at a time so that big files never load whole.

By file extension:

- ``.txt`` (and ``-`` for stdin): one text a line. An empty line is an empty text; the newline
  that ends the last line does not start another text, so ``"a\\n\\nb\\n"`` gives ``a``, ``""``,
  ``b``. A ``\\r`` before the ``\\n`` is dropped.
- ``.jsonl``: one JSON object a line, the text in field ``column`` (default ``text``); blank
  lines are skipped.
- ``.csv`` / ``.tsv``: a header row, the text in column ``column``; when ``column`` is not given
  a column named ``text`` is used. Blank lines are skipped.

Files must be UTF-8 (a leading byte-order mark is dropped). Every problem is a DataError that
names the file and line. The low-level helpers here (decoding, CSV/TSV rows, JSON objects) are
shared with ``polyhead.data.readers``.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Union

from polyhead.errors import ConfigError, DataError

__all__ = ["SUPPORTED_EXTENSIONS", "count_texts", "iter_texts"]

PathLike = Union[str, "os.PathLike[str]"]

SUPPORTED_EXTENSIONS = (".txt", ".jsonl", ".csv", ".tsv")
STDIN = "-"


# --- helpers shared with readers -----------------------------------------------------------------


def decode_error(where: str, line_no: int, line: bytes, start: int, encoding: str) -> DataError:
    """The DataError for undecodable bytes at ``start`` of ``line`` (line ``line_no``)."""
    name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    column = len(line[:start].decode(encoding, errors="replace")) + 1
    return DataError(
        f"{where}:{line_no}: invalid {name} (byte 0x{line[start]:02x} at column {column})"
    )


def check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {path}")
    if p.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    return p


def iter_table(lines: Iterable[str], where: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, fields) for each non-blank CSV/TSV row, the header first.

    ``lines`` must keep their ``\\n``. A row whose field count differs from the header's raises.
    The real SIB-200 TSV files quote fields CSV-style (``"..."`` with ``""`` inside), so TSV is
    parsed with CSV quoting too; but a quoted TSV field may not span lines, since a stray quote
    would otherwise silently swallow the rows after it.
    """
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    start = 1
    width = 0
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                start = reader.line_num + 1
                continue
            if delimiter == "\t" and reader.line_num > start:
                raise DataError(
                    f"{where}:{start}: quoted field runs on to line {reader.line_num} "
                    "(unbalanced '\"'?)"
                )
            if not width:
                width = len(row)
            elif len(row) != width:
                raise DataError(f"{where}:{start}: {len(row)} fields, but the header has {width}")
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{where}:{reader.line_num}: malformed row: {e}") from None


def column_index(header: list[str], name: str, where: str) -> int:
    names = [h.strip() for h in header]
    if name not in names:
        raise DataError(f"{where}: no column {name!r}; the columns are: {', '.join(names)}")
    return names.index(name)


def json_object(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def json_field(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise DataError(f"{where}: no field {name!r}; the fields are: {', '.join(obj) or '(none)'}")
    return obj[name]


# --- streaming input -----------------------------------------------------------------------------


def _kind(path: str) -> str:
    ext = Path(path).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise DataError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)} or '-' for stdin"
        )
    return ext


def _raw_lines(path: str) -> Iterator[bytes | str]:
    if path == STDIN:
        # sys.stdin.buffer gives bytes, so invalid UTF-8 is reported like in a file.
        yield from getattr(sys.stdin, "buffer", sys.stdin)
        return
    with open(path, "rb") as f:
        yield from f


def _decoded(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its line ending) for every line, decoded as UTF-8."""
    where = "<stdin>" if path == STDIN else path
    for no, raw in enumerate(_raw_lines(path), 1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise decode_error(where, no, raw, e.start, "utf-8") from None
        else:
            line = raw
        if no == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if line.endswith("\n"):
            line = line[:-2] if line.endswith("\r\n") else line[:-1]
        yield no, line


def _check_input(path: str, column: str | None) -> str:
    if path == STDIN:
        kind = ".txt"
    else:
        if Path(path).is_dir():
            raise DataError(f"{path}: is a folder, expected a file")
        kind = _kind(path)
        check_file(path)
    if column is not None and kind == ".txt":
        raise ConfigError(
            f"a column ({column!r}) was given but {path} is plain text (one text a line); "
            "columns apply to .jsonl, .csv and .tsv"
        )
    return kind


def _table_column(path: str, column: str | None) -> int:
    """Read the header and find the text column, before any model is loaded."""
    rows = iter_table(
        (line + "\n" for _, line in _decoded(path)),
        path,
        "\t" if path.lower().endswith(".tsv") else ",",
    )
    _, header = next(rows, (1, []))
    if not header:
        raise DataError(f"{path}:1: no header row (the file is empty)")
    if column is None:
        if "text" not in [h.strip() for h in header]:
            raise DataError(
                f"{path}:1: no column 'text' and no column given; the columns are: "
                f"{', '.join(h.strip() for h in header)}"
            )
        column = "text"
    return column_index(header, column, f"{path}:1")


def iter_texts(path: str, column: str | None = None) -> Iterator[str]:
    """Yield the texts of ``path`` (``-`` = stdin, one text a line) one at a time.

    The path, its type and (for .csv/.tsv) the header are checked at once, so a bad input
    fails before the caller loads anything; the rest is read lazily.
    """
    path = os.fspath(path)
    kind = _check_input(path, column)
    if kind == ".txt":
        return (line for _, line in _decoded(path))
    if kind == ".jsonl":
        return _jsonl_texts(path, column or "text")
    return _table_texts(path, _table_column(path, column))


def _jsonl_texts(path: str, field: str) -> Iterator[str]:
    for no, line in _decoded(path):
        if not line.strip():
            continue
        at = f"{path}:{no}"
        value = json_field(json_object(line, at), field, at)
        if not isinstance(value, str):
            raise DataError(f"{at}: field {field!r} must be a string, got {type(value).__name__}")
        yield value


def _table_texts(path: str, index: int) -> Iterator[str]:
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    rows = iter_table((line + "\n" for _, line in _decoded(path)), path, delimiter)
    next(rows, None)  # the header
    for _, row in rows:
        yield row[index]


def count_texts(path: str, column: str | None = None) -> int | None:
    """How many texts ``iter_texts(path, column)`` will yield, cheaply, for a progress bar.

    None for stdin. Exact for .txt; for .jsonl the non-blank lines; for .csv/.tsv the non-blank
    lines less the header (an estimate when quoted fields span lines).
    """
    path = os.fspath(path)
    if path == STDIN:
        return None
    kind = _check_input(path, column)
    if kind == ".txt":
        count, last = 0, b"\n"
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        return count + (last != b"\n")
    with open(path, "rb") as f:
        lines = sum(1 for raw in f if raw.strip())
    return lines if kind == ".jsonl" else max(lines - 1, 0)
