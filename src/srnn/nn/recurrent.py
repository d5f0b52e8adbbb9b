"""Recurrences over whole sequences at once: forward and backward GRUs with padding."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` (B, T, ...) within its own length; padding stays put."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).expand(B, T)
    L = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(t < L, L - 1 - t, t)
    return x.gather(1, idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x))


class BackwardGRU(nn.Module):
    """``a_t = GRU(a_{t+1}, input_t)``, run from each sequence's last real step to its first."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out, _ = self.gru(reverse_padded(x, lengths))
        return reverse_padded(out, lengths)
