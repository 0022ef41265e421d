"""Saved models are self-contained, human-readable folders: safetensors + JSON + tokenizer, never pickle.

Layout (a sentence-transformers folder plus polyhead's own files):
    config.json, model.safetensors, tokenizer*.json   the backbone, as Hugging Face saves it
    modules.json, sentence_bert_config.json,          what sentence-transformers reads
    config_sentence_transformers.json, 1_Pooling/, [2_Dense/], [3_Normalize/]
    polyhead.json                                      backbone record, encoder settings, heads and label maps
    heads.safetensors                                  task heads (multi-task models only)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from polyhead import __version__
from polyhead.errors import PolyheadError

if TYPE_CHECKING:
    from polyhead.encoder import SentenceEncoder

POLYHEAD_CONFIG = "polyhead.json"


def read_polyhead_config(folder: str | Path) -> dict | None:
    path = Path(folder) / POLYHEAD_CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PolyheadError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _link_weights(source: Path, target: Path) -> bool:
    """Hard-link (else copy) a saved backbone's config and weight files: for checkpoints of a frozen encoder,
    whose weights are byte-identical to the previous checkpoint's."""
    files = [p for p in source.iterdir() if p.is_file() and (p.name == "config.json" or
             (p.name.startswith("model") and (p.suffix == ".safetensors" or p.name.endswith(".index.json"))))]
    if not any(p.suffix == ".safetensors" for p in files):
        return False
    for path in files:
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    return True


def save_encoder_folder(encoder: "SentenceEncoder", directory: Path, extra: dict,
                        reuse_weights_from: Path | None = None, finish: Callable[[Path], None] | None = None) -> Path:
    """Write into a temporary sibling folder, then swap it in, so a crash never leaves half a model.
    `reuse_weights_from`: a folder saved from the same, unchanged backbone weights (frozen-encoder checkpoints).
    `finish(folder)` writes more files (a trainer's state) into the folder before it is swapped in."""
    from safetensors.torch import save_file

    directory = directory.expanduser().resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            reused = reuse_weights_from is not None and Path(reuse_weights_from).is_dir() \
                and _link_weights(Path(reuse_weights_from), tmp)
            if not reused:
                encoder.transformer.save_pretrained(str(tmp))
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        encoder.tokenizer.save_pretrained(str(tmp))
        dim = encoder.backbone.hidden_size
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        _write_json(tmp / "1_Pooling" / "config.json", encoder.pooling.sentence_transformers_config(dim))
        if encoder.projection is not None:
            proj = encoder.projection
            _write_json(tmp / "2_Dense" / "config.json", {
                "in_features": proj.in_features, "out_features": proj.out_features, "bias": True,
                "activation_function": "torch.nn.modules.linear.Identity"})
            save_file({"linear.weight": proj.weight.detach().float().cpu().contiguous(),
                       "linear.bias": proj.bias.detach().float().cpu().contiguous()},
                      str(tmp / "2_Dense" / "model.safetensors"))
            modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        if encoder.normalize:
            (tmp / "3_Normalize").mkdir()
            modules.append({"idx": len(modules), "name": str(len(modules)), "path": "3_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
        _write_json(tmp / "modules.json", modules)
        _write_json(tmp / "sentence_bert_config.json", {"max_seq_length": encoder.max_length, "do_lower_case": False})
        st_config: dict[str, Any] = {"similarity_fn_name": "cosine"}
        if encoder.prefix:
            st_config.update(prompts={"query": encoder.prefix}, default_prompt_name="query")
        _write_json(tmp / "config_sentence_transformers.json", st_config)
        backbone = encoder.backbone
        config = {
            "polyhead_version": __version__,
            "backbone": {"name": backbone.name, "source": backbone.source, "pretrained": backbone.pretrained,
                         "meta": backbone.meta},
            "encoder": encoder.settings(),
            **extra.pop("config", {}),
        }
        _write_json(tmp / POLYHEAD_CONFIG, config)
        for filename, tensors in extra.items():
            save_file(tensors, str(tmp / filename))
        if finish is not None:
            finish(tmp)
        _swap_in(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def recover_folder(directory: Path) -> None:
    """Undo a swap cut between its two renames (the folder missing, `.NAME.old` the last complete save), and
    drop temporary folders a killed save left behind."""
    directory = directory.expanduser().resolve()
    old = directory.with_name(f".{directory.name}.old")
    if not directory.exists() and old.is_dir():
        os.replace(old, directory)
    for stale in directory.parent.glob(f".{directory.name}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def _swap_in(tmp: Path, directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise PolyheadError(f"cannot save to {directory}: a file with that name exists")
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
