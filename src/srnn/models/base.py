"""The step interfaces that every model implements: inference over z, and generation.

Inference (the training path). A latent model splits its computation into
  * ``precompute(batch, carry)``: all work that does not depend on z, for all steps at once;
  * ``init_state(pre, carry)``: the recurrent state before step 1 (z_0 and any cell state);
  * ``step(state, t, pre)``: the proposal q(z_t | ...) and prior p(z_t | ...) at step t;
  * ``next_state(state, z_t, t, pre)``: the state after z_t has been drawn;
  * ``emission_context(state, z_t, new_state)``: what the emission at step t reads besides z_t
    and ``pre`` (e.g. the VRNN's h_{t-1}); None for models whose emission needs no state;
  * ``emission_features(z, pre, context)``: the emission head's input for all steps at once, from
    which ``observation`` (the distribution) and ``emission_log_prob`` (B, T) follow;
  * ``auxiliary_log_prob(z, pre, context)``: an extra training term that is not part of the
    bound (Z-forcing's auxiliary cost), already weighted; None for most models.
  * ``fused_posterior(pre, state, T, noise)``: optionally, the whole posterior z-recursion of a
    one-sample bound as one fused computation (the same values and gradients as the step loop,
    with far fewer operators); None by default.
The bounds (ELBO, IWAE, FIVO) are generic loops over this interface. A deterministic model (the
RNN) has no z: it sets ``z_dim = 0`` and gives its exact log-likelihood through
``exact_log_prob`` instead.

Generation (the generative model p alone, one step at a time). Every model, the RNN included,
provides
  * ``init_generative_state(num, carry)``: the generative state before step 1 of ``num``
    sequences; from ``carry`` (what ``final_carry`` / ``exact_log_prob`` return at the end of a
    sequence) to continue that sequence;
  * ``generative_step(state, x_prev, draw)``: step t from x_{t-1} and the generative state, as a
    :class:`GenerativeStep`: the prior p(z_t | ...) = N(p_loc, p_scale^2), z_t = ``draw(p_loc,
    p_scale)``, the emission p(x_t | z_t, ...) and the state that step t + 1 reads with x_t.
    The RNN has no z: its prior and z are None and it never calls ``draw``.
Sampling and continuation are then one loop, :meth:`SequenceModel.sample_path` (``generate``
returns its x), with x_0 = ``x_last`` (the last x of the continued sequence) or zeros (u_1 = 0,
as in training). At each step it draws z_t ~ p(z_t | ...), then x_t ~ p(x_t | z_t, ...), and
records log p(z_t | ...) + log p(x_t | z_t, ...), whose sum over t is log p(x_1:T, z_1:T); the
training path gives the same for the same x and z (:func:`srnn.bounds.elbo.joint_log_prob`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

from srnn.data.batching import Batch  # the data layer's padded batch, also srnn.models.base.Batch


@dataclass
class ModelConfig:
    """Options every model has; each model's config adds its own sizes and switches."""

    x_dim: int = 88  # data dimension (set from the data)
    emission: str = "bernoulli"  # bernoulli, made, nade (binary x); gauss, gmm, ar-rnn,
    # delta-random (real x); pen (handwriting: pen lift, dx, dy), mixed (binary and real columns)
    mixtures: int = 5  # components of a gmm emission (of each unit of ar-rnn, delta-random; of
    # the pen emission's bivariate mixture)
    ar_order: str = "ascending"  # made, nade, ar-rnn: order of x_t's values (descending,
    # random:SEED); delta-random: its split, random:SEED (ascending stands for random:0)
    ar_hidden: int = 0  # made, nade, ar-rnn, delta-random: hidden units (0: the emission's
    # default, 500 / 100 / 128 / 500)
    ar_layers: int = 1  # made: masked hidden layers; ar-rnn: GRU layers; delta-random: MLP layers
    ar_chunk: int = 0  # ar-rnn: values per chunk (0: ceil(x_dim / 10), 20 for speech frames)
    binary_columns: list[int] = field(default_factory=list)  # mixed: the Bernoulli columns of
    # x_t (the others are Gaussian); set from the data when unset
    activation: str = "clipped_leaky_relu"
    init: str = "paper"  # "paper" (Glorot-normal, orthogonal GRUs) or "torch" (PyTorch defaults)

    # Widths that parameter matching scales together (z_dim stays as set).
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LatentConfig(ModelConfig):
    """Options every latent model has."""

    z_dim: int = 100  # stochastic state z_t
    min_std: float = 1e-4  # floor of every latent standard deviation


