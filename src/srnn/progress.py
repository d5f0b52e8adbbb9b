"""Progress bars: the one policy of every command that runs long (tqdm).

Every bar of the library (training epochs, ``srnn evaluate --bound iwae|fivo``, the jobs of
``srnn reproduce`` and ``srnn compare``, ``srnn tune``, the Bach build) is made by
:func:`progress_bar`, which reads ``enabled``:

- ``False`` (``--no-progress``): no bar; nothing is written.
- ``True``: a live bar on stderr, redrawn in place with carriage returns, even where stderr is
  not a terminal.
- ``None`` (the default): where stderr is a terminal, the live bar; where it is not (a log file,
  a pipe, CI), no carriage returns and no redrawing: plain lines such as
  ``epoch 3: 45/100 [00:10<00:12, 4.50 batch/s, elbo=-8.123]``, one every
  :data:`LINE_SECONDS` seconds at most per bar (so a bar that ends sooner writes none on the
  way), and the last state of a bar that is kept (``leave``: the jobs of a sweep, a tuning,
  a bound's evaluation, the Bach build) when it ends.

``None`` is first resolved against the process-wide default that :func:`default_enabled` sets
(the command line sets it from ``--no-progress`` for the whole command, so that a bar deep
inside, e.g. the Bach build when ``srnn train`` first needs the set, is silenced too).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["LINE_SECONDS", "default_enabled", "progress_bar"]

LINE_SECONDS = 30.0  # the least time between two plain lines of one bar (non-terminal stderr)
# A plain line: no bar, which means nothing in a log.
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

_default: bool | None = None
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@contextmanager
def default_enabled(enabled: bool | None) -> Iterator[None]:
    """Within the context, bars asked for with ``enabled=None`` follow ``enabled`` (None: the
    terminal policy of the module docstring); the previous default is restored after."""
    global _default
    old, _default = _default, enabled
    try:
        yield
    finally:
        _default = old


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Lines:
    """What tqdm writes, as plain lines on ``stream``: the carriage returns and padding of its
    redrawing dropped, one line at most every ``interval`` seconds (the first after as long),
    and the state pending at a newline (a kept bar's end) written then."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream, self.interval = stream, interval
        self.last_time = time.monotonic()
        self.last_line = ""
        self.pending = ""

    def write(self, text: str) -> int:
        for part in re.split(r"[\r\n]", text):
            line = _ANSI.sub("", part).strip()
            if line:
                self.pending = line
        now = time.monotonic()
        if self.pending and (now - self.last_time >= self.interval or "\n" in text):
            if self.pending != self.last_line:
                self.stream.write(self.pending + "\n")
                self.stream.flush()
                self.last_line = self.pending
            self.last_time, self.pending = now, ""
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str,
                 enabled: bool | None = None, total: float | None = None, unit: str = "it",
                 leave: bool = True, stream: TextIO | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or one updated by hand, with ``total``) under the policy
    of the module docstring. ``enabled``: True (a live bar), False (none) or None (the
    process-wide default, else live on a terminal and plain lines elsewhere); ``stream``:
    where it writes (stderr); further keywords go to tqdm (``initial``, ...)."""
    out = sys.stderr if stream is None else stream
    if enabled is None:
        enabled = _default
    common = {"desc": desc, "total": total, "unit": unit, "leave": leave, **kwargs}
    if enabled is False:
        return tqdm(iterable, disable=True, **common)
    if enabled or _is_terminal(out):
        return tqdm(iterable, file=out, disable=False, **common)
    return tqdm(iterable, file=_Lines(out, LINE_SECONDS), disable=False, ncols=None,
                bar_format=LINE_FORMAT, mininterval=min(LINE_SECONDS, 1.0), **common)
