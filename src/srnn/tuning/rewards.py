"""Music-theory rewards of binary piano rolls (T, 88), for ``srnn tune`` (Jaques et al. 2017).

A roll's values > 0.5 are sounding notes; column j is MIDI pitch ``LOWEST_MIDI + j``. Every
reward is a function ``(roll, ctx) -> float`` in [0, 1], higher is better, where ``ctx`` is a
:class:`RewardContext` (the key, the target number of voices, the longest unpenalised repeat).
A key is a tonic and a mode: major = {0, 2, 4, 5, 7, 9, 11} and minor = natural minor plus the
raised seventh = {0, 2, 3, 5, 7, 8, 10, 11}, relative to the tonic. Without a key in ``ctx``
each roll is scored in the better of C major and C minor.

The built-ins (:data:`REWARDS`; exact definitions in their docstrings):

- ``key``: the fraction of sounding note-cells whose pitch class is in the key's scale;
- ``voices``: the fraction of steps with exactly ``ctx.voices`` sounding notes;
- ``consonance``: the fraction of pairs of simultaneous notes at a consonant interval (a
  fourth above the bass is dissonant);
- ``repetition``: 1 − the fraction of steps that repeat the same row more than
  ``ctx.max_repeat`` times in a row;
- ``leaps``: the fraction of leaps (> 7 semitones) of the top voice that are resolved by a
  step (≤ 2 semitones) back;
- ``melody``: the mean of the RL Tuner's eight melodic rules on the top voice
  (:func:`melody_terms`);
- ``note:P``: the fraction of steps in which MIDI pitch P sounds.

A reward term is ``NAME[:ARG][=WEIGHT]`` (:func:`parse_reward`): a built-in, or a function of
the user's, ``FILE.py:FUNCTION`` or ``MODULE:FUNCTION``, called as ``fn(roll, ctx)``.
:func:`score_rolls` scores a batch of rolls with a list of terms and their weighted total.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srnn.data.pianoroll import LOWEST_MIDI, PITCHES
from srnn.errors import ConfigError

RewardFn = Callable[[np.ndarray, "RewardContext"], float]

MODES = ("major", "minor")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10, 11)}
CONSONANT = (0, 3, 4, 7, 8, 9)  # intervals mod 12; a fourth (5) only between upper voices
LEAP = 7  # a leap is an interval of more than this many semitones ...
STEP = 2  # ... and it is resolved by a step of at most this many back
PREFERRED_INTERVALS = (1, 2, 3, 4, 5, 7, 12)
MOTIF = 3  # intervals in a motif
AUTOCORRELATION_LAGS = (1, 2, 3)
DEFAULT_REWARDS = ("key=1", "voices=1", "consonance=1", "repetition=0.5", "leaps=0.5",
                   "melody=0.5")

_MIDI = np.arange(PITCHES) + LOWEST_MIDI
_PITCH_CLASS = _MIDI % 12
# _KEYS[i] is the scale of key i = (tonic, mode) as a (12,) mask over pitch classes.
_KEY_LIST = [(t, m) for t in range(12) for m in MODES]
_KEYS = np.array([np.isin(np.arange(12), (np.array(SCALES[m]) + t) % 12) for t, m in _KEY_LIST])
_C_KEYS = _KEYS[[_KEY_LIST.index((0, "major")), _KEY_LIST.index((0, "minor"))]]
# Pairs of keyboard columns p < q by their interval q − p mod 12.
_UP = np.subtract.outer(np.arange(PITCHES), np.arange(PITCHES)).T  # _UP[p, q] = q − p
_UPPER = _UP > 0
_CONSONANT_PAIRS = _UPPER & np.isin(_UP % 12, CONSONANT)
_FOURTH_PAIRS = _UPPER & (_UP % 12 == 5)


@dataclass(frozen=True)
class RewardContext:
    """What the rewards are measured against.

    ``tonic`` (pitch class 0-11) and ``mode`` ("major" or "minor") give the key, both or
    neither; without them each roll is scored in the better of C major and C minor. ``voices``
    is the target number of sounding notes per step, ``max_repeat`` the longest run of
    identical steps that is not penalised.
    """

    tonic: int | None = None
    mode: str | None = None
    voices: int = 4
    max_repeat: int = 4

    def __post_init__(self) -> None:
        if self.tonic is not None and (not _is_int(self.tonic) or not 0 <= self.tonic <= 11):
            raise ValueError(f"RewardContext: tonic must be a pitch class 0..11 or None, "
                             f"got {self.tonic!r}")
        if self.mode not in (None, *MODES):
            raise ValueError(f"RewardContext: mode must be 'major', 'minor' or None, "
                             f"got {self.mode!r}")
        if (self.tonic is None) != (self.mode is None):
            raise ValueError(f"RewardContext: give tonic and mode together or neither, got "
                             f"tonic={self.tonic!r}, mode={self.mode!r}")
        for name in ("voices", "max_repeat"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"RewardContext: {name} must be an integer >= 1, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------- helpers


def _binary(roll: np.ndarray) -> np.ndarray:
    """The roll as a boolean (T, 88) array of sounding notes; ValueError for another shape."""
    a = np.asarray(roll)
    if a.ndim != 2 or a.shape[1] != PITCHES:
        raise ValueError(f"a piano roll must have shape (T, {PITCHES}), got {a.shape}")
    return a > 0.5


def _pitch_classes(r: np.ndarray) -> np.ndarray:
    """Sounding note-cells per pitch class, (12,) from C."""
    return np.bincount(_PITCH_CLASS, weights=r.sum(axis=0), minlength=12)


def _in_key_fraction(pc: np.ndarray, ctx: RewardContext) -> float:
    """Fraction of the counts ``pc`` (12,) in ctx's key (the better of C major / minor)."""
    total = pc.sum()
    if total == 0:
        return 0.0
    scales = _C_KEYS if ctx.tonic is None else _KEYS[[_KEY_LIST.index((ctx.tonic, ctx.mode))]]
    return float((scales @ pc).max() / total)


