"""The deterministic baseline: a GRU over the previous outputs, no latent variables.

    d_t = GRU(d_{t-1}, u_t),  u_t = x_{t-1}          (SRNN paper eq. 1-2, the "RNN" of Table 2)
    p(x_t | x_<t) = p(x_t | d_t)                     Bernoulli, Gaussian or GMM
    log p(x_1:T) = sum_t log p(x_t | d_t)            exact, no bound
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from srnn.models.base import Batch, Draw, GenerativeStep, ModelConfig, SequenceModel
from srnn.nn.emissions import emission_from_config
from srnn.nn.fused_gru import FusedGRU
from srnn.nn.layers import MLP, activation, apply_init_


@dataclass
class RNNConfig(ModelConfig):
    d_dim: int = 300  # GRU state d_t
    hidden: int = 500  # hidden units of the emission MLP
    feature_layers: int = 2  # feature network on u_t (0: raw u_t)
    feature_dim: int = 500
    dropout: float = 0.0  # on the features and on d_t

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("d_dim", "hidden", "feature_dim")


class RNN(SequenceModel):
    """GRU language model over time steps; its log-likelihood is exact."""

    z_dim = 0

    def __init__(self, config: RNNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or RNNConfig()
        self.features = MLP(c.x_dim, c.feature_dim, c.feature_layers, c.activation)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = FusedGRU(self.features.out_dim, c.d_dim)  # eq. 1-2
        self.emit_in = nn.Linear(c.d_dim, c.hidden)
        self.act = activation(c.activation)
        self.emission = emission_from_config(c, c.hidden)
        apply_init_(self, c.init)

    def predictive(self, batch: Batch, carry: Tensor | None = None
                   ) -> tuple[torch.distributions.Distribution, Tensor]:
        """p(x_t | x_<t) for all steps given the true past (batch shape (B, T)), and d_1:T."""
        d0 = None if carry is None else carry.unsqueeze(0).contiguous()
        d, _ = self.rnn(self.drop(self.features(batch.u)), d0)
        return self.emission.distribution(self.act(self.emit_in(self.drop(d)))), d

    def exact_log_prob(self, batch: Batch, carry: Any = None) -> tuple[Tensor, Tensor]:
        """log p(x_t | d_t) for all steps (B, T); the carry is d_T for the next window."""
        dist, d = self.predictive(batch, carry)
        return dist.log_prob(batch.x), d[:, -1].detach()

    def init_generative_state(self, num: int, carry: Tensor | None = None) -> Tensor | None:
        """The GRU state as nn.GRU holds it: None (d_0 = 0), or the carried d_T."""
        return None if carry is None else carry.unsqueeze(0).contiguous()

    def generative_step(self, h: Tensor | None, x_prev: Tensor, draw: Draw) -> GenerativeStep:
        """Step t: d_t = GRU(d_{t-1}, x_{t-1}), then p(x_t | d_t); no z, so no draw."""
        d, h = self.rnn(self.features(x_prev).unsqueeze(1), h)  # eq. 1-2
        emission = self.emission.distribution(self.act(self.emit_in(d[:, 0])))
        return GenerativeStep(None, None, None, emission, h)
