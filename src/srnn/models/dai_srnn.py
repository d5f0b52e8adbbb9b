"""The simplified SRNN of Dai et al. (2019, "Re-examination of the role of latent variables in
sequence modeling", appendix B), in which neither the prior nor the posterior of z_t depends
on earlier z, so both are computed for all steps in one pass.

Generation, with u_t = x_{t-1}:
    v_{t-1} = GRU_v(v_{t-2}, F(u_t))          a deterministic summary of x_<t (d_t below)
    p(z_t | x_<t) = N(mu_p(v_{t-1}), sigma_p(v_{t-1})^2)
    h_t = GRU_h(h_{t-1}, [v_{t-1}, z_t])
    x_t ~ p(x_t | h_t)
Inference, with a backward RNN over the future of x:
    b_t = GRU_back(b_{t+1}, F(x_t))
    q(z_t | x) = N(mu_q([v_{t-1}, b_t]), sigma_q([v_{t-1}, b_t])^2)
v is the SRNN's d_t (a GRU over u), so ``d_dim`` is its width; only the emission's GRU cell
runs step by step, since z_t feeds h_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from srnn.models.base import (
    Batch,
    Draw,
    GenerativeStep,
    LatentConfig,
    StateSpaceModel,
    StepParams,
    per_step,
    x_and_u_features,
)
from srnn.nn.emissions import emission_from_config
from srnn.nn.fused_gru import FusedGRU
from srnn.nn.layers import MLP, MLPGaussian, activation, apply_init_
from srnn.nn.recurrent import BackwardGRU, SplitInputGRUCell
from srnn.nn.step_linear import StepLinear


@dataclass
class DaiSRNNConfig(LatentConfig):
    d_dim: int = 300  # v_t, the GRU over x_<t
    a_dim: int = 300  # b_t, the backward GRU over x_t:T
    h_dim: int = 300  # h_t, the GRU the emission reads
    hidden: int = 500  # hidden units of the prior, posterior and emission MLPs
    feature_layers: int = 2  # shared feature network on x_t and u_t
    feature_dim: int = 500

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("d_dim", "a_dim", "h_dim", "hidden",
                                              "feature_dim")


@dataclass
class DaiSRNNPre:
    x: Tensor = per_step()
    p_loc: Tensor = per_step()  # p(z_t | x_<t) for all steps, (B, T, z)
    p_scale: Tensor = per_step()
    q_loc: Tensor = per_step()  # q(z_t | v_{t-1}, b_t) for all steps, (B, T, z)
    q_scale: Tensor = per_step()
    cell_v: Tensor = per_step()  # v-part of GRU_h's input product, (B, T, 3 h_dim)
    v_last: Tensor  # GRU_v's state after the last step (carried to the next window)
    h0: Tensor  # GRU_h's state before step 1


class DaiSRNN(StateSpaceModel):
    """Dai et al.'s simplified SRNN with the state-space step interface."""

    def __init__(self, config: DaiSRNNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or DaiSRNNConfig()
        self.z_dim = c.z_dim
        self.act = activation(c.activation)
        self.features = MLP(c.x_dim, c.feature_dim, c.feature_layers, c.activation)
        f = self.features.out_dim
        self.forward_rnn = FusedGRU(f, c.d_dim)  # v_{t-1} from u_1:t
        self.backward_rnn = BackwardGRU(f, c.a_dim)  # b_t from x_t:T
        self.prior = MLPGaussian(c.d_dim, c.hidden, c.z_dim, c.activation, c.min_std)
        self.posterior = MLPGaussian(c.d_dim + c.a_dim, c.hidden, c.z_dim, c.activation,
                                     c.min_std)
        self.cell = SplitInputGRUCell(c.d_dim, c.z_dim, c.h_dim)  # h_t = GRU([v_{t-1}, z_t])
        self.emit_in = StepLinear(c.h_dim, c.hidden)
        self.emission = emission_from_config(c, c.hidden)
        apply_init_(self, c.init)

    # -- everything that does not depend on z, for all time steps at once ------------------
    def precompute(self, batch: Batch, carry: Any = None) -> DaiSRNNPre:
        v0, h0 = (None, None) if carry is None else carry
        fx, fu = x_and_u_features(self.features, batch)
        v, _ = self.forward_rnn(fu, None if v0 is None else v0.unsqueeze(0).contiguous())
        b = self.backward_rnn(fx, batch.lengths)
        p_loc, p_scale = self.prior(v)  # p(z_t | x_<t)
        q_loc, q_scale = self.posterior(torch.cat([v, b], dim=-1))  # q(z_t | v_{t-1}, b_t)
        if h0 is None:
            h0 = batch.x.new_zeros(batch.x.shape[0], self.config.h_dim)
        return DaiSRNNPre(x=batch.x, p_loc=p_loc, p_scale=p_scale, q_loc=q_loc,
                          q_scale=q_scale, cell_v=self.cell.context(v), v_last=v[:, -1],
                          h0=h0)

    def init_state(self, pre: DaiSRNNPre, carry: Any = None) -> Tensor:
        return pre.h0

    # -- the z-recursion: only h_t ------------------------------------------------------------
    def step(self, h: Tensor, t: int, pre: DaiSRNNPre) -> StepParams:
        return StepParams(pre.q_loc[:, t], pre.q_scale[:, t], pre.p_loc[:, t],
                          pre.p_scale[:, t])

    def next_state(self, h: Tensor, z: Tensor, t: int, pre: DaiSRNNPre) -> Tensor:
        return self.cell(pre.cell_v[:, t], z, h)  # h_t = GRU_h(h_{t-1}, [v_{t-1}, z_t])

    def emission_context(self, h: Tensor, z: Tensor, new_h: Tensor) -> Tensor:
        return new_h  # p(x_t | h_t)

    def emission_features(self, z: Tensor, pre: DaiSRNNPre, context: Tensor | None = None
                          ) -> Tensor:
        """The hidden layer of p(x_t | h_t) for all steps at once, from the collected h_t."""
        assert context is not None
        return self.act(self.emit_in(context))

    def final_carry(self, h: Tensor, pre: DaiSRNNPre) -> tuple[Tensor, Tensor]:
        return pre.v_last.detach(), h.detach()

    # -- generation ------------------------------------------------------------------------
    def init_generative_state(self, num: int, carry: Any = None
                              ) -> tuple[Tensor | None, Tensor]:
        """(GRU_v's state, h): (None, 0) before step 1, or the carry (v_T, h_T)."""
        if carry is None:
            return None, next(self.parameters()).new_zeros(num, self.config.h_dim)
        return carry[0].unsqueeze(0).contiguous(), carry[1]

    def generative_step(self, state: tuple[Tensor | None, Tensor], x_prev: Tensor,
                        draw: Draw) -> GenerativeStep:
        """Step t of the generation (module docstring), with u_t = x_{t-1}."""
        v_state, h = state
        v, v_state = self.forward_rnn(self.features(x_prev).unsqueeze(1), v_state)
        v = v[:, 0]  # v_{t-1}
        p_loc, p_scale = self.prior(v)  # p(z_t | x_<t)
        z = draw(p_loc, p_scale)
        h = self.cell(self.cell.context(v), z, h)  # h_t
        emission = self.emission.distribution(self.act(self.emit_in(h)))  # p(x_t | h_t)
        return GenerativeStep(z, p_loc, p_scale, emission, (v_state, h))
