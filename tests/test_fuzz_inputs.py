"""Fuzz and property tests of every data loader: whatever bytes a file holds, a loader either
returns a valid result or raises an :class:`SRNNError` naming the file; nothing else escapes.

Each fuzz test feeds :data:`CASES` inputs derived from a tiny valid seed built here, in four
equal parts: random bytes (half of them behind the format's magic), truncations, bit flips,
and structured mutations (wrong keys, dtypes, shapes, NaN, bad header fields), the latter
sometimes bit-flipped too. The generator is seeded, so a failing case index reproduces.
"""

from __future__ import annotations

import pickle
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from input_seeds import (
    SPLITS,
    canonical_arrays,
    fraccaro_arrays,
    midi_bytes,
    npz_bytes,
    pcm16,
    pickle_bytes,
    seed_midi,
    seed_pickle_object,
    seed_sphere,
    sphere_bytes,
    user_arrays,
    wav_bytes,
)

from srnn.data.arrays import load_arrays
from srnn.data.download import ARRAY_KEYS, convert, safe_load_pickle
from srnn.data.midi_folder import load_midi_folder
from srnn.data.music import load_canonical_npz, load_fraccaro, notes_from_rolls, rolls_from_notes
from srnn.data.sequences import SequenceDataset
from srnn.data.wav import read_sphere, read_wav
from srnn.errors import DataError, SRNNError
from srnn.music.midi import read_midi, write_midi

CASES = 2000  # inputs per loader (at least 1,000)
PROPERTY = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# ------------------------------------------------------------------------------ mutations


def flip_bits(data: bytes, rng: np.random.Generator) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out)


def mutate(i: int, seed: bytes, variants: list[bytes], magic: bytes,
           rng: np.random.Generator) -> bytes:
    """Input ``i``: random bytes, a truncation, bit flips or a structured variant (cycling)."""
    base = seed if rng.random() < 0.5 else variants[int(rng.integers(len(variants)))]
    kind = i % 4
    if kind == 0:
        noise = rng.bytes(int(rng.integers(0, 2 * len(seed) + 1)))
        return magic + noise if rng.random() < 0.5 else noise
    if kind == 1:
        return base[:int(rng.integers(0, len(base) + 1))]
    if kind == 2:
        return flip_bits(base, rng)
    variant = variants[int(rng.integers(len(variants)))]
    return flip_bits(variant, rng) if rng.random() < 0.25 else variant


