"""The embedded default data set: Bach chorales from music21's corpus, as piano rolls.

The data need no download: music21 ships the four-part Bach chorales in its corpus. They are
walked in Riemenschneider order with ``music21.corpus.chorales.Iterator`` (371 numbers). Some
Riemenschneider numbers map to the same score file in music21 (371 numbers, 350 files in
music21 10.5); each file is kept once, under its lowest number, so that no chorale appears in
two splits.

Each chorale becomes a binary piano roll (T x 88, float32, column = MIDI pitch - 21) on a
quarter-note grid, built directly from the notes of the vocal parts:

* Parts: those whose name holds soprano, alto, tenor or bass (instrumental doublings such as
  horns, trumpets or timpani are dropped; they may be transposing instruments). A score with no
  such part keeps all its parts.
* Grid: step ``k`` is the time ``phase + k`` quarter notes after the start, where ``phase`` is
  the fractional part of the offset of bar 1 when the score opens with a pickup bar (bar 0), and 0
  otherwise (it is 0 for all but a chorale with a 1.5-quarter pickup).
* A note sounds at step ``k`` when ``onset <= phase + k < onset + duration``. Tied notes mark
  their own spans; zero-length grace notes never sound. Leading silent steps (rests before the
  voices enter) are dropped and the roll ends at the last grid point before the last note ends,
  so a roll starts and ends with a sounding step; silent steps inside it (rests) are kept.
* Key: a duration-weighted pitch-class histogram correlated (Pearson) with the Aarden-Essen
  major and minor key profiles (:func:`srnn.data.pianoroll.find_key`): the method of music21's
  ``Stream.analyze('key')`` (on the full scores it picks the same key as music21 for all 350
  chorales), at a fraction of its cost.
  The roll is shifted by the pitch-class distance from the tonic to C, chosen in -6..+5
  semitones, so every chorale is in C major or C minor (as in the canonical JSB set). With
  this key, 294 of 350 chorales end on a C in the bass (34 of the rest end on G).

Split (fixed, deterministic): the kept chorales in Riemenschneider order are permuted with
``numpy.random.RandomState(0).permutation(n)`` (the legacy generator, whose stream numpy keeps
stable); the first ``round(0.6 n)`` of the permutation are train, the next ``round(0.2 n)``
valid, the rest test. Each split is then sorted by Riemenschneider number. For 350 chorales
that is 210 / 70 / 70.

The result is cached as ``<cache dir>/bach.npz`` in the canonical npz format (see
``srnn.data.music``); the build takes about half a minute.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

import numpy as np

from srnn.data.grid import Grid
from srnn.data.music import load_canonical_npz, notes_from_rolls
from srnn.data.pianoroll import LOWEST_MIDI, PITCHES, find_key, shift_to_c
from srnn.data.sequences import SequenceDataset
from srnn.errors import DataError
from srnn.io import atomic_write
from srnn.paths import cache_dir
from srnn.progress import progress_bar

log = logging.getLogger("srnn.data.bach")

SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.6, 0.2)  # train, valid; test takes the rest
VOICES = ("soprano", "alto", "tenor", "bass")
_EPS = 1e-9
BACH_GRID = Grid(steps_per_beat=1, label="quarter note")  # the quarter-note grid below

_SUFFIX_ORDER = {".mxl": 0, ".xml": 1, ".musicxml": 2, ".krn": 3}


def bach_path() -> Path:
    """The cache file of the built Bach set."""
    return cache_dir() / "bach.npz"


def _score_file(corpus_bach: Path, name: str) -> Path | None:
    """The corpus file of ``bach/bwvNNN``: exact stem first, else a unique-prefix match."""
    stem = name.rsplit("/", 1)[-1]
    files = [p for p in corpus_bach.iterdir() if p.suffix in _SUFFIX_ORDER]
    found = [p for p in files if p.stem == stem] or [p for p in files if p.stem.startswith(stem)]
    found.sort(key=lambda p: (_SUFFIX_ORDER[p.suffix], p.name))
    return found[0] if found else None


def _chorale_files() -> list[tuple[int, Path]]:
    """(Riemenschneider number, score file) for each distinct chorale, in number order."""
    from music21 import common, corpus

    corpus_bach = Path(common.getCorpusFilePath()) / "bach"
    iterator = corpus.chorales.Iterator(returnType="filename")
    numbers = list(iterator.numberList)
    names = list(iterator)
    if len(numbers) != len(names):
        raise DataError("music21 chorale iterator: numbers and names disagree")
    out: list[tuple[int, Path]] = []
    seen: set[Path] = set()
    for number, name in sorted(zip(numbers, names, strict=True)):
        path = _score_file(corpus_bach, name)
        if path is None:
            log.warning("Riemenschneider %d (%s): no score file in the music21 corpus",
                        number, name)
            continue
        if path in seen:
            log.debug("Riemenschneider %d: same score as an earlier number (%s)", number, path.name)
            continue
        seen.add(path)
        out.append((number, path))
    return out


def _vocal_parts(score) -> list:
    parts = list(score.parts)
    vocal = [p for p in parts
             if set(re.findall(r"[a-z]+", (p.partName or "").lower())) & set(VOICES)]
    return vocal or parts


def _grid_phase(part) -> float:
    """Fractional offset of bar 1 when the part opens with a pickup bar, else 0."""
    measures = list(part.getElementsByClass("Measure"))
    if len(measures) >= 2 and measures[0].number == 0:
        return float(measures[1].offset) % 1.0
    return 0.0


def score_to_roll(score, where: str = "score") -> np.ndarray:
    """Quarter-note piano roll (T, 88) of a music21 score, transposed to C major / C minor."""
    parts = _vocal_parts(score)
    phase = _grid_phase(parts[0]) if parts else 0.0
    spans: list[tuple[int, int, int]] = []  # first step, last step + 1, MIDI pitch
    hist = np.zeros(12)
    for part in parts:
        for n in part.flatten().notes:
            onset = float(n.offset)
            length = float(n.duration.quarterLength)
            if length <= 0:
                continue
            first = math.ceil(onset - phase - _EPS)
            stop = math.ceil(onset + length - phase - _EPS)
            for p in n.pitches:
                midi = int(p.midi)
                hist[midi % 12] += length
                if stop > first:
                    spans.append((max(first, 0), stop, midi))
    steps = max((s for _, s, _ in spans), default=0)
    roll = np.zeros((steps, PITCHES), dtype=np.float32)
    if not steps:
        return roll
    begin = min(f for f, _, _ in spans)  # drop leading silent steps (T ends on a note already)
    roll = roll[begin:]
    tonic, _mode = find_key(hist)
    shift = shift_to_c(tonic)
    for first, stop, midi in spans:
        col = midi + shift - LOWEST_MIDI
        if not 0 <= col < PITCHES:
            raise DataError(f"{where}: MIDI note {midi} transposed by {shift} falls outside "
                            f"{LOWEST_MIDI}..{LOWEST_MIDI + PITCHES - 1}")
        roll[first - begin:stop - begin, col] = 1.0
    return roll


def split_indices(n: int) -> dict[str, np.ndarray]:
    """The fixed split of ``n`` chorales (in Riemenschneider order): sorted indices per split."""
    perm = np.random.RandomState(SPLIT_SEED).permutation(n)
    n_train = round(SPLIT_FRACTIONS[0] * n)
    n_valid = round(SPLIT_FRACTIONS[1] * n)
    return {
        "train": np.sort(perm[:n_train]),
        "valid": np.sort(perm[n_train:n_train + n_valid]),
        "test": np.sort(perm[n_train + n_valid:]),
    }


def build_bach(progress: bool | None = None) -> dict[str, list[np.ndarray]]:
    """Parse the corpus chorales and return the train/valid/test lists of piano rolls;
    ``progress``: a bar of the chorales parsed (:func:`srnn.progress.progress_bar`; None: the
    command's ``--no-progress``, else shown on a terminal, plain lines elsewhere)."""
    from music21 import converter

    start = time.perf_counter()
    files = _chorale_files()
    rolls: list[np.ndarray] = []
    for number, path in progress_bar(files, desc="Bach chorales", unit="chorale",
                                     enabled=progress):
        where = f"Riemenschneider {number} ({path.name})"
        try:
            score = converter.parse(path, forceSource=True)
        except Exception as e:  # music21 raises many types; report them uniformly
            raise DataError(f"{where}: music21 cannot parse it ({e})") from e
        roll = score_to_roll(score, where)
        if roll.shape[0] == 0 or not roll.any():
            log.warning("%s: no notes, dropped", where)
        else:
            rolls.append(roll)
    if not rolls:
        raise DataError("no Bach chorale could be read from the music21 corpus")
    splits = {s: [rolls[j] for j in idx] for s, idx in split_indices(len(rolls)).items()}
    log.info("built %d chorales (%s) in %.1f s", len(rolls),
             "/".join(str(len(v)) for v in splits.values()), time.perf_counter() - start)
    return splits


def _save(path: Path, splits: dict[str, list[np.ndarray]]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for s in ("train", "valid", "test"):
        for k, a in notes_from_rolls(splits[s]).items():
            arrays[f"{s}_{k}"] = a
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_bach(rebuild: bool = False) -> SequenceDataset:
    """The Bach set: read from the cache, built from music21's corpus and cached if absent."""
    path = bach_path()
    if rebuild or not path.is_file():
        log.info("building the Bach chorale set from the music21 corpus into %s", path)
        _save(path, build_bach())
    return load_canonical_npz(path, "bach", protocol="bach", grid=BACH_GRID)
