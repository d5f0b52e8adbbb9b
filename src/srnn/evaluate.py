"""Evaluation: the ELBO of a whole split in nats per time step, and its parts."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from srnn.bounds.elbo import elbo_terms
from srnn.data.batching import evaluation_batches, stream_batches
from srnn.data.sequences import Split
from srnn.models.base import SequenceModel


@torch.no_grad()
def evaluate_elbo(model: SequenceModel, split: Split, batch_size: int = 32, seed: int = 0,
                  max_steps: int = 64_000) -> dict[str, Any]:
    """ELBO of ``split`` from one posterior sample per sequence (fixed ``seed``).

    ``elbo_per_step`` = sum of per-sequence ELBOs / number of unpadded steps (the library's
    metric); ``elbo_mean_of_sequences`` = mean over sequences of each one's ELBO per step (the
    convention of the SRNN paper's code). Stream-ordered splits are evaluated window by window
    with the state carried along the streams, as they are trained.
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
    total = float(n.sum())
    return {
        "bound": "exact" if model.z_dim == 0 else "elbo",  # the RNN's log-likelihood is exact
        "elbo_per_step": float(e.sum() / total),
        "recon_per_step": float(r.sum() / total),
        "kl_per_step": float(k.sum() / total),
        "elbo_mean_of_sequences": float(np.mean(e / n)),
        "elbo_per_sequence": float(e.mean()),
        "steps": int(total),
        "sequences": len(n),
        "seconds": time.perf_counter() - t0,
    }
