"""Cross-lingual evaluation: one language x task table (with each language's score as a share of the source
language's), and bitext retrieval on the parallel SIB-200 sentences.

Language x task table: a config's tasks each have a main split (dev/test, in the source language) and extra
`eval` sets; an eval set's `name` is its language. `crosslingual_report` turns `evaluate_model`'s results
into {task: {language: score}} plus shares of the source language, and renders them as Markdown or a table.

Bitext retrieval: SIB-200 holds the same Flores sentences in every language, matched by `index_id`. Embed
the source language and each other language; for every source sentence, is its nearest neighbour (cosine)
among the other language's sentences its own translation? And the other way round. Top-1 accuracy both ways.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyhead.config import RunConfig
from polyhead.errors import DataError

LANGUAGE_NAMES = {"en": "English", "de": "German", "es": "Spanish", "fr": "French", "it": "Italian",
                  "nl": "Dutch", "pt": "Portuguese", "zh": "Chinese", "ar": "Arabic", "ja": "Japanese"}
# Flores-200 codes (SIB-200 folder names) -> ISO 639-1, for the SIB-200 languages of the shared data
FLORES_TO_ISO = {"eng_Latn": "en", "deu_Latn": "de", "spa_Latn": "es", "fra_Latn": "fr", "ita_Latn": "it",
                 "nld_Latn": "nl", "por_Latn": "pt"}
SIB200_SPLITS = ("train", "dev", "test")


def language_label(code: str) -> str:
    iso = FLORES_TO_ISO.get(code, code)
    name = LANGUAGE_NAMES.get(iso)
    return f"{code} ({name})" if name else code


# ------------------------------------------------------------------------------------ language x task
def crosslingual_report(results: dict[str, dict[str, dict]], config: RunConfig, split: str,
                        source: str = "en") -> dict[str, Any]:
    """`results` as `evaluate_model` returns them: {task: {set name: metrics}}; the main split's set is
    named after the split and its language is its spec's `name` (default `source`)."""
    tasks: dict[str, dict] = {}
    languages: list[str] = [source]
    for task_name, sets in results.items():
        task = config.tasks[task_name]
        main_spec = getattr(task, split, None)
        scores: dict[str, float] = {}
        counts: dict[str, int] = {}
        for set_name, metrics in sets.items():
            language = (main_spec.name or source) if set_name == split and main_spec is not None else set_name
            if language in scores:
                raise DataError(f"tasks.{task_name}: two evaluation sets are named {language!r}; give each "
                                f"language's set a distinct `name`")
            scores[language] = float(metrics[task.metric])
            counts[language] = int(metrics.get("n", 0))
            if language not in languages:
                languages.append(language)
        base = scores.get(source)
        shares = {lang: (score / base if base else None) for lang, score in scores.items()} if base is not None else {}
        others = {lang: s for lang, s in shares.items() if lang != source and s is not None}
        lowest = min(others, key=others.get) if others else None
        tasks[task_name] = {"metric": task.metric, "scores": scores, "n": counts, "share_of_source": shares,
                            "min_share": {"language": lowest, "share": others[lowest]} if lowest else None}
    return {"source": source, "split": split, "languages": languages, "tasks": tasks}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def crosslingual_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table: one row per language, per task its score and its share of the source."""
    source = report["source"]
    header = ["language"]
    for name, task in report["tasks"].items():
        header += [f"{name} {task['metric']}", f"{name} % of {source}"]
    rows = []
    for language in report["languages"]:
        row = [language_label(language)]
        for task in report["tasks"].values():
            score = task["scores"].get(language)
            row += ["–" if score is None else f"{100 * score:.1f}", _percent(task["share_of_source"].get(language))]
        rows.append(row)
    return header, rows


def crosslingual_summary_lines(report: dict) -> list[str]:
    lines = []
    for name, task in report["tasks"].items():
        lowest = task["min_share"]
        if lowest:
            lines.append(f"{name}: lowest share of {report['source']} is {_percent(lowest['share'])} "
                         f"({language_label(lowest['language'])})")
    return lines


def crosslingual_markdown(report: dict, title: str | None = None) -> str:
    header, rows = crosslingual_rows(report)
    out = [f"### {title}", ""] if title else []
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    sizes = "; ".join(f"{name}: " + ", ".join(f"{lang} {n}" for lang, n in task["n"].items())
                      for name, task in report["tasks"].items())
    out += ["", f"Scores in % ({report['split']} split of the source language, `eval` sets of the others). "
                f"Examples per set: {sizes}."]
    out += [f"- {line}" for line in crosslingual_summary_lines(report)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- retrieval
def read_parallel_sib200(root: Path, language: str, split: str = "all") -> dict[str, str]:
    """index_id -> text for one SIB-200 language folder; split is train | dev | test | all."""
    from polyhead.data.readers import read_sentence_examples

    splits = SIB200_SPLITS if split == "all" else (split,)
    if split != "all" and split not in SIB200_SPLITS:
        raise DataError(f"split must be one of {', '.join(SIB200_SPLITS)} or all, got {split!r}")
    folder = Path(root) / language
    if not folder.is_dir():
        raise DataError(f"SIB-200 language folder not found: {folder}")
    out: dict[str, str] = {}
    for name in splits:
        path = folder / f"{name}.tsv"
        if not path.is_file():
            raise DataError(f"SIB-200 file not found: {path}")
        for example in read_sentence_examples(path, "tsv", text="text", label="index_id"):
            if example.label in out:
                raise DataError(f"{example.source}: index_id {example.label} occurs twice in {language}")
            out[example.label] = example.text
    return out


def sib200_languages(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"SIB-200 folder not found: {root}")
    return sorted(d.name for d in root.iterdir() if d.is_dir() and any((d / f"{s}.tsv").is_file()
                                                                      for s in SIB200_SPLITS))


def top1_both_ways(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Row i of `a` and row i of `b` are translations; rows are L2-normalised. Top-1 accuracy a->b, b->a."""
    sim = a @ b.T
    gold = np.arange(len(a))
    return float(np.mean(sim.argmax(axis=1) == gold)), float(np.mean(sim.argmax(axis=0) == gold))


