"""Output paths, checked before any work: never write over an input, never replace a file unasked."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from polyhead.errors import PolyheadError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def unique_sibling(path: Path, suffix: str) -> Path:
    """A new, empty file next to `path` (same file system, so a rename moves it in place atomically)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _check_path_text(path: Path, option: str) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise PolyheadError(f"{option} {str(path)!r}: not valid UTF-8; use another name") from None


def _check_writable(folder: Path, option: str, path: Path) -> None:
    """Really create a file there: os.access says yes to root even on /proc or a read-only mount."""
    try:
        unique_sibling(folder / "polyhead-write-test", "").unlink()
    except OSError as exc:
        raise PolyheadError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from None


def check_output_file(path: Path, option: str, suffixes: Iterable[str] | None = None, overwrite: bool = False,
                      inputs: Iterable[Optional[str | Path]] = (), protect: Iterable[Path] = ()) -> Path:
    """Raise a one-line PolyheadError unless `path` can be written as asked. `protect`: folders (a model) whose
    files must never be replaced."""
    if not str(path).strip():
        raise PolyheadError(f"{option}: empty path")
    _check_path_text(path, option)
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
    _check_writable(parent, option, path)
    for folder in protect:
        if folder.is_dir() and path.resolve().is_relative_to(folder.resolve()):
            raise PolyheadError(f"{option} {path}: is inside the model folder {folder}; write it somewhere else")
    for source in inputs:
        if source and str(source) != "-" and _same_file(path, Path(source)):
            raise PolyheadError(f"{option} {path}: is also the input file; write the output somewhere else")
    if path.exists() and not overwrite:
        raise PolyheadError(f"{option} {path}: already exists; pass --overwrite to replace it")
    return path


RUN_MARKERS = ("metrics.jsonl", "summary.json", "config.json", "last", "best", "study_process.json", "demo_config.json")


def check_run_folder(path: Path, option: str, overwrite: bool = False, resume: bool = False,
                     inputs: Iterable[Optional[str | Path]] = ()) -> Path:
    """A run folder may be new, or hold an unfinished run; a finished one is replaced only with --overwrite.
    A folder that holds other things (a saved model, data) is never written into."""
    _check_path_text(path, option)
    if path.exists() and not path.is_dir():
        raise PolyheadError(f"{option} {path}: is a file, not a folder")
    if path.is_dir():
        entries = {p.name for p in path.iterdir()}
        if (path / "polyhead.json").is_file() or (entries and not entries & set(RUN_MARKERS)):
            raise PolyheadError(f"{option} {path}: holds files that are not a polyhead run "
                                f"({', '.join(sorted(entries)[:4])}{', ...' if len(entries) > 4 else ''}); "
                                f"choose a new or empty folder")
        for source in inputs if not resume else ():  # resuming from the run's own config.json is fine
            if source and Path(source).resolve().is_relative_to(path.resolve()) and \
                    Path(source).name in {"config.json", "metrics.jsonl", "summary.json"}:
                raise PolyheadError(f"{option} {path}: the run would write over its own input {source}")
    parent = path.parent
    if not path.exists() and parent.exists() and not parent.is_dir():
        raise PolyheadError(f"{option} {path}: {parent} is not a folder")
    if overwrite or resume or not path.is_dir():
        return path
    if (path / "summary.json").is_file():
        raise PolyheadError(f"{option} {path}: holds a finished run (summary.json, best/); pass --overwrite to "
                            f"replace it, --resume to continue it, or choose another folder")
    if set(p.name for p in path.iterdir()) & set(RUN_MARKERS):  # config.json, metrics.jsonl, last/, best/ ...
        checkpoint = next((path / n / "trainer_state.json" for n in ("last", ".last.old")
                           if (path / n / "trainer_state.json").is_file()), None)
        try:
            at = f", checkpoint at step {json.loads(checkpoint.read_text(encoding='utf-8'))['step']}" \
                if checkpoint else ", no checkpoint yet"
        except (OSError, ValueError, KeyError):
            at = ""
        raise PolyheadError(f"{option} {path}: holds an unfinished run{at}; pass --resume to continue it, "
                            f"--overwrite to start it again, or choose another folder")
    return path
