"""The embedded Bach chorale set: roll rules, key finding, the full build, split and cache."""

from __future__ import annotations

import time
from pathlib import Path

import music21
import numpy as np
import pytest
from music21 import note, stream

from srnn.data import bach, load_dataset
from srnn.data.pianoroll import find_key, shift_to_c
from srnn.errors import DataError


def score(notes: list[tuple[int, float, float]], name: str = "Soprano") -> stream.Score:
    s = stream.Score()
    p = stream.Part()
    p.partName = name
    for midi, offset, length in notes:
        n = note.Note(midi, quarterLength=length) if length else note.Note(midi).getGrace()
        p.insert(offset, n)
    s.insert(0, p)
    return s


def active(roll: np.ndarray) -> list[list[int]]:
    return [(np.nonzero(step)[0] + 21).tolist() for step in roll]


def test_roll_grid_rule() -> None:
    """A note sounds at step k when onset <= k < onset + duration (C major: no shift)."""
    s = score([(60, 0, 1.5), (64, 0.5, 0.25), (67, 1.5, 1), (72, 2.5, 0.5),
               (60, 3, 1), (64, 3, 1), (67, 3, 1), (62, 4, 0)])
    roll = bach.score_to_roll(s)
    assert roll.dtype == np.float32 and roll.shape == (4, 88)
    assert active(roll) == [[60], [60], [67], [60, 64, 67]]


def test_roll_drops_leading_silence_and_ignores_other_parts() -> None:
    s = score([(60, 2, 1), (64, 3, 1), (67, 3, 1)])
    horn = stream.Part()
    horn.partName = "Horn 1"
    horn.insert(0, note.Note(30, quarterLength=1))
    s.insert(0, horn)
    assert active(bach.score_to_roll(s)) == [[60], [64, 67]]


def test_roll_transposes_to_c() -> None:
    d_major = [(m, t, 1.0) for t in range(8) for m in (62, 66, 69)]
    roll = bach.score_to_roll(score(d_major))
    assert active(roll)[0] == [60, 64, 67]  # D major moved down 2 semitones


def test_notes_pushed_out_of_range_raise() -> None:
    d_major = [(m, 0, 2.0) for m in (62, 66, 69)] + [(22, 2, 1.0)]
    with pytest.raises(DataError, match="outside 21..108"):
        bach.score_to_roll(score(d_major))


def test_shift_to_c() -> None:
    shifts = [shift_to_c(t) for t in range(12)]
    assert all(-6 <= s <= 5 and (t + s) % 12 == 0 for t, s in enumerate(shifts))
    assert shifts[7] == 5 and shifts[2] == -2 and shifts[6] == -6


def test_find_key_matches_music21_analysis() -> None:
    from music21 import converter, corpus

    for name in ("bach/bwv66.6", "bach/bwv57.8", "bach/bwv269"):
        path = corpus.getWork(name)
        s = converter.parse(path[0] if isinstance(path, list) else path, forceSource=True)
        hist = np.zeros(12)
        for n in s.flatten().notes:
            for p in n.pitches:
                hist[p.pitchClass] += float(n.duration.quarterLength)
        want = s.analyze("key")
        assert find_key(hist) == (want.tonic.pitchClass, want.mode)


def test_split_indices_rule() -> None:
    a, b = bach.split_indices(350), bach.split_indices(350)
    assert [len(a[s]) for s in ("train", "valid", "test")] == [210, 70, 70]
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(350))
    assert all(np.all(np.diff(v) > 0) for v in a.values())


# --- the full build (about 20-25 s), once per test session -----------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("srnn-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRNN_CACHE_DIR", str(cache))
        start = time.perf_counter()
        ds = bach.load_bach()
        seconds = time.perf_counter() - start
        yield cache, ds, seconds


@pytest.mark.slow
def test_build_writes_cache(built) -> None:
    cache, ds, _ = built
    assert bach.bach_path() == cache / "bach.npz" and (cache / "bach.npz").is_file()
    assert ds.name == "bach" and ds.protocol == "bach" and ds.time_step == "quarter note"


@pytest.mark.slow
def test_split_sizes_as_documented(built) -> None:
    _, ds, _ = built
    sizes = [len(ds.split(s)) for s in ("train", "valid", "test")]
    n = sum(sizes)
    assert 340 <= n <= 371
    assert sizes == [round(0.6 * n), round(0.2 * n), n - round(0.6 * n) - round(0.2 * n)]
    if music21.__version__ == "10.5.1":
        assert sizes == [210, 70, 70]  # 371 Riemenschneider numbers, 350 distinct scores


@pytest.mark.slow
def test_rolls_are_binary_and_non_empty(built) -> None:
    _, ds, _ = built
    for s in ("train", "valid", "test"):
        for x in ds.split(s).x:
            assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 88
            assert set(np.unique(x).tolist()) <= {0.0, 1.0}
            assert x[0].any() and x[-1].any()


@pytest.mark.slow
def test_chorales_end_on_c(built) -> None:
    """Transposition works: the final bass note is C for the large majority (84% measured)."""
    _, ds, _ = built
    last_bass = [int(np.nonzero(x[-1])[0][0]) + 21
                 for s in ("train", "valid", "test") for x in ds.split(s).x]
    assert np.mean([m % 12 == 0 for m in last_bass]) > 0.8


@pytest.mark.slow
def test_second_load_reads_cache(built, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, ds, _ = built
    monkeypatch.setenv("SRNN_CACHE_DIR", str(cache))

    def no_build() -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(bach, "build_bach", no_build)
    start = time.perf_counter()
    again = bach.load_bach()
    assert time.perf_counter() - start < 5
    via_name = load_dataset("bach")
    for other in (again, via_name):
        for s in ("train", "valid", "test"):
            a, b = ds.split(s), other.split(s)
            assert len(a) == len(b)
            assert all(np.array_equal(x, y) for x, y in zip(a.x, b.x, strict=True))
            assert all(np.array_equal(x, y) for x, y in zip(a.u, b.u, strict=True))
    assert {p.name for p in Path(cache).iterdir()} == {"bach.npz"}
