"""Column numbers of a step: the one check of a list of binary columns.

The mixed emission's ``binary_columns`` (:mod:`srnn.nn.pen`), the ``binary_columns`` array of
a user's ``.npz`` (:mod:`srnn.data.arrays`), the ``binary_columns`` model option
(:mod:`srnn.train.config`) and ``--binary-columns`` (:mod:`srnn.cli`) are all checked by
:func:`check_columns`: distinct integers >= 0, and below the number of values per step where
it is known. Each caller turns its ``ValueError`` into its own error type.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

__all__ = ["check_columns"]


def check_columns(columns: Iterable[object], x_dim: int | None = None) -> tuple[int, ...]:
    """The columns as a sorted tuple of ints. A column that is not an integer (a bool is not),
    is negative, is not below ``x_dim`` (when given), or is given twice is a ``ValueError``."""
    given = list(columns)
    for c in given:
        if not isinstance(c, Integral) or isinstance(c, bool):
            raise ValueError(f"binary column {c!r} is not a column number (an integer >= 0)")
        if c < 0 or (x_dim is not None and c >= x_dim):
            raise ValueError(f"binary column {c} is not a column of steps of {x_dim} values "
                             f"(0..{x_dim - 1})" if x_dim is not None else
                             f"binary column {c} is not a column number (an integer >= 0)")
    out = tuple(sorted(int(c) for c in given))
    if len(set(out)) != len(out):
        raise ValueError(f"binary columns {[int(c) for c in given]} name a column twice")
    return out
