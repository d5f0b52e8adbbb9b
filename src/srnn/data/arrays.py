"""Your own sequences as a data set, from one ``.npz`` file (read without pickle).

Each split ``train``, ``valid``, ``test`` is given in one of two forms:

* one 3-D array ``{split}`` (N, T, D), with an optional 1-D integer array
  ``{split}_lengths`` (N,) of each sequence's length (2..T; steps beyond it are padding and are
  dropped; without it every sequence has T steps);
* 2-D arrays ``{split}_0``, ``{split}_1``, ... (T_i, D), numbered from 0 without gaps.

Every value must be a finite number (padding included; bool, integer or float dtypes), every
sequence at least 2 steps long, and D the same everywhere. If all values are 0 or 1 the set is
binary (Bernoulli emission, like piano rolls), otherwise real-valued (Gaussian emission).

Columns of both kinds in one step: an optional 1-D integer array ``binary_columns`` names the
columns that are binary (each must hold only 0 and 1); the set's emission is then ``mixed``
(:mod:`srnn.nn.pen`: those columns Bernoulli, the others Gaussian). Without it the columns
holding only 0 and 1 are still found (``SequenceDataset.binary_columns``), for
``--emission mixed``, but the default emission stays Gaussian.

Inputs are the targets shifted by one step (``u_t = x_{t-1}``). Any other key is an error, so
that a misspelt split is not silently ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from srnn.columns import check_columns
from srnn.data.grid import NO_GRID
from srnn.data.npz import read_npz
from srnn.data.sequences import Modality, SequenceDataset, Split
from srnn.data.validate import (
    check_finite,
    check_kind,
    check_length,
    check_ndim,
    check_sequences,
    is_binary,
)
from srnn.errors import DataError

PROTOCOL = "arrays"
GRID = NO_GRID  # a plain step: the library knows nothing of its meaning in time
TIME_STEP = GRID.time_step  # "step"
SPLITS = ("train", "valid", "test")
FORMAT = ("'train', 'valid', 'test' as (N, T, D) arrays with optional '{split}_lengths', or "
          "'{split}_0', '{split}_1', ... as (T, D) arrays, and optional 'binary_columns'")
COLUMNS_KEY = "binary_columns"
_NUMBERED = re.compile(r"^(train|valid|test)_(0|[1-9][0-9]*)$")


def _numbered(found: dict[str, np.ndarray], split: str) -> dict[int, np.ndarray]:
    out = {}
    for key, a in found.items():
        m = _NUMBERED.match(key)
        if m and m.group(1) == split:
            out[int(m.group(2))] = a
    return out


def _lengths(found: dict[str, np.ndarray], split: str, n: int, t: int, where: str) -> list[int]:
    key = f"{split}_lengths"
    if key not in found:
        return [t] * n
    lengths = found[key]
    w = f"{where} {key}"
    check_kind(lengths, w, "iu")
    check_ndim(lengths, 1, w, f"a 1-D array of {n} lengths")
    if len(lengths) != n:
        raise DataError(f"{w}: {len(lengths)} lengths for {n} sequences, expected {n}")
    for i, length in enumerate(lengths.tolist()):
        check_length(length, f"{where} sequence {i} ({key})")
        if length > t:
            raise DataError(f"{where} sequence {i}: length {length} is more than the {t} steps "
                            f"of '{split}', expected at most {t}")
    return lengths.tolist()


def _padded(found: dict[str, np.ndarray], split: str, where: str) -> list[np.ndarray]:
    a = found[split]
    check_kind(a, where)
    check_ndim(a, 3, where, "(N, T, D)")
    check_finite(a, where, ("sequence", "step", "column"))
    lengths = _lengths(found, split, a.shape[0], a.shape[1], where)
    return [a[i, :n] for i, n in enumerate(lengths)]


def _listed(numbered: dict[int, np.ndarray], split: str, where: str) -> list[np.ndarray]:
    gaps = sorted(set(range(len(numbered))) - set(numbered))
    if gaps:
        raise DataError(f"{where}: missing array '{split}_{gaps[0]}' (numbered arrays must run "
                        f"from '{split}_0' without gaps; found {len(numbered)})")
    return [numbered[i] for i in range(len(numbered))]


def _split(found: dict[str, np.ndarray], split: str, where: str) -> list[np.ndarray]:
    numbered = _numbered(found, split)
    if split in found and numbered:
        raise DataError(f"{where}: both '{split}' and '{split}_0', ... are given, expected one "
                        "form")
    if split in found:
        return _padded(found, split, where)
    if numbered:
        if f"{split}_lengths" in found:
            raise DataError(f"{where}: '{split}_lengths' goes with a 3-D '{split}' array, not "
                            f"with numbered arrays '{split}_0', ...")
        return _listed(numbered, split, where)
    raise DataError(f"{where}: missing split '{split}', expected {FORMAT}")


def _check_keys(found: dict[str, np.ndarray], path: Path) -> None:
    known = {*SPLITS, *(f"{s}_lengths" for s in SPLITS), COLUMNS_KEY}
    extra = sorted(k for k in found if k not in known and not _NUMBERED.match(k))
    if extra:
        raise DataError(f"{path}: unexpected array {extra[0]!r}, expected {FORMAT}")


def load_arrays(path: str | os.PathLike[str]) -> SequenceDataset:
    """The sequences of an ``.npz`` file as a data set (format in the module docstring).

    Every problem (missing file, not an npz, missing or unexpected keys, wrong ndim or dtype,
    NaN/inf, sequences shorter than 2 steps, mismatched D) is a :class:`DataError` naming the
    file and the split, key or sequence.
    """
    path = Path(path)
    found = read_npz(path)
    _check_keys(found, path)
    sequences: dict[str, list[np.ndarray]] = {}
    dim = None
    for s in SPLITS:
        where = f"{path} [{s}]"
        sequences[s] = _split(found, s, where)
        dim = check_sequences(sequences[s], where, binary=False, dim=dim)
    binary = all(is_binary(x) for seqs in sequences.values() for x in seqs)
    found_binary = binary_columns(sequences, int(dim or 1))
    emission = ""
    if COLUMNS_KEY in found:
        recorded = _recorded_columns(found[COLUMNS_KEY], int(dim or 1), found_binary,
                                     f"{path} [{COLUMNS_KEY}]")
        found_binary, emission = recorded, "mixed"
    splits = {s: Split.from_targets(sequences[s]) for s in SPLITS}
    return SequenceDataset(name=path.stem, protocol=PROTOCOL, time_step=GRID.time_step,
                           binary=binary, info={"path": str(path)}, grid=GRID,
                           modality=Modality.OTHER, **splits,
                           binary_columns=() if binary and not emission else found_binary,
                           emission=emission)


def binary_columns(sequences: dict[str, list[np.ndarray]], dim: int) -> tuple[int, ...]:
    """The columns (of ``dim``) whose values are 0 or 1 in every sequence of every split."""
    ok = np.ones(dim, dtype=bool)
    for seqs in sequences.values():
        for x in seqs:
            ok &= ((x == 0) | (x == 1)).all(axis=0)
    return tuple(int(c) for c in np.flatnonzero(ok))


def _recorded_columns(a: np.ndarray, dim: int, binary: tuple[int, ...],
                      where: str) -> tuple[int, ...]:
    """The ``binary_columns`` array of a file: distinct column numbers of 0..dim-1
    (:func:`srnn.columns.check_columns`), each one holding only 0 and 1 (``binary``)."""
    check_kind(a, where, "iu")
    check_ndim(a, 1, where, "a 1-D array of column numbers")
    try:
        columns = check_columns(a.tolist(), dim)
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None
    for c in columns:
        if c not in binary:
            raise DataError(f"{where}: column {c} holds values other than 0 and 1, expected a "
                            "binary column")
    return columns