def _run_positions(same_as_previous: np.ndarray) -> np.ndarray:
    """0-based position of each item in its run, from ``same_as_previous`` (n − 1,) of n."""
    n = len(same_as_previous) + 1
    idx = np.arange(n)
    starts = np.where(np.concatenate([[True], ~same_as_previous]), idx, 0)
    return idx - np.maximum.accumulate(starts)


def _top_voice(r: np.ndarray) -> np.ndarray:
    """The highest sounding MIDI pitch of each step that has notes (int64, steps dropped)."""
    with_notes = r[r.any(axis=1)]
    return (LOWEST_MIDI + PITCHES - 1 - np.argmax(with_notes[:, ::-1], axis=1)).astype(np.int64)


def _collapse(series: np.ndarray) -> np.ndarray:
    """``series`` with runs of equal consecutive values collapsed into one."""
    if len(series) == 0:
        return series
    return series[np.concatenate([[True], series[1:] != series[:-1]])]


def _melody(r: np.ndarray) -> np.ndarray:
    """The melody m_1..m_n: the top voice with repeated pitches collapsed into one note."""
    return _collapse(_top_voice(r))


def _leaps_resolved(m: np.ndarray) -> float:
    """The ``leaps`` score of a collapsed melody ``m`` (see :func:`leaps`)."""
    if len(m) == 0:
        return 0.0
    iv = np.diff(m)
    leap = np.flatnonzero(np.abs(iv) > LEAP)
    if len(leap) == 0:
        return 1.0
    nxt = leap[leap + 1 < len(iv)]  # a leap at the very end is unresolved
    resolved = (np.sign(iv[nxt + 1]) == -np.sign(iv[nxt])) & (np.abs(iv[nxt + 1]) <= STEP)
    return float(resolved.sum() / len(leap))


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of a and b; None when either is constant."""
    a, b = a - a.mean(), b - b.mean()
    na, nb = float(a @ a), float(b @ b)
    if na == 0.0 or nb == 0.0:
        return None
    return float(a @ b) / math.sqrt(na * nb)


# -------------------------------------------------------------------------------- built-ins


def key(roll: np.ndarray, ctx: RewardContext) -> float:
    """Fraction of sounding note-cells (each active (step, pitch) counts once) whose pitch class
    lies in the key's scale; without ``ctx.tonic``, the larger fraction of C major and C minor.
    A roll with no notes scores 0."""
    return _in_key_fraction(_pitch_classes(_binary(roll)), ctx)


def voices(roll: np.ndarray, ctx: RewardContext) -> float:
    """Fraction of steps with exactly ``ctx.voices`` sounding notes (0 for a roll of 0 steps)."""
    r = _binary(roll)
    return float(np.mean(r.sum(axis=1) == ctx.voices)) if len(r) else 0.0


def consonance(roll: np.ndarray, ctx: RewardContext) -> float:
    """Over every step and every pair of its sounding notes, the fraction of pairs whose
    interval mod 12 is consonant: 0, 3, 4, 7, 8 or 9 semitones, or 5 (a perfect fourth) when
    neither note of the pair is the step's lowest note (a fourth above the bass is a
    dissonance). No pairs in the whole roll: 0."""
    r = _binary(roll)
    f = r.astype(np.int32)
    # together[p, q]: steps in which p and q both sound. einsum on integers is exact and uses
    # no BLAS threads, which made this 50 times slower on a busy machine.
    together = np.einsum("tp,tq->pq", f, f)
    pairs = together[_UPPER].sum()
    if pairs == 0:
        return 0.0
    chords = r[r.any(axis=1)]
    bass = np.argmax(chords, axis=1)
    fourths_over_bass = np.count_nonzero(_FOURTH_PAIRS[bass] & chords)
    good = together[_CONSONANT_PAIRS].sum() + together[_FOURTH_PAIRS].sum() - fourths_over_bass
    return float(good / pairs)


def repetition(roll: np.ndarray, ctx: RewardContext) -> float:
    """1 − the fraction of steps beyond the first ``ctx.max_repeat`` steps of a run of
    identical consecutive steps (identical rows, empty rows included): with max_repeat 2, rows
    A A A A B score 1 − 2/5. A roll of 0 steps: 0."""
    r = _binary(roll)
    if len(r) == 0:
        return 0.0
    pos = _run_positions(np.all(r[1:] == r[:-1], axis=1))
    return float(1.0 - np.mean(pos >= ctx.max_repeat))


def leaps(roll: np.ndarray, ctx: RewardContext) -> float:
    """Resolved leaps / leaps of the melody m_1..m_n: the top voice (the highest sounding pitch
    of each step with notes; steps without notes dropped, runs of one pitch collapsed into one
    note). A leap is an interval |m_{i+1} − m_i| > 7 semitones; it is resolved when the next
    interval exists, goes the opposite way and is at most 2 semitones (a leap at the very end
    is unresolved). No leaps: 1; a roll without notes: 0."""
    return _leaps_resolved(_melody(_binary(roll)))


MELODY_TERMS = ("in_key", "starts_on_tonic", "no_excess_repeat", "low_autocorrelation",
                "preferred_intervals", "repeated_motif", "unique_extremes", "leaps_resolved")


def melody_terms(roll: np.ndarray, ctx: RewardContext) -> dict[str, float]:
    """The RL Tuner's melodic rules on the top voice, each in [0, 1] (all 0 without notes).

    With the per-step top voice s (the highest sounding pitch of each step with notes) and the
    melody m_1..m_n (s with runs of one pitch collapsed into one note), intervals m_{i+1} − m_i:

    - ``in_key``: fraction of m_i in the key (without ``ctx.tonic``: the better of C major and
      C minor for the melody);
    - ``starts_on_tonic``: 1 if m_1's pitch class is the tonic (0, C, without ``ctx.tonic``);
    - ``no_excess_repeat``: 1 − the fraction of the steps of s beyond the first
      2 * ``ctx.max_repeat`` steps of a run of one pitch;
    - ``low_autocorrelation``: 1 − the largest |Pearson correlation| of m[:-lag] with m[lag:]
      for lags 1, 2, 3 (a lag with fewer than 3 pairs or a constant part is skipped; 0.5 when
      none is left);
    - ``preferred_intervals``: fraction of intervals of 1, 2, 3, 4, 5, 7 or 12 semitones (either
      way; 0 without intervals);
    - ``repeated_motif``: 1 if some 3 consecutive intervals recur later, the two windows of
      intervals not overlapping (they may share a note), else 0;
    - ``unique_extremes``: ([the highest pitch of m occurs once] + [the lowest occurs once]) / 2;
    - ``leaps_resolved``: the :func:`leaps` score.
    """
    r = _binary(roll)
    s = _top_voice(r)
    if len(s) == 0:
        return dict.fromkeys(MELODY_TERMS, 0.0)
    m = _collapse(s)
    iv = np.diff(m)
    tonic = 0 if ctx.tonic is None else ctx.tonic
    runs = _run_positions(s[1:] == s[:-1])
    correlations = [_pearson(m[:-lag], m[lag:]) for lag in AUTOCORRELATION_LAGS
                    if len(m) - lag >= 3]
    correlations = [abs(c) for c in correlations if c is not None]
    first: dict[tuple[int, ...], int] = {}  # each motif's first start
    motif = False
    for i in range(len(iv) - MOTIF + 1):
        start = first.setdefault(tuple(iv[i:i + MOTIF].tolist()), i)
        motif = motif or i - start >= MOTIF
    return {
        "in_key": _in_key_fraction(np.bincount(m % 12, minlength=12).astype(np.float64), ctx),
        "starts_on_tonic": float(m[0] % 12 == tonic),
        "no_excess_repeat": float(1.0 - np.mean(runs >= 2 * ctx.max_repeat)),
        "low_autocorrelation": max(0.0, 1.0 - max(correlations)) if correlations else 0.5,
        "preferred_intervals": (float(np.isin(np.abs(iv), PREFERRED_INTERVALS).mean())
                                if len(iv) else 0.0),
        "repeated_motif": float(motif),
        "unique_extremes": (int(np.sum(m == m.max()) == 1) + int(np.sum(m == m.min()) == 1)) / 2,
        "leaps_resolved": _leaps_resolved(m),
    }


def melody(roll: np.ndarray, ctx: RewardContext) -> float:
    """The mean of the eight sub-scores of :func:`melody_terms` (0 for a roll without notes)."""
    return float(np.mean(list(melody_terms(roll, ctx).values())))


def note_fraction(roll: np.ndarray, ctx: RewardContext, pitch: int) -> float:
    """Fraction of steps in which MIDI pitch ``pitch`` sounds (0 for a roll of 0 steps)."""
    r = _binary(roll)
    return float(r[:, pitch - LOWEST_MIDI].mean()) if len(r) else 0.0


def note(arg: str) -> RewardFn:
    """The reward ``note:P``: :func:`note_fraction` of MIDI pitch P = ``arg`` (21..108);
    ValueError for another argument."""
    try:
        pitch = int(arg)
    except ValueError:
        raise ValueError(f"the pitch {arg!r} is not an integer") from None
    if not LOWEST_MIDI <= pitch < LOWEST_MIDI + PITCHES:
        raise ValueError(f"the pitch {pitch} is off the keyboard "
                         f"({LOWEST_MIDI}..{LOWEST_MIDI + PITCHES - 1})")
    return functools.partial(note_fraction, pitch=pitch)


# --------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class RewardSpec:
    """A built-in reward. ``fn`` is the reward ``(roll, ctx) -> float``, or where ``takes_arg``,
    a function of the argument's text that returns the reward (ValueError for a bad one)."""

    name: str
    fn: Callable[..., Any]
    doc: str
    takes_arg: bool = False


