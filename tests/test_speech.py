"""Speech pipeline: WAV/SPHERE reading, frames, normalisation, Perm-TIMIT, the corpus readers."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from srnn.data.speech import (
    Normaliser,
    build_dataset,
    decode,
    frame,
    frame_permutation,
    load_blizzard,
    load_fsdd,
    load_timit,
    load_vctk,
    permute_frames,
    unframe,
    unpermute_frames,
)
from srnn.data.wav import read_wav, write_wav
from srnn.errors import DataError

try:
    from scipy.io import wavfile
except ImportError:  # scipy reads and writes RIFF WAV; frames and SPHERE need only numpy
    wavfile = None
needs_scipy = pytest.mark.skipif(wavfile is None, reason="scipy is not installed")

FSDD = Path(os.environ.get("SRNN_DATA_DIR", "")) / "speech" / "fsdd"
RNG = np.random.default_rng(0)


def tone(n: int, rate: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(n) / rate
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * RNG.standard_normal(n)).astype(
        np.float32)


def write_pcm(path: Path, signal: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16))
    return path


def write_sphere(path: Path, signal: np.ndarray, rate: int = 16000, big: bool = False) -> Path:
    """A TIMIT-style NIST SPHERE file: 1024-byte text header, then 16-bit PCM."""
    pcm = np.round(np.clip(signal, -1, 1) * 32767).astype(">i2" if big else "<i2")
    lines = ["NIST_1A", "   1024", "database_id -s5 TIMIT", f"sample_count -i {len(pcm)}",
             f"sample_rate -i {rate}", "channel_count -i 1", "sample_n_bytes -i 2",
             f"sample_byte_format -s2 {'10' if big else '01'}", "sample_sig_bits -i 16",
             "end_head"]
    header = ("\n".join(lines) + "\n").encode().ljust(1024, b" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + pcm.tobytes())
    return path


# ------------------------------------------------------------------ frames, permutation, norm


def test_frame_unframe_round_trip_drops_incomplete_frame() -> None:
    x = np.arange(1050, dtype=np.float32)
    f = frame(x, 200)
    assert f.shape == (5, 200) and (f[1] == x[200:400]).all()
    assert (unframe(f) == x[:1000]).all()
    assert frame(x[:199], 200).shape == (0, 200)
    with pytest.raises(ValueError):
        frame(np.zeros((2, 200)))


def test_permutation_is_fixed_across_frames_and_inverts() -> None:
    f = np.tile(np.arange(200, dtype=np.float32), (7, 1)) + 1000 * np.arange(7)[:, None]
    p = permute_frames(f, seed=3)
    perm = frame_permutation(200, 3)
    assert not (perm == np.arange(200)).all()
    assert all((p[i] - 1000 * i == perm).all() for i in range(7))  # same positions every frame
    assert (unpermute_frames(p, seed=3) == f).all()
    assert (permute_frames(f[:2], seed=3) == p[:2]).all()  # fixed across calls / files
    assert not (permute_frames(f, seed=4) == p).all()


def test_normaliser_is_fitted_on_train_only_and_serialises() -> None:
    train = [("a.wav", tone(1000, 8000)), ("b.wav", tone(800, 8000, 330))]
    valid = [("v.wav", tone(600, 8000))]
    d1 = build_dataset("t", "t", 8000, {"train": train, "valid": valid,
                                        "test": [("c.wav", tone(500, 8000))]})
    d2 = build_dataset("t", "t", 8000, {"train": train, "valid": valid,
                                        "test": [("c.wav", 5 * tone(900, 8000) + 0.2)]})
    assert d1.info["normaliser"] == d2.info["normaliser"]
    x = np.concatenate(d1.train.x)
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-5
    assert (d1.valid.x[0] == d2.valid.x[0]).all()
    n = Normaliser.from_dict(d1.info["normaliser"])
    assert Normaliser.from_dict(n.to_dict()) == n
    sig = tone(400, 8000)
    assert np.allclose(n.invert(n.apply(sig)), sig, atol=1e-6)
    with pytest.raises(DataError, match="standard deviation"):
        Normaliser.fit([np.zeros(10)])


@needs_scipy
def test_decode_inverts_the_pipeline(tmp_path: Path) -> None:
    sig = tone(1000, 8000)
    rec = {s: [(f"{s}.wav", sig)] for s in ("train", "valid", "test")}
    d = build_dataset("t", "t", 8000, rec, permute=True, permute_seed=5)
    assert d.name == "t-perm" and d.binary is False and d.dim == 200
    assert np.allclose(decode(d.test.x[0], d.info), sig, atol=1e-6)
    out = tmp_path / "o.wav"
    write_wav(sig, out, 8000)
    assert np.allclose(read_wav(out, 8000), sig, atol=1e-4)


# ------------------------------------------------------------------ reading and its errors


@needs_scipy
def test_read_wav_scales_pcm_and_passes_float(tmp_path: Path) -> None:
    wavfile.write(tmp_path / "i.wav", 8000, np.array([-32768, 0, 16384], np.int16))
    wavfile.write(tmp_path / "u.wav", 8000, np.array([0, 128, 192], np.uint8))
    wavfile.write(tmp_path / "f.wav", 8000, np.array([0.5, -0.25], np.float32))
    assert np.allclose(read_wav(tmp_path / "i.wav", 8000), [-1, 0, 0.5])
    assert np.allclose(read_wav(tmp_path / "u.wav", 8000), [-1, 0, 0.5])
    assert np.allclose(read_wav(tmp_path / "f.wav", 8000), [0.5, -0.25])
    assert read_wav(tmp_path / "i.wav", 8000).dtype == np.float32


@needs_scipy
def test_read_wav_resamples_with_the_reduced_ratio(tmp_path: Path) -> None:
    p = write_pcm(tmp_path / "a.wav", tone(4800, 48000, 440), 48000)
    y = read_wav(p, 16000, resample=True)
    assert len(y) == 1600 and y.dtype == np.float32
    ref = tone(1600, 16000, 440)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 0.06


@needs_scipy
@pytest.mark.parametrize("case", ["rate", "stereo", "truncated-header", "truncated-data",
                                  "not-wav", "missing", "empty", "nan"])
def test_read_wav_errors_name_the_file(tmp_path: Path, case: str) -> None:
    p = tmp_path / f"bad-{case}.wav"
    good = np.round(tone(400, 8000) * 32767).astype(np.int16)
    if case == "rate":
        wavfile.write(p, 16000, good)
        match = "sample rate 16000 Hz, expected 8000"
    elif case == "stereo":
        wavfile.write(p, 8000, np.stack([good, good], axis=1))
        match = "2 channels, expected mono"
    elif case.startswith("truncated"):
        wavfile.write(p, 8000, good)
        p.write_bytes(p.read_bytes()[:30 if case == "truncated-header" else 300])
        match = "not a valid WAV file"
    elif case == "not-wav":
        p.write_text("this is a text file, not audio\n" * 3)
        match = "not a valid WAV file"
    elif case == "missing":
        match = "file not found"
    elif case == "empty":
        wavfile.write(p, 8000, np.zeros(0, np.int16))
        match = "no audio samples"
    else:
        wavfile.write(p, 8000, np.array([0.1, np.nan], np.float32))
        match = "NaN"
    with pytest.raises(DataError, match=match) as err:
        read_wav(p, 8000)
    assert p.name in str(err.value)


# ------------------------------------------------------------------ FSDD (real data)


@pytest.fixture(scope="module")
def fsdd():
    if not (FSDD / "files.csv").is_file():
        pytest.skip(f"FSDD not found at {FSDD}: set SRNN_DATA_DIR")
    return load_fsdd(FSDD)


@needs_scipy
def test_fsdd_splits_frames_and_normalisation(fsdd) -> None:
    with open(FSDD / "files.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = fsdd.info["files"]
    assert [len(files[s]) for s in ("train", "valid", "test")] == [2400, 300, 300]
    assert (len(fsdd.train), len(fsdd.valid), len(fsdd.test)) == (2400, 300, 300)
    assert set(files["test"]) == {r["file"] for r in rows if r["split"] == "test"}
    expected_valid = {r["file"] for r in rows if 5 <= int(r["index"]) <= 9}
    assert set(files["valid"]) == expected_valid  # deterministic rule
    speakers = {r["speaker"] for r in rows}
    for s in ("train", "valid", "test"):
        assert {f.split("_")[1] for f in files[s]} == speakers
    assert not set(files["train"]) & (set(files["valid"]) | set(files["test"]))
    assert fsdd.info["skipped"] == {"train": [], "valid": [], "test": []}
    assert fsdd.name == "fsdd" and fsdd.protocol == "fsdd" and not fsdd.binary
    assert fsdd.time_step == "200-sample frame at 8 kHz" and fsdd.dim == 200
    x = np.concatenate(fsdd.train.x)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-4
    assert all((u[1:] == xx[:-1]).all() and (u[0] == 0).all()
               for xx, u in zip(fsdd.test.x[:20], fsdd.test.u[:20], strict=True))
    # The frames of a test file are its normalised samples.
    raw = read_wav(FSDD / files["test"][0], 8000)
    n = Normaliser.from_dict(fsdd.info["normaliser"])
    assert np.allclose(fsdd.test.x[0], frame(n.apply(raw)), atol=1e-6)


@needs_scipy
def test_fsdd_limit_and_permute() -> None:
    if not (FSDD / "files.csv").is_file():
        pytest.skip(f"FSDD not found at {FSDD}")
    a = load_fsdd(FSDD, limit=4)
    b = load_fsdd(FSDD, limit=4, permute=True)
    assert b.name == "fsdd-perm" and len(a.test) == 4
    assert a.info["normaliser"] == b.info["normaliser"]
    assert (permute_frames(a.test.x[1]) == b.test.x[1]).all()
    assert np.allclose(decode(b.test.x[1], b.info), decode(a.test.x[1], a.info))


def test_fsdd_missing_table(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="files.csv: file not found"):
        load_fsdd(tmp_path)


# ------------------------------------------------------------------ user-supplied corpora


@pytest.mark.parametrize("fmt", ["sphere", "sphere-be", "riff"])
def test_timit_layout_splits(tmp_path: Path, fmt: str) -> None:
    if fmt == "riff" and wavfile is None:
        pytest.skip("scipy is not installed")
    root = tmp_path / "timit"
    top = {"sphere": ("TRAIN", "TEST"), "sphere-be": ("TRAIN", "TEST"),
           "riff": ("train", "test")}[fmt]
    for split, dirs in ((top[0], [("DR1", "FAAA0"), ("DR1", "MBBB0"), ("DR2", "FCCC0")]),
                        (top[1], [("DR1", "MDDD0")])):
        for dr, spk in dirs:
            for sent in ("SA1", "SX10", "SI20"):
                p = root / split / dr / spk / f"{sent}.WAV"
                sig = tone(1300, 16000, 200 + 10 * len(spk))
                if fmt == "riff":
                    write_pcm(p, sig, 16000)
                else:
                    write_sphere(p, sig, big=fmt == "sphere-be")
    (root / top[0] / "DR1" / "FAAA0" / "SX10.PHN").write_text("0 100 h#\n")
    d = load_timit(root)
    f = d.info["files"]
    assert (len(f["train"]), len(f["valid"]), len(f["test"])) == (4, 2, 2)  # SA excluded
    assert d.info["valid_speakers"] == ["DR1/MBBB0"]
    assert all("SA" not in p for s in f.values() for p in s)
    assert d.train.x[0].shape == (6, 200) and d.time_step == "200-sample frame at 16 kHz"
    assert len(load_timit(root, include_sa=True).info["files"]["test"]) == 3
    if fmt == "sphere" and wavfile is not None:  # SPHERE and RIFF give the same samples
        p = root / "TRAIN" / "DR1" / "FAAA0" / "SX10.WAV"
        w = write_pcm(tmp_path / "x.wav", read_wav(p, 16000), 16000)
        assert np.allclose(read_wav(w, 16000), read_wav(p, 16000))


@needs_scipy
def test_vctk_resamples_and_splits_by_speaker(tmp_path: Path) -> None:
    root = tmp_path / "VCTK-Corpus"
    for i in range(5):
        for j in range(2):
            write_pcm(root / "wav48" / f"p{225 + i}" / f"p{225 + i}_00{j}.wav",
                      tone(4800 + 480 * j, 48000), 48000)
    d = load_vctk(root, rate=16000)
    sp = d.info["speakers"]
    assert sp == {"train": ["p225", "p226", "p227"], "valid": ["p228"], "test": ["p229"]}
    assert (len(d.train), len(d.valid), len(d.test)) == (6, 2, 2)
    assert d.test.x[1].shape == (8, 200)  # 5280 samples at 48 kHz -> 1760 at 16 kHz
    assert d.info["rate"] == 16000


@needs_scipy
def test_blizzard_default_split_and_file_lists(tmp_path: Path) -> None:
    root = tmp_path / "bliz"
    names = [f"chapter{i:02d}.wav" for i in range(20)]
    for i, n in enumerate(names):
        write_pcm(root / "book" / n, tone(2205 + 44 * i, 44100), 44100)
    d = load_blizzard(root, rate=16000, segment_frames=2)
    f = d.info["files"]
    assert f["test"] == ["book/chapter19.wav"] and f["valid"] == ["book/chapter18.wav"]
    assert len(f["train"]) == 18 and d.test.x[0].shape == (2, 200)
    lists = {"train": ["book/chapter00.wav", "book/chapter01.wav"],
             "valid": ["book/chapter02.wav"], "test": ["book/chapter03.wav"]}
    d2 = load_blizzard(root, file_lists=lists)
    assert d2.info["files"] == lists and d2.info["split_rule"] == "given file lists"
    with pytest.raises(DataError, match="chapter99.wav: file not found"):
        load_blizzard(root, file_lists={**lists, "test": ["book/chapter99.wav"]})
