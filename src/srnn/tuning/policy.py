"""The policy and its gradient for ``srnn tune``: KL control (Jaques et al. 2017).

The policy π_θ is the tuned model's own ancestral sampler; p_0 is the pretrained model, frozen.
A path is (x_1:T, z_1:T) drawn step by step (models without latents: x_1:T alone)::

    z_t = μ_θ(z_<t, x_<t) + σ_θ(z_<t, x_<t) ε_t,   ε_t ~ N(0, I)          (reparameterised)
    x_t ~ π_θ(x_t | z_≤t, x_<t)                                            (the action)

Per path, with the music reward R(x) (:mod:`srnn.tuning.rewards`) and c the KL weight::

    F = R(x) − (c / T) Σ_t [log π_θ(x_t, z_t | z_<t, x_<t) − log p_0(x_t, z_t | z_<t, x_<t)]

and the tuner maximises J(θ) = E[F] = E[R] − c · KL_T(π_θ ‖ p_0), the KL of the joint paths
per time step, estimated on the sampled paths themselves. For latent models the joint-path KL
bounds the KL of the note sequences from above (chain rule), so the penalty keeps π_θ's music
at least as close to p_0's as it says.

The gradient (:func:`surrogate`) is, per path i, with ε held fixed:

    ∇J = E[ ∇_θ F  +  (F − b_i) ∇_θ Σ_t log π_θ(x_t | z_≤t, x_<t) ]

the pathwise derivative through z (F depends on θ through z_t = μ_θ + σ_θ ε_t and through
the log-densities) plus a score-function (REINFORCE) term over the sampled notes. The baseline
b_i is the mean of F over the *other* paths of the batch (leave-one-out): it does not depend on
path i, so the estimate stays unbiased, and it removes most of the variance of the score term.
The rewards need no gradient (they are functions of binary rolls).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from srnn.models import SequenceModel


class PathSample(NamedTuple):
    """Paths drawn from the policy, with the log-densities of both models on them."""

    x: Tensor  # x_1:T (N, T, D), the sampled notes
    z: Tensor | None  # z_1:T (N, T, z_dim), reparameterised (None without latents)
    log_pi_x: Tensor  # log π_θ(x_t | z_≤t, x_<t), (N, T), differentiable
    log_pi_z: Tensor  # log π_θ(z_t | z_<t, x_<t) at the drawn z_t, (N, T) (0 without latents)
    log_p0: Tensor  # log p_0(x_t, z_t | z_<t, x_<t) of the frozen model, (N, T), no gradient
    kl: Tensor  # the KL term of each step given the history (:func:`_step_kl`), (N, T)

    @property
    def log_ratio(self) -> Tensor:
        """log π_θ(x_t, z_t | ...) − log p_0(x_t, z_t | ...) per step, (N, T)."""
        return self.log_pi_x + self.log_pi_z - self.log_p0


def sample_paths(policy: SequenceModel, prior: SequenceModel, num: int, steps: int,
                 start: tuple[Any, Any, Tensor | None] | None = None,
                 eps: Tensor | None = None, x: Tensor | None = None) -> PathSample:
    """Draw ``num`` paths of ``steps`` steps from ``policy`` and score them under both models.

    ``start`` = (policy carry, prior carry, x_last) continues a primer (each model's state
    after it, and its last step); ``eps`` (num, steps, z_dim) fixes the latent noise and ``x``
    (num, steps, D) the notes (both for tests that enumerate outcomes); otherwise they are
    drawn from the global random generator. Gradients flow into the policy's parameters only.
    """
    ref = next(policy.parameters())
    policy_carry, prior_carry, x_last = start if start is not None else (None, None, None)
    x_prev = ref.new_zeros(num, policy.config.x_dim) if x_last is None else x_last
    s_pi = policy.init_generative_state(num, policy_carry)
    with torch.no_grad():
        s_0 = prior.init_generative_state(num, prior_carry)
    xs, zs, lx, lz, l0, kls = [], [], [], [], [], []
    closed_form: bool | None = None
    for t in range(steps):
        def draw(loc: Tensor, scale: Tensor, t: int = t) -> Tensor:
            return loc + scale * (torch.randn_like(loc) if eps is None else eps[:, t])

        g = policy.generative_step(s_pi, x_prev, draw)
        with torch.no_grad():
            x_t = g.emission.sample() if x is None else x[:, t]
        lx.append(g.emission.log_prob(x_t))
        same_z: Callable[[Tensor, Tensor], Tensor] = _no_draw
        if g.z is not None:
            lz.append(Normal(g.p_loc, g.p_scale).log_prob(g.z).sum(-1))
            zs.append(g.z)
            same_z = _given(g.z.detach())
        else:
            lz.append(torch.zeros_like(lx[-1]))
        with torch.no_grad():
            g0 = prior.generative_step(s_0, x_prev, same_z)  # p_0 on the policy's z_t
            lp0_x = g0.emission.log_prob(x_t)
            l0.append(lp0_x if g0.z is None else
                      lp0_x + Normal(g0.p_loc, g0.p_scale).log_prob(g0.z).sum(-1))
            s_0 = g0.state
        if closed_form is None:  # whether the emissions' KL has a closed form: once per call
            closed_form = _has_closed_form(g.emission, g0.emission)
        kls.append(_step_kl(g, g0, closed_form, lx[-1], lp0_x))
        s_pi = g.state
        xs.append(x_t)
        x_prev = x_t
    return PathSample(x=torch.stack(xs, 1), z=torch.stack(zs, 1) if zs else None,
                      log_pi_x=torch.stack(lx, 1), log_pi_z=torch.stack(lz, 1),
                      log_p0=torch.stack(l0, 1), kl=torch.stack(kls, 1))


def _has_closed_form(p: Any, q: Any) -> bool:
    """Whether torch.distributions has KL(p ‖ q) for these two emission distributions."""
    try:
        kl_divergence(p, q)
    except NotImplementedError:
        return False
    return True


def _step_kl(g: Any, g0: Any, closed_form: bool, log_pi_x: Tensor, log_p0_x: Tensor
             ) -> Tensor:
    """The KL term of step t given the history (N,): KL(π(z_t | ·) ‖ p_0(z_t | ·)) in closed
    form, plus KL(π(x_t | ·) ‖ p_0(x_t | ·)) in closed form where torch.distributions has it
    (the factorised emissions), else the log-ratio of the drawn x_t (autoregressive ones).
    Either has the expectation of the sampled log-ratio of the step, with less variance."""
    kl = kl_divergence(g.emission, g0.emission) if closed_form else log_pi_x - log_p0_x
    if g.z is not None:
        kl = kl + kl_divergence(Normal(g.p_loc, g.p_scale), Normal(g0.p_loc, g0.p_scale)).sum(-1)
    return kl


def _no_draw(loc: Tensor, scale: Tensor) -> Tensor:
    raise AssertionError("a model without latents drew a latent")


def _given(z: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """A draw that returns ``z``: the frozen model's step on the policy's latent path."""
    return lambda loc, scale: z


class Objective(NamedTuple):
    """One batch of the tuning objective."""

    loss: Tensor  # the surrogate to minimise: its gradient is −(the estimate of ∇J)
    objective: Tensor  # F per path (N,), no gradient
    kl_per_step: Tensor  # Σ_t log π/p_0 / T per path (N,), no gradient
    baseline: Tensor  # b_i per path (N,)


def leave_one_out(values: Tensor) -> Tensor:
    """b_i = the mean of the other entries along the first dimension (0 for a single one)."""
    n = values.shape[0]
    if n == 1:
        return torch.zeros_like(values)
    return (values.sum(0, keepdim=True) - values) / (n - 1)


def surrogate(paths: PathSample, reward: Tensor, kl_weight: float) -> Objective:
    """The surrogate loss of the estimator in the module docstring, for rewards R(x) per path
    (N,) and KL weight c; its gradient is an unbiased estimate of −∇J.

    The score of x_t is weighted by what x_t can change: R(x) and the KL terms of steps t and
    later (the earlier ones are fixed by the history), less a baseline per step: that weight's
    mean over the other paths."""
    T = paths.x.shape[1]
    steps = kl_weight * paths.kl / T  # (N, T)
    f = reward.to(steps.dtype) - steps.sum(1)  # pathwise through z and the KL terms
    to_go = reward.to(steps.dtype)[:, None] - steps.detach().flip(1).cumsum(1).flip(1)
    b = leave_one_out(to_go)
    score = (paths.log_pi_x * (to_go - b)).sum(1)
    loss = -(f + score).mean()
    return Objective(loss=loss, objective=f.detach(), kl_per_step=paths.kl.detach().sum(1) / T,
                     baseline=b[:, 0])


RewardFn = Callable[[Tensor], Tensor]  # x (N, T, D) -> R(x) (N,)


def exact_objective(policy: SequenceModel, prior: SequenceModel, outcomes: Tensor,
                    reward: RewardFn, kl_weight: float, eps: Tensor | None = None) -> Tensor:
    """J(θ) given the latent noise ``eps`` (1, T, z_dim) or for a model without latents, by
    enumerating every note sequence in ``outcomes`` (M, T, D): Σ_x π_θ(x | ε) F(x, ε).
    Differentiable; for tests of the estimator on tiny models."""
    m = outcomes.shape[0]
    e = None if eps is None else eps.expand(m, *eps.shape[1:])
    paths = sample_paths(policy, prior, m, outcomes.shape[1], eps=e, x=outcomes)
    log_px = paths.log_pi_x.sum(1)
    T = outcomes.shape[1]
    f = reward(outcomes).to(log_px.dtype) - kl_weight * paths.kl.sum(1) / T
    return (log_px.exp() * f).sum()
