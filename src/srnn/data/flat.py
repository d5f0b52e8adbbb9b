"""The flat view of a data set: every time step of D values becomes D consecutive scalar steps.

Guokun Lai, Zihang Dai, Yiming Yang, Shinjae Yoo, *Re-examination of the Role of Latent
Variables in Sequence Modeling*, NeurIPS 2019 ("RNN-flat", "SRNN-flat"): a model that reads
a sequence of scalars factorises p(x_t) of a whole step autoregressively over its values,

    p(x_1:T) = ∏_t ∏_{j=1..D} p(x_{t,j} | x_{t,<j}, x_<t),

so any model of this library (``rnn``, ``srnn``, ...) trained on the flat view with x_dim = 1
is RNN-flat, SRNN-flat, and so on. A sequence x (T, D) with inputs u (T, D), u_t = x_{t-1},
becomes

    x^flat (T·D, 1):  x^flat_{(t-1)·D + j} = x_{t,j}
    u^flat (T·D, 1):  the previous scalar, across step boundaries: u^flat_{(t-1)·D + 1} =
                      u_{t,D} (= x_{t-1,D}; 0 for t = 1), u^flat_{(t-1)·D + j} = x_{t,j-1}

Binary values (piano rolls) stay binary scalars (a Bernoulli emission with x_dim = 1), real
values (speech frames) real scalars (gauss, gmm). The splits keep ``steps_per_step`` = D, so
every figure per time step is still **per original step** (the sum of log-likelihoods over T·D
scalar steps divided by T), training windows are counted in original steps, and samples of
T·D scalars are folded back into (T, D) by :func:`fold_steps` before they are written as MIDI
or WAV. Grid, modality and info stay those of the original data set.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from srnn.data.sequences import SequenceDataset, Split


def flatten_steps(x: np.ndarray) -> np.ndarray:
    """A sequence (T, D) as T·D scalar steps (T·D, 1), step by step, values in order."""
    return np.ascontiguousarray(np.asarray(x).reshape(-1, 1))


def flat_inputs(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The inputs (T·D, 1) of the flat view of targets ``x`` (T, D) with inputs ``u`` (T, D):
    each scalar's input is the scalar before it, and the first scalar of step t reads the last
    value of u_t (x_{t-1, D}, or 0 for t = 1), so windows and streams keep their inputs."""
    x, u = np.asarray(x), np.asarray(u)
    if x.shape != u.shape or x.ndim != 2:
        raise ValueError(f"x and u must both be (T, D), got {x.shape} and {u.shape}")
    prev = np.concatenate([u[:, -1:], x[:, :-1]], axis=1)
    return flatten_steps(prev)


def _original_steps(n: int, steps_per_step: int) -> int:
    """How many original steps ``n`` model steps make, refusing a partial step."""
    if n % steps_per_step:
        raise ValueError(f"{n} model steps are not a whole number of steps of "
                         f"{steps_per_step}")
    return n // steps_per_step


def fold_steps(x: np.ndarray, steps_per_step: int) -> np.ndarray:
    """Model steps back into original steps: (..., T·k, d) -> (..., T, k·d), the inverse of
    :func:`flatten_steps` for k = ``steps_per_step`` = D and d = 1."""
    *lead, n, d = x.shape
    return x.reshape(*lead, _original_steps(n, steps_per_step), steps_per_step * d)


def step_sums(v: np.ndarray, steps_per_step: int) -> np.ndarray:
    """Per-model-step terms (..., T·k) summed within each original step: (..., T)."""
    *lead, n = v.shape
    return v.reshape(*lead, _original_steps(n, steps_per_step), steps_per_step).sum(-1)


def flatten_split(split: Split) -> Split:
    """The flat view of a split: each sequence (T, D) as (T·D, 1), stream order kept,
    ``steps_per_step`` = D."""
    if split.steps_per_step != 1:
        raise ValueError("the split is already a flat view")
    d = int(split.x[0].shape[-1]) if len(split) else 1
    return Split(x=[flatten_steps(x) for x in split.x],
                 u=[flat_inputs(x, u) for x, u in zip(split.x, split.u, strict=True)],
                 streams=split.streams, steps_per_step=d)


def flatten_dataset(data: SequenceDataset) -> SequenceDataset:
    """The flat view of ``data`` (see the module docstring): x_dim 1, ``flat`` set, each split's
    ``steps_per_step`` = the original dim; name, protocol, grid, modality and info kept. Its
    scalars have no columns: ``binary_columns`` and a default ``emission`` (pen, mixed) are
    dropped."""
    if data.flat:
        raise ValueError(f"data set {data.name!r} is already a flat view")
    return replace(data, train=flatten_split(data.train), valid=flatten_split(data.valid),
                   test=flatten_split(data.test), info=dict(data.info), flat=True,
                   binary_columns=(), emission="")
