"""Z-forcing: Training Stochastic Recurrent Networks (Goyal et al., NIPS 2017), laid out as in
Dai et al. (2019), appendix.

Generation (Goyal et al. section 2):
    p(z_t | h_{t-1}) = N(mu_p(h_{t-1}), sigma_p(h_{t-1})^2)
    x_t ~ p(x_t | z_t, h_{t-1})
    h_t = GRU(h_{t-1}, [x_t, z_t])
Inference with a backward RNN over the future of x:
    b_t = GRU_back(b_{t+1}, x_t),   q(z_t | h_{t-1}, b_t) = N(mu_q, sigma_q^2)
Auxiliary cost (section 2.2): + beta * log p(b_t | z_t) / a_dim, a Gaussian whose target b_t is
not back-propagated into the backward RNN; it shapes z_t during training and is not part of the
bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor
from torch.distributions import Normal

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
from srnn.nn.layers import MLP, GaussianHead, MLPGaussian, SplitInputLinear, activation, apply_init_
from srnn.nn.recurrent import BackwardGRU, SplitInputGRUCell


@dataclass
class ZForcingConfig(LatentConfig):
    d_dim: int = 300  # forward state h_t
    a_dim: int = 300  # backward state b_t
    hidden: int = 500  # hidden units of prior, posterior, decoder and auxiliary MLPs
    feature_layers: int = 2  # feature network on x_t
    feature_dim: int = 500
    # beta of the auxiliary cost (per unit of b_t); 0 disables it.
    aux_weight: float = 0.1

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("d_dim", "a_dim", "hidden", "feature_dim")


@dataclass
class ZForcingPre:
    x: Tensor = per_step()
    b: Tensor = per_step()  # backward states b_t, (B, T, a_dim)
    post_b: Tensor = per_step()  # b-part of the posterior's first layer
    cell_x: Tensor = per_step()  # x-part of the GRU input product
    h0: Tensor


class ZForcing(StateSpaceModel):
    def __init__(self, config: ZForcingConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or ZForcingConfig()
        self.z_dim = c.z_dim
        self.act = activation(c.activation)
        self.features = MLP(c.x_dim, c.feature_dim, c.feature_layers, c.activation)
        f = self.features.out_dim
        self.backward_rnn = BackwardGRU(f, c.a_dim)  # b_t
        self.prior = MLPGaussian(c.d_dim, c.hidden, c.z_dim, c.activation, c.min_std)
        self.post_in = SplitInputLinear(c.d_dim, c.a_dim, c.hidden)  # q(z_t | h_{t-1}, b_t)
        self.post_out = GaussianHead(c.hidden, c.z_dim, c.min_std)
        self.cell = SplitInputGRUCell(f, c.z_dim, c.d_dim)  # h_t = GRU(h_{t-1}, [x_t, z_t])
        self.dec_in = SplitInputLinear(c.z_dim, c.d_dim, c.hidden)  # p(x_t | z_t, h_{t-1})
        self.emission = emission_from_config(c, c.hidden)
        self.aux = MLPGaussian(c.z_dim, c.hidden, c.a_dim, c.activation, c.min_std)  # p(b_t|z_t)
        apply_init_(self, c.init)

    def precompute(self, batch: Batch, carry: Any = None) -> ZForcingPre:
        fx = self.features(batch.x)
        b = self.backward_rnn(fx, batch.lengths)
        B = batch.x.shape[0]
        h0 = carry if carry is not None else batch.x.new_zeros(B, self.config.d_dim)
        return ZForcingPre(x=batch.x, b=b, post_b=self.post_in.context(b),
                           cell_x=self.cell.context(fx), h0=h0)

    def init_state(self, pre: ZForcingPre, carry: Any = None) -> Tensor:
        return pre.h0

    def step(self, h: Tensor, t: int, pre: ZForcingPre) -> StepParams:
        p_loc, p_scale = self.prior(h)  # p(z_t | h_{t-1})
        q_loc, q_scale = self.post_out(self.act(self.post_in.latent(h) + pre.post_b[:, t]))
        return StepParams(q_loc, q_scale, p_loc, p_scale)

    def next_state(self, h: Tensor, z: Tensor, t: int, pre: ZForcingPre) -> Tensor:
        return self.cell(pre.cell_x[:, t], z, h)

    def emission_context(self, h: Tensor, z: Tensor, new_h: Tensor) -> Tensor:
        return h  # p(x_t | z_t, h_{t-1})

    def emission_features(self, z: Tensor, pre: ZForcingPre, context: Tensor | None = None
                          ) -> Tensor:
        """The hidden layer of p(x_t | z_t, h_{t-1}), all steps at once."""
        assert context is not None
        return self.act(self.dec_in(z, context))

    def auxiliary_log_prob(self, z: Tensor, pre: ZForcingPre, context: Tensor | None = None
                           ) -> Tensor | None:
        """beta * log p(b_t | z_t) with b_t held fixed (no gradient into the backward RNN)."""
        if self.config.aux_weight == 0:
            return None
        loc, scale = self.aux(z)
        # Averaged over the a_dim units of b_t, so the weight does not scale with a_dim.
        return self.config.aux_weight * Normal(loc, scale).log_prob(pre.b.detach()).mean(-1)

    def final_carry(self, h: Tensor, pre: ZForcingPre) -> Tensor:
        return h.detach()

    def init_generative_state(self, num: int, carry: Tensor | None = None
                              ) -> tuple[Tensor, Tensor | None]:
        """(h_0, None) before step 1: h_0 = 0, or the carried h_T of the sequence to continue."""
        h = next(self.parameters()).new_zeros(num, self.config.d_dim) if carry is None else carry
        return h, None

    def generative_step(self, state: tuple[Tensor, Tensor | None], x_prev: Tensor, draw: Draw
                        ) -> GenerativeStep:
        """Step t of the generation. The state is (h_{t-2}, z_{t-1}): the GRU update of step
        t - 1 needs x_{t-1}, so it runs here; before step 1 it is (h_0, None)."""
        h, z_prev = state
        if z_prev is not None:
            h = self.cell(self.cell.context(self.features(x_prev)), z_prev, h)  # [x_t-1, z_t-1]
        p_loc, p_scale = self.prior(h)  # p(z_t | h_{t-1})
        z = draw(p_loc, p_scale)
        emission = self.emission.distribution(self.act(self.dec_in(z, h)))  # p(x_t | z_t, h_t-1)
        return GenerativeStep(z, p_loc, p_scale, emission, (h, z))
