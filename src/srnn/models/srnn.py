"""SRNN: Sequential Neural Models with Stochastic Layers (Fraccaro et al., NIPS 2016).

Generative model (section 3, eq. 1-5), with u_t = x_{t-1}:
    d_t = GRU(d_{t-1}, u_t)                                  eq. 1-2
    p(z_t | z_{t-1}, d_t) = N(mu_p, sigma_p^2)               eq. 3
    p(x_t | z_t, d_t)     = Bernoulli or Gaussian            eq. 4
Inference (section 4, eq. 7-12):
    a_t = GRU_back(a_{t+1}, [d_t, x_t])   (smoothing)        eq. 10
    a_t = MLP([d_t, x_t])                 (filtering)
    q(z_t | z_{t-1}, a_t) = N(mu_q, sigma_q^2)               eq. 7, 11
    mu_q = mu_p + MLP(z_{t-1}, a_t)       (Res_q)            eq. 12
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

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
    x_and_u_features,
)
from srnn.nn import fused_posterior
from srnn.nn.emissions import emission_from_config
from srnn.nn.fused_gru import FusedGRU
from srnn.nn.layers import (
    MLP,
    GaussianHead,
    SplitInputLinear,
    activation,
    apply_init_,
)
from srnn.nn.recurrent import BackwardGRU


@dataclass
class SRNNConfig(LatentConfig):
    """Sizes and options; the defaults are the paper's polyphonic-music setup (appendix A)."""

    d_dim: int = 300  # forward GRU state d_t
    a_dim: int = 300  # inference state a_t
    hidden: int = 500  # units of the one hidden layer of each prior/posterior/emission MLP
    feature_layers: int = 2  # shared feature network on x and u (0: raw x and u)
    feature_dim: int = 500
    smoothing: bool = True  # a_t from a backward GRU (smoothing) or an MLP (filtering)
    res_q: bool = True  # eq. 12 residual posterior mean
    dropout: float = 0.0  # on the features and on d_t, a_t before the heads
    two_networks: bool = True  # mean and variance of p and q from separate hidden layers (eq. 3)

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("d_dim", "a_dim", "hidden", "feature_dim")


@dataclass
class SRNNPre:
    """What :meth:`SRNN.precompute` computes for all steps: d, and the d/a parts of layer 1."""

    x: Tensor = per_step()
    d: Tensor = per_step()  # (B, T, d_dim), after dropout
    d_last: Tensor  # GRU state after the last step, before dropout (carried to the next window)
    prior_d: Tensor = per_step()  # W_d d_t + b of the prior's first layer, (B, T, hidden)
    post_a: Tensor = per_step()  # W_a a_t + b of the posterior's first layer, (B, T, hidden)


