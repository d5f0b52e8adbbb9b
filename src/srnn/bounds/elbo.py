"""The evidence lower bound (SRNN eq. 6/8) over the state-space step interface.

    ELBO = sum_t E_q[ log p(x_t | z_t, ...) ] - KL( q(z_t | ...) || p(z_t | ...) )

with one sample of z_1:T from q (reparameterised) and the KL in closed form per step. For a
model without latents (the RNN) the "bound" is its exact log-likelihood and the KL is zero.
:func:`joint_log_prob` gives log p(x_1:T, z_1:T) along the same path for a given z (what the
generation loop, :meth:`srnn.models.base.SequenceModel.sample_path`, sums while it draws).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from srnn.models.base import (
    Batch,
    PosteriorPass,
    SequenceModel,
    StateSpaceModel,
    StepParams,
    step_view,
)
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


def _z_recursion(model: StateSpaceModel, pre: Any, state: Any, T: int,
                 choose: Callable[[int, StepParams], Tensor]) -> PosteriorPass:
    """The z-recursion of the step interface over T steps, with z_t = ``choose(t, params)``."""
    zs, ql, qs, pl, ps, ctx = [], [], [], [], [], []
    pre = step_view(pre)  # per-step fields split once (see StepSlices)
    with batched_weight_grads(model):  # weight gradients over many steps at once
        for t in range(T):
            prm = model.step(state, t, pre)
            z = choose(t, prm)
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
    z, q_loc, q_scale, p_loc, p_scale = (torch.stack(v, dim=1) for v in (zs, ql, qs, pl, ps))
    context = torch.stack(ctx, dim=1) if ctx else None
    return PosteriorPass(z, q_loc, q_scale, p_loc, p_scale, context, state)


def sample_posterior(model: StateSpaceModel, pre: Any, state: Any, T: int,
                     generator: torch.Generator | None = None,
                     noise_rows: tuple[Tensor, int] | None = None) -> PosteriorPass:
    """Run the z-recursion drawing z_t ~ q(z_t | ...) (reparameterised), T steps: the model's
    fused path where it has one (:meth:`~srnn.models.base.StateSpaceModel.fused_posterior`),
    else the step interface step by step; both draw the same noise.

    ``noise_rows = (rows, n)``: the batch is rows ``rows`` of an n-row batch, and the noise is
    drawn for all n rows and cut to these (data-parallel processes then draw what one process
    with the whole batch would)."""

    def noise(like: Tensor) -> Tensor:
        # Noise drawn step by step: the draws of step t do not depend on T (padding-invariant).
        shape = like.shape if noise_rows is None else (noise_rows[1], *like.shape[1:])
        eps = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
        return eps if noise_rows is None else eps[noise_rows[0]]

    fused = model.fused_posterior(pre, state, T, noise)
    if fused is not None:
        return fused
    return _z_recursion(model, pre, state, T,
                        lambda t, prm: prm.q_loc + prm.q_scale * noise(prm.q_loc))


def joint_log_prob(model: SequenceModel, batch: Batch, z: Tensor | None = None,
                   carry: Any = None) -> Tensor:
    """log p(x_t, z_t | x_<t, z_<t) = log p(z_t | ...) + log p(x_t | z_t, ...) per step (B, T),
    multiplied by the mask, along the training path with z_1:T = ``z`` (B, T, z_dim) given:
    ``precompute``, ``init_state``, then ``step`` and ``next_state`` with z_t fixed, and
    ``emission_log_prob``. Summed over t, log p(x_1:T, z_1:T). For a model without latents (the
    RNN, ``z`` None) it is the exact log p(x_t | x_<t). ``carry`` continues streams, as in
    :func:`elbo_terms`."""
    m = batch.mask.to(batch.x.dtype)
    if model.z_dim == 0:
        ll, _ = model.exact_log_prob(batch, carry)
        return ll * m
    assert isinstance(model, StateSpaceModel) and z is not None
    pre = model.precompute(batch, carry)
    run = _z_recursion(model, pre, model.init_state(pre, carry), batch.x.shape[1],
                       lambda t, prm: z[:, t])
    log_prior = Normal(run.p_loc, run.p_scale).log_prob(run.z).sum(-1)  # log p(z_t | ...)
    return (log_prior + model.emission_log_prob(run.z, pre, run.context)) * m


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
    run = sample_posterior(model, pre, state, T, generator, noise_rows)
    q, p = Normal(run.q_loc, run.q_scale), Normal(run.p_loc, run.p_scale)
    if analytic_kl:
        kl = kl_divergence(q, p).sum(-1)
    else:
        kl = (q.log_prob(run.z) - p.log_prob(run.z)).sum(-1)
    recon = model.emission_log_prob(run.z, pre, run.context)
    aux = model.auxiliary_log_prob(run.z, pre, run.context)
    return ElboTerms(recon=recon * m, kl=kl * m, mask=m, carry=model.final_carry(run.state, pre),
                     aux=None if aux is None else aux * m)
