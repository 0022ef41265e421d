"""Output paths, checked before any work: never write over an input, never replace a file unasked."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

from polyhead.errors import PolyheadError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(path: Path, option: str, suffixes: Iterable[str] | None = None, overwrite: bool = False,
                      inputs: Iterable[Optional[str | Path]] = ()) -> Path:
    """Raise a one-line PolyheadError unless `path` can be written as asked."""
    if not str(path).strip():
        raise PolyheadError(f"{option}: empty path")
    if path.is_dir():
        raise PolyheadError(f"{option} {path}: is a folder; give a file name")
    suffixes = tuple(suffixes or ())
    if suffixes and path.suffix.lower() not in suffixes:
        raise PolyheadError(f"{option} {path}: unsupported extension {path.suffix or '(none)'}; use "
                            f"{' or '.join(suffixes)}")
    parent = path.parent
    if not parent.exists():
        raise PolyheadError(f"{option} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise PolyheadError(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise PolyheadError(f"{option} {path}: cannot write in {parent} (permission denied)")
    for source in inputs:
        if source and str(source) != "-" and _same_file(path, Path(source)):
            raise PolyheadError(f"{option} {path}: is also the input file; write the output somewhere else")
    if path.exists() and not overwrite:
        raise PolyheadError(f"{option} {path}: already exists; pass --overwrite to replace it")
    return path


def check_run_folder(path: Path, option: str, overwrite: bool = False, resume: bool = False) -> Path:
    """A run folder may be new, or hold an unfinished run; a finished one is replaced only with --overwrite."""
    if path.exists() and not path.is_dir():
        raise PolyheadError(f"{option} {path}: is a file, not a folder")
    parent = path.parent
    if not path.exists() and parent.exists() and not parent.is_dir():
        raise PolyheadError(f"{option} {path}: {parent} is not a folder")
    finished = (path / "summary.json").is_file() or (path / "best").is_dir()
    if finished and not (overwrite or resume):
        raise PolyheadError(f"{option} {path}: holds a finished run (best/, summary.json); pass --overwrite to "
                            f"replace it, --resume to continue it, or choose another folder")
    return path
