"""Importance-weighted (IWAE) and particle-filter (FIVO) bounds over the step interface.

Both run K particles per sequence through the z-recursion with q as proposal and the
incremental weight

    alpha_t = p(x_t | z_t, ...) p(z_t | ...) / q(z_t | ...).

IWAE (Burda et al., 2016) never resamples: log p(x) >= E log (1/K) sum_k prod_t alpha_t^k.
FIVO (Maddison et al., 2017; Le et al., 2018; Naesseth et al., 2018) resamples whenever the
effective sample size falls below ``ess_threshold`` K, and its bound is
sum over resampling epochs of log (1/K) sum_k w^k (the product of the mean incremental weights).
With K = 1, both equal the one-sample ELBO with a Monte-Carlo KL.

Everything that does not depend on z is computed once per sequence (``precompute``, e.g. SRNN's
backward states a_t) and cut step by step for the particles, so memory grows with K times
the state size, not K times the sequence length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Normal

from srnn.models.base import (
    Batch,
    SequenceModel,
    StateSpaceModel,
    at_step,
    expand_particles,
    step_view,
)
from srnn.nn.step_linear import batched_weight_grads

RESAMPLING = ("multinomial", "systematic")


@dataclass
class ParticleBound:
    """Per-sequence log-likelihood bounds (B,) and how often each sequence resampled."""

    log_likelihood: Tensor
    resamples: Tensor
    steps: Tensor


def _gather_rows(state: Any, rows: Tensor) -> Any:
    if isinstance(state, Tensor):
        return state.index_select(0, rows)
    if isinstance(state, tuple):
        return tuple(_gather_rows(s, rows) for s in state)
    return state


def _where_rows(keep: Tensor, new: Any, old: Any) -> Any:
    """Per row: ``new`` where ``keep`` else ``old`` (padded steps leave the state alone)."""
    if isinstance(new, Tensor):
        k = keep.view(-1, *([1] * (new.dim() - 1)))
        return torch.where(k, new, old)
    if isinstance(new, tuple):
        return tuple(_where_rows(keep, n, o) for n, o in zip(new, old, strict=True))
    return new


def ancestors(log_w: Tensor, method: str, generator: torch.Generator | None) -> Tensor:
    """Ancestor indices (B, K) drawn in proportion to exp(log_w) (B, K)."""
    B, K = log_w.shape
    p = torch.softmax(log_w, dim=1)
    if method == "multinomial":
        return torch.multinomial(p, K, replacement=True, generator=generator)
    if method == "systematic":
        u = torch.rand(B, 1, generator=generator, device=log_w.device, dtype=p.dtype)
        points = (u + torch.arange(K, device=log_w.device, dtype=p.dtype)) / K
        cdf = p.cumsum(1)
        cdf[:, -1] = 1.0
        return torch.searchsorted(cdf, points).clamp_(max=K - 1)
    raise ValueError(f"unknown resampling {method!r}; choose {' or '.join(RESAMPLING)}")


def particle_bound(model: SequenceModel, batch: Batch, K: int, resample: bool,
                   ess_threshold: float = 0.5, resampling: str = "multinomial",
                   generator: torch.Generator | None = None) -> ParticleBound:
    """IWAE (``resample=False``) or FIVO (``resample=True``) with K particles per sequence.

    Differentiable through the reparameterised z (resampling itself is not differentiated, as
    in FIVO's usual gradient); deterministic models return their exact log-likelihood.
    """
    if K < 1:
        raise ValueError(f"the number of samples must be at least 1, not {K}")
    B, T = batch.mask.shape
    mask = batch.mask > 0
    steps = mask.sum(1)
    if model.z_dim == 0:
        ll, _ = model.exact_log_prob(batch)
        zero = torch.zeros(B, dtype=torch.long, device=ll.device)
        return ParticleBound((ll * batch.mask.to(ll.dtype)).sum(1), zero, steps)
    assert isinstance(model, StateSpaceModel)
    pre = model.precompute(batch)
    state = model.init_state(pre)
    pre = step_view(expand_particles(pre, K))
    state = _gather_rows(state, torch.arange(B, device=mask.device).repeat_interleave(K))
    dtype = batch.x.dtype
    log_w = torch.zeros(B, K, device=mask.device, dtype=dtype)  # since the last resampling
    log_z = torch.zeros(B, device=mask.device, dtype=dtype)
    resamples = torch.zeros(B, dtype=torch.long, device=mask.device)
    base = (torch.arange(B, device=mask.device) * K).unsqueeze(1)
    log_k = math.log(K)
    with batched_weight_grads(model):  # weight gradients over many steps at once
        for t in range(T):
            live = mask[:, t]
            if not live.any():
                break
            pre_t = at_step(pre, t, K)
            prm = model.step(state, 0, pre_t)
            eps = torch.randn(prm.q_loc.shape, generator=generator, device=prm.q_loc.device,
                              dtype=prm.q_loc.dtype)
            z = prm.q_loc + prm.q_scale * eps
            new_state = model.next_state(state, z, 0, pre_t)
            ctx = model.emission_context(state, z, new_state)
            log_px = model.emission_log_prob(z.unsqueeze(1), pre_t,
                                             None if ctx is None else ctx.unsqueeze(1))[:, 0]
            log_alpha = (log_px + Normal(prm.p_loc, prm.p_scale).log_prob(z).sum(-1)
                         - Normal(prm.q_loc, prm.q_scale).log_prob(z).sum(-1)).view(B, K)
            log_w = log_w + torch.where(live.unsqueeze(1), log_alpha, torch.zeros_like(log_alpha))
            state = _where_rows(live.repeat_interleave(K), new_state, state)
            if resample and K > 1 and t < T - 1:
                ess = torch.exp(2 * torch.logsumexp(log_w, 1) - torch.logsumexp(2 * log_w, 1))
                now = live & (ess < ess_threshold * K)
                if now.any():
                    log_z = log_z + torch.where(now, torch.logsumexp(log_w, 1) - log_k,
                                                torch.zeros_like(log_z))
                    idx = ancestors(log_w.detach(), resampling, generator)
                    keep = torch.arange(K, device=mask.device).expand(B, K)
                    idx = torch.where(now.unsqueeze(1), idx, keep)
                    state = _gather_rows(state, (base + idx).view(-1))
                    log_w = torch.where(now.unsqueeze(1), torch.zeros_like(log_w), log_w)
                    resamples = resamples + now.long()
    log_z = log_z + torch.logsumexp(log_w, 1) - log_k
    return ParticleBound(log_z, resamples, steps)


def iwae(model: SequenceModel, batch: Batch, K: int,
         generator: torch.Generator | None = None) -> ParticleBound:
    """The importance-weighted bound with K samples of z_1:T per sequence."""
    return particle_bound(model, batch, K, resample=False, generator=generator)


def fivo(model: SequenceModel, batch: Batch, K: int, ess_threshold: float = 0.5,
         resampling: str = "multinomial", generator: torch.Generator | None = None
         ) -> ParticleBound:
    """The filtering variational bound with K particles, resampling when ESS < threshold K."""
    return particle_bound(model, batch, K, resample=True, ess_threshold=ess_threshold,
                          resampling=resampling, generator=generator)
