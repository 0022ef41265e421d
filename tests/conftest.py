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
