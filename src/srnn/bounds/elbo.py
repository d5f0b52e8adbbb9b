"""The evidence lower bound (SRNN eq. 6/8) over the state-space step interface.

    ELBO = sum_t E_q[ log p(x_t | z_t, ...) ] - KL( q(z_t | ...) || p(z_t | ...) )

with one sample of z_1:T from q (reparameterised) and the KL in closed form per step. For a
model without latents (the RNN) the "bound" is its exact log-likelihood and the KL is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from srnn.models.base import Batch, SequenceModel, StateSpaceModel, step_view
from srnn.nn.step_linear import batched_weight_grads


@dataclass
class ElboTerms:
    """Per-step terms, un-reduced (B, T) and already multiplied by the mask."""

    recon: Tensor  # log p(x_t | z_t, ...)
    kl: Tensor  # KL(q(z_t | ...) || p(z_t | ...))
    mask: Tensor
    carry: Any = None  # state for the next window of the same streams
    aux: Tensor | None = None  # weighted auxiliary training term (B, T), not part of the bound

    def elbo(self, kl_weight: float = 1.0) -> Tensor:
        """Per-step (B, T) ELBO with the KL term scaled by ``kl_weight`` (annealing)."""
        return self.recon - kl_weight * self.kl

    def per_step(self, kl_weight: float = 1.0) -> Tensor:
        """Mean ELBO per unpadded step over the batch (scalar), the training objective."""
        return self.elbo(kl_weight).sum() / self.mask.sum()

    def objective_sum(self, kl_weight: float = 1.0) -> Tensor:
        """The training objective summed over the batch's steps (not divided by them)."""
        out = self.elbo(kl_weight).sum()
        return out if self.aux is None else out + self.aux.sum()

    def objective(self, kl_weight: float = 1.0) -> Tensor:
        """What training maximises: the per-step ELBO plus any auxiliary term."""
        out = self.per_step(kl_weight)
        if self.aux is not None:
            out = out + self.aux.sum() / self.mask.sum()
        return out


def sample_posterior(model: StateSpaceModel, pre: Any, state: Any, T: int,
                     generator: torch.Generator | None = None,
                     noise_rows: tuple[Tensor, int] | None = None):
    """Run the z-recursion drawing z_t ~ q; return stacked
    (z, q_loc, q_scale, p_loc, p_scale, emission context or None, final state).

    ``noise_rows = (rows, n)``: the batch is rows ``rows`` of an n-row batch, and the noise is
    drawn for all n rows and cut to these (data-parallel processes then draw what one process
    with the whole batch would)."""
    zs, ql, qs, pl, ps, ctx = [], [], [], [], [], []
    pre = step_view(pre)  # per-step fields split once (see StepSlices)
    with batched_weight_grads(model):  # weight gradients over many steps at once
        for t in range(T):
            prm = model.step(state, t, pre)
            # Noise drawn step by step: the draws of step t do not depend on T
            # (padding-invariant).
            shape = (prm.q_loc.shape if noise_rows is None
                     else (noise_rows[1], *prm.q_loc.shape[1:]))
            eps = torch.randn(shape, generator=generator, device=prm.q_loc.device,
                              dtype=prm.q_loc.dtype)
            if noise_rows is not None:
                eps = eps[noise_rows[0]]
            z = prm.q_loc + prm.q_scale * eps
            new_state = model.next_state(state, z, t, pre)
            c = model.emission_context(state, z, new_state)
            if c is not None:
                ctx.append(c)
            state = new_state
            zs.append(z)
            ql.append(prm.q_loc)
            qs.append(prm.q_scale)
            pl.append(prm.p_loc)
            ps.append(prm.p_scale)
    stack = [torch.stack(v, dim=1) for v in (zs, ql, qs, pl, ps)]
    context = torch.stack(ctx, dim=1) if ctx else None
    return (*stack, context, state)


def elbo_terms(model: SequenceModel, batch: Batch, carry: Any = None,
               generator: torch.Generator | None = None, analytic_kl: bool = True,
               noise_rows: tuple[Tensor, int] | None = None) -> ElboTerms:
    """One-sample ELBO terms for a padded batch; ``carry`` continues streams (truncated BPTT).

    ``analytic_kl=False`` replaces the closed-form KL by its one-sample Monte-Carlo estimate
    ``log q(z_t | ...) - log p(z_t | ...)`` at the drawn z (same expectation, more variance).
    """
    m = batch.mask.to(batch.x.dtype)
    if model.z_dim == 0:  # no latents: the exact log-likelihood
        ll, new_carry = model.exact_log_prob(batch, carry)
        return ElboTerms(recon=ll * m, kl=torch.zeros_like(ll), mask=m, carry=new_carry)
    assert isinstance(model, StateSpaceModel)
    pre = model.precompute(batch, carry)
    state = model.init_state(pre, carry)
    T = batch.x.shape[1]
    z, q_loc, q_scale, p_loc, p_scale, context, state = sample_posterior(
        model, pre, state, T, generator, noise_rows)
    q, p = Normal(q_loc, q_scale), Normal(p_loc, p_scale)
    if analytic_kl:
        kl = kl_divergence(q, p).sum(-1)
    else:
        kl = (q.log_prob(z) - p.log_prob(z)).sum(-1)
    recon = model.emission_log_prob(z, pre, context)
    aux = model.auxiliary_log_prob(z, pre, context)
    return ElboTerms(recon=recon * m, kl=kl * m, mask=m, carry=model.final_carry(state, pre),
                     aux=None if aux is None else aux * m)