def x_and_u_features(net: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """``net(x)`` and ``net(u)`` for all steps. When ``u`` is ``x`` one step late at every
    unpadded step (u_t = x_{t-1}, as in every batch the data loaders build), ``net`` runs once,
    over [u_1, x_1, ..., x_T], instead of twice over nearly the same rows; the features of u
    at padded steps then differ, which no unpadded output reads."""
    x, u = batch.x, batch.u
    if x.shape[1] > 1 and not ((u[:, 1:] != x[:, :-1]).any(-1)
                               & batch.mask[:, 1:].bool()).any():
        f = net(torch.cat([u[:, :1], x], dim=1))
        return f[:, 1:], f[:, :-1]
    return net(x), net(u)


def per_step(optional: bool = False) -> Any:
    """Marks a field of a model's precomputed dataclass as indexed by time, shape (B, T, ...);
    other tensor fields are per sequence, (B, ...). An ``optional`` one defaults to None (a
    model's option leaves it out) and the z-loop then skips it."""
    if optional:
        return field(default=None, metadata={"per_step": True})
    return field(metadata={"per_step": True})


def _repeat(v: Any, K: int) -> Any:
    if isinstance(v, Tensor):
        return v.repeat_interleave(K, dim=0)
    if isinstance(v, tuple):
        return tuple(_repeat(e, K) for e in v)
    return v


def expand_particles(pre: Any, K: int) -> Any:
    """``pre`` with every per-sequence field repeated for K particles: rows (B, ...) become
    (B K, ...), particle k of sequence b in row b K + k. Per-step fields stay as they are (see
    :func:`at_step`), so memory does not grow with K times the sequence length."""
    return dataclasses.replace(pre, **{
        f.name: _repeat(getattr(pre, f.name), K)
        for f in dataclasses.fields(pre) if not f.metadata.get("per_step")})


class StepSlices:
    """A per-step (B, T, ...) tensor split once into its T steps, read as ``v[:, t]``.

    In the z-loop this replaces a select per step, whose backward writes a zero tensor of the
    whole (B, T, ...) for every step (quadratic in T); the split's backward stacks the T step
    gradients once.
    """

    __slots__ = ("steps",)

    def __init__(self, v: Tensor) -> None:
        self.steps = v.unbind(1)

    def __getitem__(self, key: Any) -> Tensor:
        if (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)
                and isinstance(key[1], int)):
            return self.steps[key[1]]
        raise TypeError(f"a per-step field in the z-loop is read as v[:, t], not v[{key!r}]")


def step_view(pre: Any) -> Any:
    """``pre`` with every per-step field as :class:`StepSlices`, for the z-loop."""
    return dataclasses.replace(pre, **{
        f.name: StepSlices(getattr(pre, f.name))
        for f in dataclasses.fields(pre)
        if f.metadata.get("per_step") and getattr(pre, f.name) is not None})


def at_step(pre: Any, t: int, K: int) -> Any:
    """The :func:`step_view` ``pre`` cut to step t (per-step fields of length 1, repeated for K
    particles); to be used with ``step(state, 0, ...)`` on particles after
    :func:`expand_particles`."""
    return dataclasses.replace(pre, **{
        f.name: getattr(pre, f.name).steps[t].unsqueeze(1).repeat_interleave(K, dim=0)
        for f in dataclasses.fields(pre)
        if f.metadata.get("per_step") and getattr(pre, f.name) is not None})


class PosteriorPass(NamedTuple):
    """The z-recursion run over a batch, every per-step tensor stacked over time (B, T, ...)."""

    z: Tensor  # z_1:T, (B, T, z_dim)
    q_loc: Tensor  # the proposal q(z_t | ...) = N(q_loc, q_scale^2)
    q_scale: Tensor
    p_loc: Tensor  # the prior p(z_t | ...) = N(p_loc, p_scale^2)
    p_scale: Tensor
    context: Tensor | None  # what the emission reads besides z (emission_context), or None
    state: Any  # the recurrent state after step T (for final_carry)


# noise(like): one step's eps ~ N(0, I) of the shape, dtype and device of ``like`` (B, z_dim)
Noise = Callable[[Tensor], Tensor]


class StepParams(NamedTuple):
    """Diagonal-Gaussian parameters of the proposal q(z_t | ...) and the prior p(z_t | ...)."""

    q_loc: Tensor
    q_scale: Tensor
    p_loc: Tensor
    p_scale: Tensor


# draw(loc, scale): z_t ~ N(loc, scale^2), the draw a generative step makes from its prior.
Draw = Callable[[Tensor, Tensor], Tensor]


def sample_normal(loc: Tensor, scale: Tensor) -> Tensor:
    """z ~ N(loc, scale^2), reparameterised, from the global random generator."""
    return loc + scale * torch.randn_like(loc)


class GenerativeStep(NamedTuple):
    """Step t of the generative model, from x_{t-1} and the generative state before step t."""

    z: Tensor | None  # z_t = draw(p_loc, p_scale), (num, z_dim); None without latents
    p_loc: Tensor | None  # the prior p(z_t | ...) = N(p_loc, p_scale^2)
    p_scale: Tensor | None
    emission: Distribution  # p(x_t | z_t, ...), batch shape (num,)
    state: Any  # the generative state after step t, which step t + 1 reads with x_t


class GeneratedPath(NamedTuple):
    """An ancestral draw (x_1:T, z_1:T) from the generative model, with its log-density."""

    x: Tensor  # (num, T, x_dim)
    z: Tensor | None  # (num, T, z_dim); None for a model without latents
    log_prob: Tensor  # log p(z_t | ...) + log p(x_t | z_t, ...) per step, (num, T)


