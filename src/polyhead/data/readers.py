"""Readers for labelled data: sentence examples (text, label) and token examples (tokens, tags).

Formats (``FORMATS``):

- ``conll``: one token a line, token in the first column and tag in the last, blank line between
  sentences, ``-DOCSTART-`` lines skipped. Columns are tab separated when the line has a tab,
  else space separated. Tags must be ``O``, ``B-TYPE`` or ``I-TYPE``; IOB1 becomes IOB2.
- ``tsv`` / ``csv``: a header row, then one example a row; columns named by ``text``/``label``.
- ``label_text``: ``label text`` a line (SST-2), split on the first whitespace.
- ``parallel``: ``path`` holds one text a line, ``labels_path`` the label of each line.
- ``jsonl``: one JSON object a line (``{"text", "label"}`` or ``{"tokens", "tags"}``).
- ``snips``: ``path`` is a split folder with ``seq.in``, ``seq.out`` and ``label``.

Every example records where it came from as ``"path:line"``. Files are decoded as UTF-8 unless
``encoding`` is given; a file that is not valid UTF-8 is read as latin-1 (with a warning) when no
encoding was asked for. Lines end at ``\\n`` only; a ``\\r`` before it is dropped.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Union

from polyhead.data.text_input import (
    check_file,
    column_index,
    decode_error,
    iter_table,
    json_field,
    json_object,
)
from polyhead.errors import ConfigError, DataError

__all__ = [
    "FORMATS",
    "SENTENCE_FORMATS",
    "TOKEN_FORMATS",
    "SentenceExample",
    "TokenExample",
    "default_data_dir",
    "iob1_to_iob2",
    "read_sentence_examples",
    "read_token_examples",
]


PathLike = Union[str, "os.PathLike[str]"]

FORMATS = ("conll", "tsv", "csv", "label_text", "parallel", "jsonl", "snips")
SENTENCE_FORMATS = ("tsv", "csv", "label_text", "parallel", "jsonl", "snips")
TOKEN_FORMATS = ("conll", "jsonl", "snips")

_TAG = re.compile(r"O|[BI]-\S+")
_DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class SentenceExample:
    text: str
    label: str | None
    source: str  # "path:line" of where it came from


@dataclass(frozen=True)
class TokenExample:
    tokens: list[str]
    tags: list[str] | None
    source: str  # "path:line" of the sentence's first token


def default_data_dir() -> Path:
    """The shared evaluation data: ``$POLYHEAD_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("POLYHEAD_DATA") or "../shared/data")


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """Turn IOB1 tags into IOB2: an ``I-X`` that starts an entity becomes ``B-X``.

    Idempotent on IOB2 tags. Raises DataError for a tag that is not O, B-TYPE or I-TYPE.
    """
    out: list[str] = []
    prev = "O"
    for i, tag in enumerate(tags, 1):
        if not _TAG.fullmatch(tag):
            raise DataError(f"invalid tag {tag!r} at position {i} (expected O, B-TYPE or I-TYPE)")
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


# --- helpers --------------------------------------------------------------------------------------


