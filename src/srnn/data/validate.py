"""Checks shared by the data loaders: each failure is a :class:`DataError` whose message names
the file (and split, key or sequence), what is wrong and what was expected.

``where`` arguments are the prefix of those messages, e.g. ``"data/jsb.npz [train]"``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from srnn.errors import DataError, SRNNError

MIN_STEPS = 2  # a sequence needs a first step and one to predict from it
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_DETAIL_CHARS = 200

_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxdict, _short.maxstring = 3, 6, 6, 40
_short.maxother = 40


def short_repr(value: object) -> str:
    """A bounded ``repr`` (safe for huge or deeply nested values from a hostile file)."""
    return _short.repr(value)


def describe(error: BaseException) -> str:
    """``Type: message`` of a third-party exception, cut to a readable length."""
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "..."


@contextmanager
def reading(where: str, what: str) -> Iterator[None]:
    """Turn any failure of a third-party parser into ``DataError("{where}: {what} (...)")``.

    The library's own errors pass unchanged; ``KeyboardInterrupt`` and ``SystemExit`` are not
    ``Exception`` subclasses and so are never swallowed. ``MemoryError`` and ``RecursionError``
    (absurd sizes or nesting in a corrupt file) are reported like any other parse failure.
    """
    try:
        yield
    except SRNNError:
        raise
    except Exception as e:  # parsers of untrusted bytes raise many unrelated types
        raise DataError(f"{where}: {what} ({describe(e)})") from e


def check_kind(a: np.ndarray, where: str, kinds: str = NUMERIC_KINDS) -> None:
    """The dtype is one of ``kinds`` (numpy kind codes); object arrays are always refused."""
    names = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "float"}
    if a.dtype.hasobject or a.dtype.kind not in kinds:
        wanted = " or ".join(names[k] for k in kinds)
        raise DataError(f"{where}: dtype {a.dtype} is not allowed, expected {wanted} values")


def check_ndim(a: np.ndarray, ndim: int, where: str, expected: str) -> None:
    """``a`` has ``ndim`` dimensions; ``expected`` spells the shape, e.g. ``"(N, T, D)"``."""
    if a.ndim != ndim:
        raise DataError(f"{where}: shape {a.shape}, expected {expected}")


def _position(index: tuple[int, ...], names: Sequence[str]) -> str:
    named = [f"{n} {i}" for n, i in zip(names, index, strict=False)]
    return ", ".join(named) if len(index) == len(names) else f"index {tuple(index)}"


def check_finite(a: np.ndarray, where: str, axes: Sequence[str] = ()) -> None:
    """No NaN or infinity anywhere; the first offender's position is named (by ``axes``)."""
    if a.dtype.kind != "f":
        return
    bad = ~np.isfinite(a)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{where}: {a[index]} at {_position(index, axes)}, expected finite "
                        "values (no NaN or infinity)")


def check_float32(a: np.ndarray, where: str, axes: Sequence[str] = ()) -> None:
    """Every value fits in float32 (models compute in float32: larger values become inf)."""
    big = np.abs(a) > np.finfo(np.float32).max if a.dtype.kind == "f" else np.zeros(0, bool)
    if big.any():
        index = tuple(int(i) for i in np.argwhere(big)[0])
        raise DataError(f"{where}: {a[index]} at {_position(index, axes)} does not fit in "
                        "float32, expected finite float32 values")


def is_binary(a: np.ndarray) -> bool:
    return bool(((a == 0) | (a == 1)).all())


def check_binary(a: np.ndarray, where: str, axes: Sequence[str] = ()) -> None:
    """Every value is 0 or 1 (piano rolls)."""
    bad = (a != 0) & (a != 1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{where}: value {a[index]} at {_position(index, axes)}, expected a "
                        "binary piano roll (0 or 1)")


def check_length(n: int, where: str, least: int = MIN_STEPS) -> None:
    """A sequence has at least ``least`` steps (default :data:`MIN_STEPS`)."""
    if n < least:
        what = "empty sequence" if n == 0 else "sequence too short"
        raise DataError(f"{where}: {what} ({n} step{'s' if n != 1 else ''}), expected at least "
                        f"{least} step{'s' if least != 1 else ''}")


def check_sequences(seqs: Sequence[np.ndarray], where: str, binary: bool,
                    dim: int | None = None) -> int:
    """Validate the sequences (T_i, D) of one split; returns D.

    The split is not empty; every sequence is 2-D with a numeric dtype, at least
    :data:`MIN_STEPS` steps, the same D (``dim`` if given), finite values that fit in float32,
    binary if ``binary``.
    """
    if not len(seqs):
        raise DataError(f"{where}: no sequences, expected at least one")
    for i, s in enumerate(seqs):
        w = f"{where} sequence {i}"
        check_kind(s, w)
        check_ndim(s, 2, w, "(T, D)")
        check_length(s.shape[0], w)
        if s.shape[1] < 1:
            raise DataError(f"{w}: shape {s.shape} has no values per step, expected D >= 1")
        if dim is None:
            dim = int(s.shape[1])
        if s.shape[1] != dim:
            raise DataError(f"{w}: {s.shape[1]} values per step, expected {dim} (as in the "
                            "other sequences)")
        check_finite(s, w, ("step", "column"))
        check_float32(s, w, ("step", "column"))
        if binary:
            check_binary(s, w, ("step", "column"))
    return int(dim)  # type: ignore[arg-type]