def bitext_retrieval(encoder, root: Path, source: str = "eng_Latn", languages: Sequence[str] | None = None,
                     split: str = "all", batch_size: int = 64) -> dict[str, Any]:
    """Top-1 retrieval accuracy source->language and language->source for every language sharing sentences."""
    root = Path(root)
    languages = [lang for lang in (languages or sib200_languages(root)) if lang != source]
    if not languages:
        raise DataError(f"no language besides {source} in {root}")
    src = read_parallel_sib200(root, source, split)
    ids = list(src)
    src_emb = dict(zip(ids, encoder.encode([src[i] for i in ids], batch_size=batch_size, normalize=True)))
    results: dict[str, dict] = {}
    for language in languages:
        other = read_parallel_sib200(root, language, split)
        shared = [i for i in ids if i in other]
        if not shared:
            raise DataError(f"{language} shares no index_id with {source} in the {split} split")
        emb = encoder.encode([other[i] for i in shared], batch_size=batch_size, normalize=True)
        forward, backward = top1_both_ways(np.stack([src_emb[i] for i in shared]), emb)
        results[language] = {"n": len(shared), "source_to_language": forward, "language_to_source": backward}
    return {"source": source, "split": split, "languages": results,
            "min": min(min(r["source_to_language"], r["language_to_source"]) for r in results.values())}


def retrieval_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    source = report["source"]
    header = ["language", "n", f"{source} -> language", f"language -> {source}"]
    rows = [[language_label(lang), str(r["n"]), f"{100 * r['source_to_language']:.1f}",
             f"{100 * r['language_to_source']:.1f}"] for lang, r in report["languages"].items()]
    return header, rows


def retrieval_markdown(report: dict, title: str | None = None) -> str:
    header, rows = retrieval_rows(report)
    out = [f"### {title}", ""] if title else []
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---", "---:", "---:", "---:"]) + "|")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out += ["", f"Top-1 accuracy in % (cosine nearest neighbour among the other language's sentences), SIB-200 "
                f"{report['split']} split; lowest: {100 * report['min']:.1f}%."]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- output
def print_table(title: str, header: list[str], rows: list[list[str]], notes: Sequence[str] = ()) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console(width=160)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def write_report(report: dict, markdown: str, json_path: Path) -> tuple[Path, Path]:
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path = json_path.with_suffix(".md")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path