REWARDS: dict[str, RewardSpec] = {s.name: s for s in (
    RewardSpec("key", key, "fraction of note-cells in the key's scale"),
    RewardSpec("voices", voices, "fraction of steps with exactly the target number of notes"),
    RewardSpec("consonance", consonance, "fraction of simultaneous note pairs that are consonant"),
    RewardSpec("repetition", repetition, "1 − fraction of steps repeating a row too often"),
    RewardSpec("leaps", leaps, "fraction of the top voice's leaps resolved by a step back"),
    RewardSpec("melody", melody, "the RL Tuner's melodic rules on the top voice"),
    RewardSpec("note", note, "fraction of steps in which MIDI pitch P sounds (note:P)",
               takes_arg=True),
)}


@dataclass(frozen=True)
class RewardTerm:
    """One term of the reward: ``weight * fn(roll, ctx)``, named by its spec without weight."""

    name: str
    weight: float
    fn: RewardFn


def _choices() -> str:
    names = [f"{s.name}:PITCH" if s.takes_arg else s.name for s in REWARDS.values()]
    return f"choose from {', '.join(names)} or give FILE.py:FUNCTION or MODULE:FUNCTION"


_user_modules = itertools.count()


def _user_function(spec: str, name: str) -> RewardFn:
    """The function ``FILE.py:FUNCTION`` or ``MODULE:FUNCTION`` named by ``name``."""
    where, _, func = name.rpartition(":")
    if not where or not func:
        raise ConfigError(f"--reward {spec}: expected FILE.py:FUNCTION or MODULE:FUNCTION")
    if where.endswith(".py") or "/" in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f"--reward {spec}: no such file {str(path)!r}")
        module_name = f"_srnn_user_reward_{next(_user_modules)}_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"--reward {spec}: cannot import {str(path)!r} as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[module_name]
            raise ConfigError(f"--reward {spec}: importing {str(path)!r} failed: "
                              f"{type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise ConfigError(f"--reward {spec}: cannot import module {where!r}: "
                              f"{type(e).__name__}: {e}; {_choices()}") from e
    fn = getattr(module, func, None)
    if fn is None:
        raise ConfigError(f"--reward {spec}: {where!r} has no function {func!r}")
    if not callable(fn):
        raise ConfigError(f"--reward {spec}: {where}:{func} is not callable "
                          f"({type(fn).__name__})")
    return fn