class SRNN(StateSpaceModel):
    """The SRNN of Fraccaro et al. (2016) with the state-space step interface."""

    def __init__(self, config: SRNNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or SRNNConfig()
        self.z_dim = c.z_dim
        # Shared feature extractor for x_t and u_t (appendix A.1: "we share a neural network").
        self.features = MLP(c.x_dim, c.feature_dim, c.feature_layers, c.activation)
        f = self.features.out_dim
        self.drop = nn.Dropout(c.dropout)
        self.forward_rnn = FusedGRU(f, c.d_dim)  # eq. 1-2
        if c.smoothing:  # eq. 10: a_t = g(a_{t+1}, [d_t, x_t])
            self.backward_rnn: nn.Module = BackwardGRU(c.d_dim + f, c.a_dim)
        else:  # filtering: a_t from [d_t, x_t] only
            self.backward_rnn = MLP(c.d_dim + f, c.a_dim, 1, c.activation)
        self.act = activation(c.activation)
        # Prior p(z_t | z_{t-1}, d_t), eq. 3: mu = NN1(z_{t-1}, d_t), sigma = NN2(z_{t-1}, d_t);
        # with two_networks the hidden layers of NN1 and NN2 sit side by side in one product.
        width = 2 * c.hidden if c.two_networks else c.hidden
        self.prior_in = SplitInputLinear(c.z_dim, c.d_dim, width)
        self.prior_out = GaussianHead(c.hidden, c.z_dim, c.min_std, c.two_networks)
        # Posterior q(z_t | z_{t-1}, a_t), eq. 11-12, shaped like the prior.
        self.post_in = SplitInputLinear(c.z_dim, c.a_dim, width)
        self.post_out = GaussianHead(c.hidden, c.z_dim, c.min_std, c.two_networks)
        # Emission p(x_t | z_t, d_t), eq. 4.
        self.emit_in = SplitInputLinear(c.z_dim, c.d_dim, c.hidden)
        self.emission = emission_from_config(c, c.hidden)
        apply_init_(self, c.init)

    # -- everything that does not depend on z, for all time steps at once ------------------
    def precompute(self, batch: Batch, carry: Any = None) -> SRNNPre:
        d0 = None if carry is None else carry[0].unsqueeze(0).contiguous()
        fx, fu = x_and_u_features(self.features, batch)
        fx, fu = self.drop(fx), self.drop(fu)
        d_all, _ = self.forward_rnn(fu, d0)  # eq. 1-2, d_1:T
        d = self.drop(d_all)
        dx = torch.cat([d, fx], dim=-1)
        if self.config.smoothing:
            a = self.backward_rnn(dx, batch.lengths)  # eq. 10
        else:
            a = self.backward_rnn(dx)
        a = self.drop(a)
        return SRNNPre(x=batch.x, d=d, d_last=d_all[:, -1], prior_d=self.prior_in.context(d),
                       post_a=self.post_in.context(a))

    def init_state(self, pre: SRNNPre, carry: Any = None) -> Tensor:
        """z_0: zeros, or the last z of the previous window of the same streams."""
        if carry is not None:
            return carry[1]
        B = pre.d.shape[0]
        return pre.d.new_zeros(B, self.z_dim)

    # -- the z-recursion ---------------------------------------------------------------------
    def step(self, z_prev: Tensor, t: int, pre: SRNNPre) -> StepParams:
        h_p = self.act(self.prior_in.latent(z_prev) + pre.prior_d[:, t])
        p_loc, p_scale = self.prior_out(h_p)  # eq. 3
        h_q = self.act(self.post_in.latent(z_prev) + pre.post_a[:, t])
        q_loc, q_scale = self.post_out(h_q)  # eq. 11
        if self.config.res_q:
            q_loc = p_loc + q_loc  # eq. 12: mu_q = mu_p + delta
        return StepParams(q_loc, q_scale, p_loc, p_scale)

    def next_state(self, z_prev: Tensor, z: Tensor, t: int, pre: SRNNPre) -> Tensor:
        return z

    def fused_posterior(self, pre: SRNNPre, state: Tensor, T: int, noise: Noise
                        ) -> PosteriorPass | None:
        """:meth:`step` over all T steps as one fused recursion
        (:func:`srnn.nn.fused_posterior.gaussian_recursion`). Inside it: q (eq. 11) and, with
        Res_q, the prior mean it adds to (eq. 3, 12). The prior reads only z_{t-1} and d_t, so
        the one the bound uses is computed for all steps after the loop from the drawn
        z_0:T-1."""
        c = self.config
        if not (c.two_networks and fused_posterior.supports(self.act)):
            return None
        H = c.hidden
        eps = torch.stack([noise(state) for _ in range(T)], dim=1)
        w_p = self.prior_in.z.weight  # (2 H, z_dim): [mean | std] halves
        q_heads = (self.post_out.mu.weight, self.post_out.mu.bias, self.post_out.sigma.weight,
                   self.post_out.sigma.bias)
        if c.res_q:  # the prior mean runs in the loop: mu_q = mu_p + delta (eq. 12)
            z, q_loc, q_scale, _ = fused_posterior.gaussian_recursion(
                state, (pre.prior_d[..., :H], pre.post_a), eps,
                (w_p[:H], self.post_in.z.weight), self.act, c.min_std, q_heads,
                (self.prior_out.mu.weight, self.prior_out.mu.bias))
        else:
            z, q_loc, q_scale, _ = fused_posterior.gaussian_recursion(
                state, (pre.post_a,), eps, (self.post_in.z.weight,), self.act, c.min_std,
                q_heads)
        # eq. 3, the prior of every step from z_0:T-1 at once (its mean equals the loop's)
        z_prev = torch.cat([state.unsqueeze(1), z[:, :-1]], dim=1)
        p_loc, p_scale = self.prior_out(self.act(self.prior_in.latent(z_prev) + pre.prior_d))
        return PosteriorPass(z, q_loc, q_scale, p_loc, p_scale, None, z[:, -1])

    def final_carry(self, state: Tensor, pre: SRNNPre) -> tuple[Tensor, Tensor]:
        return pre.d_last.detach(), state.detach()

    # -- emission for all steps at once --------------------------------------------------------
    def emission_features(self, z: Tensor, pre: SRNNPre, context: Tensor | None = None
                          ) -> Tensor:
        """The hidden layer of p(x_t | z_t, d_t), eq. 4, all steps at once."""
        return self.act(self.emit_in(z, pre.d))

    # -- generation ------------------------------------------------------------------------
    def init_generative_state(self, num: int, carry: Any = None
                              ) -> tuple[Tensor | None, Tensor]:
        """(GRU state d_{t-1} as nn.GRU holds it, z_{t-1}) before step 1: (None, 0), or the
        carried (d_T, z_T) of the sequence to continue."""
        if carry is None:
            return None, next(self.parameters()).new_zeros(num, self.z_dim)
        return carry[0].unsqueeze(0).contiguous(), carry[1]

    def generative_step(self, state: tuple[Tensor | None, Tensor], x_prev: Tensor, draw: Draw
                        ) -> GenerativeStep:
        """Step t of the generative model, eq. 1-4, with u_t = x_{t-1}."""
        h, z_prev = state
        d, h = self.forward_rnn(self.features(x_prev).unsqueeze(1), h)  # eq. 1-2
        d = d[:, 0]
        p_loc, p_scale = self.prior_out(self.act(self.prior_in(z_prev, d)))  # eq. 3
        z = draw(p_loc, p_scale)
        emission = self.emission.distribution(self.act(self.emit_in(z, d)))  # eq. 4
        return GenerativeStep(z, p_loc, p_scale, emission, (h, z))