class SequenceModel(nn.Module):
    """Base class of every model: a config, a latent size and ancestral sampling through the
    generative step interface (see module docstring)."""

    z_dim: int
    config: Any

    def init_generative_state(self, num: int, carry: Any = None) -> Any:
        """The generative state before step 1 of ``num`` sequences, or after the sequence that
        ended in ``carry``."""
        raise NotImplementedError

    def generative_step(self, state: Any, x_prev: Tensor, draw: Draw) -> GenerativeStep:
        """Step t from x_{t-1} (num, x_dim) and the generative state; z_t = ``draw(loc, scale)``."""
        raise NotImplementedError

    def sample_path(self, num: int, steps: int, carry: Any = None,
                    x_last: Tensor | None = None) -> GeneratedPath:
        """Ancestral draw of (x_1:T, z_1:T), T = ``steps``, and log p(x_t, z_t | x_<t, z_<t) per
        step: at each step z_t ~ p(z_t | ...) (``loc + scale * randn``), then
        x_t ~ p(x_t | z_t, ...). With ``carry`` and ``x_last`` (as for :meth:`generate`) the
        path continues a sequence. Differentiable in the parameters through z; run it under
        ``torch.no_grad()`` when only the values are needed."""
        x = next(self.parameters()).new_zeros(num, self.config.x_dim)  # x_0: u_1 = 0
        if x_last is not None:
            x = x_last
        state = self.init_generative_state(num, carry)
        xs, zs, log_probs = [], [], []
        for _ in range(steps):
            s = self.generative_step(state, x, sample_normal)
            x = s.emission.sample()
            log_p = s.emission.log_prob(x)  # log p(x_t | z_t, ...)
            if s.z is not None:
                log_p = log_p + Normal(s.p_loc, s.p_scale).log_prob(s.z).sum(-1)  # p(z_t | ...)
                zs.append(s.z)
            state = s.state
            xs.append(x)
            log_probs.append(log_p)
        return GeneratedPath(x=torch.stack(xs, dim=1),
                             z=torch.stack(zs, dim=1) if zs else None,
                             log_prob=torch.stack(log_probs, dim=1))

    @torch.no_grad()
    def generate(self, num: int, steps: int, carry: Any = None,
                 x_last: Tensor | None = None) -> Tensor:
        """Ancestral sample x_1:T from the generative model, shape (num, steps, x_dim).

        With ``carry`` (the state a sequence ends in, as ``final_carry`` / ``exact_log_prob``
        return it) and ``x_last`` (its last x), the samples continue that sequence.
        """
        return self.sample_path(num, steps, carry, x_last).x

    def exact_log_prob(self, batch: Batch, carry: Any = None) -> tuple[Tensor, Any]:
        """log p(x_t | x_<t) per step (B, T) and the carry, for models without latents."""
        raise NotImplementedError(f"{type(self).__name__} has latent variables")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class StateSpaceModel(SequenceModel):
    """Base class of latent sequence models with the step interface (see module docstring)."""

    def precompute(self, batch: Batch, carry: Any = None) -> Any:
        raise NotImplementedError

    def init_state(self, pre: Any, carry: Any = None) -> Any:
        raise NotImplementedError

    def step(self, state: Any, t: int, pre: Any) -> StepParams:
        raise NotImplementedError

    def next_state(self, state: Any, z: Tensor, t: int, pre: Any) -> Any:
        raise NotImplementedError

    def emission_context(self, state: Any, z: Tensor, new_state: Any) -> Tensor | None:
        return None

    def fused_posterior(self, pre: Any, state: Any, T: int, noise: Noise
                        ) -> PosteriorPass | None:
        """The posterior z-recursion with z_t = q_loc + q_scale * noise(...) drawn at each step
        in order, computed by a fused path that gives the step interface's values and
        gradients; None where the model (or this configuration of it) has none, and the bounds
        then run :meth:`step` and :meth:`next_state` step by step."""
        return None

    def emission_features(self, z: Tensor, pre: Any, context: Tensor | None = None) -> Tensor:
        """The input of the emission head for all steps, (B, T, H)."""
        raise NotImplementedError

    def observation(self, z: Tensor, pre: Any, context: Tensor | None = None
                    ) -> torch.distributions.Distribution:
        """p(x_t | z_t, ...) for all steps at once (batch shape (B, T)): its log_prob, mean and
        variance give the bound's reconstruction term and a posterior reconstruction."""
        return self.emission.distribution(self.emission_features(z, pre, context))

    def emission_log_prob(self, z: Tensor, pre: Any, context: Tensor | None = None) -> Tensor:
        """log p(x_t | z_t, ...) for all steps at once, (B, T)."""
        return self.observation(z, pre, context).log_prob(pre.x)

    def auxiliary_log_prob(self, z: Tensor, pre: Any, context: Tensor | None = None
                           ) -> Tensor | None:
        return None

    def final_carry(self, state: Any, pre: Any) -> Any:  # called after emission_log_prob
        """What a following window of the same streams starts from (truncated BPTT)."""
        return None