def parse_reward(spec: str) -> RewardTerm:
    """The term of ``spec`` = ``NAME[:ARG]=WEIGHT`` or ``NAME[:ARG]`` (weight 1).

    NAME is a built-in of :data:`REWARDS` (``note:60`` binds the pitch) or a function of the
    user's: ``path/to/file.py:func`` (imported from the file) or ``package.module:func``,
    called as ``fn(roll, ctx)``. ConfigError for anything else or a weight that is not a
    finite number.
    """
    text = spec.strip()
    name, eq, weight_text = text.rpartition("=")
    if not eq:
        name, weight_text = text, "1"
    name = name.strip()
    try:
        weight = float(weight_text)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise ConfigError(f"--reward {spec}: the weight {weight_text.strip()!r} is not a finite "
                          "number; give NAME=WEIGHT, e.g. key=1")
    if not name:
        raise ConfigError(f"--reward {spec}: no reward named; {_choices()}")
    head, colon, arg = name.partition(":")
    builtin = REWARDS.get(head)
    if builtin is not None:
        if not builtin.takes_arg:
            if colon:
                raise ConfigError(f"--reward {spec}: the reward {head!r} takes no argument "
                                  f"(give {head}=WEIGHT)")
            return RewardTerm(head, weight, builtin.fn)
        if not arg:
            raise ConfigError(f"--reward {spec}: the reward {head!r} needs an argument: "
                              f"{head}:PITCH, a MIDI pitch {LOWEST_MIDI}..."
                              f"{LOWEST_MIDI + PITCHES - 1}, e.g. {head}:60")
        try:
            fn = builtin.fn(arg)
        except ValueError as e:
            raise ConfigError(f"--reward {spec}: {e}; give {head}:PITCH, a MIDI pitch "
                              f"{LOWEST_MIDI}..{LOWEST_MIDI + PITCHES - 1}") from None
        return RewardTerm(f"{head}:{int(arg)}", weight, fn)
    if not colon:
        raise ConfigError(f"--reward {spec}: unknown reward {name!r}; {_choices()}")
    return RewardTerm(name, weight, _user_function(spec, name))