def _read_text(path: PathLike, encoding: str | None) -> str:
    p = check_file(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    if encoding is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            print(f"polyhead: warning: {path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x}); reading the "
                  f"whole file as latin-1 (set `encoding:` in its data spec to choose, e.g. encoding: utf-8 to make "
                  f"this an error)", file=sys.stderr)
            text = data.decode("latin-1")
    else:
        try:
            text = data.decode(encoding)
        except LookupError:
            raise ConfigError(f"unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as e:
            line_no = data.count(b"\n", 0, e.start) + 1
            line_start = data.rfind(b"\n", 0, e.start) + 1
            raise decode_error(
                str(path), line_no, data[line_start:], e.start - line_start, encoding
            ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()  # a final newline does not start another line
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def _json_label(value: Any, name: str, where: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataError(
        f"{where}: field {name!r} must be a non-empty string or an integer, got {value!r}"
    )


def _str_list(value: Any, name: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field {name!r} must be a list of strings")
    return value


def _aligned(files: list[Path], encoding: str | None) -> list[list[str]]:
    """The lines of files that must match one to one (e.g. seq.in and label)."""
    texts = [_lines(_read_text(f, encoding)) for f in files]
    for f, lines in zip(files[1:], texts[1:], strict=True):
        if len(lines) != len(texts[0]):
            raise DataError(
                f"{files[0]} has {len(texts[0])} lines but {f} has {len(lines)}; "
                "they must match one to one"
            )
    return texts


def _snips_files(folder: Path, *names: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(
            f"data file not found: {folder} (expected a folder with {', '.join(names)})"
        )
    return [folder / n for n in names]


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def _check_format(
    fmt: str, allowed: tuple[str, ...], kind: str, labels_path: PathLike | None
) -> None:
    if fmt not in allowed:
        raise ConfigError(
            f"format {fmt!r} cannot be read as {kind} examples; use one of: {', '.join(allowed)}"
        )
    if labels_path is not None and fmt != "parallel":
        raise ConfigError(f"labels_path is only used by format 'parallel', not {fmt!r}")


# --- sentence examples ---------------------------------------------------------------------------


def read_sentence_examples(
    path: PathLike,
    format: str,
    *,
    text: str = "text",
    label: str | None = "label",
    labels_path: PathLike | None = None,
    limit: int | None = None,
    encoding: str | None = None,
) -> list[SentenceExample]:
    """Read (text, label) examples; ``limit`` keeps the first N.

    ``text``/``label`` name the columns (tsv, csv) or fields (jsonl); ``label=None`` reads no
    label there (every example has ``label=None``). Labels are kept as strings, as written.
    """
    _check_format(format, SENTENCE_FORMATS, "sentence", labels_path)
    _check_limit(limit)
    files: list[Path] = []
    if format == "parallel":
        if labels_path is None:
            raise ConfigError(
                "format 'parallel' needs labels_path (the file with one label a line)"
            )
        files = [Path(path), Path(labels_path)]
    elif format == "snips":
        files = _snips_files(Path(path), "seq.in", "label")
    rows: Iterator[SentenceExample]
    if format in ("parallel", "snips"):
        rows = _paired(*_aligned(files, encoding), files, strip_text=format == "snips")
    elif format == "label_text":
        rows = _label_text(_lines(_read_text(path, encoding)), str(path))
    elif format == "jsonl":
        rows = _jsonl_sentences(_lines(_read_text(path, encoding)), str(path), text, label)
    else:
        lines = _lines(_read_text(path, encoding))
        rows = _table_sentences(lines, str(path), "\t" if format == "tsv" else ",", text, label)
    return list(islice(rows, limit))


def _paired(
    texts: list[str], labels: list[str], files: list[Path], *, strip_text: bool
) -> Iterator[SentenceExample]:
    for no, (txt, lab) in enumerate(zip(texts, labels, strict=True), 1):
        if not lab.strip():
            raise DataError(f"{files[1]}:{no}: empty label")
        yield SentenceExample(txt.strip() if strip_text else txt, lab.strip(), f"{files[0]}:{no}")


def _label_text(lines: list[str], where: str) -> Iterator[SentenceExample]:
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise DataError(f"{where}:{no}: expected 'label text', got only {parts[0]!r}")
        yield SentenceExample(parts[1], parts[0], f"{where}:{no}")


def _jsonl_sentences(
    lines: list[str], where: str, text: str, label: str | None
) -> Iterator[SentenceExample]:
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{where}:{no}"
        obj = json_object(line, at)
        value = json_field(obj, text, at)
        if not isinstance(value, str):
            raise DataError(f"{at}: field {text!r} must be a string, got {type(value).__name__}")
        lab = None if label is None else _json_label(json_field(obj, label, at), label, at)
        yield SentenceExample(value, lab, at)


def _table_sentences(
    lines: list[str], where: str, delimiter: str, text: str, label: str | None
) -> Iterator[SentenceExample]:
    rows = iter_table((line + "\n" for line in lines), where, delimiter)
    header_line, header = next(rows, (1, []))
    if not header:
        return
    ti = column_index(header, text, f"{where}:{header_line}")
    li = None if label is None else column_index(header, label, f"{where}:{header_line}")
    for no, row in rows:
        lab = None
        if li is not None:
            lab = row[li].strip()
            if not lab:
                raise DataError(f"{where}:{no}: empty label in column {label!r}")
        yield SentenceExample(row[ti], lab, f"{where}:{no}")


# --- token examples ------------------------------------------------------------------------------


def read_token_examples(
    path: PathLike,
    format: str,
    *,
    tokens: str = "tokens",
    tags: str | None = "tags",
    labels_path: PathLike | None = None,
    limit: int | None = None,
    encoding: str | None = None,
) -> list[TokenExample]:
    """Read (tokens, tags) sentences from conll, jsonl or snips; ``limit`` keeps the first N.

    Tags are checked (O, B-TYPE, I-TYPE) and converted to IOB2. ``tokens``/``tags`` name the
    jsonl fields; ``tags=None`` reads no tags from jsonl.
    """
    _check_format(format, TOKEN_FORMATS, "token", labels_path)
    _check_limit(limit)
    if format == "snips":
        rows = _snips_tokens(Path(path), encoding)
    elif format == "jsonl":
        rows = _jsonl_tokens(_lines(_read_text(path, encoding)), str(path), tokens, tags)
    else:
        rows = _conll(_lines(_read_text(path, encoding)), str(path))
    return list(islice(rows, limit))


def _conll(lines: list[str], where: str) -> Iterator[TokenExample]:
    tokens: list[str] = []
    tags: list[str] = []
    start = width_line = width = 0
    for no, line in enumerate(lines, 1):
        stripped = line.strip(" \t\r")
        if stripped and "\t" in stripped:
            cols = [c.strip(" ") for c in stripped.split("\t")]
        else:
            cols = re.split(" +", stripped)
        if not stripped or cols[0] == _DOCSTART:
            if tokens:
                yield TokenExample(tokens, iob1_to_iob2(tags), f"{where}:{start}")
                tokens, tags = [], []
            continue
        if len(cols) < 2:
            raise DataError(
                f"{where}:{no}: expected 'token ... tag' columns, got one: {stripped!r}"
            )
        if "" in cols:
            raise DataError(f"{where}:{no}: empty column in {line!r}")
        if not width:
            width, width_line = len(cols), no
        elif len(cols) != width:
            raise DataError(f"{where}:{no}: {len(cols)} columns, but line {width_line} has {width}")
        if not _TAG.fullmatch(cols[-1]):
            raise DataError(
                f"{where}:{no}: invalid tag {cols[-1]!r} (expected O, B-TYPE or I-TYPE)"
            )
        if not tokens:
            start = no
        tokens.append(cols[0])
        tags.append(cols[-1])
    if tokens:
        yield TokenExample(tokens, iob1_to_iob2(tags), f"{where}:{start}")


def _checked_tags(tags: list[str], where: str) -> list[str]:
    for tag in tags:
        if not _TAG.fullmatch(tag):
            raise DataError(f"{where}: invalid tag {tag!r} (expected O, B-TYPE or I-TYPE)")
    return iob1_to_iob2(tags)


def _jsonl_tokens(
    lines: list[str], where: str, tokens: str, tags: str | None
) -> Iterator[TokenExample]:
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{where}:{no}"
        obj = json_object(line, at)
        toks = _str_list(json_field(obj, tokens, at), tokens, at)
        if not toks:
            raise DataError(f"{at}: field {tokens!r} is empty")
        tag_list = None
        if tags is not None:
            tag_list = _str_list(json_field(obj, tags, at), tags, at)
            if len(tag_list) != len(toks):
                raise DataError(f"{at}: {len(toks)} tokens but {len(tag_list)} tags")
            tag_list = _checked_tags(tag_list, at)
        yield TokenExample(list(toks), tag_list, at)


def _snips_tokens(folder: Path, encoding: str | None) -> Iterator[TokenExample]:
    seq_in, seq_out = _aligned(_snips_files(folder, "seq.in", "seq.out"), encoding)
    for no, (words, labels) in enumerate(zip(seq_in, seq_out, strict=True), 1):
        at = f"{folder / 'seq.in'}:{no}"
        toks, tag_list = words.split(), labels.split()
        if not toks:
            raise DataError(f"{at}: empty utterance")
        if len(toks) != len(tag_list):
            raise DataError(
                f"{at}: {len(toks)} tokens but {folder / 'seq.out'}:{no} has {len(tag_list)} tags"
            )
        yield TokenExample(toks, _checked_tags(tag_list, f"{folder / 'seq.out'}:{no}"), at)
