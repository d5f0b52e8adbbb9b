"""Readers for the polyphonic music sets: canonical piano-rolls and the Fraccaro (2016) files.

The piano-roll constants (``PITCHES``, ``LOWEST_MIDI``) are those of :mod:`srnn.data.pianoroll`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srnn.data.grid import NO_GRID, Grid
from srnn.data.npz import read_npz
from srnn.data.pianoroll import LOWEST_MIDI, PITCHES
from srnn.data.sequences import Modality, SequenceDataset, Split
from srnn.data.validate import (
    MIN_STEPS,
    check_binary,
    check_finite,
    check_kind,
    check_length,
    check_ndim,
)
from srnn.errors import DataError

QUARTER_NOTE = Grid(steps_per_beat=1, label="quarter note")
EIGHTH_NOTE = Grid(steps_per_beat=2, label="eighth note")
# name -> (file in the data directory, grid)
CANONICAL = {
    "jsb": ("jsb.npz", QUARTER_NOTE),
    "nottingham": ("nottingham.npz", EIGHTH_NOTE),
    "musedata": ("musedata.npz", EIGHTH_NOTE),
    "piano": ("piano.npz", EIGHTH_NOTE),
}
FRACCARO = {
    "jsb-fraccaro": "jsb",
    "nottingham-fraccaro": "nottingham",
    "musedata-fraccaro": "muse",
    "piano-fraccaro": "piano",
}
FRACCARO_STREAMS = 16  # the files' batch size: row r + 16 continues row r
FRACCARO_GRID = Grid(step_seconds=0.3)  # the files' frames of 0.3 s cut from the MIDI sources
FRACCARO_TIME_STEP = FRACCARO_GRID.time_step  # "0.3 s frame"
SPLITS = ("train", "valid", "test")


def fraccaro_file(name: str) -> str:
    return f"fraccaro/{FRACCARO[name]}_raw_batchsize16_seqlen100.npz"


def _arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the npz at ``path``; a missing key is a :class:`DataError`."""
    found = read_npz(path)
    missing = [k for k in keys if k not in found]
    if missing:
        raise DataError(f"{path}: missing array{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} (found {sorted(found) or 'none'})")
    return {k: found[k] for k in keys}


def _counts(a: np.ndarray, where: str) -> np.ndarray:
    """A 1-D integer array of counts as int64 (refuses floats, objects and other shapes)."""
    check_kind(a, where, "iu")
    check_ndim(a, 1, where, "a 1-D array")
    return a.astype(np.int64)


def rolls_from_notes(
    notes: np.ndarray, step_sizes: np.ndarray, seq_lengths: np.ndarray, where: str = "data",
    min_steps: int = 1,
) -> list[np.ndarray]:
    """Binary piano rolls (T_i, 88) from the canonical flat encoding.

    The encoding, per split: ``notes`` holds every MIDI note number (21..108) of every step of
    every sequence, concatenated (sequence by sequence, step by step, ascending pitch within a
    step); ``step_sizes`` the number of notes sounding at each step (0: a silent step), so it
    adds up to ``len(notes)``; ``seq_lengths`` the number of steps of each sequence, adding up
    to ``len(step_sizes)``.

    Checked: 1-D integer arrays; notes within MIDI 21..108; 0..88 notes per step; step and
    note counts that add up; at least one sequence, each of at least ``min_steps`` steps (the
    data set loader asks for :data:`MIN_STEPS`; a lone decoded piece may have one step).
    """
    notes = _counts(notes, f"{where} notes")
    steps = _counts(step_sizes, f"{where} step_sizes")
    lens = _counts(seq_lengths, f"{where} seq_lengths")
    if not len(lens):
        raise DataError(f"{where}: no sequences, expected at least one")
    if len(steps) and (steps.min() < 0 or steps.max() > PITCHES):
        i = int(np.flatnonzero((steps < 0) | (steps > PITCHES))[0])
        raise DataError(f"{where}: step {i} has {steps[i]} notes, expected 0..{PITCHES}")
    if lens.sum() != len(steps):
        raise DataError(f"{where}: seq_lengths add up to {lens.sum()} steps but step_sizes "
                        f"holds {len(steps)}")
    if steps.sum() != len(notes):
        raise DataError(f"{where}: step_sizes add up to {steps.sum()} notes but notes holds "
                        f"{len(notes)}")
    outside = (notes < LOWEST_MIDI) | (notes >= LOWEST_MIDI + PITCHES)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise DataError(f"{where}: MIDI notes outside 21..108 (note {i} is {notes[i]}; range "
                        f"{notes.min()}..{notes.max()})")
    for i in np.flatnonzero(lens < max(min_steps, 1))[:1]:
        check_length(int(lens[i]), f"{where} sequence {i}", max(min_steps, 1))
    flat = np.zeros((len(steps), PITCHES), dtype=np.float32)
    flat[np.repeat(np.arange(len(steps)), steps), notes - LOWEST_MIDI] = 1.0
    return np.split(flat, np.cumsum(lens)[:-1])


