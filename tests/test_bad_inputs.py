"""One direct case per loader check: the DataError names the file and says what is wrong."""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from input_seeds import (
    canonical_arrays,
    fraccaro_arrays,
    midi_bytes,
    npz_bytes,
    pcm16,
    seed_pickle_object,
    sphere_bytes,
    user_arrays,
    wav_bytes,
)

from srnn.data import dataset_path, load_dataset, time_step
from srnn.data.arrays import load_arrays
from srnn.data.download import convert, safe_load_pickle
from srnn.data.midi_folder import load_midi_folder
from srnn.data.music import load_canonical_npz, load_fraccaro
from srnn.data.wav import read_sphere, read_wav
from srnn.errors import DataError
from srnn.music.midi import read_midi, write_midi


def expect(path: Path, content: bytes, load: Callable[[Path], object], message: str) -> str:
    """Write ``content`` to ``path``; ``load`` must raise a DataError naming the file and
    containing ``message``."""
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load(path)
    text = str(err.value)
    assert path.name in text and message in text, text
    return text


def changed(base: dict, drop: str | None = None, **arrays: np.ndarray) -> dict:
    out = {k: v for k, v in base.items() if k != drop}
    out.update(arrays)
    return out


# ------------------------------------------------------------------ canonical npz

C = canonical_arrays()
CANONICAL_CASES = {
    "not a readable .npz file": b"not a zip file",
    "missing array 'valid_notes'": npz_bytes(changed(C, drop="valid_notes")),
    "[train] notes: dtype float64 is not allowed, expected integer": npz_bytes(
        changed(C, train_notes=C["train_notes"].astype(float))),
    "array 'train_notes': dtype object is not allowed": npz_bytes(
        changed(C, train_notes=np.array([60, None], object))),
    "[train] notes: shape (2, 3), expected a 1-D array": npz_bytes(
        changed(C, train_notes=C["train_notes"].reshape(2, 3))),
    "MIDI notes outside 21..108 (note 4 is 20": npz_bytes(
        changed(C, train_notes=np.array([60, 64, 67, 40, 20, 108], np.int16))),
    "[train]: step 2 has -1 notes, expected 0..88": npz_bytes(
        changed(C, train_step_sizes=np.array([3, 1, -1, 3, 0], np.int8))),
    "seq_lengths add up to 6 steps but step_sizes holds 5": npz_bytes(
        changed(C, train_seq_lengths=np.array([3, 3], np.int32))),
    "step_sizes add up to 7 notes but notes holds 6": npz_bytes(
        changed(C, train_step_sizes=np.array([3, 1, 1, 2, 0], np.uint8))),
    "[valid]: no sequences, expected at least one": npz_bytes(
        changed(C, valid_notes=np.zeros(0, np.uint8), valid_step_sizes=np.zeros(0, np.uint8),
                valid_seq_lengths=np.zeros(0, np.int32))),
    "[test] sequence 1: sequence too short (1 step), expected at least 2 steps": npz_bytes(
        changed(C, test_seq_lengths=np.array([4, 1], np.int32))),
    "[test] sequence 1: empty sequence (0 steps)": npz_bytes(
        changed(C, test_seq_lengths=np.array([5, 0], np.int32))),
}


@pytest.mark.parametrize("message", sorted(CANONICAL_CASES))
def test_canonical_npz_errors(tmp_path: Path, message: str) -> None:
    expect(tmp_path / "music.npz", CANONICAL_CASES[message],
           lambda p: load_canonical_npz(p, "x"), message)


