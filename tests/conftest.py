"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared real data: ``$POLYHEAD_DATA``, else ``../shared/data`` beside the repo."""
    return Path(os.environ.get("POLYHEAD_DATA") or REPO.parent / "shared" / "data")


def need_data(*parts: str) -> Path:
    """``data_dir() / parts``, or skip the test when it is absent."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


FALLBACK_SENTENCES = [
    "EU rejects German call to boycott British lamb.",
    "Peter Blackburn",
    "",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "a",
    "Ein kurzer deutscher Satz.",
    "¿Dónde está la biblioteca municipal de Barcelona?",
    "Shares rose 3% after the results; analysts had expected a loss of $1.2bn in the third quarter of the year.",
]


def real_sentences(n: int) -> list[str]:
    """n real sentences: SST-2 train (then SIB-200) from the shared data, or skip when it is absent."""
    path = need_data("sentiment", "sst2", "train.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(" ", 1)[1] for line in lines[:n]]


@pytest.fixture(scope="session")
def minilm_fp32():
    from polyhead import SentenceEncoder

    return SentenceEncoder.from_pretrained("minilm-l6", precision="fp32")


def run_cli(*args: str, input: str | None = None, env: dict | None = None, timeout: int = 300):
    """Run the real `polyhead` entry point in a subprocess."""
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-c", "from polyhead.cli import main; main()", *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, env=full_env, timeout=timeout)
