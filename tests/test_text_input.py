"""polyhead.data.text_input: streaming texts for `polyhead encode`."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from conftest import need_data

from polyhead.data.text_input import count_texts, iter_texts
from polyhead.errors import ConfigError, DataError


def write(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize(
    "content, texts",
    [
        ("a\n\nb\n", ["a", "", "b"]),  # an empty line is an empty text
        ("a\nb", ["a", "b"]),  # no final newline
        ("", []),
        ("\n", [""]),
        ("a\n\n", ["a", ""]),
        ("\ufeffone\r\ntwo\r\n", ["one", "two"]),  # BOM and CRLF dropped
        (" keep  spaces \tx\n", [" keep  spaces \tx"]),
    ],
)
def test_txt(tmp_path, content, texts):
    p = write(tmp_path / "in.txt", content)
    assert list(iter_texts(p)) == texts
    assert count_texts(p) == len(texts)


def test_txt_streams_and_reports_invalid_utf8_lazily(tmp_path):
    p = write(tmp_path / "in.txt", b"ok\nfine\nbad \xff here\n")
    it = iter_texts(p)
    assert next(it) == "ok"
    assert next(it) == "fine"
    with pytest.raises(DataError) as err:
        next(it)
    assert str(err.value) == f"{p}:3: invalid UTF-8 (byte 0xff at column 5)"


def test_invalid_utf8_column_counts_characters(tmp_path):
    p = write(tmp_path / "in.txt", "é€x".encode() + b"\xc3(\n")
    with pytest.raises(DataError, match=r":1: invalid UTF-8 \(byte 0xc3 at column 4\)"):
        list(iter_texts(p))


def test_big_txt_file(tmp_path):
    p = tmp_path / "big.txt"
    with open(p, "w", encoding="utf-8") as f:
        for i in range(200_000):
            f.write(f"sentence number {i}\n")
    assert count_texts(str(p)) == 200_000
    last, n = None, 0
    for text in iter_texts(str(p)):
        last, n = text, n + 1
    assert n == 200_000 and last == "sentence number 199999"


def test_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\n\ny\n")))
    assert list(iter_texts("-")) == ["x", "", "y"]
    assert count_texts("-") is None
    monkeypatch.setattr(sys, "stdin", io.StringIO("plain\ntext"))  # no .buffer
    assert list(iter_texts("-")) == ["plain", "text"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xfe\n")))
    with pytest.raises(DataError, match=r"^<stdin>:2: invalid UTF-8 \(byte 0xfe at column 1\)$"):
        list(iter_texts("-"))
    with pytest.raises(ConfigError, match="column"):
        iter_texts("-", column="text")


def test_jsonl(tmp_path):
    rows = [{"text": "first", "id": 1}, {"text": "", "body": "b"}, {"text": "third"}]
    p = write(
        tmp_path / "in.jsonl",
        "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]),
    )
    assert list(iter_texts(p)) == ["first", "", "third"]
    assert count_texts(p) == 3
    q = write(tmp_path / "b.jsonl", '{"body": "x"}\n')
    assert list(iter_texts(q, column="body")) == ["x"]


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("{broken", "invalid JSON"),
        ('{"body": "x"}', "no field 'text'; the fields are: body"),
        ('{"text": 5}', "must be a string"),
        ('"just a string"', "expected a JSON object"),
    ],
)
def test_jsonl_errors(tmp_path, line, fragment):
    p = write(tmp_path / "in.jsonl", '{"text": "ok"}\n' + line + "\n")
    it = iter_texts(p)
    assert next(it) == "ok"
    with pytest.raises(DataError) as err:
        next(it)
    assert str(err.value).startswith(f"{p}:2: ") and fragment in str(err.value)


@pytest.mark.parametrize("ext, sep", [(".csv", ","), (".tsv", "\t")])
def test_tables(tmp_path, ext, sep):
    p = write(
        tmp_path / f"in{ext}",
        f'id{sep}text{sep}body\n1{sep}"a{sep} ""b"""{sep}x\n\n2{sep}c{sep}y\n',
    )
    assert list(iter_texts(p)) == ["a" + sep + ' "b"', "c"]
    assert list(iter_texts(p, column="body")) == ["x", "y"]
    assert count_texts(p) == 2


@pytest.mark.parametrize("ext, sep", [(".csv", ","), (".tsv", "\t")])
def test_table_column_errors_are_raised_before_iterating(tmp_path, ext, sep):
    p = write(tmp_path / f"in{ext}", f"id{sep}sentence\n1{sep}x\n")
    msg = f"{p}:1: no column 'text' and no column given; the columns are: id, sentence"
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        iter_texts(p)
    with pytest.raises(DataError, match="no column 'body'; the columns are: id, sentence"):
        iter_texts(p, column="body")
    assert list(iter_texts(p, column="sentence")) == ["x"]
    empty = write(tmp_path / f"empty{ext}", "")
    with pytest.raises(DataError, match=":1: no header row"):
        iter_texts(empty)


def test_table_row_errors(tmp_path):
    p = write(tmp_path / "in.csv", "text,label\nok,1\ntoo,many,fields\n")
    with pytest.raises(DataError, match=f"^{re.escape(p)}:3: 3 fields, but the header has 2$"):
        list(iter_texts(p))
    q = write(tmp_path / "in.tsv", b"text\tlabel\nok\t1\nbad \x80\t2\n")
    with pytest.raises(DataError, match=r":3: invalid UTF-8 \(byte 0x80 at column 5\)"):
        list(iter_texts(q))


def test_path_errors(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(DataError, match=f"^data file not found: {re.escape(str(missing))}$"):
        iter_texts(str(missing))
    with pytest.raises(DataError, match="data file not found"):
        count_texts(str(missing))
    odd = write(tmp_path / "in.parquet", "x")
    with pytest.raises(
        DataError, match=r"unsupported file type '.parquet'; supported: .txt, .jsonl, .csv, .tsv"
    ):
        iter_texts(odd)
    with pytest.raises(DataError, match="unsupported"):
        count_texts(odd)
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(DataError, match="is a folder"):
        iter_texts(str(folder))
    with pytest.raises(ConfigError, match="plain text"):
        iter_texts(write(tmp_path / "a.txt", "x\n"), column="text")


def test_real_tsv_and_text_files():
    sib = need_data("topic", "sib200", "eng_Latn", "train.tsv")
    texts = list(iter_texts(str(sib)))
    assert len(texts) == 701 and count_texts(str(sib)) == 701
    tweets = need_data("sentiment", "umsab", "english", "train_text.txt")
    assert len(list(iter_texts(str(tweets)))) == count_texts(str(tweets)) == 1839
