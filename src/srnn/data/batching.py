"""Padded batches with masks: training windows, stream-ordered windows, whole sequences."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from srnn.data.pianoroll import shift_range, transpose
from srnn.data.sequences import Split


@dataclass
class Batch:
    """A padded batch: targets ``x`` and inputs ``u`` (B, T, D), ``mask`` (B, T) of 0/1."""

    x: Tensor
    u: Tensor
    mask: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(1).long()

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.x.to(device), self.u.to(device), self.mask.to(device))


def pad_batch(xs: list[np.ndarray], us: list[np.ndarray]) -> Batch:
    """Zero-pad sequences to the longest; ``mask`` is 1 on real steps, 0 on padding."""
    T = max(len(x) for x in xs)
    D = xs[0].shape[-1]
    x = np.zeros((len(xs), T, D), dtype=np.float32)
    u = np.zeros_like(x)
    mask = np.zeros((len(xs), T), dtype=np.float32)
    for i, (xi, ui) in enumerate(zip(xs, us, strict=True)):
        x[i, : len(xi)] = xi
        u[i, : len(ui)] = ui
        mask[i, : len(xi)] = 1.0
    return Batch(torch.from_numpy(x), torch.from_numpy(u), torch.from_numpy(mask))


def windows(split: Split, window: int, rng: np.random.Generator | None = None
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut every sequence into consecutive windows of at most ``window`` steps.

    With ``rng`` the cut points start at a random offset per sequence (a different tiling each
    epoch). Inputs are cut with their targets, so ``u`` of a window still holds ``x_{t-1}``.
    ``window`` counts reported steps: in the flat view (``split.steps_per_step`` = k > 1) a
    window is ``window`` · k scalar steps, and the cuts fall on the original steps' boundaries.
    """
    xs, us = [], []
    k = split.steps_per_step
    for x, u in zip(split.x, split.u, strict=True):
        T = len(x)
        size = window * k
        offset = int(rng.integers(0, window)) * k if (rng is not None and T > size) else 0
        cuts = sorted({0, T, *range(offset or size, T, size)})
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            xs.append(x[a:b])
            us.append(u[a:b])
    return xs, us


def random_transpositions(xs: list[np.ndarray], us: list[np.ndarray], semitones: int,
                          rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each piano-roll window (targets and inputs alike) moved by its own shift drawn
    uniformly from the integers in [-semitones, semitones] that keep all its notes on the
    keyboard (:func:`~srnn.data.pianoroll.shift_range`); 0 is always among them."""
    out_x, out_u = [], []
    for x, u in zip(xs, us, strict=True):
        lo, hi = shift_range(x, u)
        k = int(rng.integers(max(lo, -semitones), min(hi, semitones) + 1))
        out_x.append(transpose(x, k) if k else x)
        out_u.append(transpose(u, k) if k else u)
    return out_x, out_u


def training_batches(split: Split, batch_size: int, window: int,
                     rng: np.random.Generator, transpose_by: int = 0) -> Iterator[Batch]:
    """Shuffled batches of windows (independent sequences), lengths bucketed to cut padding.

    ``transpose_by`` > 0 moves each piano-roll window by a random number of semitones
    (:func:`random_transpositions`): pitch-shift augmentation, drawn afresh each epoch.
    """
    xs, us = windows(split, window, rng)
    if transpose_by:
        xs, us = random_transpositions(xs, us, transpose_by, rng)
    order = rng.permutation(len(xs))
    # Bucket: sort a shuffled order by length in chunks of 50 batches, then shuffle the batches.
    chunk = batch_size * 50
    batches = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk], key=lambda i: len(xs[i]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    for j in rng.permutation(len(batches)):
        idx = batches[j]
        yield pad_batch([xs[i] for i in idx], [us[i] for i in idx])


def stream_batches(split: Split) -> Iterator[Batch]:
    """Stream-ordered windows in their order, ``split.streams`` per batch (truncated BPTT)."""
    s = split.streams
    for r in range(0, len(split), s):
        yield pad_batch(split.x[r : r + s], split.u[r : r + s])


def evaluation_batches(split: Split, batch_size: int,
                       max_steps: int | None = None) -> Iterator[Batch]:
    """Whole sequences sorted by length, ``batch_size`` at a time (fewer if that would exceed
    ``max_steps`` padded steps per batch)."""
    order = sorted(range(len(split)), key=lambda i: len(split.x[i]))
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and j - i < batch_size and (
            max_steps is None or (j + 1 - i) * len(split.x[order[j]]) <= max_steps):
            j += 1
        idx = order[i:j]
        yield pad_batch([split.x[k] for k in idx], [split.u[k] for k in idx])
        i = j


def lane_streams(split: Split, lanes: int, window: int, rng: np.random.Generator) -> Split:
    """Whole sequences laid end to end in ``lanes`` parallel lanes (each sequence to the
    shortest lane so far, in a shuffled order) and cut into windows of ``window`` steps, as a
    stream-ordered split: training on it carries the recurrent state from one window to the
    next (truncated backpropagation through time), as the SRNN paper trains on speech. Each
    sequence keeps its own inputs (u_1 = 0), but the state flows on into the next sequence of
    its lane, as in stream-ordered files. Lanes that run out early get empty (masked) windows.
    As in :func:`windows`, ``window`` counts reported steps (× ``split.steps_per_step`` scalar
    steps in the flat view).
    """
    if lanes < 1 or window < 1:
        raise ValueError("lanes and window must be at least 1")
    window *= split.steps_per_step
    lanes = min(lanes, len(split))
    xs: list[list[np.ndarray]] = [[] for _ in range(lanes)]
    us: list[list[np.ndarray]] = [[] for _ in range(lanes)]
    length = [0] * lanes
    for i in rng.permutation(len(split)):
        lane = int(np.argmin(length))
        xs[lane].append(split.x[i])
        us[lane].append(split.u[i])
        length[lane] += len(split.x[i])
    lx = [np.concatenate(v) for v in xs]
    lu = [np.concatenate(v) for v in us]
    rows = -(-max(length) // window)
    out_x, out_u = [], []
    for r in range(rows):
        for lane in range(lanes):
            out_x.append(lx[lane][r * window:(r + 1) * window])
            out_u.append(lu[lane][r * window:(r + 1) * window])
    return Split(x=out_x, u=out_u, streams=lanes, steps_per_step=split.steps_per_step)
