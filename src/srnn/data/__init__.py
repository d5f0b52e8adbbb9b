"""Data sets by name: the canonical music sets, the Fraccaro files and the embedded Bach set;
the speech sets; or a folder of MIDI files, given by its path (see :mod:`srnn.data.midi_folder`);
or your own arrays, given by the path of an ``.npz`` file (see :mod:`srnn.data.arrays`).

Every name is resolved by the registry (:mod:`srnn.data.registry`), which knows each kind's
file, loader, protocol, modality and grid; the functions here are lookups in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from srnn.data.bach import BACH_GRID
from srnn.data.grid import Grid
from srnn.data.registry import (
    CORPORA,
    DATASETS,
    corpus,
    is_array_file,
    is_midi_folder,
    lookup,
)
from srnn.data.registry import SPEECH_SETS as SPEECH
from srnn.data.sequences import MODALITIES, Modality, SequenceDataset, Split, shift_inputs

DEFAULT_DATASET = "bach"
BACH_TIME_STEP = BACH_GRID.time_step  # "quarter note"

__all__ = ["CORPORA", "DATASETS", "DEFAULT_DATASET", "MODALITIES", "SPEECH", "Grid", "Modality",
           "SequenceDataset", "Split", "available", "corpus", "dataset_grid", "dataset_path",
           "is_array_file", "is_midi_folder", "load_dataset", "lookup", "shift_inputs",
           "time_step"]


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The file a named data set is read from (a MIDI folder: the folder itself)."""
    return lookup(name).path(root)


def time_step(name: str) -> str:
    """What one time step of a named data set is (e.g. "quarter note"), without loading it."""
    return lookup(name).time_step


def dataset_grid(name: str) -> Grid:
    """The grid of a named data set (see :class:`~srnn.data.grid.Grid`), without loading it."""
    return lookup(name).grid


def load_dataset(name: str = DEFAULT_DATASET,
                 root: str | os.PathLike[str] | None = None,
                 options: Mapping[str, Any] | None = None) -> SequenceDataset:
    """Load a data set by name (see :data:`DATASETS` and :mod:`srnn.data.registry`).

    ``root`` is the data directory (else ``$SRNN_DATA_DIR``, else the per-user cache).
    The Bach set is built from the music21 corpus on first use and cached. A ``name`` that is
    the path of an existing folder (and not a known name) is read as a folder of MIDI files
    (:func:`srnn.data.midi_folder.load_folder`; by default 4 steps per beat); ``root`` is not
    used then. A ``name`` ending in ``.npz`` (and not a known name) is read as your own
    arrays with :func:`srnn.data.arrays.load_arrays`. ``options`` build a set that takes them:
    a folder of MIDI files (:data:`srnn.data.midi_folder.FOLDER_OPTIONS`: grid, transposition,
    split fractions and seed); for any other set they are a :class:`~srnn.errors.DataError`.
    """
    return lookup(name, options).load(root)


def available(root: str | os.PathLike[str] | None = None) -> dict[str, Path | None]:
    """Each known data set and the local file it would be read from (``None`` if absent)."""
    out: dict[str, Path | None] = {}
    for name in DATASETS:
        p = dataset_path(name, root)
        out[name] = p if p.is_file() else None
    return out
