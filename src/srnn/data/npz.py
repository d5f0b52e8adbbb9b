"""A defensive ``.npz`` reader: numeric arrays only, headers checked before anything is read.

:func:`numpy.load` trusts each member's header: a corrupt shape makes it allocate whatever the
header claims before noticing that the data is missing. Here every ``.npy`` member's header is
read first and its size compared with the member's size in the zip directory; only numeric
dtypes are accepted (never objects, so nothing is unpickled), and the zip's CRC is verified.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from srnn.data.validate import check_kind, reading
from srnn.errors import DataError

MAX_ARRAY_BYTES = 2**31  # 2 GiB per array; the largest real file holds 148 MB arrays


def _header(f, key: str, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise DataError(f"{where}: array {key!r} has .npy format version {version}, expected "
                        "1.0 or 2.0")
    if any(n < 0 for n in shape):
        raise DataError(f"{where}: array {key!r} has a negative dimension in shape {shape}")
    return shape, fortran, dtype


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limit: int) -> np.ndarray:
    key = info.filename[:-len(".npy")]
    with reading(where, f"array {key!r} is corrupt"), zf.open(info) as f:
        shape, fortran, dtype = _header(f, key, where)
        check_kind(np.empty(0, dtype), f"{where}: array {key!r}")
        size = math.prod(shape) * dtype.itemsize
        stored = info.file_size - f.tell()
        if size != stored:
            raise DataError(f"{where}: array {key!r} header says shape {shape} of {dtype} "
                            f"({size} bytes) but the file holds {stored} bytes (truncated or "
                            "corrupt)")
        if size > limit:
            raise DataError(f"{where}: array {key!r} holds {size} bytes, more than the limit "
                            f"of {limit}")
        data = f.read(size)
        if len(data) != size or f.read(1):
            raise DataError(f"{where}: array {key!r} holds {len(data)} bytes, expected {size}")
    flat = np.frombuffer(bytearray(data), dtype=dtype)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def read_npz(path: Path, limit: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the zip at ``path`` as a numeric array, by key (name without
    ``.npy``). Other members are ignored. Every problem is a :class:`DataError` naming
    ``path``: missing file, not a zip, corrupt member, non-numeric dtype, size mismatch."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    with reading(where, "not a readable .npz file"), zipfile.ZipFile(path) as zf:
        members = [i for i in zf.infolist() if i.filename.endswith(".npy") and not i.is_dir()]
        return {i.filename[:-len(".npy")]: _member(zf, i, where, limit) for i in members}
