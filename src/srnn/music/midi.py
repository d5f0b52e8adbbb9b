"""Binary piano rolls (T x 88, MIDI 21-108) to MIDI files, with pretty_midi.

Convention (both directions): a binary roll cannot tell a held note from a re-struck one, so a
note is a *run* of consecutive active steps of one pitch. :func:`roll_to_midi` writes one note
per run, and :func:`read_midi` (from :mod:`srnn.data.midi`, the reading side, re-exported
here) marks each note's cells and so merges notes of one pitch that touch or overlap (a
re-struck note, or the same pitch in two instruments) into one run. On a grid the two are exact
inverses: roll -> MIDI -> roll gives the roll back, as long as it ends with an active step
(trailing silence is not stored in a MIDI file).
"""

from __future__ import annotations

import os

import numpy as np
import pretty_midi

from srnn.data.midi import MAX_STEPS, read_midi
from srnn.data.pianoroll import HIGHEST_MIDI, LOWEST_MIDI, PITCHES
from srnn.io import atomic_write

__all__ = ["HIGHEST_MIDI", "LOWEST_MIDI", "MAX_STEPS", "PITCHES", "read_midi", "roll_to_midi",
           "write_midi"]


def roll_to_midi(roll: np.ndarray, step_seconds: float, program: int = 0,
                 velocity: int = 80) -> pretty_midi.PrettyMIDI:
    """A note per run of consecutive active steps of each pitch; step k spans
    ``[k * step_seconds, (k + 1) * step_seconds)``."""
    roll = np.asarray(roll) > 0.5
    if roll.ndim != 2 or roll.shape[1] != PITCHES:
        raise ValueError(f"piano roll must be (T, {PITCHES}), got {roll.shape}")
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    padded = np.concatenate([np.zeros((1, PITCHES), bool), roll, np.zeros((1, PITCHES), bool)])
    change = np.diff(padded.astype(np.int8), axis=0)
    for p in range(PITCHES):
        starts = np.flatnonzero(change[:, p] == 1)
        ends = np.flatnonzero(change[:, p] == -1)
        for s, e in zip(starts, ends, strict=True):
            inst.notes.append(pretty_midi.Note(velocity, p + LOWEST_MIDI,
                                               s * step_seconds, e * step_seconds))
    pm.instruments.append(inst)
    return pm


def write_midi(roll: np.ndarray, path: str | os.PathLike[str], step_seconds: float) -> None:
    """Write a piano roll as a MIDI file, atomically."""
    pm = roll_to_midi(roll, step_seconds)
    atomic_write(path, lambda f: pm.write(f))
