"""Raw-waveform speech sets as sequences of frames (Fraccaro et al. 2016, appendix A.1).

The pipeline, shared by every reader here:

1. Read each recording as mono float32 (:func:`srnn.data.wav.read_wav`): integer PCM scaled by
   its full range (int16 / 32768, ...), float WAV passed through; TIMIT's NIST SPHERE files are
   read too.
2. Cut it into non-overlapping frames of ``frame_size`` samples (:func:`frame`); the last,
   incomplete frame is dropped. A recording shorter than one frame is skipped (listed in
   ``info["skipped"]``).
3. Normalise with the global mean and standard deviation of the *training* frames (all their
   samples together, :class:`Normaliser`); the same statistics are applied to every split and
   stored in ``info["normaliser"]``.
4. Optionally (``permute=True``, "Perm-TIMIT") shuffle the positions within every frame with one
   fixed permutation (:func:`permute_frames`).
5. Targets ``x_t`` are the frames; inputs ``u_t = x_{t-1}`` (:meth:`Split.from_targets`). The
   model's emission is a fully factorised Gaussian; ``binary`` is ``False``.

:func:`decode` undoes steps 4, 3 and 2 (to listen to samples); :func:`srnn.data.wav.write_wav`
writes them. One step of a speech set is a frame of ``frame_size`` samples at ``rate`` Hz
(:func:`speech_grid`).

Readers: :func:`load_fsdd` (the Free Spoken Digit Dataset in the shared data directory) and,
for corpora the user supplies, :func:`load_timit`, :func:`load_vctk` and
:func:`load_blizzard`. Each documents its split rule, which is deterministic and also recorded
in ``info["split_rule"]``; ``info["files"]`` lists each split's recordings (relative paths).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srnn.data.grid import Grid
from srnn.data.sequences import Modality, SequenceDataset, Split
from srnn.data.wav import read_wav
from srnn.errors import DataError
from srnn.paths import data_dir

FRAME_SIZE = 200
FSDD_RATE = 8000
FSDD_TEST_INDICES = range(0, 5)  # the FSDD README's official test set
FSDD_VALID_INDICES = range(5, 10)
CORPUS_RATE = 16000  # the user-supplied corpora (TIMIT, VCTK, Blizzard) are read at 16 kHz
TIMIT_RATE = CORPUS_RATE
SPLITS = ("train", "valid", "test")

PathLike = str | os.PathLike[str]


def speech_grid(frame_size: int = FRAME_SIZE, rate: int = FSDD_RATE) -> Grid:
    """The grid of a speech set: frames of ``frame_size`` samples at ``rate`` Hz."""
    return Grid(frame_size=int(frame_size), rate=int(rate))


def time_step(frame_size: int = FRAME_SIZE, rate: int = FSDD_RATE) -> str:
    """What one time step of a speech set is, e.g. "200-sample frame at 8 kHz"."""
    return speech_grid(frame_size, rate).time_step


# --------------------------------------------------------------------------- frames


def frame(signal: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Non-overlapping frames ``(T, size)`` of a 1-D signal, ``T = len(signal) // size``.

    The last, incomplete frame (``len(signal) % size`` samples) is dropped; a signal shorter
    than one frame gives ``T = 0`` (the caller decides what to do with it).
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"frame() needs a 1-D signal, got shape {signal.shape}")
    if size <= 0:
        raise ValueError(f"frame size must be positive, got {size}")
    n = len(signal) // size
    return signal[:n * size].reshape(n, size)


def unframe(frames: np.ndarray) -> np.ndarray:
    """The signal ``(T * size,)`` of frames ``(T, size)``: the exact inverse of :func:`frame` on
    the samples it kept."""
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise ValueError(f"unframe() needs frames (T, size), got shape {frames.shape}")
    return frames.reshape(-1)


def frame_permutation(size: int = FRAME_SIZE, seed: int = 0) -> np.ndarray:
    """The fixed within-frame permutation of Perm-TIMIT: ``RandomState(seed).permutation(size)``
    (numpy's legacy generator, whose stream is stable across versions)."""
    return np.random.RandomState(seed).permutation(size)


def permute_frames(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """Shuffle the positions within every frame ``(..., size)`` by one permutation, the same
    for all frames and files (:func:`frame_permutation`)."""
    frames = np.asarray(frames)
    return frames[..., frame_permutation(frames.shape[-1], seed)]


def unpermute_frames(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """Inverse of :func:`permute_frames` with the same ``seed``."""
    frames = np.asarray(frames)
    return frames[..., np.argsort(frame_permutation(frames.shape[-1], seed))]


# --------------------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class Normaliser:
    """Global affine normalisation ``(x - mean) / std`` with training-set statistics."""

    mean: float
    std: float

    @classmethod
    def fit(cls, signals: Iterable[np.ndarray]) -> Normaliser:
        """Mean and (population) standard deviation over all samples of ``signals`` together."""
        arrays = [np.asarray(s, dtype=np.float64).reshape(-1) for s in signals]
        n = sum(a.size for a in arrays)
        if n == 0:
            raise DataError("normaliser: no training samples to fit on")
        mean = sum(float(a.sum()) for a in arrays) / n
        var = sum(float(np.square(a - mean).sum()) for a in arrays) / n
        std = math.sqrt(var)
        if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
            raise DataError(f"normaliser: training samples have standard deviation {std} "
                            "(silent or constant audio?)")
        return cls(mean=mean, std=std)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "std": float(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Normaliser:
        try:
            mean, std = float(d["mean"]), float(d["std"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"normaliser: expected {{'mean': float, 'std': float}}, got {d!r}"
                            ) from e
        if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
            raise DataError(f"normaliser: invalid statistics mean={mean}, std={std}")
        return cls(mean=mean, std=std)


def decode(frames: np.ndarray, info: dict) -> np.ndarray:
    """The waveform of model frames ``(T, size)`` of a speech set with ``info`` (its
    ``SequenceDataset.info``): frame permutation undone, normalisation inverted, unframed."""
    frames = np.asarray(frames)
    if info.get("permute_seed") is not None:
        frames = unpermute_frames(frames, int(info["permute_seed"]))
    return Normaliser.from_dict(info["normaliser"]).invert(unframe(frames))


# --------------------------------------------------------------------------- building a set


def _segments(frames: np.ndarray, n: int | None) -> list[np.ndarray]:
    if not n:
        return [frames]
    return [frames[i:i + n] for i in range(0, len(frames), n)]


def build_dataset(
    name: str,
    protocol: str,
    rate: int,
    recordings: dict[str, list[tuple[str, np.ndarray]]],
    frame_size: int = FRAME_SIZE,
    permute: bool = False,
    permute_seed: int = 0,
    segment_frames: int | None = None,
    split_rule: str = "",
    info: dict | None = None,
) -> SequenceDataset:
    """Frame, normalise (train statistics), optionally permute, and wrap recordings.

    ``recordings`` maps each split to ``(relative path, signal)`` pairs. ``segment_frames``, if
    given, cuts every recording into consecutive sequences of that many frames (the last one
    may be shorter). With ``permute`` the name gets a ``-perm`` suffix.
    """
    if frame_size <= 0:
        raise ValueError(f"frame size must be positive, got {frame_size}")
    if segment_frames is not None and segment_frames <= 0:
        raise ValueError(f"segment_frames must be positive, got {segment_frames}")
    framed: dict[str, list[np.ndarray]] = {}
    files: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = {}
    for s in SPLITS:
        framed[s], files[s], skipped[s] = [], [], []
        for rel, signal in recordings.get(s, []):
            f = frame(signal, frame_size)
            if len(f):
                framed[s].append(f)
                files[s].append(rel)
            else:
                skipped[s].append(rel)
        if not framed[s]:
            raise DataError(f"{name}: no {s} recordings of at least {frame_size} samples")
    norm = Normaliser.fit(framed["train"])
    splits = {}
    for s in SPLITS:
        seqs = []
        for f in framed[s]:
            x = norm.apply(f)
            if permute:
                x = permute_frames(x, permute_seed)
            seqs.extend(_segments(x, segment_frames))
        splits[s] = Split.from_targets(seqs)
    meta = dict(info or {})
    meta.update({
        "rate": rate,
        "frame_size": frame_size,
        "normaliser": norm.to_dict(),
        "permute_seed": permute_seed if permute else None,
        "segment_frames": segment_frames,
        "split_rule": split_rule,
        "files": files,
        "skipped": skipped,
    })
    grid = speech_grid(frame_size, rate)
    return SequenceDataset(name=f"{name}-perm" if permute else name, protocol=protocol,
                           time_step=grid.time_step, binary=False, info=meta, grid=grid,
                           modality=Modality.SPEECH, **splits)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_all(root: Path, paths: Sequence[Path], rate: int,
              resample: bool) -> list[tuple[str, np.ndarray]]:
    return [(_rel(p, root), read_wav(p, rate, resample=resample)) for p in paths]


def _spaced(n: int, k: int) -> list[int]:
    """``k`` evenly spaced positions in ``range(n)``: ``floor((i + 1/2) n / k)``."""
    return [int((i + 0.5) * n / k) for i in range(k)]


def _fraction(n: int, fraction: float) -> int:
    return max(1, round(fraction * n))


def _wav_files(folder: Path) -> list[Path]:
    """``*.wav`` files (suffix in any case) under ``folder``, sorted by relative path."""
    return sorted((p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file()),
                  key=lambda p: _rel(p, folder))


def _folder(root: PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    return root


# --------------------------------------------------------------------------- FSDD

FSDD_COLUMNS = ("file", "speaker", "digit", "index", "split")
FSDD_SPLIT_RULE = ("test: index 0-4 (the FSDD README's official split); valid: index 5-9 of "
                   "every speaker and digit; train: index 10-49")


def fsdd_path(root: PathLike | None = None) -> Path:
    """The FSDD folder inside the data directory: ``<data dir>/speech/fsdd``."""
    return data_dir(root) / "speech" / "fsdd"


def _fsdd_rows(root: Path) -> list[dict[str, str]]:
    table = root / "files.csv"
    if not table.is_file():
        raise DataError(f"{table}: file not found (expected the FSDD folder: files.csv, one "
                        "row per recording with columns file, speaker, digit, index, split, "
                        "and the recordings/ it lists)")
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in FSDD_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{table}: missing columns {missing}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{table}: no recordings listed")
    return rows


def load_fsdd(
    root: PathLike | None = None,
    frame_size: int = FRAME_SIZE,
    permute: bool = False,
    permute_seed: int = 0,
    limit: int | None = None,
) -> SequenceDataset:
    """The Free Spoken Digit Dataset (8 kHz) as frames (see the module docstring).

    ``root`` is the FSDD folder (holding ``files.csv`` and ``recordings/``); default
    :func:`fsdd_path`. ``files.csv`` has a header and one row per recording with at least the
    columns ``file`` (path relative to ``root``, e.g. ``recordings/0_george_0.wav``),
    ``speaker``, ``digit``, ``index`` (0-49, the recording's number for its speaker and digit)
    and ``split`` (``test`` for index 0-4, else ``train``), and optionally ``num_samples``;
    other columns are ignored. Split (fixed, stratified by speaker and digit): test = recordings
    with index 0-4 (the official test set, 300 files; the ``split`` column of ``files.csv`` must
    agree), valid = index 5-9 (300 files: 5 per speaker and digit), train = index 10-49 (2,400
    files). Each split is sorted by (speaker, digit, index). Every file must be 8 kHz mono and
    hold the ``num_samples`` of ``files.csv`` where that column is present. ``limit`` keeps only
    the first ``limit`` files of each split (for quick runs and tests).
    """
    root = fsdd_path() if root is None else Path(root).expanduser()
    rows = _fsdd_rows(root)
    table = root / "files.csv"
    chosen: dict[str, list[tuple[tuple[str, int, int], dict[str, str]]]] = {s: [] for s in SPLITS}
    for row in rows:
        try:
            index, digit = int(row["index"]), int(row["digit"])
        except ValueError as e:
            raise DataError(f"{table}: bad digit/index in row {row['file']!r} ({e})") from e
        split = ("test" if index in FSDD_TEST_INDICES
                 else "valid" if index in FSDD_VALID_INDICES else "train")
        if (row["split"] == "test") != (split == "test"):
            raise DataError(f"{table}: {row['file']} has split {row['split']!r} but index "
                            f"{index} (the official test set is index 0-4)")
        chosen[split].append(((row["speaker"], digit, index), row))
    recordings: dict[str, list[tuple[str, np.ndarray]]] = {}
    for s in SPLITS:
        items = [row for _, row in sorted(chosen[s], key=lambda kv: kv[0])][:limit]
        recordings[s] = []
        for row in items:
            path = root / row["file"]
            signal = read_wav(path, FSDD_RATE)
            expected = row.get("num_samples")
            if expected and len(signal) != int(expected):
                raise DataError(f"{path}: {len(signal)} samples, files.csv says {expected}")
            recordings[s].append((row["file"], signal))
    return build_dataset("fsdd", "fsdd", FSDD_RATE, recordings, frame_size=frame_size,
                         permute=permute, permute_seed=permute_seed,
                         split_rule=FSDD_SPLIT_RULE, info={"path": str(root), "limit": limit})


# --------------------------------------------------------------------------- TIMIT


def _timit_split_dirs(root: Path) -> tuple[Path, Path]:
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        subs = {p.name.lower(): p for p in base.iterdir() if p.is_dir()}
        if "train" in subs and "test" in subs:
            return subs["train"], subs["test"]
    raise DataError(f"{root}: no TRAIN/ and TEST/ folders (the LDC TIMIT layout) here or one "
                    "level below")


def _timit_utterances(split_dir: Path, include_sa: bool) -> dict[str, list[Path]]:
    """Speaker ("DR1/FCJF0") -> sorted utterance files, one per sentence.

    Files are ``<DRn>/<speaker>/<sentence>.WAV`` (any case). A sentence present twice (e.g.
    ``SA1.WAV`` in SPHERE and a converted ``SA1.WAV.wav``) is read once, from the shorter name.
    """
    found: dict[tuple[str, str], Path] = {}
    for p in split_dir.glob("*/*/*"):
        if not (p.is_file() and p.suffix.lower() == ".wav"):
            continue
        dialect, speaker = p.parent.parent.name.upper(), p.parent.name.upper()
        sentence = p.name.split(".")[0].upper()
        if not include_sa and sentence.startswith("SA"):
            continue
        key = (f"{dialect}/{speaker}", sentence)
        if key not in found or (len(p.name), p.name) < (len(found[key].name), found[key].name):
            found[key] = p
    out: dict[str, list[Path]] = {}
    for (spk, _sentence), p in sorted(found.items()):
        out.setdefault(spk, []).append(p)
    return out


def load_timit(
    root: PathLike,
    frame_size: int = FRAME_SIZE,
    permute: bool = False,
    permute_seed: int = 0,
    include_sa: bool = False,
    valid_fraction: float = 0.05,
    segment_frames: int | None = None,
) -> SequenceDataset:
    """TIMIT (16 kHz, LDC layout) as frames; ``permute=True`` gives Perm-TIMIT.

    ``root`` holds ``TRAIN/`` and ``TEST/`` (any case; also accepted one folder below, e.g.
    ``root/data/TRAIN``), each with ``DR1..DR8/<speaker>/<sentence>.WAV``. Files may be NIST
    SPHERE (the LDC release) or RIFF WAV. The SA1/SA2 dialect sentences, read by every
    speaker, are left out unless ``include_sa`` (the usual convention). Test = the TEST folder
    (the full test set). Valid = ``max(1, round(valid_fraction * n))`` of the ``n`` training
    speakers, evenly spaced in their sorted order (``DRn/SPEAKER``; positions
    ``floor((i + 1/2) n / k)``), so every dialect region is represented; train = the rest.
    """
    root = _folder(root)
    train_dir, test_dir = _timit_split_dirs(root)
    train_spk = _timit_utterances(train_dir, include_sa)
    test_spk = _timit_utterances(test_dir, include_sa)
    if len(train_spk) < 2 or not test_spk:
        raise DataError(f"{root}: need at least 2 training speakers and 1 test speaker with "
                        f"*.WAV files (found {len(train_spk)} and {len(test_spk)})")
    speakers = sorted(train_spk)
    k = min(_fraction(len(speakers), valid_fraction), len(speakers) - 1)
    valid_spk = {speakers[i] for i in _spaced(len(speakers), k)}
    paths = {
        "train": [p for s in speakers if s not in valid_spk for p in train_spk[s]],
        "valid": [p for s in speakers if s in valid_spk for p in train_spk[s]],
        "test": [p for s in sorted(test_spk) for p in test_spk[s]],
    }
    recordings = {s: _read_all(root, paths[s], TIMIT_RATE, False) for s in SPLITS}
    rule = (f"test: the TEST folder; valid: {k} of {len(speakers)} training speakers, evenly "
            "spaced in sorted DRn/SPEAKER order; train: the other training speakers; "
            + ("SA sentences included" if include_sa else "SA1/SA2 sentences excluded"))
    return build_dataset("timit", "timit", TIMIT_RATE, recordings, frame_size=frame_size,
                         permute=permute, permute_seed=permute_seed,
                         segment_frames=segment_frames, split_rule=rule,
                         info={"path": str(root), "include_sa": include_sa,
                               "valid_speakers": sorted(valid_spk)})


# --------------------------------------------------------------------------- VCTK

_MIC = re.compile(r"_mic\d+$")


def load_vctk(
    root: PathLike,
    rate: int = CORPUS_RATE,
    frame_size: int = FRAME_SIZE,
    permute: bool = False,
    permute_seed: int = 0,
    mic: str = "mic1",
    fraction: float = 0.05,
    segment_frames: int | None = None,
) -> SequenceDataset:
    """VCTK (48 kHz WAV, resampled to ``rate``) as frames.

    Recordings are ``<wav dir>/<speaker>/*.wav``, where the wav dir is ``root/wav48``, else
    ``root/wav48_silence_trimmed``, else ``root`` itself. (VCTK 0.92 ships FLAC, which is not
    read: convert it to WAV first.) Files named ``*_micN`` keep only microphone ``mic``.
    Split by speaker: the ``n`` speakers sorted by name; the last ``k = max(1, round(fraction *
    n))`` are test, the ``k`` before them valid, the rest train (at least 3 speakers needed).
    """
    root = _folder(root)
    wav_dir = next((d for d in (root / "wav48", root / "wav48_silence_trimmed") if d.is_dir()),
                   root)
    by_speaker: dict[str, list[Path]] = {}
    for d in sorted(p for p in wav_dir.iterdir() if p.is_dir()):
        files = [p for p in _wav_files(d)
                 if not _MIC.search(p.stem) or p.stem.endswith(f"_{mic}")]
        if files:
            by_speaker[d.name] = files
    if len(by_speaker) < 3:
        flac = next(wav_dir.rglob("*.flac"), None)
        hint = f" (found FLAC, e.g. {flac}: convert it to WAV)" if flac else ""
        raise DataError(f"{wav_dir}: need speaker folders of *.wav files for at least 3 "
                        f"speakers, found {len(by_speaker)}{hint}")
    speakers = sorted(by_speaker)
    k = _fraction(len(speakers), fraction)
    k = min(k, (len(speakers) - 1) // 2)
    groups = {"train": speakers[:-2 * k], "valid": speakers[-2 * k:-k], "test": speakers[-k:]}
    recordings = {s: _read_all(root, [p for spk in groups[s] for p in by_speaker[spk]], rate,
                               True) for s in SPLITS}
    rule = (f"speakers sorted by name: last {k} test, the {k} before valid, the other "
            f"{len(speakers) - 2 * k} train")
    return build_dataset("vctk", "vctk", rate, recordings, frame_size=frame_size,
                         permute=permute, permute_seed=permute_seed,
                         segment_frames=segment_frames, split_rule=rule,
                         info={"path": str(root), "speakers": groups})


# --------------------------------------------------------------------------- Blizzard


def load_blizzard(
    root: PathLike,
    rate: int = CORPUS_RATE,
    file_lists: dict[str, Sequence[str]] | None = None,
    frame_size: int = FRAME_SIZE,
    permute: bool = False,
    permute_seed: int = 0,
    fraction: float = 0.05,
    segment_frames: int | None = None,
) -> SequenceDataset:
    """A Blizzard-style folder of WAV files (resampled to ``rate``) as frames.

    With ``file_lists`` (split -> paths relative to ``root``, all three splits) those lists are
    used as given. Otherwise all ``*.wav`` files under ``root``, sorted by relative path, are
    split in contiguous blocks: the last ``k = max(1, round(fraction * n))`` test, the ``k``
    before them valid, the rest train (90/5/5 by default; at least 3 files needed). Long
    recordings can be cut into sequences of ``segment_frames`` frames (e.g. 40 frames = 0.5 s
    at 16 kHz with 200-sample frames).
    """
    root = _folder(root)
    if file_lists is not None:
        if set(file_lists) != set(SPLITS):
            raise DataError(f"file_lists must have exactly the keys {SPLITS}, got "
                            f"{sorted(file_lists)}")
        paths = {s: [root / f for f in file_lists[s]] for s in SPLITS}
        rule = "given file lists"
    else:
        files = _wav_files(root)
        if len(files) < 3:
            raise DataError(f"{root}: need at least 3 *.wav files, found {len(files)}")
        k = min(_fraction(len(files), fraction), (len(files) - 1) // 2)
        paths = {"train": files[:-2 * k], "valid": files[-2 * k:-k], "test": files[-k:]}
        rule = (f"files sorted by relative path: last {k} test, the {k} before valid, the "
                f"other {len(files) - 2 * k} train")
    recordings = {s: _read_all(root, paths[s], rate, True) for s in SPLITS}
    return build_dataset("blizzard", "blizzard", rate, recordings, frame_size=frame_size,
                         permute=permute, permute_seed=permute_seed,
                         segment_frames=segment_frames, split_rule=rule,
                         info={"path": str(root)})
