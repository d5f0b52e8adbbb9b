"""Data sets by name: the canonical music sets, the Fraccaro files and the embedded Bach set;
or a folder of MIDI files, given by its path (see :mod:`srnn.data.midi_folder`); or your own
arrays, given by the path of an ``.npz`` file (see :mod:`srnn.data.arrays`)."""

from __future__ import annotations

import os
from pathlib import Path

from srnn.data.music import (
    CANONICAL,
    FRACCARO,
    FRACCARO_TIME_STEP,
    fraccaro_file,
    load_canonical_npz,
    load_fraccaro,
)
from srnn.data.sequences import SequenceDataset, Split, shift_inputs
from srnn.errors import DataError
from srnn.paths import DATA_ENV, data_dir

DEFAULT_DATASET = "bach"
BACH_TIME_STEP = "quarter note"
SPEECH = ("fsdd", "fsdd-perm")  # the Free Spoken Digit Dataset, and its Perm-TIMIT-style variant
DATASETS = ("bach", *CANONICAL, *FRACCARO, *SPEECH)

__all__ = ["DATASETS", "DEFAULT_DATASET", "SequenceDataset", "Split", "available",
           "dataset_path", "is_array_file", "is_midi_folder", "load_dataset", "shift_inputs",
           "time_step"]


def is_midi_folder(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is read as a folder of MIDI files: an existing directory that is not
    one of the known data set names."""
    return str(name) not in DATASETS and Path(name).is_dir()


def is_array_file(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is read as your own arrays: a path ending in ``.npz`` that is not one of
    the known data set names (it need not exist: a missing file is reported when loading)."""
    return str(name) not in DATASETS and str(name).lower().endswith(".npz")


def _unknown(name: str) -> DataError:
    return DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, "
                     "a speech corpus as timit:PATH, vctk:PATH or blizzard:PATH (-perm for "
                     "permuted frames), the path of a folder of MIDI files, or the path of an "
                     ".npz file of your own arrays")


CORPORA = ("timit", "vctk", "blizzard")  # user-supplied speech corpora: "timit:/path/to/TIMIT"


def corpus(name: str) -> tuple[str, bool, Path] | None:
    """``(reader, permute, folder)`` for ``timit:PATH``, ``vctk-perm:PATH``, ...; else None."""
    head, sep, path = name.partition(":")
    base = head.removesuffix("-perm")
    if not sep or base not in CORPORA or not path:
        return None
    return base, head.endswith("-perm"), Path(path).expanduser()


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The file a named data set is read from (a MIDI folder: the folder itself)."""
    if is_midi_folder(name) or is_array_file(name):
        return Path(name)
    if c := corpus(name):
        return c[2]
    root = data_dir(root)
    if name in CANONICAL:
        return root / CANONICAL[name][0]
    if name in FRACCARO:
        return root / fraccaro_file(name)
    if name == "bach":
        from srnn.data.bach import bach_path

        return bach_path()
    if name in SPEECH:
        from srnn.data.speech import fsdd_path

        return fsdd_path(root) / "files.csv"
    raise _unknown(name)


def time_step(name: str) -> str:
    """What one time step of a named data set is (e.g. "quarter note"), without loading it."""
    if name in CANONICAL:
        return CANONICAL[name][1]
    if name in SPEECH or corpus(name):
        from srnn.data.speech import FRAME_SIZE, FSDD_RATE
        from srnn.data.speech import time_step as speech_time_step

        return speech_time_step(FRAME_SIZE, FSDD_RATE if name in SPEECH else 16000)
    if name in FRACCARO:
        return FRACCARO_TIME_STEP
    if name == "bach":
        return BACH_TIME_STEP
    if is_midi_folder(name):
        from srnn.data.midi_folder import midi_time_step

        return midi_time_step()
    if is_array_file(name):
        from srnn.data.arrays import TIME_STEP

        return TIME_STEP
    raise _unknown(name)


def load_dataset(name: str = DEFAULT_DATASET,
                 root: str | os.PathLike[str] | None = None) -> SequenceDataset:
    """Load a data set by name (see :data:`DATASETS`).

    ``root`` is the data directory (else ``$SRNN_DATA_DIR``, else the per-user cache).
    The Bach set is built from the music21 corpus on first use and cached. A ``name`` that is
    the path of an existing folder (and not a known name) is read as a folder of MIDI files with
    the defaults of :func:`srnn.data.midi_folder.load_midi_folder` (4 steps per beat); ``root``
    is not used then. A ``name`` ending in ``.npz`` (and not a known name) is read as your own
    arrays with :func:`srnn.data.arrays.load_arrays`.
    """
    if is_midi_folder(name):
        from srnn.data.midi_folder import load_midi_folder

        return load_midi_folder(name)
    if is_array_file(name):
        from srnn.data.arrays import load_arrays

        return load_arrays(name)
    if name == "bach":
        from srnn.data.bach import load_bach

        return load_bach()
    if c := corpus(name):
        from srnn.data import speech

        reader, permute, folder = c
        if not folder.is_dir():
            raise DataError(f"data set {name!r}: {folder} is not a folder")
        return {"timit": speech.load_timit, "vctk": speech.load_vctk,
                "blizzard": speech.load_blizzard}[reader](folder, permute=permute)
    path = dataset_path(name, root)
    if name in SPEECH:
        from srnn.data.speech import load_fsdd

        if not path.is_file():
            raise DataError(f"data set {name!r} not found at {path.parent}: copy the Free "
                            "Spoken Digit Dataset (recordings/, files.csv) into <data dir>/speech/"
                            f"fsdd, or point --data-dir or {DATA_ENV} at a directory that holds it")
        return load_fsdd(path.parent, permute=name.endswith("-perm"))
    if not path.is_file():
        hint = (f"run 'srnn data download {name}'" if name in CANONICAL
                else "copy the Fraccaro et al. files into <data dir>/fraccaro/")
        raise DataError(f"data set {name!r} not found at {path}: {hint}, or point --data-dir "
                        f"or {DATA_ENV} at a directory that holds it")
    if name in CANONICAL:
        return load_canonical_npz(path, name, "canonical", CANONICAL[name][1])
    return load_fraccaro(path, name)


def available(root: str | os.PathLike[str] | None = None) -> dict[str, Path | None]:
    """Each known data set and the local file it would be read from (``None`` if absent)."""
    out: dict[str, Path | None] = {}
    for name in DATASETS:
        p = dataset_path(name, root)
        out[name] = p if p.is_file() else None
    return out
