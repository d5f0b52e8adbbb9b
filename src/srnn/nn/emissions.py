"""Observation models ``p(x_t | features)``: Bernoulli for piano rolls, diagonal Gaussian and
Gaussian mixture for real values, the autoregressive MADE and NADE for binary data whose
values depend on each other within a step (:mod:`srnn.nn.autoregressive`), the
autoregressive ar-rnn and delta-random for real values (:mod:`srnn.nn.autoregressive_real`),
and for steps that mix binary and real values the pen emission of handwriting (a Bernoulli pen
lift times a bivariate Gaussian mixture, Graves 2013) and the mixed-columns emission
(:mod:`srnn.nn.pen`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

from srnn.columns import check_columns
from srnn.nn.autoregressive import (
    MADE_HIDDEN,
    MADE_LAYERS,
    NADE_HIDDEN,
    MADEEmission,
    NADEEmission,
    Order,
)
from srnn.nn.autoregressive_real import (
    ARRNN_HIDDEN,
    DELTA_HIDDEN,
    DELTA_ORDER,
    ARRNNEmission,
    DeltaRandomEmission,
)
from srnn.nn.layers import GaussianHead, bounded_std
from srnn.nn.pen import PEN_COLUMN, PEN_DIM, MixedEmission, PenEmission
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


EMISSIONS = {"bernoulli": BernoulliEmission, "gauss": GaussianEmission, "gmm": GMMEmission,
             "made": MADEEmission, "nade": NADEEmission, "ar-rnn": ARRNNEmission,
             "delta-random": DeltaRandomEmission, "pen": PenEmission, "mixed": MixedEmission}
AUTOREGRESSIVE = ("made", "nade", "ar-rnn", "delta-random")  # the emissions with ar_* options
# The model options that belong to the emission: each emission reads those of
# emission_options(name) and refuses (or, mixtures, ignores) the others.
EMISSION_OPTIONS = ("mixtures", "ar_order", "ar_hidden", "ar_layers", "ar_chunk",
                    "binary_columns")


def emission_options(name: str) -> tuple[str, ...]:
    """The options of :data:`EMISSION_OPTIONS` that the emission ``name`` reads: ``mixtures``
    (gmm, ar-rnn, delta-random, pen), ``ar_order`` and ``ar_hidden`` (the autoregressive ones),
    ``ar_layers`` (those but NADE, which has one layer), ``ar_chunk`` (ar-rnn),
    ``binary_columns`` (mixed)."""
    if name == "mixed":
        return ("binary_columns",)
    out = ("mixtures",) if name in ("gmm", "ar-rnn", "delta-random", "pen") else ()
    if name in AUTOREGRESSIVE:
        out += ("ar_order", "ar_hidden") + (() if name == "nade" else ("ar_layers",))
    if name == "ar-rnn":
        out += ("ar_chunk",)
    return out


def make_emission(name: str, in_dim: int, x_dim: int, mixtures: int = 5, *,
                  ar_order: Order = "ascending", ar_hidden: int | None = None,
                  ar_layers: int = MADE_LAYERS, ar_chunk: int | None = None,
                  binary_columns: Sequence[int] = ()) -> nn.Module:
    """The emission ``name``: bernoulli, gauss, gmm with ``mixtures`` components, the
    autoregressive made / nade over binary x_t in the order ``ar_order`` (ascending, descending,
    random:SEED), with ``ar_hidden`` units (default: MADE_HIDDEN for made, NADE_HIDDEN for
    nade) in ``ar_layers`` masked hidden layers (made only), or the autoregressive ar-rnn /
    delta-random over real x_t with ``mixtures`` components per unit: ar-rnn a GRU of
    ``ar_hidden`` units (ARRNN_HIDDEN) in ``ar_layers`` layers over chunks of ``ar_chunk``
    values (default: ceil(D / 10)) in the order ``ar_order``; delta-random an MLP of
    ``ar_layers`` layers of ``ar_hidden`` units (DELTA_HIDDEN), split by ``ar_order``
    (random:SEED; the default ascending stands for DELTA_ORDER, random:0); pen over steps
    (pen lift, dx, dy) with ``mixtures`` bivariate components; mixed with the columns
    ``binary_columns`` Bernoulli and the others Gaussian (:mod:`srnn.nn.pen`)."""
    if name not in EMISSIONS:
        raise ValueError(f"unknown emission {name!r}; choose one of {', '.join(EMISSIONS)}")
    if name not in AUTOREGRESSIVE and (ar_order != "ascending" or ar_hidden is not None
                                       or ar_layers != MADE_LAYERS):
        raise ValueError(f"the {name} emission has no order, hidden units or layers")
    if name != "ar-rnn" and ar_chunk is not None:
        raise ValueError(f"the {name} emission has no chunks; ar_chunk is for ar-rnn")
    if name != "mixed" and len(binary_columns):
        raise ValueError(f"the {name} emission has no binary columns; binary_columns is for "
                         "mixed")
    if name == "pen":
        return PenEmission(in_dim, x_dim, mixtures)
    if name == "mixed":
        return MixedEmission(in_dim, x_dim, binary_columns)
    if name == "made":
        hidden = MADE_HIDDEN if ar_hidden is None else ar_hidden
        return MADEEmission(in_dim, x_dim, hidden, ar_layers, ar_order)
    if name == "nade":
        if ar_layers != MADE_LAYERS:
            raise ValueError(f"NADE has one hidden layer; ar_layers={ar_layers} is for made")
        return NADEEmission(in_dim, x_dim, NADE_HIDDEN if ar_hidden is None else ar_hidden,
                            ar_order)
    if name == "ar-rnn":
        return ARRNNEmission(in_dim, x_dim, mixtures,
                             ARRNN_HIDDEN if ar_hidden is None else ar_hidden, ar_layers,
                             ar_chunk, ar_order)
    if name == "delta-random":
        return DeltaRandomEmission(in_dim, x_dim, mixtures,
                                   DELTA_HIDDEN if ar_hidden is None else ar_hidden, ar_layers,
                                   DELTA_ORDER if ar_order == "ascending" else ar_order)
    if name == "gmm":
        return GMMEmission(in_dim, x_dim, mixtures)
    return EMISSIONS[name](in_dim, x_dim)


def emission_from_config(config: Any, in_dim: int) -> nn.Module:
    """The emission a model's config names (``emission``, ``x_dim``, ``mixtures`` and the
    autoregressive ``ar_order``, ``ar_hidden`` (0: the default), ``ar_layers``, ``ar_chunk``
    (0: the default), ``binary_columns`` (mixed)), reading features of ``in_dim`` units."""
    return make_emission(config.emission, in_dim, config.x_dim, config.mixtures,
                         ar_order=config.ar_order, ar_hidden=config.ar_hidden or None,
                         ar_layers=config.ar_layers, ar_chunk=config.ar_chunk or None,
                         binary_columns=getattr(config, "binary_columns", ()))


def check_emission_fits(name: str, binary: bool, where: str) -> None:
    """Raise ``ValueError`` when the emission ``name`` models binary 0/1 data and the data
    (``where``) is real-valued."""
    if name in EMISSIONS and EMISSIONS[name].binary and not binary:
        raise ValueError(f"--emission {name} models binary 0/1 data, but {where} is "
                         "real-valued: choose gauss, gmm, ar-rnn or delta-random")


def column_options(name: str, options: dict[str, Any], dim: int,
                   data_binary_columns: Sequence[int], where: str) -> dict[str, Any]:
    """The column options of the emission ``name`` on data of ``dim`` values per step whose
    columns ``data_binary_columns`` hold only 0 and 1 (``where`` names the data).

    mixed: ``options["binary_columns"]``, or the data's binary columns when unset; each one
    given must be binary in the data. pen: steps of 3 values whose first, the pen lift, is
    binary. A mismatch is a ``ValueError``; other emissions get ``{}``."""
    binary = set(int(c) for c in data_binary_columns)
    if name == "pen":
        if dim != PEN_DIM or PEN_COLUMN not in binary:
            raise ValueError(f"--emission pen models steps (pen lift, dx, dy) with a binary "
                             f"first value, but {where} has {dim} value"
                             f"{'s' if dim != 1 else ''} per step"
                             + ("" if dim != PEN_DIM else " and a first column that is not "
                                "all 0/1") + ": choose --emission mixed or gauss")
        return {}
    if name != "mixed":
        return {}
    given = options.get("binary_columns")
    columns = sorted(binary) if given is None else list(check_columns(given, dim))
    for c in columns:
        if c not in binary:
            raise ValueError(f"--binary-columns: column {c} of {where} holds values other than "
                             "0 and 1, so it cannot be a Bernoulli column")
    return {"binary_columns": columns}


def validate_targets(x: Tensor, binary: bool, where: str = "batch") -> None:
    """Raise ``ValueError`` if ``x`` has non-finite values, or non-binary values for Bernoulli."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{where}: targets contain NaN or inf")
    if binary and not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{where}: a Bernoulli emission needs binary 0/1 targets")