def resolve_rewards(specs: Sequence[str] | None) -> list[RewardTerm]:
    """The terms of ``specs`` (None or empty: :data:`DEFAULT_REWARDS`); ConfigError for a name
    given twice."""
    terms: list[RewardTerm] = []
    for spec in specs or DEFAULT_REWARDS:
        term = parse_reward(spec)
        if any(t.name == term.name for t in terms):
            raise ConfigError(f"--reward {spec}: the reward {term.name!r} is given twice")
        terms.append(term)
    return terms


# ---------------------------------------------------------------------------------- scoring


def estimate_key(roll: np.ndarray) -> tuple[int, str]:
    """The (tonic, mode) of a roll, found as every key of the library is
    (:func:`srnn.data.pianoroll.find_key`: its pitch-class histogram of sounding note-cells
    against the Aarden-Essen profiles). A roll without notes: (0, "major")."""
    from srnn.data.pianoroll import find_key

    return find_key(_pitch_classes(_binary(roll)))


def score_rolls(rolls: np.ndarray | Sequence[np.ndarray], terms: Sequence[RewardTerm],
                ctx: RewardContext) -> dict[str, np.ndarray]:
    """Each term's value for each roll (float64 (N,) arrays under the terms' names) and
    ``"total"``, the sum of weight * value. ``rolls`` is (N, T, 88) or a sequence of (T, 88)
    rolls, which the terms get as 0/1 float64 arrays. ConfigError when a term raises or returns
    something that is not a finite real number."""
    if isinstance(rolls, np.ndarray) and rolls.ndim != 3:
        raise ValueError(f"rolls must have shape (N, T, {PITCHES}), got {rolls.shape}")
    binary = []
    for i, r in enumerate(rolls):
        try:
            binary.append(_binary(r).astype(np.float64))
        except ValueError as e:
            raise ValueError(f"roll {i}: {e}") from None
    out = {t.name: np.zeros(len(binary)) for t in terms}
    for t in terms:
        for i, r in enumerate(binary):
            try:
                value = t.fn(r, ctx)
            except Exception as e:
                raise ConfigError(f"reward {t.name!r} failed on roll {i}: "
                                  f"{type(e).__name__}: {e}") from e
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"reward {t.name!r} returned {value!r} for roll {i}; a reward "
                                  "must return a finite real number")
            out[t.name][i] = float(value)
    total = np.zeros(len(binary))
    for t in terms:
        total += t.weight * out[t.name]
    out["total"] = total
    return out
