"""Evaluation: the ELBO of a whole split in nats per time step and its parts, and the tighter
IWAE and FIVO bounds."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from srnn.bounds.elbo import elbo_terms
from srnn.bounds.particles import particle_bound
from srnn.data.batching import evaluation_batches, stream_batches
from srnn.data.sequences import Split
from srnn.models.base import SequenceModel
from srnn.progress import progress_bar

# The figures of a bound on a split, each the results key ``bound_key(...) + suffix``
# (``elbo_per_step``, ``iwae_k100_mean_of_sequences``, ...): nats per reported step over the
# whole split, the mean over sequences of each one's nats per step (the SRNN paper's code),
# and nats per sequence.
BOUND_SUFFIXES = ("_per_step", "_mean_of_sequences", "_per_sequence")


def bound_figures(key: str, log_likelihood: np.ndarray, steps: np.ndarray) -> dict[str, float]:
    """The :data:`BOUND_SUFFIXES` figures of the bound ``key`` from each sequence's bound
    ``log_likelihood`` (nats) and its number of reported ``steps``."""
    values = (log_likelihood.sum() / steps.sum(), np.mean(log_likelihood / steps),
              log_likelihood.mean())
    return {key + suffix: float(v) for suffix, v in zip(BOUND_SUFFIXES, values, strict=True)}


@torch.no_grad()
def evaluate_elbo(model: SequenceModel, split: Split, batch_size: int = 32, seed: int = 0,
                  max_steps: int = 64_000) -> dict[str, Any]:
    """ELBO of ``split`` from one posterior sample per sequence (fixed ``seed``).

    ``elbo_per_step`` = sum of per-sequence ELBOs / number of unpadded steps (the library's
    metric); ``elbo_mean_of_sequences`` = mean over sequences of each one's ELBO per step (the
    convention of the SRNN paper's code). Stream-ordered splits are evaluated window by window
    with the state carried along the streams, as they are trained. Steps are reported steps:
    in the flat view (``split.steps_per_step`` = D scalar steps per original step) every figure
    is per original step, and ``steps`` counts original steps.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    elbo, recon, kl, steps = [], [], [], []
    carry = None
    batches = (stream_batches(split) if split.streams
               else evaluation_batches(split, batch_size, max_steps))
    for batch in batches:
        terms = elbo_terms(model, batch.to(device), carry=carry, generator=gen)
        if split.streams:
            carry = terms.carry
        e = terms.elbo().sum(1)
        elbo.append(e.double().cpu())
        recon.append(terms.recon.sum(1).double().cpu())
        kl.append(terms.kl.sum(1).double().cpu())
        steps.append(terms.mask.sum(1).double().cpu())
    model.train(was_training)
    e, r, k, n = (torch.cat(v).numpy() for v in (elbo, recon, kl, steps))
    n = n / split.steps_per_step  # reported (original) steps of each sequence
    total = float(n.sum())
    return {
        "bound": "exact" if model.z_dim == 0 else "elbo",  # the RNN's log-likelihood is exact
        **bound_figures("elbo", e, n),
        "recon_per_step": float(r.sum() / total),
        "kl_per_step": float(k.sum() / total),
        "steps": int(round(total)),
        "steps_per_step": split.steps_per_step,
        "sequences": len(n),
        "seconds": time.perf_counter() - t0,
    }


BOUNDS = ("elbo", "iwae", "fivo")


def bound_key(bound: str, samples: int) -> str:
    """The results key of a bound, e.g. ``iwae_k100``; the ELBO's is ``elbo``."""
    return "elbo" if bound == "elbo" else f"{bound}_k{samples}"


@torch.no_grad()
def evaluate_particle_bound(model: SequenceModel, split: Split, bound: str, samples: int,
                            seed: int = 0, resampling: str = "multinomial",
                            ess_threshold: float = 0.5, max_particles: int = 4096,
                            max_steps: int = 64_000, progress: bool | None = None
                            ) -> dict[str, Any]:
    """IWAE or FIVO with ``samples`` particles per sequence over a whole split.

    Stream-ordered splits are joined back into one sequence per stream (the particles then
    carry everything along the stream). At most ``max_particles`` particle rows and
    ``max_steps`` padded sequence steps are processed at once; memory grows with each of them,
    never with their product. Figures are per reported step (per original step in the flat
    view), as in :func:`evaluate_elbo`. ``progress``: a bar of the sequences done
    (:func:`srnn.progress.progress_bar`).
    """
    if bound not in ("iwae", "fivo"):
        raise ValueError(f"unknown particle bound {bound!r}; choose iwae or fivo")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    whole = split.joined_streams()
    per_batch = max(1, max_particles // samples)
    lls, steps, resamples = [], [], []
    with progress_bar(desc=f"{bound} K={samples}", total=len(whole), unit="seq",
                      enabled=progress) as bar:
        for batch in evaluation_batches(whole, per_batch, max_steps):
            res = particle_bound(model, batch.to(device), samples, resample=bound == "fivo",
                                 ess_threshold=ess_threshold, resampling=resampling,
                                 generator=gen)
            lls.append(res.log_likelihood.double().cpu())
            steps.append(res.steps.double().cpu())
            resamples.append(res.resamples.double().cpu())
            bar.update(len(res.steps))
    model.train(was_training)
    ll, n, r = (torch.cat(v).numpy() for v in (lls, steps, resamples))
    per = n / split.steps_per_step  # reported (original) steps of each sequence
    key = bound_key(bound, samples)
    out = {**bound_figures(key, ll, per), f"{key}_seconds": time.perf_counter() - t0}
    if bound == "fivo":
        out[f"{key}_resampling_rate"] = float(r.sum() / n.sum())  # per model step
    return out
