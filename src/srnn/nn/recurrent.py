"""Recurrences over whole sequences at once: forward and backward GRUs with padding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from srnn.nn.fused_gru import FusedGRU
from srnn.nn.step_linear import StepLinear


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` (B, T, ...) within its own length; padding stays put."""
    B, T = x.shape[:2]
    if bool((lengths == T).all()):  # no padding: a plain flip, several times faster
        return x.flip(1)
    t = torch.arange(T, device=x.device).expand(B, T)
    L = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(t < L, L - 1 - t, t)
    return x.gather(1, idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x))


class BackwardGRU(nn.Module):
    """``a_t = GRU(a_{t+1}, input_t)``, run from each sequence's last real step to its first."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.gru = FusedGRU(in_dim, hidden)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out, _ = self.gru(reverse_padded(x, lengths))
        return reverse_padded(out, lengths)


class SplitInputGRUCell(nn.Module):
    """``h_t = GRU(h_{t-1}, [c_t, z_t])`` with the input product split in two.

    ``W_c c_t + b`` does not depend on z, so :meth:`context` computes it for all steps at
    once; only ``W_z z_t`` and the recurrent product run inside the z-recursion. The gates
    are PyTorch's (``nn.GRUCell``): r = sigma(i_r + h_r), u = sigma(i_u + h_u),
    n = tanh(i_n + r * h_n), h_t = (1 - u) n + u h_{t-1}.
    """

    def __init__(self, c_dim: int, z_dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.c = StepLinear(c_dim, 3 * hidden)
        self.z = StepLinear(z_dim, 3 * hidden, bias=False)
        self.h = StepLinear(hidden, 3 * hidden)

    def context(self, c: Tensor) -> Tensor:
        return self.c(c)

    def forward(self, gi_c: Tensor, z: Tensor, h: Tensor) -> Tensor:
        i_r, i_u, i_n = (gi_c + self.z(z)).chunk(3, dim=-1)
        h_r, h_u, h_n = self.h(h).chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        u = torch.sigmoid(i_u + h_u)
        n = torch.tanh(i_n + r * h_n)
        return n + u * (h - n)
