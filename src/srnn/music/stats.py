"""Summary statistics of binary piano rolls (T, 88), to compare model samples with the data.

Every value is a plain float, int, list or None, so the result can be written as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from srnn.data.pianoroll import LOWEST_MIDI, PITCHES

MAX_POLYPHONY = 8  # the polyphony histogram's last bin counts steps with >= 8 notes
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _binary_rolls(rolls: Sequence[np.ndarray] | np.ndarray, what: str) -> list[np.ndarray]:
    if isinstance(rolls, np.ndarray):  # one roll (T, 88) or a stack (N, T, 88)
        rolls = [rolls] if rolls.ndim == 2 else list(rolls)
    rolls = list(rolls)
    if not rolls:
        raise ValueError(f"{what}: no piano rolls given")
    out = []
    for i, r in enumerate(rolls):
        a = np.asarray(r)
        if a.ndim != 2 or a.shape[1] != PITCHES:
            raise ValueError(f"{what}: roll {i} has shape {a.shape}, expected (T, {PITCHES})")
        if not np.isfinite(a).all():
            raise ValueError(f"{what}: roll {i} holds NaN or inf values")
        out.append(a > 0.5)
    if sum(len(a) for a in out) == 0:
        raise ValueError(f"{what}: the piano rolls have no time steps")
    return out


def _note_lengths(roll: np.ndarray) -> np.ndarray:
    """Lengths in steps of every run of consecutive active steps of each pitch."""
    padded = np.zeros((len(roll) + 2, PITCHES), dtype=np.int8)
    padded[1:-1] = roll
    change = np.diff(padded, axis=0)
    starts = np.nonzero(change.T == 1)  # pitch-major, so starts and ends pair up in order
    ends = np.nonzero(change.T == -1)
    return ends[1] - starts[1]


def roll_statistics(rolls: Sequence[np.ndarray] | np.ndarray) -> dict[str, Any]:
    """Statistics of piano rolls pooled over all their steps (values > 0.5 count as notes).

    Keys: ``sequences``, ``steps``, ``notes_per_step`` (mean active pitches per step),
    ``empty_fraction`` (steps with no note), ``polyphony_histogram`` (fraction of steps with
    0, 1, ..., 7 and >= 8 active pitches), ``pitch_class_histogram`` (12 fractions from C,
    weighted by active steps; all zeros without notes), ``lowest_pitch``, ``highest_pitch``,
    ``pitch_range`` (semitones), ``mean_pitch`` (MIDI numbers, weighted by active steps;
    None without notes), ``notes`` (runs of consecutive active steps of one pitch) and
    ``mean_note_length`` (steps; None without notes).
    """
    rs = _binary_rolls(rolls, "roll_statistics")
    steps = sum(len(r) for r in rs)
    active = np.concatenate([r.sum(axis=1) for r in rs])  # active pitches per step
    per_pitch = np.sum([r.sum(axis=0) for r in rs], axis=0).astype(np.float64)  # (88,)
    total = float(per_pitch.sum())
    poly = np.bincount(np.minimum(active, MAX_POLYPHONY), minlength=MAX_POLYPHONY + 1) / steps
    midi = np.arange(PITCHES) + LOWEST_MIDI
    pc = np.bincount(midi % 12, weights=per_pitch, minlength=12)
    lengths = np.concatenate([_note_lengths(r) for r in rs])
    used = midi[per_pitch > 0]
    return {
        "sequences": len(rs),
        "steps": int(steps),
        "notes_per_step": total / steps,
        "empty_fraction": float(poly[0]),
        "polyphony_histogram": [float(v) for v in poly],
        "pitch_class_histogram": [float(v) for v in (pc / total if total else pc)],
        "lowest_pitch": int(used.min()) if len(used) else None,
        "highest_pitch": int(used.max()) if len(used) else None,
        "pitch_range": int(used.max() - used.min()) if len(used) else None,
        "mean_pitch": float(per_pitch @ midi / total) if total else None,
        "notes": int(len(lengths)),
        "mean_note_length": float(lengths.mean()) if len(lengths) else None,
    }


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    """Total-variation distance ``0.5 * sum |p - q|`` of two histograms of the same length."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms of different lengths: {p.shape} and {q.shape}")
    return float(0.5 * np.abs(p - q).sum())


def compare_statistics(samples: Sequence[np.ndarray] | np.ndarray,
                       reference: Sequence[np.ndarray] | np.ndarray) -> dict[str, Any]:
    """Statistics of ``samples`` and ``reference`` (e.g. the test set) and their distances.

    ``distances`` holds the total-variation distances of the pitch-class and polyphony
    histograms (0 to 1) and the absolute differences of notes per step, empty fraction and
    mean note length (None where either set has no notes).
    """
    try:
        s = roll_statistics(samples)
    except ValueError as e:
        raise ValueError(f"samples: {e}") from None
    try:
        r = roll_statistics(reference)
    except ValueError as e:
        raise ValueError(f"reference: {e}") from None
    len_s, len_r = s["mean_note_length"], r["mean_note_length"]
    return {
        "samples": s,
        "reference": r,
        "distances": {
            "pitch_class_tv": total_variation(s["pitch_class_histogram"],
                                              r["pitch_class_histogram"]),
            "polyphony_tv": total_variation(s["polyphony_histogram"], r["polyphony_histogram"]),
            "notes_per_step_abs_diff": abs(s["notes_per_step"] - r["notes_per_step"]),
            "empty_fraction_abs_diff": abs(s["empty_fraction"] - r["empty_fraction"]),
            "mean_note_length_abs_diff": (None if len_s is None or len_r is None
                                          else abs(len_s - len_r)),
        },
    }
