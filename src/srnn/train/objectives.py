"""Training objectives: what a batch contributes to the loss and to the epoch's figures.

Each objective turns a batch into a :class:`BatchResult`: the loss the optimiser minimises,
the sums the epoch's figures are made of, and the state a following window of the same
streams starts from. The trainer's loop is the same for all of them.

- :class:`ElboObjective`: minus the per-step ELBO with the KL term weighted by the annealing
  schedule, plus any auxiliary term of the model (Z-forcing); carries the recurrent state
  along stream-ordered windows (truncated BPTT).
- :class:`ParticleObjective`: minus the IWAE or FIVO bound per step with K particles
  (no KL term, so no annealing); each window starts afresh.

With several processes (:mod:`srnn.train.distributed`) a process computes the rows ``share``
names, and the loss is scaled so that the mean DistributedDataParallel takes over processes is
the gradient of the whole batch's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from srnn.bounds.elbo import elbo_terms
from srnn.bounds.particles import particle_bound
from srnn.data.batching import Batch
from srnn.errors import ConfigError
from srnn.models.base import SequenceModel

OBJECTIVES = ("elbo", "iwae", "fivo")


@dataclass
class RowShare:
    """The rows of an ``n``-row batch one process trains on, and its loss scale (the number
    of processes over the whole batch's unpadded steps)."""

    rows: Tensor
    n: int
    scale: Tensor


@dataclass
class BatchResult:
    """One batch's contribution: ``loss`` (scalar), and the sums over its unpadded steps of
    the reconstruction term (for particle bounds: the bound itself) and the KL term, the number
    of those steps, and the carry for the next window of the same streams."""

    loss: Tensor
    recon: Tensor
    kl: Tensor
    steps: Tensor
    carry: Any = None


@dataclass
class EpochSums:
    """Running sums over an epoch's batches (with several processes: over this process's
    rows); a checkpoint taken inside an epoch stores them (see :meth:`to_dict`)."""

    recon: float = 0.0
    kl: float = 0.0
    steps: float = 0.0
    skipped: float = 0.0

    def add(self, res: BatchResult) -> None:
        with torch.no_grad():
            self.recon += float(res.recon)
            self.kl += float(res.kl)
            self.steps += float(res.steps)

    def to_dict(self) -> dict[str, float]:
        return {"recon": self.recon, "kl": self.kl, "steps": self.steps,
                "skipped": self.skipped}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> EpochSums:
        return cls(**{k: float(d[k]) for k in ("recon", "kl", "steps", "skipped")})


class Objective:
    """The loss of a batch and its figures. ``has_parts``: the bound splits into recon and
    KL; ``carries``: the state is carried from window to window of stream-ordered data."""

    name: str
    has_parts: bool
    carries: bool

    def __call__(self, model: SequenceModel, batch: Batch, carry: Any, kl_weight: float,
                 share: RowShare | None = None) -> BatchResult:
        raise NotImplementedError


class ElboObjective(Objective):
    """Maximise sum_t E_q log p(x_t | ...) - w KL(q || p) (+ auxiliary terms) per step."""

    name, has_parts, carries = "elbo", True, True

    def __call__(self, model: SequenceModel, batch: Batch, carry: Any, kl_weight: float,
                 share: RowShare | None = None) -> BatchResult:
        if share is None:
            terms = elbo_terms(model, batch, carry=carry)
            loss = -terms.objective(kl_weight)
        else:  # the noise drawn for the whole batch and cut, as one process would draw it
            terms = elbo_terms(model, batch, carry=carry, noise_rows=(share.rows, share.n))
            loss = -terms.objective_sum(kl_weight) * share.scale
        return BatchResult(loss, terms.recon.sum(), terms.kl.sum(), terms.mask.sum(),
                           terms.carry)


class ParticleObjective(Objective):
    """Maximise the IWAE (``resample=False``) or FIVO bound with ``samples`` particles."""

    has_parts, carries = False, False

    def __init__(self, samples: int, resample: bool) -> None:
        self.samples, self.resample = samples, resample
        self.name = "fivo" if resample else "iwae"

    def __call__(self, model: SequenceModel, batch: Batch, carry: Any, kl_weight: float,
                 share: RowShare | None = None) -> BatchResult:
        res = particle_bound(model, batch, self.samples, resample=self.resample)
        bound = res.log_likelihood.sum()
        loss = -bound / res.steps.sum() if share is None else -bound * share.scale
        return BatchResult(loss, bound, torch.zeros((), device=bound.device),
                           res.steps.sum())


def make_objective(name: str, samples: int = 1) -> Objective:
    """The objective ``name`` (elbo, iwae or fivo with ``samples`` particles)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose elbo, iwae or fivo")
    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, not {samples}")
    if name == "elbo":
        return ElboObjective()
    return ParticleObjective(samples, resample=name == "fivo")