def fuzz(tmp_path: Path, name: str, seed: bytes, variants: list[bytes], magic: bytes,
         load: Callable[[Path, int], object], check: Callable[[object], None],
         named: Callable[[str, Path], bool] | None = None) -> Counter:
    """Run :data:`CASES` inputs through ``load``; returns the count of ``ok`` and ``error``."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    path = tmp_path / name
    outcomes: Counter = Counter()
    for i in range(CASES):
        path.unlink(missing_ok=True)  # a fresh file: truncating one in place is slow on ext4
        path.write_bytes(mutate(i, seed, variants, magic, rng))
        try:
            result = load(path, i)
        except SRNNError as e:
            ok = named(str(e), path) if named else path.name in str(e)
            assert ok, f"{name} case {i}: message does not name the file: {e}"
            outcomes["error"] += 1
            continue
        except Exception as e:  # anything else escaping is the failure this test looks for
            raise AssertionError(f"{name} case {i}: {type(e).__name__} escaped: {e}") from e
        check(result)
        outcomes["ok"] += 1
    assert sum(outcomes.values()) == CASES
    assert outcomes["ok"] and outcomes["error"], outcomes  # both paths were exercised
    return outcomes


# ------------------------------------------------------------------------------ checks


def check_dataset(data: object) -> None:
    assert isinstance(data, SequenceDataset)
    dim = data.dim
    for s in SPLITS:
        split = data.split(s)
        assert len(split) >= 1
        for x, u in zip(split.x, split.u, strict=True):
            assert x.ndim == 2 and x.shape == u.shape and x.shape[0] >= 2 and x.shape[1] == dim
            assert x.dtype == np.float32 and np.isfinite(x).all() and np.isfinite(u).all()
            if data.binary:
                assert np.isin(x, (0.0, 1.0)).all() and np.isin(u, (0.0, 1.0)).all()


def check_roll(roll: object) -> None:
    assert isinstance(roll, np.ndarray) and roll.dtype == np.float32
    assert roll.ndim == 2 and roll.shape[1] == 88 and roll.shape[0] >= 1
    assert np.isin(roll, (0.0, 1.0)).all()


def check_signal(signal: object) -> None:
    assert isinstance(signal, np.ndarray) and signal.dtype == np.float32
    assert signal.ndim == 1 and signal.size >= 1 and np.isfinite(signal).all()


def check_sphere(result: object) -> None:
    rate, data = result
    assert isinstance(rate, int) and rate >= 1 and data.dtype == np.int16
    assert data.ndim == 1 or (data.ndim == 2 and data.shape[1] >= 2)


def check_canonical(arrays: object) -> None:
    assert sorted(arrays) == sorted(ARRAY_KEYS)
    for s in SPLITS:
        rolls = rolls_from_notes(arrays[f"{s}_notes"], arrays[f"{s}_step_sizes"],
                                 arrays[f"{s}_seq_lengths"])
        assert rolls and all(r.shape[1] == 88 and len(r) >= 1 for r in rolls)


# ------------------------------------------------------------------------------ variants


def changed(base: dict[str, np.ndarray], drop: str | None = None,
            **arrays: np.ndarray) -> dict[str, np.ndarray]:
    out = {k: v for k, v in base.items() if k != drop}
    out.update(arrays)
    return out


def canonical_variants() -> list[bytes]:
    b = canonical_arrays()
    notes = b["train_notes"]
    empty = {"train_notes": np.zeros(0, np.uint8), "train_step_sizes": np.zeros(0, np.uint8),
             "train_seq_lengths": np.zeros(0, np.int32)}
    cases = [
        b, changed(b, drop="valid_notes"), changed(b, extra=np.zeros(2)),
        changed(b, train_notes=notes.astype(np.float64)),
        changed(b, train_notes=np.array([60, None, 1, 2, 3, 4], object)),
        changed(b, train_notes=notes.reshape(2, 3)),
        changed(b, train_notes=np.array([60, 64, 67, 40, 20, 109], np.int16)),
        changed(b, train_step_sizes=np.array([3, 1, -1, 3, 0], np.int8)),
        changed(b, train_step_sizes=np.array([89, 0, 0, 0, 0], np.uint8)),
        changed(b, train_seq_lengths=np.array([3, 2, 1], np.int32)),
        changed(b, train_seq_lengths=np.array([3, 1], np.int32)),
        changed(b, train_seq_lengths=np.array([4, 1])),
        changed(b, train_seq_lengths=np.array([5, 0])),
        changed(b, **empty), changed(b, train_notes=notes.astype(">u2")),
        changed(b, train_step_sizes=b["train_step_sizes"].astype(bool)),
        changed(b, train_notes=notes.astype(str)), changed(b, train_notes=notes.astype(complex)),
        changed(b, test_notes=np.full(6, np.nan)),
    ]
    return [npz_bytes(c, compressed=j % 2 == 1) for j, c in enumerate(cases)]


def fraccaro_variants() -> list[bytes]:
    b = fraccaro_arrays()
    nan, half = b["x_train"].copy(), b["x_valid"].copy()
    nan[3, 1, 7], half[0, 0, 0] = np.nan, 0.5
    gap, zero = b["mask_test"].copy(), b["mask_test"].copy()
    gap[0, 1], zero[1] = 0, 0
    cases = [
        b, changed(b, x_train=nan), changed(b, x_valid=half),
        changed(b, u_valid=np.where(half == 0.5, np.inf, half)),
        changed(b, x_train=b["x_train"][:8], u_train=b["u_train"][:8]),
        changed(b, x_train=b["x_train"][:0], u_train=b["u_train"][:0]),
        changed(b, x_train=b["x_train"][:, :1], u_train=b["u_train"][:, :1]),
        changed(b, x_valid=b["x_valid"][..., :87], u_valid=b["u_valid"][..., :87]),
        changed(b, mask_test=gap), changed(b, mask_test=zero), changed(b, mask_test=gap * 2),
        changed(b, x_test=b["x_test"][:1]), changed(b, x_train=b["x_train"].astype(np.uint8)),
        changed(b, x_valid=b["x_valid"].astype(np.float16)), changed(b, drop="u_test"),
        changed(b, mask_test=b["mask_test"].astype(object)),
        changed(b, mask_test=b["mask_test"][..., None]),
    ]
    return [npz_bytes(c, compressed=j % 2 == 1) for j, c in enumerate(cases)]


def user_variants() -> list[bytes]:
    b = user_arrays()
    nan, inf = b["train"].copy(), b["valid_1"].copy()
    nan[1, 3, 2], inf[0, 4] = np.nan, -np.inf
    cases = [
        b, user_arrays(binary=True), changed(b, train=nan), changed(b, valid_1=inf),
        changed(b, train_lengths=np.array([4, 5, 3])),
        changed(b, train_lengths=np.array([4, 1, 3])),
        changed(b, train_lengths=np.array([4.0, 2, 3])), changed(b, valid=np.zeros((1, 3, 5))),
        changed(b, drop="valid_0", valid_2=b["valid_1"]), changed(b, trian=b["train"]),
        changed(b, valid_0=b["valid_0"][:, 0]), changed(b, test_0=b["test_0"][:, :4]),
        changed(b, train=b["train"][:0], train_lengths=np.zeros(0, int)),
        changed(b, test_0=np.zeros((3, 0))), changed(b, train=b["train"] > 0.5),
        changed(b, test_0=(b["test_0"] * 10).astype(np.int64)),
        changed(b, valid_1=np.full((2, 5), 1e300)), changed(b, test_lengths=np.array([4])),
        changed(b, drop="test_0"),
    ]
    return [npz_bytes(c, compressed=j % 2 == 1) for j, c in enumerate(cases)]


def midi_variants() -> list[bytes]:
    ok = [(60, 0, 2), (64, 1, 3)]
    return [
        midi_bytes([]), midi_bytes(ok, channel=9), midi_bytes([(10, 0, 2), (120, 1, 3)]),
        midi_bytes([(60, 0, 1)]), midi_bytes([(60, 0, 2), (62, 2**27, 2**27 + 1)]),
        midi_bytes([(60, 0, 2), (62, 9_000_000, 9_000_001)], resolution=1),
        midi_bytes(ok, resolution=0), midi_bytes(ok, tempo=1), midi_bytes(ok, tempo=2**24 - 1),
        midi_bytes(ok, resolution=30000), midi_bytes([(60, 5, 2), (64, 3, 3)]),
        midi_bytes([(21, 0, 4), (108, 0, 4)]),
    ]


def wav_variants() -> list[bytes]:
    pcm = pcm16()
    floats = np.sin(np.arange(32) / 3).astype("<f4")
    nan = floats.copy()
    nan[5] = np.nan
    list_chunk = b"LIST" + (4).to_bytes(4, "little") + b"INFO"
    return [
        wav_bytes(pcm, 2), wav_bytes(bytes(range(40, 104)), 1),
        wav_bytes(floats.tobytes(), 4, tag=3),
        wav_bytes(floats.astype("<f8").tobytes(), 8, tag=3), wav_bytes(nan.tobytes(), 4, tag=3),
        wav_bytes(pcm, 2, channels=2), wav_bytes(pcm, 2, rate=16000), wav_bytes(b"", 2),
        wav_bytes(pcm, 2, tag=2), wav_bytes(pcm, 2, channels=0), wav_bytes(pcm, 2, bits=12),
        wav_bytes(pcm[:63], 3), wav_bytes(pcm, 8), wav_bytes(pcm[:60], 5),
        wav_bytes(pcm, 2, riff=b"RF64"), wav_bytes(pcm, 2, extra=list_chunk),
        wav_bytes(pcm, 2, data_size=2**31), wav_bytes(pcm[:63], 1, bits=8),
        wav_bytes(pcm, 4, tag=3, bits=16), wav_bytes(pcm, 2, rate=0),
    ]


def sphere_variants() -> list[bytes]:
    pcm = np.round(3000 * np.cos(np.arange(48) / 5)).astype("<i2")
    return [
        sphere_bytes(pcm.astype(">i2"), {"sample_byte_format": "-s2 10"}),
        sphere_bytes(pcm, {"channel_count": "-i 2", "sample_count": "-i 24"}),
        sphere_bytes(pcm, {"channel_count": "-i 0"}), sphere_bytes(pcm, {"sample_rate": None}),
        sphere_bytes(pcm, {"sample_rate": "-s3 abc"}), sphere_bytes(pcm, {"sample_rate": "-i -5"}),
        sphere_bytes(pcm, {"sample_count": "-i 1000000000000"}),
        sphere_bytes(pcm, size_line="x"), sphere_bytes(pcm, size_line="99999999"),
        sphere_bytes(pcm, end=False), sphere_bytes(pcm, {"sample_coding": "-s4 ulaw"}),
        sphere_bytes(pcm, {"sample_n_bytes": "-i 1"}), sphere_bytes(pcm, {"sample_count": None}),
        sphere_bytes(pcm, {"channel_count": "-i 5", "sample_count": None}),
        sphere_bytes(pcm, {"sample_rate": "-i " + "9" * 5000}),
        sphere_bytes(pcm[:0], {"sample_count": "-i 0"}), sphere_bytes(pcm)[:-1],
    ]


def pickle_variants() -> list[bytes]:
    import collections

    good = seed_pickle_object()

    def with_train(train: object) -> dict:
        return {**good, "train": train}

    nested: list = [60]
    for _ in range(100):
        nested = [nested]
    cases = [pickle_bytes(good, p) for p in range(6)]
    cases += [pickle_bytes(o) for o in (
        {"train": good["train"], "valid": good["valid"]}, with_train([[[20]]]),
        with_train([[[60.5]]]), with_train([[["60"]]]), with_train([[[True]]]),
        with_train([[nested]]), with_train([]), with_train([[]]), with_train([[60]]),
        with_train([[[10**30]]]), with_train([[[np.int64(60), np.float64(64.0)]]]),
        with_train([[[float("nan")]]]), collections.OrderedDict(good), [good],
        with_train([[np.array([60, 64])]]),
    )]
    return cases


# ------------------------------------------------------------------------------ fuzz tests

NPZ_MAGIC = b"PK\x03\x04"


def test_fuzz_canonical_npz(tmp_path: Path) -> None:
    fuzz(tmp_path, "fuzz-canonical.npz", npz_bytes(canonical_arrays()), canonical_variants(),
         NPZ_MAGIC, lambda p, i: load_canonical_npz(p, "fuzz"), check_dataset)


def test_fuzz_fraccaro_npz(tmp_path: Path) -> None:
    fuzz(tmp_path, "fuzz-fraccaro.npz", npz_bytes(fraccaro_arrays()), fraccaro_variants(),
         NPZ_MAGIC, lambda p, i: load_fraccaro(p, "fuzz"), check_dataset)


def test_fuzz_user_arrays_npz(tmp_path: Path) -> None:
    fuzz(tmp_path, "fuzz-arrays.npz", npz_bytes(user_arrays()), user_variants(), NPZ_MAGIC,
         lambda p, i: load_arrays(p), check_dataset)


def _read_midi(path: Path, i: int) -> np.ndarray:
    if i % 2:
        return read_midi(path, step_seconds=0.125, transpose_to_c=i % 3 == 0)
    return read_midi(path, steps_per_beat=4)


def test_fuzz_read_midi(tmp_path: Path) -> None:
    fuzz(tmp_path, "fuzz.mid", seed_midi(), midi_variants(), b"MThd\x00\x00\x00\x06",
         _read_midi, check_roll)


def test_fuzz_midi_folder(tmp_path: Path) -> None:
    """Two good files and one fuzzed file: with ``skip_bad`` a bad file is skipped (and the
    folder is then too small, an error naming the folder); without it the error names it."""
    folder = tmp_path / "fuzz-folder"
    folder.mkdir()
    for k in range(2):
        roll = np.zeros((4 + k, 88), np.float32)
        roll[[0, 1, 3 + k], [30, 40 + k, 50]] = 1.0
        write_midi(roll, folder / f"good{k}.mid", 0.125)

    def load(path: Path, i: int) -> SequenceDataset:
        data = load_midi_folder(folder, skip_bad=i % 2 == 0)
        assert "bad.mid" in sum(data.info["files"].values(), [])
        return data

    def named(message: str, path: Path) -> bool:
        return path.name in message or f"{folder.name}: 2 readable" in message

    fuzz(folder, "bad.mid", seed_midi(), midi_variants(), b"MThd\x00\x00\x00\x06", load,
         check_dataset, named)


def test_fuzz_read_wav(tmp_path: Path) -> None:
    fuzz(tmp_path, "fuzz.wav", wav_bytes(pcm16(), 2), wav_variants(), b"RIFF\x00\x01\x00\x00WAVE",
         lambda p, i: read_wav(p, 8000), check_signal)


def test_fuzz_read_sphere(tmp_path: Path) -> None:
    fuzz(tmp_path, "fuzz.sph", seed_sphere(), sphere_variants(), b"NIST_1A\n   256\n",
         lambda p, i: read_sphere(p), check_sphere)


def test_fuzz_restricted_unpickler(tmp_path: Path) -> None:
    def load(path: Path, i: int) -> dict[str, np.ndarray]:
        return convert(safe_load_pickle(path.read_bytes(), path.name), path.name)

    fuzz(tmp_path, "fuzz.pickle", pickle_bytes(seed_pickle_object()), pickle_variants(),
         b"\x80\x02", load, check_canonical)


# ------------------------------------------------------------------------------ properties


@st.composite
def rolls(draw, min_steps: int = 1, max_steps: int = 10) -> list[np.ndarray]:
    n = draw(st.integers(1, 4))
    return [draw(hnp.arrays(np.bool_, st.tuples(st.integers(min_steps, max_steps),
                                                st.just(88)))).astype(np.float32)
            for _ in range(n)]


@PROPERTY
@given(rolls())
def test_notes_round_trip_property(pieces: list[np.ndarray]) -> None:
    enc = notes_from_rolls(pieces)
    back = rolls_from_notes(enc["notes"], enc["step_sizes"], enc["seq_lengths"])
    assert len(back) == len(pieces)
    assert all(np.array_equal(a, b) for a, b in zip(pieces, back, strict=True))


@st.composite
def user_sets(draw) -> dict[str, list[np.ndarray]]:
    """Sequences (T >= 2, D shared) per split, binary or real-valued (float32-exact)."""
    dim = draw(st.integers(1, 5))
    binary = draw(st.booleans())
    elements = (st.sampled_from([0.0, 1.0]) if binary else
                st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False, width=32))
    out = {}
    for s in SPLITS:
        out[s] = [draw(hnp.arrays(np.float32, (draw(st.integers(2, 6)), dim), elements=elements))
                  for _ in range(draw(st.integers(1, 3)))]
    return out


def save_user_set(path: Path, sets: dict[str, list[np.ndarray]], padded: str) -> None:
    """Split ``padded`` as one (N, T, D) array with lengths, the others as numbered arrays."""
    arrays: dict[str, np.ndarray] = {}
    for s, seqs in sets.items():
        if s == padded:
            t = max(len(x) for x in seqs)
            block = np.zeros((len(seqs), t, seqs[0].shape[1]), np.float32)
            for i, x in enumerate(seqs):
                block[i, :len(x)] = x
            arrays[s], arrays[f"{s}_lengths"] = block, np.array([len(x) for x in seqs])
        else:
            arrays.update({f"{s}_{i}": x for i, x in enumerate(seqs)})
    path.write_bytes(npz_bytes(arrays))


@PROPERTY
@given(user_sets(), st.sampled_from(SPLITS))
def test_user_arrays_load_any_valid_shapes(tmp_path: Path, sets, padded: str) -> None:
    path = tmp_path / "mine.npz"
    save_user_set(path, sets, padded)
    data = load_arrays(path)
    check_dataset(data)
    values = np.concatenate([x.ravel() for seqs in sets.values() for x in seqs])
    assert data.binary == bool(np.isin(values, (0.0, 1.0)).all())
    for s in SPLITS:
        got = data.split(s).x
        assert len(got) == len(sets[s])
        assert all(np.array_equal(a, b) for a, b in zip(got, sets[s], strict=True))


@PROPERTY
@given(user_sets(), st.sampled_from(SPLITS), st.sampled_from(SPLITS),
       st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_user_arrays_reject_nan_or_inf_anywhere(tmp_path: Path, sets, padded: str, split: str,
                                                bad: float, data) -> None:
    seqs = sets[split]
    i = data.draw(st.integers(0, len(seqs) - 1))
    t = data.draw(st.integers(0, len(seqs[i]) - 1))
    d = data.draw(st.integers(0, seqs[i].shape[1] - 1))
    seqs[i][t, d] = bad
    path = tmp_path / "poisoned.npz"
    save_user_set(path, sets, padded)
    with pytest.raises(DataError, match="expected finite values") as err:
        load_arrays(path)
    assert "poisoned.npz" in str(err.value) and f"[{split}]" in str(err.value)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rolls(max_steps=12).map(lambda r: r[0]), st.integers(0, 87),
       st.sampled_from([0.1, 0.25, 1 / 3]))
def test_midi_round_trip_property(tmp_path: Path, roll: np.ndarray, last: int,
                                  step: float) -> None:
    roll[-1, last] = 1.0  # trailing silence is not stored in a MIDI file
    write_midi(roll, tmp_path / "r.mid", step)
    assert np.array_equal(read_midi(tmp_path / "r.mid", step_seconds=step), roll)


def test_pickle_seed_round_trip() -> None:
    """The fuzzed pickle seed is itself valid (so bit flips start from a loadable file)."""
    arrays = convert(safe_load_pickle(pickle.dumps(seed_pickle_object()), "seed"), "seed")
    check_canonical(arrays)
