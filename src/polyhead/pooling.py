"""Pooling: token states -> one fixed-length vector per sentence. Padding never counts."""
from __future__ import annotations

import torch
from torch import nn

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")


class Pooling(nn.Module):
    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {mode!r}")
        self.mode = mode

    def forward(self, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = token_states.float()
        if self.mode == "cls":
            return states[:, 0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        if self.mode == "max":
            return states.masked_fill(mask == 0, float("-inf")).amax(dim=1)
        summed = (states * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1.0)
        if self.mode == "mean":
            return summed / counts
        return summed / counts.sqrt()

    def sentence_transformers_config(self, dim: int) -> dict:
        return {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": self.mode == "cls",
            "pooling_mode_mean_tokens": self.mode == "mean",
            "pooling_mode_max_tokens": self.mode == "max",
            "pooling_mode_mean_sqrt_len_tokens": self.mode == "mean_sqrt_len",
        }

    @staticmethod
    def mode_from_sentence_transformers(config: dict) -> str:
        for key, mode in (("pooling_mode_mean_tokens", "mean"), ("pooling_mode_cls_token", "cls"),
                          ("pooling_mode_max_tokens", "max"), ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len")):
            if config.get(key):
                return mode
        return "mean"
