"""VRNN: A Recurrent Latent Variable Model for Sequential Data (Chung et al., NIPS 2015).

Generation (section 3.2, eq. 5-7):
    z_t ~ N(mu_0t, sigma_0t^2),  [mu_0t, sigma_0t] = phi_prior(h_{t-1})          eq. 5
    x_t | z_t ~ p(x_t | phi_dec(phi_z(z_t), h_{t-1}))                               eq. 6
    h_t = f(phi_x(x_t), phi_z(z_t), h_{t-1})      (a GRU)                           eq. 7
Inference (eq. 9):
    q(z_t | x_<=t, z_<t) = N(mu_zt, sigma_zt^2),  [mu_zt, sigma_zt] = phi_enc(phi_x(x_t), h_{t-1})
VRNN-I (``independent_prior``): p(z_t) = N(0, I) at every step (Chung et al., section 4).
phi_x, the x-parts of phi_enc and of the GRU input are computed for all steps at once; the
GRU cell runs per step because z_t feeds h_t.
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
    Noise,
    PosteriorPass,
    StateSpaceModel,
    StepParams,
    per_step,
)
from srnn.nn import fused_posterior
from srnn.nn.emissions import emission_from_config
from srnn.nn.layers import MLP, GaussianHead, MLPGaussian, SplitInputLinear, activation, apply_init_
from srnn.nn.recurrent import SplitInputGRUCell


@dataclass
class VRNNConfig(LatentConfig):
    d_dim: int = 300  # recurrent state h_t
    hidden: int = 500  # hidden units of phi_prior, phi_enc, phi_dec
    feature_layers: int = 2  # layers of phi_x
    feature_dim: int = 500  # units of phi_x and of phi_z (one layer)
    independent_prior: bool = False  # VRNN-I: p(z_t) = N(0, I)

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("d_dim", "hidden", "feature_dim")


@dataclass
class VRNNPre:
    x: Tensor = per_step()
    enc_x: Tensor = per_step()  # x-part of phi_enc's first layer, (B, T, hidden)
    cell_x: Tensor = per_step()  # x-part of the GRU input product, (B, T, 3 d_dim)
    h0: Tensor


class VRNN(StateSpaceModel):
    """The VRNN (and, with ``independent_prior``, the VRNN-I) of Chung et al. (2015)."""

    def __init__(self, config: VRNNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or VRNNConfig()
        self.z_dim = c.z_dim
        self.act = activation(c.activation)
        self.phi_x = MLP(c.x_dim, c.feature_dim, c.feature_layers, c.activation)
        fx = self.phi_x.out_dim
        self.phi_z = MLP(c.z_dim, c.feature_dim, 1, c.activation)
        if not c.independent_prior:
            self.phi_prior = MLPGaussian(c.d_dim, c.hidden, c.z_dim, c.activation, c.min_std)
        self.enc_in = SplitInputLinear(c.d_dim, fx, c.hidden)  # phi_enc([phi_x(x_t), h_{t-1}])
        self.enc_out = GaussianHead(c.hidden, c.z_dim, c.min_std)
        self.dec_in = SplitInputLinear(c.feature_dim, c.d_dim, c.hidden)  # phi_dec(phi_z, h)
        self.emission = emission_from_config(c, c.hidden)
        self.cell = SplitInputGRUCell(fx, c.feature_dim, c.d_dim)  # eq. 7
        apply_init_(self, c.init)

    def precompute(self, batch: Batch, carry: Any = None) -> VRNNPre:
        fx = self.phi_x(batch.x)
        B = batch.x.shape[0]
        h0 = carry if carry is not None else batch.x.new_zeros(B, self.config.d_dim)
        return VRNNPre(x=batch.x, enc_x=self.enc_in.context(fx), cell_x=self.cell.context(fx),
                       h0=h0)

    def init_state(self, pre: VRNNPre, carry: Any = None) -> Tensor:
        return pre.h0

    def prior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """p(z_t | h_{t-1}), eq. 5; N(0, I) for the VRNN-I."""
        if self.config.independent_prior:
            zero = h.new_zeros(h.shape[0], self.z_dim)
            return zero, zero + 1.0
        return self.phi_prior(h)

    def step(self, h: Tensor, t: int, pre: VRNNPre) -> StepParams:
        p_loc, p_scale = self.prior(h)  # eq. 5
        q_loc, q_scale = self.enc_out(self.act(self.enc_in.latent(h) + pre.enc_x[:, t]))  # eq. 9
        return StepParams(q_loc, q_scale, p_loc, p_scale)

    def next_state(self, h: Tensor, z: Tensor, t: int, pre: VRNNPre) -> Tensor:
        return self.cell(pre.cell_x[:, t], self.phi_z(z), h)  # eq. 7

    def fused_posterior(self, pre: VRNNPre, state: Tensor, T: int, noise: Noise
                        ) -> PosteriorPass | None:
        """The z-loop with only q (eq. 9) and the GRU (eq. 7) in it, as one fused recursion
        (:func:`srnn.nn.fused_posterior.gru_recursion`): the prior of step t reads h_{t-1}
        alone (eq. 5), so it is computed for all steps after the loop, from the h_0:T-1 the
        loop leaves (which the emission reads too)."""
        if not fused_posterior.supports(self.act):
            return None
        eps = torch.stack([noise(state.new_empty(state.shape[0], self.z_dim))
                           for _ in range(T)], dim=1)
        f = self.phi_z[0]
        z_all, q_loc, q_scale, h_prev, h = fused_posterior.gru_recursion(
            state, pre.enc_x, pre.cell_x, eps, self.act, self.config.min_std,
            self.enc_in.z.weight, self.cell.h.weight, self.cell.h.bias,
            self.enc_out.proj.weight, self.enc_out.proj.bias, f.weight, f.bias,
            self.cell.z.weight)
        p_loc, p_scale = self.prior(h_prev.flatten(0, 1))  # eq. 5, all steps
        p_loc, p_scale = (v.view_as(q_loc) for v in (p_loc, p_scale))
        return PosteriorPass(z_all, q_loc, q_scale, p_loc, p_scale, h_prev, h)

    def emission_context(self, h: Tensor, z: Tensor, new_h: Tensor) -> Tensor:
        return h  # the decoder of step t reads h_{t-1}

    def emission_features(self, z: Tensor, pre: VRNNPre, context: Tensor | None = None
                          ) -> Tensor:
        """phi_dec(phi_z(z_t), h_{t-1}) of p(x_t | ...), eq. 6, all steps at once."""
        assert context is not None
        return self.act(self.dec_in(self.phi_z(z), context))

    def final_carry(self, h: Tensor, pre: VRNNPre) -> Tensor:
        return h.detach()

    def init_generative_state(self, num: int, carry: Tensor | None = None
                              ) -> tuple[Tensor, Tensor | None]:
        """(h_0, None) before step 1: h_0 = 0, or the carried h_T of the sequence to continue."""
        h = next(self.parameters()).new_zeros(num, self.config.d_dim) if carry is None else carry
        return h, None

    def generative_step(self, state: tuple[Tensor, Tensor | None], x_prev: Tensor, draw: Draw
                        ) -> GenerativeStep:
        """Step t of the generation, eq. 5-7. The state is (h_{t-2}, phi_z(z_{t-1})): eq. 7 of
        step t - 1 needs x_{t-1}, so it runs here; before step 1 it is (h_0, None)."""
        h, fz_prev = state
        if fz_prev is not None:
            h = self.cell(self.cell.context(self.phi_x(x_prev)), fz_prev, h)  # eq. 7: h_{t-1}
        p_loc, p_scale = self.prior(h)  # eq. 5
        z = draw(p_loc, p_scale)
        fz = self.phi_z(z)
        emission = self.emission.distribution(self.act(self.dec_in(fz, h)))  # eq. 6
        return GenerativeStep(z, p_loc, p_scale, emission, (h, fz))