def notes_from_rolls(rolls: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`rolls_from_notes` for one split.

    Returns ``notes``, ``step_sizes`` and ``seq_lengths`` arrays.
    """
    flat = np.concatenate(rolls, axis=0) > 0.5
    step_idx, col = np.nonzero(flat)
    return {
        "notes": (col + LOWEST_MIDI).astype(np.uint8),
        "step_sizes": flat.sum(axis=1).astype(np.uint8),
        "seq_lengths": np.array([len(r) for r in rolls], dtype=np.int32),
    }


def load_canonical_npz(
    path: Path, name: str, protocol: str = "canonical", grid: Grid = NO_GRID
) -> SequenceDataset:
    """Read a piano-roll set stored as ``{split}_notes/_step_sizes/_seq_lengths`` arrays
    (the encoding of :func:`rolls_from_notes`, checked there; any problem is a
    :class:`DataError` naming the file and split). ``grid`` is what one step is (the canonical
    sets': :data:`CANONICAL`)."""
    keys = tuple(f"{s}_{f}" for s in SPLITS for f in ("notes", "step_sizes", "seq_lengths"))
    arrays = _arrays(path, keys)
    splits = {s: Split.from_targets(rolls_from_notes(
        arrays[f"{s}_notes"], arrays[f"{s}_step_sizes"], arrays[f"{s}_seq_lengths"],
        where=f"{path} [{s}]", min_steps=MIN_STEPS)) for s in SPLITS}
    return SequenceDataset(
        name=name, protocol=protocol, time_step=grid.time_step, info={"path": str(path)},
        grid=grid, modality=Modality.MUSIC, **splits
    )


FRACCARO_KEYS = ("x_train", "u_train", "x_valid", "u_valid", "x_test", "u_test", "mask_test")
ROLL_AXES = ("row", "step", "pitch")


def _fraccaro_shapes(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Float (or bool/integer) arrays of the expected ndim and 88 pitches; test arrays agree."""
    for k, a in arrays.items():
        check_kind(a, f"{path}: {k}")
        want = 2 if k == "mask_test" else 3
        if a.ndim != want or (want == 3 and a.shape[-1] != PITCHES):
            raise DataError(f"{path}: {k} has shape {a.shape}, expected "
                            + ("(N, T)" if want == 2 else f"(N, T, {PITCHES})"))
    x, u, m = arrays["x_test"], arrays["u_test"], arrays["mask_test"]
    if x.shape != u.shape or x.shape[:2] != m.shape:
        raise DataError(f"{path}: x_test/u_test/mask_test shapes {x.shape}/{u.shape}/{m.shape} "
                        "disagree, expected (N, T, 88)/(N, T, 88)/(N, T)")


def _fraccaro_windows(x: np.ndarray, u: np.ndarray, s: str, path: Path) -> Split:
    """Train or valid: stream-ordered windows, binary and finite."""
    if x.shape != u.shape or not len(x) or len(x) % FRACCARO_STREAMS:
        raise DataError(f"{path}: x_{s}/u_{s} shapes {x.shape}/{u.shape} are not matching "
                        f"stream-ordered windows (a positive multiple of {FRACCARO_STREAMS})")
    check_length(x.shape[1], f"{path}: x_{s} windows")
    for k, a in ((f"x_{s}", x), (f"u_{s}", u)):
        check_finite(a, f"{path}: {k}", ROLL_AXES)
        check_binary(a, f"{path}: {k}", ROLL_AXES)
    x, u = x.astype(np.float32, copy=False), u.astype(np.float32, copy=False)
    return Split(x=list(x), u=list(u), streams=FRACCARO_STREAMS)


def _test_lengths(mask: np.ndarray, path: Path) -> np.ndarray:
    """Each test row's length: its mask must be binary, ones then zeros, of at least 2 steps."""
    check_finite(mask, f"{path}: mask_test", ("row", "step"))
    check_binary(mask, f"{path}: mask_test", ("row", "step"))
    lengths = mask.sum(axis=1).astype(np.int64)
    prefix = np.arange(mask.shape[1])[None, :] < lengths[:, None]
    if not (mask.astype(bool) == prefix).all():
        i = int(np.flatnonzero((mask.astype(bool) != prefix).any(axis=1))[0])
        raise DataError(f"{path}: mask_test row {i} is not ones followed by zeros")
    if not len(lengths):
        raise DataError(f"{path}: no test sequences, expected at least one")
    for i, n in enumerate(lengths):
        check_length(int(n), f"{path}: test sequence {i} (mask_test)")
    return lengths


def load_fraccaro(path: Path, name: str) -> SequenceDataset:
    """Read one of the Fraccaro et al. (2016) files.

    Train/valid hold windows of 100 targets in 16 parallel streams (``u`` already shifted);
    test holds one zero-padded row per piece with ``mask_test`` (``u_test`` padding is NaN).
    Checked (else a :class:`DataError` naming the file and array): the seven arrays exist with
    numeric dtypes and shapes (N, T, 88) / (N, T); train and valid are a positive multiple of
    16 windows, binary and finite; ``mask_test`` rows are ones then zeros, at least 2 steps;
    the unmasked test frames are binary and finite (the padding is not read).
    """
    arrays = _arrays(path, FRACCARO_KEYS)
    _fraccaro_shapes(arrays, path)
    splits = {s: _fraccaro_windows(arrays[f"x_{s}"], arrays[f"u_{s}"], s, path)
              for s in ("train", "valid")}
    lengths = _test_lengths(arrays["mask_test"], path)
    xs, us = [], []
    for i, n in enumerate(lengths):
        for k, out in (("x_test", xs), ("u_test", us)):
            a = np.ascontiguousarray(arrays[k][i, :n], dtype=np.float32)
            check_finite(a, f"{path}: {k} row {i}", ("step", "pitch"))
            check_binary(a, f"{path}: {k} row {i}", ("step", "pitch"))
            out.append(a)
    splits["test"] = Split(x=xs, u=us)
    return SequenceDataset(name=name, protocol="fraccaro", time_step=FRACCARO_GRID.time_step,
                           info={"path": str(path)}, grid=FRACCARO_GRID,
                           modality=Modality.MUSIC, **splits)
