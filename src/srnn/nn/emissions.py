"""Observation models ``p(x_t | features)``: Bernoulli for piano rolls, diagonal Gaussian and
Gaussian mixture for real values."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
)

from srnn.nn.layers import GaussianHead, bounded_std
from srnn.nn.step_linear import StepLinear


class BernoulliEmission(nn.Module):
    """``p(x_t | h_t) = prod_k Bernoulli(x_tk; sigmoid(W h_t + b)_k)`` for binary data."""

    binary = True

    def __init__(self, in_dim: int, x_dim: int) -> None:
        super().__init__()
        self.logits = StepLinear(in_dim, x_dim)

    def distribution(self, h: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=self.logits(h)), 1)

    def log_prob(self, h: Tensor, x: Tensor) -> Tensor:
        """Log-likelihood summed over the data dimension: (..., D) -> (...)."""
        return self.distribution(h).log_prob(x)


class GaussianEmission(nn.Module):
    """``p(x_t | h_t) = N(x_t; mu(h_t), diag sigma(h_t)^2)`` for real-valued data."""

    binary = False

    def __init__(self, in_dim: int, x_dim: int, min_std: float = 1e-3) -> None:
        super().__init__()
        self.head = GaussianHead(in_dim, x_dim, min_std)

    def distribution(self, h: Tensor) -> Distribution:
        return Independent(Normal(*self.head(h)), 1)

    def log_prob(self, h: Tensor, x: Tensor) -> Tensor:
        return self.distribution(h).log_prob(x)


class GMMEmission(nn.Module):
    """``p(x_t | h_t) = sum_k pi_k(h_t) N(x_t; mu_k(h_t), diag sigma_k(h_t)^2)``, K components."""

    binary = False

    def __init__(self, in_dim: int, x_dim: int, mixtures: int = 5, min_std: float = 1e-3
                 ) -> None:
        super().__init__()
        if mixtures < 1:
            raise ValueError(f"a mixture needs at least one component, not {mixtures}")
        self.k, self.x_dim, self.min_std = mixtures, x_dim, min_std
        self.logits = StepLinear(in_dim, mixtures)
        self.loc = StepLinear(in_dim, mixtures * x_dim)
        self.scale = StepLinear(in_dim, mixtures * x_dim)

    def distribution(self, h: Tensor) -> Distribution:
        shape = (*h.shape[:-1], self.k, self.x_dim)
        loc = self.loc(h).view(shape)
        scale = bounded_std(self.scale(h), self.min_std).view(shape)
        return MixtureSameFamily(Categorical(logits=self.logits(h)),
                                 Independent(Normal(loc, scale), 1))

    def log_prob(self, h: Tensor, x: Tensor) -> Tensor:
        return self.distribution(h).log_prob(x)


EMISSIONS = {"bernoulli": BernoulliEmission, "gauss": GaussianEmission, "gmm": GMMEmission}


def make_emission(name: str, in_dim: int, x_dim: int, mixtures: int = 5) -> nn.Module:
    """The emission ``name`` (bernoulli, gauss, gmm with ``mixtures`` components)."""
    if name not in EMISSIONS:
        raise ValueError(f"unknown emission {name!r}; choose one of {', '.join(EMISSIONS)}")
    if name == "gmm":
        return GMMEmission(in_dim, x_dim, mixtures)
    return EMISSIONS[name](in_dim, x_dim)


def validate_targets(x: Tensor, binary: bool, where: str = "batch") -> None:
    """Raise ``ValueError`` if ``x`` has non-finite values, or non-binary values for Bernoulli."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{where}: targets contain NaN or inf")
    if binary and not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{where}: a Bernoulli emission needs binary 0/1 targets")
