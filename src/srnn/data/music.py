"""Readers for the polyphonic music sets: canonical piano-rolls and the Fraccaro (2016) files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from srnn.data.sequences import SequenceDataset, Split
from srnn.errors import DataError

PITCHES = 88
LOWEST_MIDI = 21  # column 0 of a piano roll is MIDI note 21 (A0); column 87 is 108 (C8)

CANONICAL = {
    "jsb": ("jsb.npz", "quarter note"),
    "nottingham": ("nottingham.npz", "eighth note"),
    "musedata": ("musedata.npz", "eighth note"),
    "piano": ("piano.npz", "eighth note"),
}
FRACCARO = {
    "jsb-fraccaro": "jsb",
    "nottingham-fraccaro": "nottingham",
    "musedata-fraccaro": "muse",
    "piano-fraccaro": "piano",
}
FRACCARO_STREAMS = 16  # the files' batch size: row r + 16 continues row r
FRACCARO_TIME_STEP = "0.3 s frame"


def fraccaro_file(name: str) -> str:
    return f"fraccaro/{FRACCARO[name]}_raw_batchsize16_seqlen100.npz"


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e


def _array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    if key not in npz.files:
        raise DataError(f"{path}: missing array {key!r} (found {sorted(npz.files)})")
    try:
        return npz[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: array {key!r} is corrupt ({e})") from e


def rolls_from_notes(
    notes: np.ndarray, step_sizes: np.ndarray, seq_lengths: np.ndarray, where: str = "data"
) -> list[np.ndarray]:
    """Binary piano rolls (T_i, 88) from the canonical flat encoding (see data/README.md)."""
    notes = notes.astype(np.int64)
    steps = step_sizes.astype(np.int64)
    lens = seq_lengths.astype(np.int64)
    if steps.sum() != len(notes) or lens.sum() != len(steps):
        raise DataError(f"{where}: note, step and length counts disagree")
    if (lens <= 0).any():
        raise DataError(f"{where}: empty sequence (length 0) at index {int(np.argmin(lens))}")
    if len(notes) and (notes.min() < LOWEST_MIDI or notes.max() >= LOWEST_MIDI + PITCHES):
        raise DataError(f"{where}: MIDI notes outside 21..108 ({notes.min()}..{notes.max()})")
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
    path: Path, name: str, protocol: str = "canonical", time_step: str = ""
) -> SequenceDataset:
    """Read a piano-roll set stored as ``{split}_notes/_step_sizes/_seq_lengths`` arrays."""
    npz = _open_npz(path)
    splits = {}
    for s in ("train", "valid", "test"):
        rolls = rolls_from_notes(
            _array(npz, f"{s}_notes", path),
            _array(npz, f"{s}_step_sizes", path),
            _array(npz, f"{s}_seq_lengths", path),
            where=f"{path} [{s}]",
        )
        splits[s] = Split.from_targets(rolls)
    return SequenceDataset(
        name=name, protocol=protocol, time_step=time_step, info={"path": str(path)}, **splits
    )


def load_fraccaro(path: Path, name: str) -> SequenceDataset:
    """Read one of the Fraccaro et al. (2016) files.

    Train/valid hold windows of 100 targets in 16 parallel streams (``u`` already shifted);
    test holds one zero-padded row per piece with ``mask_test`` (``u_test`` padding is NaN).
    """
    npz = _open_npz(path)
    arrays = {k: _array(npz, k, path) for k in
              ("x_train", "u_train", "x_valid", "u_valid", "x_test", "u_test", "mask_test")}
    for k, a in arrays.items():
        want = 2 if k == "mask_test" else 3
        if a.ndim != want or (want == 3 and a.shape[-1] != PITCHES):
            raise DataError(f"{path}: {k} has shape {a.shape}, expected "
                            + ("(N, T)" if want == 2 else f"(N, T, {PITCHES})"))
    splits = {}
    for s in ("train", "valid"):
        x, u = arrays[f"x_{s}"], arrays[f"u_{s}"]
        if x.shape != u.shape or len(x) % FRACCARO_STREAMS:
            raise DataError(f"{path}: x_{s}/u_{s} shapes {x.shape}/{u.shape} are not "
                            f"matching stream-ordered windows (a multiple of {FRACCARO_STREAMS})")
        if not (np.isfinite(x).all() and np.isfinite(u).all()):
            raise DataError(f"{path}: x_{s}/u_{s} hold NaN or inf values")
        splits[s] = Split(x=list(x), u=list(u), streams=FRACCARO_STREAMS)
    lengths = arrays["mask_test"].sum(axis=1).astype(np.int64)
    xt, ut = arrays["x_test"], arrays["u_test"]
    if (lengths <= 0).any():
        raise DataError(f"{path}: mask_test has an empty test sequence")
    xs = [np.ascontiguousarray(xt[i, :n]) for i, n in enumerate(lengths)]
    us = [np.ascontiguousarray(ut[i, :n]) for i, n in enumerate(lengths)]
    if not all(np.isfinite(a).all() for a in xs + us):
        raise DataError(f"{path}: NaN or inf inside the unmasked test frames")
    splits["test"] = Split(x=xs, u=us)
    return SequenceDataset(name=name, protocol="fraccaro", time_step=FRACCARO_TIME_STEP,
                           info={"path": str(path)}, **splits)
