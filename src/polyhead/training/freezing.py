"""Freezing (which parameters train) and layer-wise learning-rate decay (how fast each layer learns).

freeze: none | all | backbone | heads:[a,b] | layers:K     (K = embeddings + the bottom K transformer layers)
llrd:   lr(layer) = lr * llrd ** depth, depth 0 = the top transformer layer, embeddings deepest; heads get lr.
"""
from __future__ import annotations

from torch import nn

from polyhead.errors import ConfigError


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of any HF encoder: the ModuleList whose length is the layer count."""
    config = backbone.config
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
    candidates = [m for m in backbone.modules() if isinstance(m, nn.ModuleList) and len(m) == count]
    if not candidates:
        raise ConfigError(f"cannot find the {count} transformer layers of {type(backbone).__name__}")
    return candidates[0]


def layer_depths(backbone: nn.Module) -> dict[str, int]:
    """Parameter name -> depth from the top (0 = top layer). Embeddings get len(layers); the rest 0."""
    layers = transformer_layers(backbone)
    index_of = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    depths = {}
    for name, param in backbone.named_parameters():
        if id(param) in index_of:
            depths[name] = len(layers) - 1 - index_of[id(param)]
        elif "embed" in name:
            depths[name] = len(layers)
        else:
            depths[name] = 0  # pooler, final norms: treated as the top
    return depths


def apply_freeze(model, freeze: str) -> list[str]:
    """Set requires_grad according to `freeze`; returns the names of frozen head(s) or modules for the log."""
    backbone = model.encoder.transformer
    for p in model.parameters():
        p.requires_grad_(True)
    if freeze == "none":
        return []
    if freeze == "all":
        for p in model.parameters():
            p.requires_grad_(False)
        return ["everything"]
    if freeze == "backbone":
        for p in backbone.parameters():
            p.requires_grad_(False)
        return ["backbone"]
    if freeze.startswith("layers:"):
        k = int(freeze.split(":", 1)[1])
        layers = transformer_layers(backbone)
        if k > len(layers):
            raise ConfigError(f"training.freeze: layers:{k} but the backbone has only {len(layers)} layers")
        depths = layer_depths(backbone)
        frozen_depth = len(layers) - k  # depth >= this is frozen (bottom k layers, embeddings)
        for name, p in backbone.named_parameters():
            if depths[name] >= frozen_depth:
                p.requires_grad_(False)
        return [f"embeddings + bottom {k} layers"]
    names = [n.strip() for n in freeze[6:].strip("[] ").split(",") if n.strip()]
    for name in names:
        if name not in model.heads:
            raise ConfigError(f"training.freeze: head {name!r} does not exist; heads are {list(model.heads)}")
        for p in model.heads[name].parameters():
            p.requires_grad_(False)
    return [f"head {n}" for n in names]


def parameter_groups(model, lr: float, llrd: float, weight_decay: float, head_lr: float | None = None) -> list[dict]:
    """AdamW groups: one per (depth, decay/no-decay) for the backbone; heads and projection at the head lr."""
    backbone = model.encoder.transformer
    depths = layer_depths(backbone)
    groups: dict[tuple, dict] = {}

    def add(param, group_lr: float, decay: bool, label: str) -> None:
        key = (label, decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": group_lr, "weight_decay": weight_decay if decay else 0.0,
                           "name": label}
        groups[key]["params"].append(param)

    for name, p in backbone.named_parameters():
        if p.requires_grad:
            depth = depths[name]
            add(p, lr * llrd ** depth, not _no_decay(name), f"backbone depth {depth}")
    for name, p in model.named_parameters():
        if p.requires_grad and not name.startswith("encoder.transformer."):
            add(p, head_lr or lr, not _no_decay(name), "heads")
    return list(groups.values())


def _no_decay(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith("bias") or "norm" in lowered


def count_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
