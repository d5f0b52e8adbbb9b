"""The data set registry: every kind of data set the library reads, by how it is named.

Kinds (name: protocol, modality, grid):

* ``bach``: bach, music, 1 step per beat (quarter notes);
* canonical ``jsb``, ``nottingham``, ``musedata``, ``piano``: canonical, music, 1 step per beat
  for JSB (quarter notes), 2 for the others (eighth notes);
* the Fraccaro files ``jsb-fraccaro``, ...: fraccaro, music, frames of 0.3 s;
* ``fsdd``, ``fsdd-perm``: fsdd, speech, frames of 200 samples at 8 kHz;
* the path of a folder of MIDI files: midi-folder, music, 4 steps per beat;
* the path of an ``.npz`` file of your own arrays: arrays, other, a plain step;
* a speech corpus ``timit:PATH``, ``vctk:PATH``, ``blizzard:PATH`` (``timit-perm:PATH``, ...:
  permuted frames): the reader's name, speech, frames of 200 samples at 16 kHz;
* the IAM-OnDB pen trajectories ``iamondb:PATH``: iamondb, handwriting, one step per pen
  point (:mod:`srnn.data.iamondb`).

:func:`lookup` resolves a name to a :class:`DatasetEntry`, which says where the set is read
from (:meth:`DatasetEntry.path`), what its protocol, modality and grid are
(:class:`~srnn.data.grid.Grid`; its display text is the set's ``time_step``) without reading
it, and loads it (:meth:`DatasetEntry.load`). The loaders set the same protocol, modality and
grid on the :class:`~srnn.data.sequences.SequenceDataset` they return. Names are tried in the
order of :data:`KINDS`: the known names first, so a folder or file called like one of them is
not read as a folder or as arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srnn.data import arrays, iamondb, speech
from srnn.data.bach import BACH_GRID, bach_path, load_bach
from srnn.data.grid import Grid
from srnn.data.music import (
    CANONICAL,
    FRACCARO,
    FRACCARO_GRID,
    fraccaro_file,
    load_canonical_npz,
    load_fraccaro,
)
from srnn.data.sequences import Modality, SequenceDataset
from srnn.errors import DataError
from srnn.paths import DATA_ENV, data_dir

Root = str | os.PathLike[str] | None

SPEECH_SETS = ("fsdd", "fsdd-perm")  # the Free Spoken Digit Dataset, and its Perm-TIMIT variant
DATASETS = ("bach", *CANONICAL, *FRACCARO, *SPEECH_SETS)  # the sets known by name
CORPORA = ("timit", "vctk", "blizzard")  # user-supplied speech corpora: "timit:/path/to/TIMIT"
HANDWRITING = "iamondb"  # a user's copy of IAM-OnDB: "iamondb:/path/to/IAM-OnDB"


@dataclass(frozen=True)
class DatasetEntry:
    """What the registry knows of one named data set, without loading it."""

    name: str
    kind: str  # a DatasetKind's name: "canonical", "fraccaro", "bach", "fsdd", ...
    protocol: str
    modality: Modality
    grid: Grid
    _path: Callable[[Root], Path] = field(repr=False, compare=False)
    _load: Callable[[Root], SequenceDataset] = field(repr=False, compare=False)
    options: dict[str, Any] = field(default_factory=dict)  # what the set is built with (a
    # MIDI folder's grid, transposition, splits and seed: srnn.data.midi_folder.FOLDER_OPTIONS)

    @property
    def time_step(self) -> str:
        """What one time step is, e.g. "quarter note" (the grid's display text)."""
        return self.grid.time_step

    def path(self, root: Root = None) -> Path:
        """The file the set is read from (a MIDI folder or speech corpus: the folder itself);
        ``root`` is the data directory (else ``$SRNN_DATA_DIR``, else the per-user cache)."""
        return self._path(root)

    def load(self, root: Root = None) -> SequenceDataset:
        """Read the set (a :class:`DataError` naming the file if it is missing or bad)."""
        return self._load(root)


@dataclass(frozen=True)
class DatasetKind:
    """One kind of data set: which names it takes and the entry of such a name."""

    name: str
    matches: Callable[[str], bool]
    entry: Callable[..., DatasetEntry]  # (name), or (name, options) where takes_options
    takes_options: bool = False


# -- named sets ---------------------------------------------------------------------------


def _missing(name: str, path: Path, hint: str) -> DataError:
    return DataError(f"data set {name!r} not found at {path}: {hint}, or point --data-dir or "
                     f"{DATA_ENV} at a directory that holds it")


def _canonical(name: str) -> DatasetEntry:
    filename, grid = CANONICAL[name]

    def path(root: Root) -> Path:
        return data_dir(root) / filename

    def load(root: Root) -> SequenceDataset:
        p = path(root)
        if not p.is_file():
            raise _missing(name, p, f"run 'srnn data download {name}'")
        return load_canonical_npz(p, name, "canonical", grid)

    return DatasetEntry(name, "canonical", "canonical", Modality.MUSIC, grid, path, load)


def _fraccaro(name: str) -> DatasetEntry:
    def path(root: Root) -> Path:
        return data_dir(root) / fraccaro_file(name)

    def load(root: Root) -> SequenceDataset:
        p = path(root)
        if not p.is_file():
            raise _missing(name, p, f"run 'srnn data download {name}' (or copy the Fraccaro "
                           "et al. files into <data dir>/fraccaro/)")
        return load_fraccaro(p, name)

    return DatasetEntry(name, "fraccaro", "fraccaro", Modality.MUSIC, FRACCARO_GRID, path, load)


def _bach(name: str) -> DatasetEntry:
    return DatasetEntry(name, "bach", "bach", Modality.MUSIC, BACH_GRID,
                        lambda root: bach_path(), lambda root: load_bach())


def _fsdd(name: str) -> DatasetEntry:
    def path(root: Root) -> Path:
        return speech.fsdd_path(root) / "files.csv"

    def load(root: Root) -> SequenceDataset:
        p = path(root)
        if not p.is_file():
            raise DataError(f"data set {name!r} not found at {p.parent}: run 'srnn data "
                            f"download {name}' (or copy the Free Spoken Digit Dataset: "
                            "recordings/, files.csv into <data dir>/speech/fsdd), or point "
                            f"--data-dir or {DATA_ENV} at a directory that holds it")
        return speech.load_fsdd(p.parent, permute=name.endswith("-perm"))

    grid = speech.speech_grid(speech.FRAME_SIZE, speech.FSDD_RATE)
    return DatasetEntry(name, "fsdd", "fsdd", Modality.SPEECH, grid, path, load)


# -- sets given by a path -----------------------------------------------------------------


def is_midi_folder(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is read as a folder of MIDI files: an existing directory that is not
    one of the known data set names."""
    return str(name) not in DATASETS and Path(name).is_dir()


def is_array_file(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is read as your own arrays: a path ending in ``.npz`` that is not one of
    the known data set names (it need not exist: a missing file is reported when loading)."""
    return str(name) not in DATASETS and str(name).lower().endswith(".npz")


def corpus(name: str) -> tuple[str, bool, Path] | None:
    """``(reader, permute, folder)`` for ``timit:PATH``, ``vctk-perm:PATH``, ...; else None."""
    head, sep, path = name.partition(":")
    base = head.removesuffix("-perm")
    if not sep or base not in CORPORA or not path:
        return None
    return base, head.endswith("-perm"), Path(path).expanduser()


def _midi_folder(name: str, options: Mapping[str, Any] | None = None) -> DatasetEntry:
    from srnn.data import midi_folder  # imported when needed: it loads pretty_midi

    o = midi_folder.folder_options(options)
    return DatasetEntry(name, "midi-folder", midi_folder.PROTOCOL, Modality.MUSIC,
                        midi_folder.midi_grid(o["steps_per_beat"], o["step_seconds"]),
                        lambda root: Path(name), lambda root: midi_folder.load_folder(name, o),
                        o)


def _arrays(name: str) -> DatasetEntry:
    return DatasetEntry(name, "arrays", arrays.PROTOCOL, Modality.OTHER, arrays.GRID,
                        lambda root: Path(name), lambda root: arrays.load_arrays(name))


def _corpus(name: str) -> DatasetEntry:
    found = corpus(name)
    assert found is not None
    reader, permute, folder = found

    def load(root: Root) -> SequenceDataset:
        if not folder.is_dir():
            raise DataError(f"data set {name!r}: {folder} is not a folder")
        read = {"timit": speech.load_timit, "vctk": speech.load_vctk,
                "blizzard": speech.load_blizzard}[reader]
        return read(folder, permute=permute)

    return DatasetEntry(name, "corpus", reader, Modality.SPEECH,
                        speech.speech_grid(speech.FRAME_SIZE, speech.CORPUS_RATE),
                        lambda root: folder, load)


def handwriting(name: str) -> Path | None:
    """The folder of ``iamondb:PATH``; else None."""
    head, sep, path = name.partition(":")
    if not sep or head != HANDWRITING or not path:
        return None
    return Path(path).expanduser()


def _iamondb(name: str) -> DatasetEntry:
    folder = handwriting(name)
    assert folder is not None

    def load(root: Root) -> SequenceDataset:
        if not folder.is_dir():
            raise DataError(f"data set {name!r}: {folder} is not a folder")
        return iamondb.load_iamondb(folder)

    return DatasetEntry(name, HANDWRITING, iamondb.PROTOCOL, Modality.HANDWRITING, iamondb.GRID,
                        lambda root: folder, load)


KINDS: tuple[DatasetKind, ...] = (
    DatasetKind("bach", lambda n: n == "bach", _bach),
    DatasetKind("canonical", lambda n: n in CANONICAL, _canonical),
    DatasetKind("fraccaro", lambda n: n in FRACCARO, _fraccaro),
    DatasetKind("fsdd", lambda n: n in SPEECH_SETS, _fsdd),
    DatasetKind("midi-folder", is_midi_folder, _midi_folder, takes_options=True),
    DatasetKind("arrays", is_array_file, _arrays),
    DatasetKind("corpus", lambda n: corpus(n) is not None, _corpus),
    DatasetKind(HANDWRITING, lambda n: handwriting(n) is not None, _iamondb),
)


def unknown(name: str) -> DataError:
    """The error for a name no kind takes."""
    return DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, "
                     "a speech corpus as timit:PATH, vctk:PATH or blizzard:PATH (-perm for "
                     "permuted frames), IAM-OnDB pen trajectories as iamondb:PATH, the path of "
                     "a folder of MIDI files, or the path of an .npz file of your own arrays")


def takes_options(name: str | os.PathLike[str]) -> bool:
    """Whether the data set ``name`` takes options (a folder of MIDI files does)."""
    kind = next((k for k in KINDS if k.matches(str(name))), None)
    return kind is not None and kind.takes_options


def lookup(name: str | os.PathLike[str],
           options: Mapping[str, Any] | None = None) -> DatasetEntry:
    """The entry of the data set ``name`` (see the module docstring); an unknown name is a
    :class:`DataError` that lists the names taken. ``options`` build a set that takes them
    (a MIDI folder: :func:`srnn.data.midi_folder.folder_options`); options for any other set
    are a :class:`DataError`."""
    name = str(name)
    for kind in KINDS:
        if kind.matches(name):
            if kind.takes_options:
                return kind.entry(name, options)
            if options:
                raise DataError(f"data set {name!r} takes no options ({', '.join(options)}); "
                                "they apply to a folder of MIDI files")
            return kind.entry(name)
    raise unknown(name)
