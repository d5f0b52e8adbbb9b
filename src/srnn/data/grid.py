"""What one time step of a data set is: its grid, as a structured value.

A :class:`Grid` is one of

* **beats**: ``steps_per_beat`` steps per beat, a beat being MIDI's quarter note (the canonical
  JSB set and the Bach chorales: 1; Nottingham, MuseData, Piano-midi.de: 2; a MIDI folder: 4 by
  default);
* **seconds**: fixed frames of ``step_seconds`` (the Fraccaro files: 0.3 s; a MIDI folder read
  with ``step_seconds``);
* **samples**: frames of ``frame_size`` audio samples at ``rate`` Hz (speech: 200 samples at
  8 kHz for FSDD, 16 kHz for the corpora);
* **none**: a plain step with no meaning in time (your own arrays).

The first two are *musical*: MIDI files are read on them (:meth:`Grid.read_options`, the
keywords of :func:`srnn.data.midi.read_midi`) and written with :attr:`Grid.write_seconds` per
step, beats at 120 beats per minute (:data:`SECONDS_PER_BEAT`). :attr:`Grid.time_step` is the
grid's display text (``"quarter note"``, ``"1/4 beat"``, ``"0.3 s frame"``,
``"200-sample frame at 8 kHz"``, ``"step"``); it is never parsed back: :meth:`Grid.to_dict` and
:meth:`Grid.from_dict` carry a grid through JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from srnn.errors import ConfigError

# Seconds per step in written MIDI files, for grids measured in beats: 120 beats per minute.
SECONDS_PER_BEAT = 0.5

BEATS, SECONDS, SAMPLES, NONE = "beats", "seconds", "samples", "none"
KINDS = (BEATS, SECONDS, SAMPLES, NONE)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class Grid:
    """One time step of a data set (see the module docstring): give ``steps_per_beat``, or
    ``step_seconds``, or ``frame_size`` and ``rate``, or nothing.

    ``label`` is an optional display name that replaces the derived one in :attr:`time_step`
    (the canonical sets name their beat grids by note value: ``"quarter note"``,
    ``"eighth note"``); it takes no part in comparisons.
    """

    steps_per_beat: int | None = None
    step_seconds: float | None = None
    frame_size: int | None = None
    rate: int | None = None
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        given = [k for k in ("steps_per_beat", "step_seconds", "frame_size", "rate")
                 if getattr(self, k) is not None]
        if given not in ([], ["steps_per_beat"], ["step_seconds"], ["frame_size", "rate"]):
            raise ValueError("a grid is steps_per_beat, or step_seconds, or frame_size with "
                             f"rate, or nothing; got {', '.join(given)}")
        if self.steps_per_beat is not None and not _positive_int(self.steps_per_beat):
            raise ValueError(f"steps_per_beat must be a positive integer, got "
                             f"{self.steps_per_beat!r}")
        if self.step_seconds is not None and not (
                isinstance(self.step_seconds, int | float) and not isinstance(
                    self.step_seconds, bool)
                and math.isfinite(self.step_seconds) and self.step_seconds > 0):
            raise ValueError(f"step_seconds must be a positive number, got "
                             f"{self.step_seconds!r}")
        for k in ("frame_size", "rate"):
            if getattr(self, k) is not None and not _positive_int(getattr(self, k)):
                raise ValueError(f"{k} must be a positive integer, got {getattr(self, k)!r}")

    @property
    def kind(self) -> str:
        """``"beats"``, ``"seconds"``, ``"samples"`` or ``"none"``."""
        if self.steps_per_beat is not None:
            return BEATS
        if self.step_seconds is not None:
            return SECONDS
        return SAMPLES if self.frame_size is not None else NONE

    @property
    def is_musical(self) -> bool:
        """Whether MIDI files can be read and written on this grid (beats or seconds)."""
        return self.kind in (BEATS, SECONDS)

    @property
    def time_step(self) -> str:
        """The display text of one step, e.g. "quarter note", "1/4 beat", "0.3 s frame"."""
        if self.label:
            return self.label
        kind = self.kind
        if kind == BEATS:
            return "beat" if self.steps_per_beat == 1 else f"1/{self.steps_per_beat} beat"
        if kind == SECONDS:
            return f"{self.step_seconds:g} s frame"
        if kind == SAMPLES:
            return f"{self.frame_size}-sample frame at {self.rate / 1000:g} kHz"
        return "step"

    def _not_musical(self) -> ConfigError:
        return ConfigError(f"no musical grid known for time step {self.time_step!r}")

    def read_options(self) -> dict[str, Any]:
        """The grid keywords of :func:`srnn.data.midi.read_midi` (``steps_per_beat=...`` or
        ``step_seconds=...``); a grid that is not musical is a :class:`ConfigError`."""
        if self.kind == BEATS:
            return {"steps_per_beat": self.steps_per_beat}
        if self.kind == SECONDS:
            return {"step_seconds": self.step_seconds}
        raise self._not_musical()

    @property
    def write_seconds(self) -> float:
        """Seconds per step in written MIDI files: :data:`SECONDS_PER_BEAT` divided by the
        steps per beat, or the frame length; a grid that is not musical is a
        :class:`ConfigError`."""
        if self.kind == BEATS:
            return SECONDS_PER_BEAT / self.steps_per_beat  # type: ignore[operator]
        if self.kind == SECONDS:
            return float(self.step_seconds)  # type: ignore[arg-type]
        raise self._not_musical()

    def to_dict(self) -> dict[str, Any]:
        """The grid as JSON: ``{"kind": ..., <its numbers>}`` and ``label`` when it has one."""
        out: dict[str, Any] = {"kind": self.kind}
        for k in ("steps_per_beat", "step_seconds", "frame_size", "rate"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "grid") -> Grid:
        """Inverse of :meth:`to_dict`; anything else is a :class:`ConfigError` naming
        ``where`` (e.g. the file the grid was read from)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a grid object, got {d!r}")
        known = {"kind", "steps_per_beat", "step_seconds", "frame_size", "rate", "label"}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"{where}: unknown grid field {extra[0]!r}")
        label = d.get("label", "")
        if not isinstance(label, str):
            raise ConfigError(f"{where}: grid label must be text, got {label!r}")
        try:
            grid = cls(steps_per_beat=d.get("steps_per_beat"), step_seconds=d.get("step_seconds"),
                       frame_size=d.get("frame_size"), rate=d.get("rate"), label=label)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from e
        if d.get("kind", grid.kind) != grid.kind:
            raise ConfigError(f"{where}: grid kind {d['kind']!r} does not match its fields "
                              f"(a {grid.kind} grid)")
        return grid


NO_GRID = Grid()  # a plain step (your own arrays)
