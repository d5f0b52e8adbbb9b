"""Reading MIDI files into binary piano rolls (T x 88, MIDI 21-108), with pretty_midi.

Convention: a binary roll cannot tell a held note from a re-struck one, so a note is a *run* of
consecutive active steps of one pitch. :func:`read_midi` marks each note's cells and so merges
notes of one pitch that touch or overlap (a re-struck note, or the same pitch in two
instruments) into one run; :func:`srnn.music.midi.roll_to_midi` writes one note per run. On a
grid the two are exact inverses: roll -> MIDI -> roll gives the roll back, as long as it ends
with an active step (trailing silence is not stored in a MIDI file).

The grid is given as ``steps_per_beat`` or ``step_seconds``, the keywords of
:meth:`srnn.data.grid.Grid.read_options`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mido
import numpy as np
import pretty_midi

from srnn.data.pianoroll import HIGHEST_MIDI, LOWEST_MIDI, PITCHES, find_key, shift_to_c
from srnn.data.validate import reading
from srnn.errors import DataError

log = logging.getLogger("srnn.data.midi")

MAX_STEPS = 1_000_000  # longest roll read (35 hours at 8 steps a second); more means corruption
MAX_SECONDS = 24 * 3600.0  # longest file read, to its last event; more means corruption
MAX_NOTES = 5_000_000  # most notes in a file (a day of 58 notes a second); more means corruption

_TICK_GUARD = threading.Lock()  # pretty_midi's MAX_TICK is a module global: lift it in one place


class _TickTimes:
    """Seconds at a tick, computed from the tempo map (pretty_midi's ``_tick_scales``) at each
    lookup, with pretty_midi's own arithmetic and so its exact values, instead of the table of
    a float per tick up to the file's last tick that pretty_midi allocates (190 MB, and twice as
    much for temporaries, for 20 minutes at 10,080 ticks per beat and 120 bpm; unbounded for a
    corrupt file)."""

    def __init__(self, scales: list[tuple[int, float]]) -> None:
        self._ticks = [int(t) for t, _ in scales]
        self._scales = [s for _, s in scales]
        self._times = [0.0]
        for (t0, s), (t1, _) in zip(scales[:-1], scales[1:], strict=True):
            self._times.append(self._times[-1] + s * (t1 - t0))

    def __getitem__(self, tick: int) -> float:
        i = max(bisect_right(self._ticks, tick) - 1, 0)
        return self._times[i] + self._scales[i] * (tick - self._ticks[i])


class _Parser(pretty_midi.PrettyMIDI):
    """pretty_midi's parser of a :class:`mido.MidiFile`, timing events through
    :class:`_TickTimes` and refusing a file longer than :data:`MAX_SECONDS` before its notes
    are built. Construct it under :func:`_tick_guard_lifted`."""

    def __init__(self, midi: mido.MidiFile, where: str) -> None:
        self._where = where
        super().__init__(mido_object=midi)

    def _update_tick_to_time(self, max_tick: int) -> None:  # called once, with last tick + 1
        times = _TickTimes(self._tick_scales)
        self._PrettyMIDI__tick_to_time = times  # the table pretty_midi's loaders index
        seconds = times[max(int(max_tick) - 1, 0)]
        if not seconds <= MAX_SECONDS:
            raise DataError(f"{self._where}: lasts {seconds:.6g} s ({seconds / 3600:.3g} hours), "
                            f"expected at most {MAX_SECONDS / 3600:g} hours (corrupt tempo map "
                            f"or timing?)")

    def tick_to_time(self, tick: int) -> float:
        """Seconds at ``tick`` (pretty_midi's method refuses ticks past its ``MAX_TICK``)."""
        return self._PrettyMIDI__tick_to_time[int(tick)]


@contextmanager
def _tick_guard_lifted() -> Iterator[None]:
    """Lift pretty_midi's refusal of files with a tick past ``MAX_TICK`` (10^7, read in
    ``PrettyMIDI.__init__``), a guard for its per-tick table that :class:`_Parser` does not
    build; valid long files at a high resolution pass it. Restored on exit."""
    with _TICK_GUARD:
        saved = pretty_midi.pretty_midi.MAX_TICK
        pretty_midi.pretty_midi.MAX_TICK = math.inf
        try:
            yield
        finally:
            pretty_midi.pretty_midi.MAX_TICK = saved


def _count_notes(midi: mido.MidiFile) -> int:
    """Note-ons of non-zero velocity in all tracks and channels (drums included)."""
    return sum(1 for track in midi.tracks for m in track
               if m.type == "note_on" and m.velocity > 0)


def _load(path: Path) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file; every failure becomes a :class:`DataError` naming the file.

    The bounds are in notes (:data:`MAX_NOTES`) and seconds (:data:`MAX_SECONDS`), not ticks:
    any resolution and number of ticks is read, and memory follows the file's events.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with reading(str(path), "not a valid MIDI file"):  # mido raises many types
            midi = mido.MidiFile(str(path), charset="latin1")  # pretty_midi's charset
            notes = _count_notes(midi)
            if notes > MAX_NOTES:
                raise DataError(f"{path}: {notes} notes, expected at most {MAX_NOTES} "
                                f"(corrupt file?)")
            with _tick_guard_lifted():
                pm = _Parser(midi, str(path))
    for w in caught:
        log.debug("%s: %s", path, w.message)
    return pm


def _beats(pm: pretty_midi.PrettyMIDI, times: np.ndarray) -> np.ndarray:
    """Times in seconds to quarter-note beats, through the file's tempo map."""
    change_times, tempi = pm.get_tempo_changes()
    per_second = tempi / 60.0
    with np.errstate(all="ignore"):  # a corrupt tempo map may give inf; _cells checks
        at_change = np.concatenate([[0.0], np.cumsum(np.diff(change_times) * per_second[:-1])])
        j = np.clip(np.searchsorted(change_times, times, side="right") - 1, 0, None)
        return at_change[j] + (times - change_times[j]) * per_second[j]


def _key_shift(pitches: np.ndarray, weights: np.ndarray) -> tuple[int, int, str]:
    """Semitones (-6..+5) that move the estimated tonic onto C, and the key (tonic, mode)."""
    hist = np.bincount(pitches % 12, weights=weights, minlength=12)
    tonic, mode = find_key(hist)
    return shift_to_c(tonic), tonic, mode


def _cells(starts: np.ndarray, ends: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each note's first and past-the-end cell; absurd times (a corrupt tempo map or tick
    count) are a :class:`DataError` rather than a huge or negative index."""
    ok = np.isfinite(starts) & np.isfinite(ends) & (starts > -0.5) & (ends < MAX_STEPS)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(f"{path}: note {i} spans steps {starts[i]:.6g}..{ends[i]:.6g}, expected "
                        f"times within 0..{MAX_STEPS} steps (corrupt tempo or timing?)")
    onset = np.rint(starts).astype(np.int64)
    return onset, np.maximum(np.rint(ends).astype(np.int64), onset + 1)


def read_piano_roll(path: str | os.PathLike[str], steps_per_beat: int | None = None,
                    step_seconds: float | None = None, transpose_to_c: bool = False,
                    length: int | None = None) -> tuple[np.ndarray, int]:
    """The roll of :func:`read_midi` and the number of notes dropped for their pitch."""
    if (steps_per_beat is None) == (step_seconds is None):
        raise ValueError("give exactly one of steps_per_beat and step_seconds")
    if steps_per_beat is not None and (int(steps_per_beat) != steps_per_beat
                                       or steps_per_beat < 1):
        raise ValueError(f"steps_per_beat must be a positive integer, got {steps_per_beat!r}")
    if step_seconds is not None and not (math.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"step_seconds must be a positive number, got {step_seconds!r}")
    if length is not None and length < 1:
        raise ValueError(f"length must be at least 1, got {length!r}")
    path = Path(path)
    pm = _load(path)
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    if not notes:
        drums = any(inst.notes for inst in pm.instruments)
        raise DataError(f"{path}: contains no notes" + (" (only drum notes)" if drums else ""))
    starts = np.array([n.start for n in notes], dtype=np.float64)
    ends = np.array([n.end for n in notes], dtype=np.float64)
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    if steps_per_beat is not None:
        starts, ends = _beats(pm, starts) * steps_per_beat, _beats(pm, ends) * steps_per_beat
    else:
        starts, ends = starts / step_seconds, ends / step_seconds
    onset, stop = _cells(starts, ends, path)
    if transpose_to_c:
        shift, tonic, mode = _key_shift(pitches, (stop - onset).astype(np.float64))
        log.debug("%s: key %s %s, transposed by %+d", path,
                  pretty_midi.note_number_to_name(tonic)[:-2], mode, shift)
        pitches = pitches + shift
    keep = (pitches >= LOWEST_MIDI) & (pitches <= HIGHEST_MIDI)
    dropped = int((~keep).sum())
    if dropped:
        log.debug("%s: dropped %d notes outside MIDI %d..%d", path, dropped, LOWEST_MIDI,
                  HIGHEST_MIDI)
    if not keep.any():
        raise DataError(f"{path}: no notes within MIDI {LOWEST_MIDI}..{HIGHEST_MIDI} "
                        f"({dropped} outside)")
    onset, stop, cols = onset[keep], stop[keep], pitches[keep] - LOWEST_MIDI
    steps = int(stop.max())
    roll = np.zeros((max(steps, length or 0), PITCHES), dtype=np.float32)
    for a, b, c in zip(onset.tolist(), stop.tolist(), cols.tolist(), strict=True):
        roll[a:b, c] = 1.0
    if length is not None:
        roll = roll[:length]
    return roll, dropped


def read_midi(path: str | os.PathLike[str], *, steps_per_beat: int | None = None,
              step_seconds: float | None = None, transpose_to_c: bool = False,
              length: int | None = None) -> np.ndarray:
    """A MIDI file as a binary piano roll (T, 88), float32, column = MIDI pitch - 21.

    Give exactly one grid (else ``ValueError``):

    * ``steps_per_beat``: a step is ``1 / steps_per_beat`` of a beat, a beat being MIDI's
      quarter note, through the file's tempo map (tempo changes move the grid with the music);
    * ``step_seconds``: fixed frames of that many seconds.

    The notes of all non-drum instruments are used. A note from time ``start`` to ``end`` covers
    cells ``[onset, max(offset, onset + 1))`` with ``onset = round(start / step)`` and
    ``offset = round(end / step)`` (to the nearest cell, ties to even): every note sounds for at
    least one step, and notes on the grid land exactly on their cells. Notes of one pitch that
    touch or overlap merge into one run (see the module docstring): this is the inverse of
    :func:`roll_to_midi`. Leading silence is kept; the roll ends where the last note ends, or
    has ``length`` steps (zero-padded or cut).

    ``transpose_to_c``: the key is estimated from the notes' pitch-class histogram, weighted by
    their length in steps, correlated with the Aarden-Essen major and minor key profiles (as for
    the Bach set, :func:`srnn.data.pianoroll.find_key`); key-signature events are not used (they are
    often missing, or a sequencer's default C major). Every note is then shifted by the smallest
    interval (-6..+5 semitones) that moves the tonic onto C: major keys become C major and minor
    keys C minor. Notes outside MIDI 21..108 (after any shift) are dropped and counted (logged
    at debug level).

    Raises :class:`srnn.errors.DataError` naming the file when it is missing, is not a readable
    MIDI file, holds more than :data:`MAX_NOTES` notes, lasts more than :data:`MAX_SECONDS`
    (through its tempo map; any resolution and number of ticks is read), or has no (non-drum,
    in-range) notes.
    """
    return read_piano_roll(path, steps_per_beat, step_seconds, transpose_to_c, length)[0]