def test_npz_missing_truncated_and_lying_headers(tmp_path: Path) -> None:
    load = lambda p: load_canonical_npz(p, "x")  # noqa: E731
    with pytest.raises(DataError, match=r"absent\.npz: file not found"):
        load(tmp_path / "absent.npz")
    good = npz_bytes(C)
    expect(tmp_path / "cut.npz", good[:len(good) // 2], load, "not a readable .npz file")
    # a valid zip whose .npy header claims 2**40 notes: refused before anything is allocated
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (2**40,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, a in C.items():
            raw = io.BytesIO()
            np.lib.format.write_array(raw, a)
            zf.writestr(f"{key}.npy", header.getvalue() + b"\0" * 6 if key == "train_notes"
                        else raw.getvalue())
    expect(tmp_path / "lying.npz", buf.getvalue(), load,
           "array 'train_notes' header says shape (1099511627776,) of uint8 (1099511627776 "
           "bytes) but the file holds 6 bytes")
    flipped = bytearray(good)
    flipped[good.index(b"\x3c\x40\x43") + 1] ^= 1  # one bit of the notes' data
    expect(tmp_path / "crc.npz", bytes(flipped), load, "array 'train_notes' is corrupt")


# ------------------------------------------------------------------ Fraccaro npz

F = fraccaro_arrays()


def _with(key: str, index: tuple, value: float, base: dict | None = None) -> dict:
    """``base`` (default: the Fraccaro arrays) with one entry of array ``key`` set."""
    base = F if base is None else base
    a = base[key].copy()
    a[index] = value
    return changed(base, **{key: a})


FRACCARO_CASES = {
    "x_train: nan at row 3, step 1, pitch 7, expected finite values": _with(
        "x_train", (3, 1, 7), np.nan),
    "u_valid: inf at row 0, step 2, pitch 0": _with("u_valid", (0, 2, 0), np.inf),
    "x_valid: value 0.5 at row 1, step 0, pitch 5, expected a binary piano roll": _with(
        "x_valid", (1, 0, 5), 0.5),
    "are not matching stream-ordered windows": changed(F, x_train=F["x_train"][:8],
                                                        u_train=F["u_train"][:8]),
    "x_valid has shape (16, 3, 87), expected (N, T, 88)": changed(
        F, x_valid=F["x_valid"][..., :87], u_valid=F["u_valid"][..., :87]),
    "mask_test row 0 is not ones followed by zeros": _with("mask_test", (0, 1), 0.0),
    "test sequence 1 (mask_test): sequence too short (1 step)": _with("mask_test", (1, 1), 0.0),
    "x_test/u_test/mask_test shapes": changed(F, x_test=F["x_test"][:1]),
    "x_test row 0: value 2.0 at step 1": _with("x_test", (0, 1, 3), 2.0),
    "x_train windows: sequence too short": changed(F, x_train=F["x_train"][:, :1],
                                                   u_train=F["u_train"][:, :1]),
    "missing array 'u_test'": changed(F, drop="u_test"),
}


@pytest.mark.parametrize("message", sorted(FRACCARO_CASES))
def test_fraccaro_errors(tmp_path: Path, message: str) -> None:
    expect(tmp_path / "frac.npz", npz_bytes(FRACCARO_CASES[message]),
           lambda p: load_fraccaro(p, "x"), message)


def test_fraccaro_seed_loads_and_ignores_nan_padding(tmp_path: Path) -> None:
    (tmp_path / "f.npz").write_bytes(npz_bytes(F))
    data = load_fraccaro(tmp_path / "f.npz", "f")
    assert [len(x) for x in data.test.x] == [3, 2] and np.isnan(F["u_test"]).any()


# ------------------------------------------------------------------ user arrays

U = user_arrays()
def _user_with(key: str, index: tuple, value: float) -> dict:
    return _with(key, index, value, base=U)


USER_CASES = {
    "[train]: nan at sequence 1, step 3, column 2, expected finite values": _user_with(
        "train", (1, 3, 2), np.nan),
    "[valid] sequence 1: -inf at step 0, column 4, expected finite values": _user_with(
        "valid_1", (0, 4), -np.inf),
    "[valid] sequence 0: 1e+300 at step 0, column 0 does not fit in float32": changed(
        U, valid_0=np.full((3, 5), 1e300)),
    "missing split 'test', expected": changed(U, drop="test_0"),
    "unexpected array 'trian'": changed(U, trian=U["train"]),
    "both 'valid' and 'valid_0'": changed(U, valid=np.zeros((1, 3, 5))),
    "missing array 'valid_1' (numbered arrays must run from 'valid_0' without gaps": changed(
        U, drop="valid_1", valid_2=U["valid_1"]),
    "[train] sequence 1: length 5 is more than the 4 steps": changed(
        U, train_lengths=np.array([4, 5, 3])),
    "[train] sequence 1 (train_lengths): sequence too short (1 step)": changed(
        U, train_lengths=np.array([4, 1, 3])),
    "train_lengths: dtype float64 is not allowed, expected integer": changed(
        U, train_lengths=np.array([4.0, 2, 3])),
    "[valid] sequence 0: shape (3,), expected (T, D)": changed(U, valid_0=U["valid_0"][:, 0]),
    "[test] sequence 0: 4 values per step, expected 5": changed(U, test_0=U["test_0"][:, :4]),
    "[train]: no sequences, expected at least one": changed(
        U, train=U["train"][:0], train_lengths=np.zeros(0, int)),
    "[train]: shape (3, 20), expected (N, T, D)": changed(U, train=U["train"].reshape(3, 20)),
    "'test_lengths' goes with a 3-D 'test' array": changed(U, test_lengths=np.array([4])),
    "array 'test_0': dtype <U1 is not allowed": changed(U, test_0=np.array([["a", "b"]] * 2)),
}


@pytest.mark.parametrize("message", sorted(USER_CASES))
def test_user_array_errors(tmp_path: Path, message: str) -> None:
    expect(tmp_path / "mine.npz", npz_bytes(USER_CASES[message]), load_arrays, message)


def test_user_arrays_binary_detection_and_dispatch(tmp_path: Path) -> None:
    real, binary = tmp_path / "real.npz", tmp_path / "rolls.npz"
    real.write_bytes(npz_bytes(U))
    binary.write_bytes(npz_bytes(user_arrays(binary=True)))
    data = load_dataset(str(real))
    assert (data.binary, data.protocol, data.name, data.dim) == (False, "arrays", "real", 5)
    assert [len(data.split(s)) for s in ("train", "valid", "test")] == [3, 2, 1]
    assert [len(x) for x in data.train.x] == [4, 2, 3]  # train_lengths cut the padding
    assert np.array_equal(data.train.u[0][1:], data.train.x[0][:-1])
    assert load_dataset(str(binary)).binary is True
    assert time_step(str(real)) == "step" and dataset_path(str(real)) == real
    with pytest.raises(DataError, match=r"absent\.npz: file not found"):
        load_dataset(str(tmp_path / "absent.npz"))


# ------------------------------------------------------------------ MIDI


def test_midi_errors(tmp_path: Path) -> None:
    load = lambda p: read_midi(p, steps_per_beat=4)  # noqa: E731
    expect(tmp_path / "noise.mid", b"MThd\x00\x00\x00\x06garbage", load,
           "not a valid MIDI file (")
    expect(tmp_path / "cut.mid", midi_bytes([(60, 0, 2)])[:-5], load, "not a valid MIDI file")
    expect(tmp_path / "drums.mid", midi_bytes([(60, 0, 2)], channel=9), load,
           "contains no notes (only drum notes)")
    expect(tmp_path / "high.mid", midi_bytes([(10, 0, 2), (120, 0, 2)]), load,
           "no notes within MIDI 21..108 (2 outside)")
    expect(tmp_path / "ticks.mid", midi_bytes([(60, 0, 2), (62, 2**27, 2**27 + 1)]), load,
           "lasts 1.67772e+07 s (4.66e+03 hours), expected at most 24 hours")
    far = midi_bytes([(60, 0, 2), (62, 40_000, 40_001)], resolution=1)  # 20,000 s
    expect(tmp_path / "far.mid", far, lambda p: read_midi(p, step_seconds=0.01),
           "expected times within 0..1000000 steps")
    expect(tmp_path / "zero.mid", midi_bytes([(60, 0, 2)], resolution=0), load,
           "not a valid MIDI file (ZeroDivisionError")


def test_midi_folder_skips_short_and_bad_files(tmp_path: Path) -> None:
    roll = np.zeros((4, 88), np.float32)
    roll[[0, 3], 40] = 1.0
    for k in range(3):
        write_midi(roll, tmp_path / f"ok{k}.mid", 0.125)
    (tmp_path / "one.mid").write_bytes(midi_bytes([(60, 0, 1)]))  # one 1/4-beat step
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06")
    data = load_midi_folder(tmp_path)
    skipped = data.info["skipped"]
    assert sorted(skipped) == ["bad.mid", "one.mid"]
    assert "one.mid: sequence too short (1 step)" in skipped["one.mid"]
    assert "bad.mid: not a valid MIDI file" in skipped["bad.mid"]
    with pytest.raises(DataError, match=r"bad\.mid: not a valid MIDI file"):
        load_midi_folder(tmp_path, skip_bad=False)


# ------------------------------------------------------------------ WAV

PCM = pcm16()
LIST_CHUNK = b"LIST" + (4).to_bytes(4, "little") + b"INFO"
WAV_CASES = {
    "no RIFF/WAVE header": b"RIFX" + b"\0" * 40,
    "RF64 is not supported": wav_bytes(PCM, 2, riff=b"RF64"),
    "0 channels, block size 0 bytes": wav_bytes(PCM, 2, channels=0),
    "unsupported WAV encoding (format tag 0x2)": wav_bytes(PCM, 2, tag=2),
    "unsupported sample width for PCM (8 bytes, 64 bits)": wav_bytes(PCM, 8),
    "unsupported sample width for float (4 bytes, 16 bits)": wav_bytes(PCM, 4, tag=3, bits=16),
    "'data' chunk claims 2147483648 bytes": wav_bytes(PCM, 2, data_size=2**31),
    "2 channels, expected mono": wav_bytes(PCM, 2, channels=2),
    "sample rate 16000 Hz, expected 8000 Hz": wav_bytes(PCM, 2, rate=16000),
    "no audio samples": wav_bytes(b"", 2),
    "nan at sample 5, expected finite values": wav_bytes(
        np.where(np.arange(8) == 5, np.nan, 0.1).astype("<f4").tobytes(), 4, tag=3),
    "fmt chunk of 4 bytes, expected at least 16": b"RIFF\x18\0\0\0WAVEfmt \x04\0\0\0abcd"
                                                   b"data\0\0\0\0",
}


@pytest.mark.parametrize("message", sorted(WAV_CASES))
def test_wav_errors(tmp_path: Path, message: str) -> None:
    expect(tmp_path / "voice.wav", WAV_CASES[message], lambda p: read_wav(p, 8000), message)


def test_wav_with_extra_chunk_and_resample_limits(tmp_path: Path) -> None:
    (tmp_path / "list.wav").write_bytes(wav_bytes(PCM, 2, extra=LIST_CHUNK))
    assert read_wav(tmp_path / "list.wav", 8000).shape == (len(PCM) // 2,)
    expect(tmp_path / "slow.wav", wav_bytes(PCM, 2, rate=10),
           lambda p: read_wav(p, 8000, resample=True), "sample rate 10 Hz, expected 1000..768000")


# ------------------------------------------------------------------ SPHERE

S = np.round(3000 * np.cos(np.arange(48) / 5)).astype("<i2")
SPHERE_CASES = {
    "not a SPHERE file (no NIST_1A header)": b"NIST_2B\n" + bytes(300),
    "bad header size line": sphere_bytes(S, size_line="x"),
    "header of 99999999 bytes": sphere_bytes(S, size_line="99999999"),
    "no end_head in the header": sphere_bytes(S, end=False),
    "no sample_rate in the header": sphere_bytes(S, {"sample_rate": None}),
    "sample_rate 'abc' is not an integer": sphere_bytes(S, {"sample_rate": "-s3 abc"}),
    "channel_count 0, expected at least 1": sphere_bytes(S, {"channel_count": "-i 0"}),
    "truncated SPHERE file (48 of 1000000000000 samples)": sphere_bytes(
        S, {"sample_count": "-i 1000000000000"}),
    "unsupported SPHERE coding 'ulaw'": sphere_bytes(S, {"sample_coding": "-s4 ulaw"}),
    "48 samples do not divide into 5 channels": sphere_bytes(
        S, {"channel_count": "-i 5", "sample_count": None}),
}


@pytest.mark.parametrize("message", sorted(SPHERE_CASES))
def test_sphere_errors(tmp_path: Path, message: str) -> None:
    expect(tmp_path / "utt.sph", SPHERE_CASES[message], read_sphere, message)


def test_sphere_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.sph: file not found"):
        read_sphere(tmp_path / "gone.sph")


# ------------------------------------------------------------------ restricted unpickler


def test_pickle_messages_stay_short_and_name_the_source() -> None:
    nested: list = [60]
    for _ in range(100):
        nested = [nested]
    obj = {**seed_pickle_object(), "train": [[nested]]}
    with pytest.raises(DataError) as err:
        convert(safe_load_pickle(pickle.dumps(obj), "deep.pickle"), "deep.pickle")
    assert "deep.pickle" in str(err.value) and "is not a number" in str(err.value)
    assert len(str(err.value)) < 200


def test_pickle_note_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import srnn.data.download as download

    monkeypatch.setattr(download, "MAX_NOTE_ENTRIES", 50)
    step = [60, 64, 67]
    piece = [step] * 30  # one list referenced 30 times: a few bytes in the pickle
    obj = {"train": [piece], "valid": [piece], "test": [piece]}
    with pytest.raises(DataError, match=re.escape("many.pickle: more than 50 notes")):
        convert(safe_load_pickle(pickle.dumps(obj), "many.pickle"), "many.pickle")
