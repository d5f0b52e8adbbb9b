"""DMM: Structured Inference Networks for Nonlinear State Space Models (Krishnan, Shalit and
Sontag, AAAI 2017), the deep Markov model with the "ST-R" combiner inference network.

Generation (section 3, eq. 1; section 5 "gated transition function"):
    z_1 ~ p(z_1 | z_0) with a learnt z_0
    p(z_t | z_{t-1}) = N(mu_t, sigma_t^2):
        g_t     = sigmoid(W_2 act(W_1 z_{t-1} + b_1) + b_2)          gate
        m_t     = W_4 act(W_3 z_{t-1} + b_3) + b_4                     proposed mean
        mu_t    = (1 - g_t) * (W_mu z_{t-1} + b_mu) + g_t * m_t
        sigma_t = softplus(W_sigma act(m_t) + b_sigma)
    p(x_t | z_t) = emission of a two-layer MLP of z_t
DMM-Aug (``prev_input``; the "-previnp -etype conditional" runs of the authors' code,
``expt-polyphonic-fast/setup_experiments.py``): x_{t-1} joins z_{t-1} in the first layers of the
gate and the proposal, W_1 [z_{t-1}, x_{t-1}] and W_3 [z_{t-1}, x_{t-1}], and joins z_t in the
emission, p(x_t | z_t, x_{t-1}) (x_0 = 0). The x_{t-1} halves are computed for all steps at once.
Inference (section 4, combiner of Algorithm 1):
    h_t^r = GRU_back(h_{t+1}^r, x_t)                           right-to-left over x_t:T
    h_t^c = 1/2 (tanh(W z_{t-1} + b) + h_t^r)
    q(z_t | z_{t-1}, x_t:T) = N(W_q h_t^c + b_q, softplus(W_s h_t^c + b_s)^2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srnn.models.base import (
    Batch,
    Draw,
    GenerativeStep,
    LatentConfig,
    StateSpaceModel,
    StepParams,
    per_step,
)
from srnn.nn.emissions import emission_from_config
from srnn.nn.layers import MLP, GaussianHead, SplitInputLinear, activation, apply_init_
from srnn.nn.recurrent import BackwardGRU
from srnn.nn.step_linear import StepLinear


@dataclass
class DMMConfig(LatentConfig):
    a_dim: int = 600  # backward RNN state h_t^r (Krishnan et al.: 600)
    hidden: int = 200  # hidden units of the gated transition
    emission_hidden: int = 100  # units of each of the emission MLP's two layers
    prev_input: bool = False  # DMM-Aug: x_{t-1} feeds the transition and the emission
    activation: str = "relu"
    init: str = "torch"

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("a_dim", "hidden", "emission_hidden")


class GatedTransition(nn.Module):
    """p(z_t | z_{t-1}) (or p(z_t | z_{t-1}, x_{t-1}) with ``u_dim`` > 0): the gated transition
    of Krishnan et al. (2017), section 5."""

    def __init__(self, z_dim: int, hidden: int, act: str, min_std: float, u_dim: int = 0
                 ) -> None:
        super().__init__()
        self.act = activation(act)
        self.u_dim = u_dim
        if u_dim:  # W_1 [z_{t-1}, x_{t-1}] and W_3 [z_{t-1}, x_{t-1}], split by input
            self.gate_in = SplitInputLinear(z_dim, u_dim, hidden)
            self.proposal_in = SplitInputLinear(z_dim, u_dim, hidden)
        else:
            self.gate_hidden = StepLinear(z_dim, hidden)  # W_1
            self.proposal_hidden = StepLinear(z_dim, hidden)  # W_3
        self.gate = StepLinear(hidden, z_dim)  # W_2
        self.proposal = StepLinear(hidden, z_dim)  # W_4
        self.linear = StepLinear(z_dim, z_dim)  # W_mu, initialised to the identity
        self.scale = StepLinear(z_dim, z_dim)  # W_sigma
        self.min_std = min_std
        nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def context(self, u: Tensor) -> Tensor:
        """The x_{t-1} halves of W_1 and W_3 (with their biases), [gate | proposal], for all
        steps at once."""
        return torch.cat([self.gate_in.context(u), self.proposal_in.context(u)], dim=-1)

    def forward(self, z_prev: Tensor, u_part: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.u_dim:
            assert u_part is not None, "the transition reads x_{t-1}: pass context(x_{t-1})"
            u_gate, u_proposal = u_part.chunk(2, dim=-1)
            gate_in = self.gate_in.latent(z_prev) + u_gate
            proposal_in = self.proposal_in.latent(z_prev) + u_proposal
        else:
            gate_in, proposal_in = self.gate_hidden(z_prev), self.proposal_hidden(z_prev)
        g = torch.sigmoid(self.gate(self.act(gate_in)))
        m = self.proposal(self.act(proposal_in))
        loc = (1 - g) * self.linear(z_prev) + g * m
        scale = F.softplus(self.scale(self.act(m))) + self.min_std
        return loc, scale


@dataclass
class DMMPre:
    x: Tensor = per_step()
    h_right: Tensor = per_step()  # 1/2 h_t^r, the z-independent half of the combiner, (B, T, a_dim)
    # DMM-Aug only (else None): x_{t-1}, which the emission reads, and the transition's x_{t-1}
    # halves, (B, T, 2 hidden)
    u: Tensor | None = per_step(optional=True)
    u_part: Tensor | None = per_step(optional=True)


class DMM(StateSpaceModel):
    def __init__(self, config: DMMConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or DMMConfig()
        self.z_dim = c.z_dim
        self.z_0 = nn.Parameter(torch.zeros(c.z_dim))
        u_dim = c.x_dim if c.prev_input else 0
        self.transition = GatedTransition(c.z_dim, c.hidden, c.activation, c.min_std, u_dim)
        # p(x_t | z_t), or p(x_t | z_t, x_{t-1}) for DMM-Aug
        self.emitter = MLP(c.z_dim + u_dim, c.emission_hidden, 2, c.activation)
        self.emission = emission_from_config(c, self.emitter.out_dim)
        self.backward_rnn = BackwardGRU(c.x_dim, c.a_dim)  # h_t^r over x_t:T
        self.combiner_z = StepLinear(c.z_dim, c.a_dim)
        self.combiner_out = GaussianHead(c.a_dim, c.z_dim, c.min_std)
        apply_init_(self, c.init)

    def precompute(self, batch: Batch, carry: Any = None) -> DMMPre:
        # DMM-Aug: u_t = x_{t-1} (the previous window's last x along streams; 0 before a
        # sequence), and the transition's x_{t-1} halves for all steps at once
        u = batch.u if self.config.prev_input else None
        return DMMPre(x=batch.x, h_right=0.5 * self.backward_rnn(batch.x, batch.lengths), u=u,
                      u_part=None if u is None else self.transition.context(u))

    def init_state(self, pre: DMMPre, carry: Any = None) -> Tensor:
        if carry is not None:
            return carry
        return self.z_0.expand(pre.x.shape[0], -1)

    def step(self, z_prev: Tensor, t: int, pre: DMMPre) -> StepParams:
        u_part = None if pre.u_part is None else pre.u_part[:, t]
        p_loc, p_scale = self.transition(z_prev, u_part)  # p(z_t | z_{t-1}[, x_{t-1}])
        h_c = 0.5 * torch.tanh(self.combiner_z(z_prev)) + pre.h_right[:, t]  # combiner
        q_loc, q_scale = self.combiner_out(h_c)  # q(z_t | z_{t-1}, x_t:T)
        return StepParams(q_loc, q_scale, p_loc, p_scale)

    def next_state(self, z_prev: Tensor, z: Tensor, t: int, pre: DMMPre) -> Tensor:
        return z

    def _emit(self, z: Tensor, u: Tensor | None) -> Tensor:
        """The emitter's features of p(x_t | z_t), or of p(x_t | z_t, x_{t-1}) for DMM-Aug
        (``u`` = x_{t-1}, None for the plain DMM)."""
        return self.emitter(z if u is None else torch.cat([z, u.expand(*z.shape[:-1], -1)], -1))

    def emission_features(self, z: Tensor, pre: DMMPre, context: Tensor | None = None
                          ) -> Tensor:
        return self._emit(z, pre.u)

    def final_carry(self, z: Tensor, pre: DMMPre) -> Tensor:
        return z.detach()

    def init_generative_state(self, num: int, carry: Tensor | None = None) -> Tensor:
        """z_0 (learnt), or the carried z_T of the sequence to continue."""
        return self.z_0.expand(num, -1) if carry is None else carry

    def generative_step(self, z_prev: Tensor, x_prev: Tensor, draw: Draw) -> GenerativeStep:
        """Step t of the generation, eq. 1; the DMM's x_t does not feed the state (DMM-Aug reads
        x_{t-1} in the transition and the emission)."""
        u = x_prev if self.config.prev_input else None
        u_part = None if u is None else self.transition.context(u)
        p_loc, p_scale = self.transition(z_prev, u_part)  # p(z_t | z_{t-1}[, x_{t-1}])
        z = draw(p_loc, p_scale)
        emission = self.emission.distribution(self._emit(z, u))  # p(x_t | z_t[, x_{t-1}])
        return GenerativeStep(z, p_loc, p_scale, emission, z)
