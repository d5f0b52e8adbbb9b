"""Binary piano rolls: their pitch range and the key finding that transposes them to C.

A piano roll is a (T, 88) array, one column per piano key: column ``c`` is MIDI note
``LOWEST_MIDI + c``, from A0 (21) to C8 (108). Every reader and writer of rolls (the music
sets, MIDI files, plots, statistics) takes these constants from here.

Keys are found as in music21's ``Stream.analyze('key')``: a 12-bin pitch-class histogram
(weighted by note length) correlated (Pearson) with the Aarden-Essen major and minor key
profiles rotated to each tonic; :func:`shift_to_c` then gives the smallest transposition
(-6..+5 semitones) that moves the tonic onto C.
"""

from __future__ import annotations

import numpy as np

PITCHES = 88
LOWEST_MIDI = 21  # column 0 of a piano roll is MIDI note 21 (A0) ...
HIGHEST_MIDI = LOWEST_MIDI + PITCHES - 1  # ... and column 87 is 108 (C8)

# Aarden-Essen key profiles (as in music21.analysis.discrete.AardenEssen), index 0 = tonic.
AARDEN_ESSEN_MAJOR = np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587,
                               0.291248, 22.062, 0.145624, 8.15494, 0.232998, 4.95122])
AARDEN_ESSEN_MINOR = np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362,
                               0.702494, 18.6161, 4.56621, 1.93186, 7.37619, 1.75623])


def find_key(histogram: np.ndarray) -> tuple[int, str]:
    """Tonic pitch class (0 = C) and mode of a 12-bin pitch-class histogram.

    The key whose rotated Aarden-Essen profile correlates best with the histogram (major
    before minor, lower tonic first on ties).
    """
    hist = np.asarray(histogram, dtype=np.float64)
    best = (-np.inf, 0, "major")
    if hist.std() == 0:
        return 0, "major"
    for mode, profile in (("major", AARDEN_ESSEN_MAJOR), ("minor", AARDEN_ESSEN_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def shift_to_c(tonic: int) -> int:
    """Semitones (in -6..+5) that move pitch class ``tonic`` onto C."""
    return (-tonic + 6) % 12 - 6


def shift_range(*rolls: np.ndarray) -> tuple[int, int]:
    """The lowest and highest semitone shifts that keep every sounding note of ``rolls``
    (arrays whose last axis is pitch, all of one width) on the keyboard. Silent rolls may
    move by up to the width less one either way."""
    width = rolls[0].shape[-1]
    sounding = np.zeros(width, dtype=bool)
    for r in rolls:
        sounding |= r.reshape(-1, width).any(0)
    if not sounding.any():
        return -(width - 1), width - 1
    keys = np.flatnonzero(sounding)
    return -int(keys[0]), width - 1 - int(keys[-1])


def transpose(roll: np.ndarray, semitones: int) -> np.ndarray:
    """``roll`` moved up by ``semitones`` (down if negative) along its last (pitch) axis; the
    caller keeps the shift within :func:`shift_range` (notes moved off the keyboard are lost)."""
    out = np.zeros_like(roll)
    if semitones >= 0:
        out[..., semitones:] = roll[..., : roll.shape[-1] - semitones]
    else:
        out[..., :semitones] = roll[..., -semitones:]
    return out
