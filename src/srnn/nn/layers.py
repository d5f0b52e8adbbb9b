"""Small building blocks shared by every model: activations, MLPs, Gaussian heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srnn.nn.step_linear import StepLinear


class ClippedLeakyReLU(nn.Module):
    """Leaky ReLU with slope ``leak`` below 0, clipped to [-clip, clip] (paper appendix A)."""

    def __init__(self, leak: float = 1.0 / 3.0, clip: float = 3.0) -> None:
        super().__init__()
        self.leak, self.clip = leak, clip

    def forward(self, x: Tensor) -> Tensor:
        if self.leak <= 0:
            return torch.clamp(F.leaky_relu(x, self.leak), -self.clip, self.clip)
        # clip(leaky(x)) = leaky(clip'(x)) with the lower bound moved to -clip / leak; written
        # so, both backward passes are single fused operators.
        return F.leaky_relu(F.hardtanh(x, -self.clip / self.leak, self.clip), self.leak)

    def extra_repr(self) -> str:
        return f"leak={self.leak:.3g}, clip={self.clip:g}"


def activation(name: str) -> nn.Module:
    """An activation by name: ``clipped_leaky_relu`` (the paper's), ``relu``, ``tanh``,
    ``identity`` (linear models, e.g. a linear-Gaussian state-space model)."""
    table = {"clipped_leaky_relu": ClippedLeakyReLU, "relu": nn.ReLU, "tanh": nn.Tanh,
             "identity": nn.Identity}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(table)}")
    return table[name]()


class MLP(nn.Sequential):
    """``layers`` hidden layers of ``hidden`` units, each Linear -> activation -> dropout."""

    def __init__(self, in_dim: int, hidden: int, layers: int, act: str = "clipped_leaky_relu",
                 dropout: float = 0.0) -> None:
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [StepLinear(in_dim if i == 0 else hidden, hidden), activation(act)]
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
        super().__init__(*mods)
        self.out_dim = hidden if layers else in_dim


class SplitInputLinear(nn.Module):
    """First layer of an MLP on ``[z, c]``, split as ``W_z z + (W_c c + b)``.

    The ``c`` part (``d_t`` or ``a_t``) does not depend on z, so :meth:`context` computes it for
    all time steps at once and only :meth:`latent` runs inside the z-recursion.
    """

    def __init__(self, z_dim: int, c_dim: int, out_dim: int) -> None:
        super().__init__()
        self.z = StepLinear(z_dim, out_dim, bias=False)
        self.c = StepLinear(c_dim, out_dim)

    def context(self, c: Tensor) -> Tensor:
        return self.c(c)

    def latent(self, z: Tensor) -> Tensor:
        return self.z(z)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        return self.z(z) + self.c(c)


MAX_STD = 1e3  # standard deviations are kept in [min_std, min_std + MAX_STD]: log-variances
# stay bounded, so one wild pre-activation cannot make a density infinite


def bounded_std(s: Tensor, min_std: float) -> Tensor:
    """``softplus(s) + min_std`` with ``s`` capped at ``MAX_STD`` (softplus(s) ~ s there)."""
    return F.softplus(s.clamp(max=MAX_STD)) + min_std


class GaussianHead(nn.Module):
    """Diagonal Gaussian parameters from features: ``mu = W_mu h``, ``sigma = softplus(W_s h)``.

    With ``separate=True`` the input holds two hidden layers side by side, ``[h_mu, h_sigma]``
    (the mean and the variance come from two networks, as in SRNN eq. 3); otherwise both heads
    read the same ``h`` through one fused product. ``sigma`` lies in [min_std, min_std + MAX_STD].
    """

    def __init__(self, in_dim: int, out_dim: int, min_std: float = 1e-4,
                 separate: bool = False) -> None:
        super().__init__()
        self.separate = separate
        if separate:
            self.mu = StepLinear(in_dim, out_dim)
            self.sigma = StepLinear(in_dim, out_dim)
        else:
            self.proj = StepLinear(in_dim, 2 * out_dim)
        self.min_std = min_std

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.separate:
            h_mu, h_sigma = h.chunk(2, dim=-1)
            mu, s = self.mu(h_mu), self.sigma(h_sigma)
        else:
            mu, s = self.proj(h).chunk(2, dim=-1)
        return mu, bounded_std(s, self.min_std)


def init_paper_(module: nn.Module) -> None:
    """The initialisation of the SRNN paper's code: Glorot-normal weights and zero biases in
    linear layers, orthogonal recurrent and input matrices (per gate) in GRUs."""
    from srnn.nn.fused_gru import FusedGRU
    from srnn.nn.recurrent import SplitInputGRUCell

    cells = [m for m in module.modules() if isinstance(m, SplitInputGRUCell)]
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GRU | FusedGRU):
            for name, p in m.named_parameters():
                if name.startswith("weight"):
                    for gate in p.data.chunk(3, dim=0):
                        nn.init.orthogonal_(gate)
                else:
                    nn.init.zeros_(p)
    for cell in cells:  # its recurrent matrix is orthogonal per gate, like a GRU's
        for gate in cell.h.weight.data.chunk(3, dim=0):
            nn.init.orthogonal_(gate)


def apply_init_(module: nn.Module, init: str) -> None:
    """``paper`` (:func:`init_paper_`) or ``torch`` (PyTorch's defaults, left as they are)."""
    if init == "paper":
        init_paper_(module)
    elif init != "torch":
        raise ValueError(f"unknown init {init!r}; choose paper or torch")


class MLPGaussian(nn.Module):
    """``N(mu(h), sigma(h)^2)`` from one hidden layer: ``h -> act(W h + b) -> GaussianHead``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, act: str, min_std: float
                 ) -> None:
        super().__init__()
        self.hidden = StepLinear(in_dim, hidden)
        self.act = activation(act)
        self.head = GaussianHead(hidden, out_dim, min_std)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.act(self.hidden(h)))
