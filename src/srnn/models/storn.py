"""STORN: Learning Stochastic Recurrent Networks (Bayer & Osendorfer, 2014).

Generation (section 3):
    z_t ~ N(0, I)                                   independent across time
    h_t = GRU(h_{t-1}, [u_t, z_t]),  u_t = x_{t-1}  the generating RNN
    x_t ~ p(x_t | h_t)
Inference: q(z_t | x_<=t) = N(mu(a_t), sigma(a_t)^2), a_t = GRU(a_{t-1}, x_t), the recognition
RNN. Neither q nor p depends on earlier z, so q is computed for all steps at once; only the
generating GRU cell runs step by step (with its u-part precomputed), since z_t feeds h_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

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
from srnn.nn.recurrent import SplitInputGRUCell


@dataclass
class STORNConfig(LatentConfig):
    d_dim: int = 300  # generating RNN state h_t
    a_dim: int = 300  # recognition RNN state a_t
    hidden: int = 500  # hidden units of the posterior and emission MLPs
    feature_layers: int = 2  # shared feature network on x_t and u_t
    feature_dim: int = 500

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("d_dim", "a_dim", "hidden", "feature_dim")


@dataclass
class STORNPre:
    x: Tensor = per_step()
    cell_u: Tensor = per_step()  # u-part of the generating GRU's input product, (B, T, 3 d)
    q_loc: Tensor = per_step()  # q(z_t | x_<=t) for all steps, (B, T, z)
    q_scale: Tensor = per_step()
    h0: Tensor  # generating state before step 1
    a_last: Tensor  # recognition state after the last step


class STORN(StateSpaceModel):
    def __init__(self, config: STORNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or STORNConfig()
        self.z_dim = c.z_dim
        self.act = activation(c.activation)
        self.features = MLP(c.x_dim, c.feature_dim, c.feature_layers, c.activation)
        f = self.features.out_dim
        self.recognition = FusedGRU(f, c.a_dim)  # a_t = GRU(a_{t-1}, x_t)
        self.posterior = MLPGaussian(c.a_dim, c.hidden, c.z_dim, c.activation, c.min_std)
        self.generating = SplitInputGRUCell(f, c.z_dim, c.d_dim)  # h_t = GRU(h, [u_t, z_t])
        self.emit_in = nn.Linear(c.d_dim, c.hidden)
        self.emission = emission_from_config(c, c.hidden)
        apply_init_(self, c.init)

    def precompute(self, batch: Batch, carry: Any = None) -> STORNPre:
        a0, h0 = (None, None) if carry is None else carry
        fx, fu = x_and_u_features(self.features, batch)
        a, _ = self.recognition(fx,
                                None if a0 is None else a0.unsqueeze(0).contiguous())
        q_loc, q_scale = self.posterior(a)  # q(z_t | x_<=t)
        if h0 is None:
            h0 = batch.x.new_zeros(batch.x.shape[0], self.config.d_dim)
        return STORNPre(x=batch.x, cell_u=self.generating.context(fu),
                        q_loc=q_loc, q_scale=q_scale, h0=h0, a_last=a[:, -1])

    def init_state(self, pre: STORNPre, carry: Any = None) -> Tensor:
        return pre.h0

    def prior(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """p(z_t) = N(0, I), the same at every step, as (loc, scale) with the rows, dtype and
        device of ``like``."""
        zero = like.new_zeros(like.shape[0], self.z_dim)
        return zero, zero + 1.0

    def step(self, h: Tensor, t: int, pre: STORNPre) -> StepParams:
        q_loc = pre.q_loc[:, t]
        return StepParams(q_loc, pre.q_scale[:, t], *self.prior(q_loc))  # p(z_t) = N(0, I)

    def next_state(self, h: Tensor, z: Tensor, t: int, pre: STORNPre) -> Tensor:
        return self.generating(pre.cell_u[:, t], z, h)  # h_t = GRU(h_{t-1}, [u_t, z_t])

    def emission_context(self, h: Tensor, z: Tensor, new_h: Tensor) -> Tensor:
        return new_h  # p(x_t | h_t)

    def emission_features(self, z: Tensor, pre: STORNPre, context: Tensor | None = None
                          ) -> Tensor:
        """The hidden layer of p(x_t | h_t) for all steps at once, from the collected h_t."""
        assert context is not None
        return self.act(self.emit_in(context))

    def final_carry(self, h: Tensor, pre: STORNPre) -> tuple[Tensor, Tensor]:
        return pre.a_last.detach(), h.detach()

    def init_generative_state(self, num: int, carry: Any = None) -> Tensor:
        """h_0 = 0, or the carried h_T of the sequence to continue (carry = (a_T, h_T))."""
        if carry is None:
            return next(self.parameters()).new_zeros(num, self.config.d_dim)
        return carry[1]

    def generative_step(self, h: Tensor, x_prev: Tensor, draw: Draw) -> GenerativeStep:
        """Step t of the generation of section 3, with u_t = x_{t-1}."""
        p_loc, p_scale = self.prior(h)  # p(z_t) = N(0, I)
        z = draw(p_loc, p_scale)
        h = self.generating(self.generating.context(self.features(x_prev)), z, h)  # [u_t, z_t]
        emission = self.emission.distribution(self.act(self.emit_in(h)))  # p(x_t | h_t)
        return GenerativeStep(z, p_loc, p_scale, emission, h)
