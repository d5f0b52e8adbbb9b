"""A folder of MIDI files as a data set of binary piano rolls.

Every ``*.mid`` / ``*.midi`` file under the folder (searched recursively, suffix in any case) is
read with :func:`srnn.data.midi.read_midi` into a roll (T, 88); see there for the grid, the
note convention (runs of active steps: held and re-struck notes are not told apart) and the
optional transposition to C major / C minor.

Split (deterministic, independent of the machine): the readable files, sorted by their path
relative to the folder (as POSIX strings), are permuted with
``numpy.random.RandomState(seed).permutation(n)`` (the legacy generator, whose stream numpy
keeps stable). Valid and test get ``max(1, round(fraction * n))`` files each and train the
rest; the first files of the permutation are train, the next valid, the last test, and each
split is then sorted by path. A split left empty (fewer than 3 files) is an error. The split
depends only on the set of readable files' relative paths and the seed.

**Options.** A run records a folder set's options (:data:`FOLDER_OPTIONS`: the grid, the
transposition, the split fractions and seed, ``split_seed`` being :func:`load_midi_folder`'s
``seed``) in its ``config.json`` (``data_options``) and ``data.json`` (``options``), so that
evaluating, sampling or resuming it rebuilds the same splits; :func:`folder_options` completes
given options with the defaults, :func:`load_folder` reads a folder with them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from srnn.data.grid import Grid
from srnn.data.midi import read_piano_roll
from srnn.data.sequences import Modality, SequenceDataset, Split
from srnn.data.validate import check_length
from srnn.errors import DataError

log = logging.getLogger("srnn.data.midi_folder")

MIDI_SUFFIXES = (".mid", ".midi")
PROTOCOL = "midi-folder"
DEFAULT_STEPS_PER_BEAT = 4
SPLITS = ("train", "valid", "test")
DEFAULT_SPLITS = (0.8, 0.1, 0.1)
# Each option of a folder set and its default (the values each allows:
# srnn.train.config.DATA_OPTIONS).
FOLDER_OPTIONS: dict[str, Any] = {
    "steps_per_beat": DEFAULT_STEPS_PER_BEAT,  # the grid: steps per beat, ...
    "step_seconds": None,  # ... or frames of this many seconds (then steps_per_beat is None)
    "transpose_to_c": False,  # each file moved to C major / C minor
    "splits": list(DEFAULT_SPLITS),  # train, valid, test fractions
    "split_seed": 0,  # the seed of the split's permutation
}


def midi_grid(steps_per_beat: int | None = DEFAULT_STEPS_PER_BEAT,
              step_seconds: float | None = None) -> Grid:
    """The grid of a MIDI-folder set: ``step_seconds`` frames if given, else
    ``steps_per_beat`` steps per beat."""
    if step_seconds is not None:
        return Grid(step_seconds=step_seconds)
    if steps_per_beat is None:
        raise ValueError("give steps_per_beat or step_seconds")
    return Grid(steps_per_beat=int(steps_per_beat))


def midi_time_step(steps_per_beat: int | None = DEFAULT_STEPS_PER_BEAT,
                   step_seconds: float | None = None) -> str:
    """What one step of a MIDI-folder set is: "1/4 beat", "beat" or "0.25 s frame"."""
    return midi_grid(steps_per_beat, step_seconds).time_step


def midi_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The MIDI files under ``folder`` (recursively), sorted by their relative path."""
    folder = Path(folder)
    found = [p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def split_counts(n: int, splits: tuple[float, float, float]) -> tuple[int, int, int]:
    """Files in train, valid and test for ``n`` files (valid and test get at least one each)."""
    n_valid = max(1, round(splits[1] * n))
    n_test = max(1, round(splits[2] * n))
    return n - n_valid - n_test, n_valid, n_test


def _check_splits(splits) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in splits)
    except (TypeError, ValueError):
        raise ValueError(f"splits must be three fractions, got {splits!r}") from None
    if len(fr) != 3 or not all(math.isfinite(f) and f > 0 for f in fr) \
            or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise ValueError(f"splits must be three positive fractions that sum to 1, got {splits!r}")
    return fr  # type: ignore[return-value]


