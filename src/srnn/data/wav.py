"""WAV audio files in and out: RIFF WAV and NIST SPHERE (TIMIT) read as mono float32,
mono float signals written as 16-bit PCM WAV.

Every reading problem is a :class:`~srnn.errors.DataError` that names the file (see
:func:`read_wav`); :func:`write_wav` writes atomically (:func:`srnn.io.atomic_write`). The
speech sets (:mod:`srnn.data.speech`) and the synthesiser of MIDI audio
(:mod:`srnn.music.audio`) both write through :func:`write_wav`.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import wave
from pathlib import Path

import numpy as np

from srnn.data.validate import check_finite, reading, short_repr
from srnn.errors import DataError
from srnn.io import atomic_write

SPHERE_MAGIC = b"NIST_1A"
MAX_SPHERE_HEADER = 1 << 20  # TIMIT's headers are 1024 bytes
WAVE_PCM, WAVE_FLOAT, WAVE_EXTENSIBLE = 1, 3, 0xFFFE
RESAMPLE_RATES = (1000, 768_000)  # file rates accepted for resampling (Hz)
PCM_SCALE = 32767  # full scale of a written 16-bit sample

PathLike = str | os.PathLike[str]


def _sphere_header(path: Path, blob: bytes) -> tuple[int, dict[str, str]]:
    """Header size and fields of a NIST SPHERE file (a fixed-size text header)."""
    lines = blob[:64].split(b"\n")
    try:
        size = int(lines[1].strip())
    except (IndexError, ValueError) as e:
        raise DataError(f"{path}: not a valid SPHERE file (bad header size line)") from e
    if size < 16 or len(blob) < size or size > MAX_SPHERE_HEADER:
        raise DataError(f"{path}: not a valid SPHERE file (header of {size} bytes in a file "
                        f"of {len(blob)}, expected 16..{MAX_SPHERE_HEADER} bytes)")
    fields: dict[str, str] = {}
    for raw in blob[:size].split(b"\n")[2:]:
        line = raw.decode("ascii", errors="replace").strip()
        if line == "end_head":
            return size, fields
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1].startswith("-"):
            fields[parts[0]] = parts[2].strip()
    raise DataError(f"{path}: not a valid SPHERE file (no end_head in the header)")


def _sphere_int(path: Path, fields: dict[str, str], key: str, default: str | None,
                low: int) -> int:
    """An integer header field of at least ``low``."""
    text = fields.get(key, default)
    if text is None:
        raise DataError(f"{path}: not a valid SPHERE file (no {key} in the header)")
    try:
        value = int(text)
    except ValueError as e:
        raise DataError(f"{path}: not a valid SPHERE file ({key} {short_repr(text)} is not an "
                        "integer)") from e
    if value < low:
        raise DataError(f"{path}: not a valid SPHERE file ({key} {value}, expected at least "
                        f"{low})")
    return value


def read_sphere(path: PathLike) -> tuple[int, np.ndarray]:
    """Sample rate and samples ``(n,)`` or ``(n, channels)`` of a NIST SPHERE file.

    Only what TIMIT uses is supported: uncompressed 16-bit PCM (``sample_coding`` absent or
    ``pcm``), little (``01``) or big (``10``) endian. The header is the text block whose size
    (normally 1024 bytes) is on its second line; samples follow it. Checked (else a
    :class:`DataError` naming the file): the magic, the header size, ``end_head``, the coding,
    a positive ``sample_rate`` and ``channel_count``, and that the file holds
    ``sample_count`` samples per channel.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with reading(str(path), "cannot read the file"):
        blob = path.read_bytes()
    if not blob.startswith(SPHERE_MAGIC):
        raise DataError(f"{path}: not a SPHERE file (no NIST_1A header)")
    size, f = _sphere_header(path, blob)
    coding = f.get("sample_coding", "pcm").lower()
    width = f.get("sample_n_bytes", "2")
    order = f.get("sample_byte_format", "01")
    if coding != "pcm" or width != "2" or order not in ("01", "10"):
        raise DataError(f"{path}: unsupported SPHERE coding {short_repr(coding)}, "
                        f"{short_repr(width)} bytes, byte format {short_repr(order)} (only "
                        "uncompressed 16-bit PCM, as in TIMIT)")
    rate = _sphere_int(path, f, "sample_rate", None, 1)
    channels = _sphere_int(path, f, "channel_count", "1", 1)
    data = np.frombuffer(blob, dtype="<i2" if order == "01" else ">i2", offset=size,
                         count=(len(blob) - size) // 2)
    if "sample_count" in f:
        count = _sphere_int(path, f, "sample_count", None, 0)
        if len(data) < count * channels:
            raise DataError(f"{path}: truncated SPHERE file ({len(data)} of "
                            f"{count * channels} samples)")
        data = data[:count * channels]
    if len(data) % channels:
        raise DataError(f"{path}: {len(data)} samples do not divide into {channels} channels")
    data = data.astype(np.int16)
    return rate, data.reshape(-1, channels) if channels > 1 else data


def _wav_format(path: Path, body: bytes, endian: str) -> None:
    """Check a ``fmt `` chunk: PCM of 8/16/24/32 bits or float of 32/64 bits, >= 1 channel."""
    if len(body) < 16:
        raise DataError(f"{path}: not a valid WAV file (fmt chunk of {len(body)} bytes, "
                        "expected at least 16)")
    tag, channels, _rate, _byte_rate, align, bits = struct.unpack(endian + "HHIIHH", body[:16])
    if tag == WAVE_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack(endian + "H", body[24:26])[0]
    if channels < 1 or align < channels or align % channels:
        raise DataError(f"{path}: not a valid WAV file ({channels} channels, block size "
                        f"{align} bytes)")
    width = align // channels
    supported = {WAVE_PCM: (1, 2, 3, 4), WAVE_FLOAT: (4, 8)}
    if tag not in supported:
        raise DataError(f"{path}: unsupported WAV encoding (format tag {tag:#x}), expected PCM "
                        "or IEEE float")
    bits_fit = (width - 1) * 8 < bits <= width * 8 if tag == WAVE_PCM else bits == width * 8
    if width not in supported[tag] or not bits_fit:
        kind = "PCM" if tag == WAVE_PCM else "float"
        raise DataError(f"{path}: unsupported sample width for {kind} ({width} bytes, "
                        f"{bits} bits), expected 8, 16, 24 or 32-bit PCM or 32/64-bit float")


def _check_riff(path: Path) -> None:
    """Walk the RIFF chunks before scipy reads them: a ``fmt `` chunk must be supported and a
    ``fmt `` or ``data`` chunk must fit in the file (a corrupt size would otherwise make the
    reader allocate whatever it claims)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            what = "RF64 is not supported" if head[:4] == b"RF64" else "no RIFF/WAVE header"
            raise DataError(f"{path}: not a valid WAV file ({what})")
        endian = "<" if head[:4] == b"RIFF" else ">"
        end = min(path.stat().st_size, struct.unpack(endian + "I", head[4:8])[0] + 8)
        pos, seen_fmt = 12, False
        while pos + 8 <= end:
            fh.seek(pos)
            chunk = fh.read(8)
            cid, n = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if cid in (b"fmt ", b"data") and n > end - pos - 8:
                raise DataError(f"{path}: not a valid WAV file (truncated: {cid.decode()!r} "
                                f"chunk claims {n} bytes, {max(end - pos - 8, 0)} present)")
            if cid == b"fmt ":
                _wav_format(path, fh.read(n), endian)
                seen_fmt = True
            elif cid == b"data" and not seen_fmt:
                raise DataError(f"{path}: not a valid WAV file (data chunk before fmt chunk)")
            pos += 8 + n + (n & 1)


def _read_riff(path: Path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    with reading(str(path), "not a valid WAV file"):
        _check_riff(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    for w in caught:
        if "EOF" in str(w.message):  # data chunk shorter than its header says
            raise DataError(f"{path}: not a valid WAV file (truncated: {w.message})")
    return int(rate), data


def _to_float(path: Path, data: np.ndarray) -> np.ndarray:
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if data.dtype.kind == "i":  # 24-bit arrives left-aligned in int32
        return (data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))).astype(
            np.float32)
    raise DataError(f"{path}: unsupported sample type {data.dtype}")


def read_wav(path: PathLike, rate: int, resample: bool = False) -> np.ndarray:
    """A mono recording as float32 ``(n,)``.

    RIFF WAV is read with :func:`scipy.io.wavfile.read`; a file that starts with ``NIST_1A`` is
    read as NIST SPHERE (:func:`read_sphere`, for TIMIT). Integer PCM is scaled by its full
    range (into ``[-1, 1)``); float WAV is passed through. A file whose sample rate is not
    ``rate`` is an error unless ``resample`` is true; then it is resampled with
    :func:`scipy.signal.resample_poly` by the reduced ratio ``rate / file_rate`` (the result may
    overshoot ``[-1, 1]`` slightly; it is not clipped). Every problem (missing file, not a WAV,
    truncated, more than one channel, wrong rate, no samples, NaN/inf) is a :class:`DataError`
    that names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with reading(str(path), "cannot read the file"), open(path, "rb") as fh:
        magic = fh.read(len(SPHERE_MAGIC))
    file_rate, data = read_sphere(path) if magic == SPHERE_MAGIC else _read_riff(path)
    if data.ndim == 2 and data.shape[1] != 1:
        raise DataError(f"{path}: {data.shape[1]} channels, expected mono")
    data = data.reshape(-1)
    if data.size == 0:
        raise DataError(f"{path}: no audio samples")
    signal = _to_float(path, data)
    check_finite(signal, str(path), ("sample",))
    if file_rate != rate:
        if not resample:
            raise DataError(f"{path}: sample rate {file_rate} Hz, expected {rate} Hz "
                            "(pass resample=True to convert)")
        low, high = RESAMPLE_RATES
        if not low <= file_rate <= high:
            raise DataError(f"{path}: sample rate {file_rate} Hz, expected {low}..{high} Hz to "
                            "resample")
        from scipy.signal import resample_poly

        g = math.gcd(rate, file_rate)
        signal = resample_poly(signal, rate // g, file_rate // g).astype(np.float32)
    return signal


def write_wav(signal: np.ndarray, path: PathLike, rate: int) -> None:
    """Write a mono float signal as a 16-bit PCM WAV file at ``rate`` Hz, atomically.

    Values are clipped to ``[-1, 1]`` and scaled by 32767, rounded to the nearest integer
    (ties to even). The argument order is that of :func:`srnn.music.midi.write_midi`: what to
    write, where, and its time base.
    """
    if isinstance(signal, str | os.PathLike):
        raise TypeError("write_wav(signal, path, rate): the signal comes first, then the path")
    x = np.clip(np.asarray(signal, dtype=np.float64).reshape(-1), -1.0, 1.0)
    pcm = np.round(x * PCM_SCALE).astype("<i2")
    rate = int(rate)
    if rate < 1:
        raise ValueError(f"rate must be a positive number of samples per second, got {rate}")

    def write(f) -> None:
        with wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())

    atomic_write(path, write)
