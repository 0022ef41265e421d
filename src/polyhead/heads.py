"""Task heads. Sentence heads read the pooled embedding; token heads read every token's state."""
from __future__ import annotations

import torch
from torch import nn

HEAD_TYPES = ("sentence_classification", "token_classification")


class ClassificationHead(nn.Module):
    """Dropout -> [Linear -> GELU -> Dropout] -> Linear. Works on (B, H) or (B, T, H) inputs alike."""

    def __init__(self, task_type: str, in_dim: int, labels: list[str], hidden_dim: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if task_type not in HEAD_TYPES:
            raise ValueError(f"head type must be one of {', '.join(HEAD_TYPES)}, got {task_type!r}")
        if len(labels) < 2 and task_type == "sentence_classification":
            raise ValueError(f"a sentence classification head needs at least 2 labels, got {labels}")
        self.task_type = task_type
        self.labels = list(labels)
        self.hidden_dim = hidden_dim
        self.dropout_p = dropout
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_dim:
            layers += [nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, len(labels)))
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim if not hidden_dim else self.net[1].in_features

    @property
    def reads_tokens(self) -> bool:
        return self.task_type == "token_classification"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.to(self.net[-1].weight.dtype))

    def spec(self) -> dict:
        return {"type": self.task_type, "labels": self.labels, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout_p, "in_dim": self.in_dim}

    @classmethod
    def from_spec(cls, spec: dict) -> "ClassificationHead":
        return cls(spec["type"], spec["in_dim"], spec["labels"], spec.get("hidden_dim"), spec.get("dropout", 0.1))
