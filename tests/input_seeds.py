"""Tiny valid input files for the loader tests (built here, never copied from real data), and
helpers that serialise arrays and audio headers to bytes."""

from __future__ import annotations

import io
import pickle
import struct

import mido
import numpy as np

SPLITS = ("train", "valid", "test")


def npz_bytes(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def canonical_arrays() -> dict[str, np.ndarray]:
    """Two pieces per split in the canonical encoding: 3 and 2 steps, one silent step."""
    out = {}
    for i, s in enumerate(SPLITS):
        out[f"{s}_notes"] = np.array([60, 64, 67, 40 + i, 21, 108], np.uint8)
        out[f"{s}_step_sizes"] = np.array([3, 1, 0, 2, 0], np.uint8)
        out[f"{s}_seq_lengths"] = np.array([3, 2], np.int32)
    return out


def fraccaro_arrays() -> dict[str, np.ndarray]:
    """16 training and 16 validation windows of 3 steps; 2 test pieces of 3 and 2 steps."""
    rng = np.random.default_rng(0)

    def windows(n: int, t: int) -> np.ndarray:
        return (rng.random((n, t, 88)) < 0.05).astype(np.float32)

    x_test = windows(2, 3)
    mask = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
    u_test = np.where(mask[..., None] > 0, windows(2, 3), np.nan).astype(np.float32)
    x_train, x_valid = windows(16, 3), windows(16, 3)
    return {"x_train": x_train, "u_train": windows(16, 3), "x_valid": x_valid,
            "u_valid": windows(16, 3), "x_test": x_test * mask[..., None], "u_test": u_test,
            "mask_test": mask}


def user_arrays(binary: bool = False) -> dict[str, np.ndarray]:
    """Train as a padded 3-D array with lengths; valid and test as numbered 2-D arrays."""
    rng = np.random.default_rng(1)

    def values(*shape: int) -> np.ndarray:
        a = rng.random(shape)
        return (a < 0.3).astype(np.float32) if binary else a.astype(np.float32)

    train = values(3, 4, 5)
    train[2, 3:] = 0.0
    return {"train": train, "train_lengths": np.array([4, 2, 3]), "valid_0": values(3, 5),
            "valid_1": values(2, 5), "test_0": values(4, 5)}


def midi_bytes(notes: list[tuple[int, int, int]], resolution: int = 4, tempo: int = 500_000,
               channel: int = 0) -> bytes:
    """A type-0 MIDI file; ``notes`` are ``(pitch, start tick, end tick)``."""
    events = []
    for pitch, start, end in notes:
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=80,
                                              channel=channel)))
        events.append((end, 0, mido.Message("note_off", note=pitch, channel=channel)))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    now = 0
    for tick, _order, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    f = mido.MidiFile(type=0, ticks_per_beat=resolution)
    f.tracks.append(track)
    buf = io.BytesIO()
    f.save(file=buf)
    return buf.getvalue()


def seed_midi() -> bytes:
    """Four notes on a 1/4-beat grid (resolution 4 ticks per beat)."""
    return midi_bytes([(60, 0, 2), (64, 1, 3), (67, 2, 6), (21, 5, 6)])


def wav_bytes(data: bytes, width: int, rate: int = 8000, tag: int = 1, channels: int = 1,
              bits: int | None = None, riff: bytes = b"RIFF", extra: bytes = b"",
              data_size: int | None = None) -> bytes:
    """A RIFF WAV file built by hand from raw sample bytes (any header values, bad ones too)."""
    bits = 8 * width if bits is None else bits
    align = width * channels
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    size = len(data) if data_size is None else data_size
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data"
            + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b""))
    return riff + struct.pack("<I", len(body)) + body


def pcm16(n: int = 64) -> bytes:
    return np.round(8000 * np.sin(np.arange(n) / 3)).astype("<i2").tobytes()


def seed_wav() -> bytes:
    return wav_bytes(pcm16(), 2)


def sphere_bytes(samples: np.ndarray, fields: dict[str, str] | None = None,
                 size: int = 256, size_line: str | None = None, end: bool = True) -> bytes:
    """A NIST SPHERE file: text header of ``size`` bytes, then the samples' bytes."""
    f = {"sample_count": f"-i {len(samples)}", "sample_rate": "-i 16000",
         "channel_count": "-i 1", "sample_n_bytes": "-i 2", "sample_byte_format": "-s2 01"}
    f.update(fields or {})
    lines = ["NIST_1A", size_line if size_line is not None else f"   {size}"]
    lines += [f"{k} {v}" for k, v in f.items() if v is not None]
    lines += ["end_head"] if end else []
    header = ("\n".join(lines) + "\n").encode().ljust(size, b" ")
    return header + np.ascontiguousarray(samples).tobytes()


def seed_sphere() -> bytes:
    return sphere_bytes(np.round(3000 * np.cos(np.arange(48) / 5)).astype("<i2"))


def seed_pickle_object() -> dict:
    return {"train": [[[60, 64], [], [67]], [[21, 108], [50]]],
            "valid": [[[62.0], [65, 69]]], "test": [([55, 59], {60}), [[70], [72]]]}


def pickle_bytes(obj: object, protocol: int = 2) -> bytes:
    return pickle.dumps(obj, protocol=protocol)
