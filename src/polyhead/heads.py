"""Task heads. Sentence heads read the pooled embedding; token heads read every token's state."""
from __future__ import annotations

import torch
from torch import nn

from polyhead.data.word_shape import NUM_SHAPES

HEAD_TYPES = ("sentence_classification", "token_classification")
CASE_DIM = 16  # width of the learned word-shape vector appended to each token state


class ClassificationHead(nn.Module):
    """Dropout -> [Linear -> GELU -> Dropout] -> Linear. Works on (B, H) or (B, T, H) inputs alike.

    Token heads with `case_features` also read a word-shape id per token (polyhead.data.word_shape): an
    embedding of it is appended to the token state, giving back the capitalisation an uncased model lost."""

    def __init__(self, task_type: str, in_dim: int, labels: list[str], hidden_dim: int | None = None,
                 dropout: float = 0.1, case_features: bool = False) -> None:
        super().__init__()
        if task_type not in HEAD_TYPES:
            raise ValueError(f"head type must be one of {', '.join(HEAD_TYPES)}, got {task_type!r}")
        if len(labels) < 2 and task_type == "sentence_classification":
            raise ValueError(f"a sentence classification head needs at least 2 labels, got {labels}")
        if case_features and task_type != "token_classification":
            raise ValueError("case_features are for token_classification heads")
        self.task_type = task_type
        self.labels = list(labels)
        self.hidden_dim = hidden_dim
        self.dropout_p = dropout
        self.in_dim = in_dim
        self.case_features = bool(case_features)
        self.case_embedding = nn.Embedding(NUM_SHAPES, CASE_DIM) if self.case_features else None
        width = in_dim + (CASE_DIM if self.case_features else 0)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_dim:
            layers += [nn.Linear(width, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, len(labels)))
        self.net = nn.Sequential(*layers)

    @property
    def reads_tokens(self) -> bool:
        return self.task_type == "token_classification"

    def forward(self, features: torch.Tensor, shapes: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.net[-1].weight.dtype
        features = features.to(dtype)
        if self.case_embedding is not None:
            if shapes is None:
                raise ValueError("this head reads word shapes (case_features); pass shapes=")
            features = torch.cat([features, self.case_embedding(shapes.to(features.device)).to(dtype)], dim=-1)
        return self.net(features)

    def spec(self) -> dict:
        return {"type": self.task_type, "labels": self.labels, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout_p, "in_dim": self.in_dim, "case_features": self.case_features}

    @classmethod
    def from_spec(cls, spec: dict) -> "ClassificationHead":
        return cls(spec["type"], spec["in_dim"], spec["labels"], spec.get("hidden_dim"), spec.get("dropout", 0.1),
                   spec.get("case_features", False))