def folder_options(options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every option of a folder set (:data:`FOLDER_OPTIONS`), those in ``options`` replacing
    the defaults: ``step_seconds`` given makes ``steps_per_beat`` None, ``splits`` a list of
    three floats. An unknown option is a :class:`DataError`; the values are checked where
    they are used (:func:`load_midi_folder`) and by the run's settings
    (``srnn.train.config.DATA_OPTIONS``)."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(FOLDER_OPTIONS))
    if unknown:
        raise DataError(f"unknown MIDI folder option(s) {', '.join(unknown)}; the options are "
                        f"{', '.join(FOLDER_OPTIONS)}")
    out = {**FOLDER_OPTIONS, **given}
    if out["step_seconds"] is not None:
        out["steps_per_beat"] = None
    try:
        out["splits"] = list(_check_splits(out["splits"]))
    except ValueError as e:
        raise DataError(str(e)) from None
    return out


def load_folder(folder: str | os.PathLike[str],
                options: Mapping[str, Any] | None = None) -> SequenceDataset:
    """:func:`load_midi_folder` with a run's options (:func:`folder_options`)."""
    o = folder_options(options)
    return load_midi_folder(folder, steps_per_beat=o["steps_per_beat"],
                            step_seconds=o["step_seconds"], transpose_to_c=o["transpose_to_c"],
                            splits=tuple(o["splits"]), seed=o["split_seed"])


def load_midi_folder(folder: str | os.PathLike[str], *,
                     steps_per_beat: int | None = DEFAULT_STEPS_PER_BEAT,
                     step_seconds: float | None = None, transpose_to_c: bool = False,
                     splits: tuple[float, float, float] = DEFAULT_SPLITS, seed: int = 0,
                     skip_bad: bool = True) -> SequenceDataset:
    """The MIDI files of ``folder`` as a data set with train/valid/test splits.

    ``steps_per_beat`` (default 4: sixteenth notes) or ``step_seconds`` sets the grid (giving
    ``step_seconds`` overrides the default ``steps_per_beat``). With ``skip_bad`` a file that
    cannot be read (corrupt, not MIDI, no notes, a roll of fewer than 2 steps) is skipped with a
    warning and listed in ``info["skipped"]``; otherwise its :class:`DataError` is raised.
    ``info["files"]`` holds the relative paths of each split, in the order of its sequences,
    and ``info["options"]`` the options as a run records them (:data:`FOLDER_OPTIONS`).
    """
    if step_seconds is not None:
        steps_per_beat = None
    fractions = _check_splits(splits)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    paths = midi_files(folder)
    if not paths:
        raise DataError(f"{folder}: no MIDI files (*.mid, *.midi) in the folder or below it")
    rolls: list[np.ndarray] = []
    names: list[str] = []
    skipped: dict[str, str] = {}
    dropped = 0
    for p in paths:
        rel = p.relative_to(folder).as_posix()
        try:
            roll, n_out = read_piano_roll(p, steps_per_beat, step_seconds, transpose_to_c)
            check_length(roll.shape[0], str(p))
        except DataError as e:
            if not skip_bad:
                raise
            log.warning("skipping %s", e)
            skipped[rel] = str(e)
            continue
        rolls.append(roll)
        names.append(rel)
        dropped += n_out
    n = len(rolls)
    if not n:
        raise DataError(f"{folder}: none of its {len(paths)} MIDI files could be read "
                        f"(first problem: {next(iter(skipped.values()))})")
    counts = split_counts(n, fractions)
    if min(counts) < 1:
        raise DataError(f"{folder}: {n} readable MIDI file{'s' if n != 1 else ''} cannot fill "
                        f"train, valid and test (splits {splits}); at least 3 are needed")
    perm = np.random.RandomState(seed).permutation(n)
    bounds = np.cumsum([0, *counts])
    index = {s: np.sort(perm[bounds[i]:bounds[i + 1]]) for i, s in enumerate(SPLITS)}
    parts = {s: Split.from_targets([rolls[j] for j in index[s]]) for s in SPLITS}
    info = {
        "folder": str(folder),
        "files": {s: [names[j] for j in index[s]] for s in SPLITS},
        "skipped": skipped,
        "steps_per_beat": steps_per_beat,
        "step_seconds": step_seconds,
        "transpose_to_c": transpose_to_c,
        "seed": seed,
        "splits": list(fractions),
        "dropped_notes": dropped,
        "options": {"steps_per_beat": steps_per_beat, "step_seconds": step_seconds,
                    "transpose_to_c": transpose_to_c, "splits": list(fractions),
                    "split_seed": seed},
    }
    log.info("%s: %d MIDI files (%s), %d skipped", folder, n,
             "/".join(str(c) for c in counts), len(skipped))
    grid = midi_grid(steps_per_beat, step_seconds)
    return SequenceDataset(name=folder.resolve().name, protocol=PROTOCOL,
                           time_step=grid.time_step, binary=True, info=info, grid=grid,
                           modality=Modality.MUSIC, **parts)
