"""Canonical-set download: restricted unpickling, conversion, hash check, failure messages.

No test touches the network: every fetch goes through a fake ``url_opener``.
"""

from __future__ import annotations

import io
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from srnn.data import load_dataset
from srnn.data.download import (
    ARRAY_KEYS,
    KNOWN_SHA256,
    RestrictedUnpickler,
    arrays_sha256,
    convert,
    download,
    safe_load_pickle,
)
from srnn.data.music import rolls_from_notes
from srnn.errors import DataError


def nested_from_npz(path: Path) -> dict[str, list]:
    """The original pickle's structure (split -> sequences -> steps -> notes, numpy int64)."""
    d = np.load(path, allow_pickle=False)
    out = {}
    for s in ("train", "valid", "test"):
        notes = [np.int64(n) for n in d[f"{s}_notes"]]
        sizes = d[f"{s}_step_sizes"].tolist()
        pos = step = 0
        seqs = []
        for length in d[f"{s}_seq_lengths"].tolist():
            seq = []
            for k in sizes[step:step + length]:
                seq.append(notes[pos:pos + k])
                pos += k
            step += length
            seqs.append(seq)
        out[s] = seqs
    return out


class FakeResponse(io.BytesIO):
    pass


def opener_for(payload: bytes, calls: list | None = None):
    def fake(url: str, timeout: float | None = None) -> FakeResponse:
        if calls is not None:
            calls.append((url, timeout))
        return FakeResponse(payload)
    return fake


# --- restricted unpickler ----------------------------------------------------------------------

@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_unpickler_loads_containers_and_numpy_scalars(protocol: int) -> None:
    obj = {"train": [[[np.int64(60), np.int64(64)], []], [(np.uint8(21),)]],
           "valid": {"a": np.float32(1.5), "b": np.float64(-2.25), "c": {1, 2}},
           "test": [1, 2.5, "x", (3, 4)]}
    data = pickle.dumps(obj, protocol=protocol)
    got = safe_load_pickle(data, "test.pickle")
    assert got == {"train": [[[60, 64], []], [(21,)]],
                   "valid": {"a": 1.5, "b": -2.25, "c": {1, 2}},
                   "test": [1, 2.5, "x", (3, 4)]}
    assert type(got["train"][0][0][0]) is int and type(got["valid"]["a"]) is float


def test_unpickler_reads_python2_style_numpy_scalars() -> None:
    # What numpy under Python 2 wrote: module numpy.core.multiarray, data as a byte string.
    data = (b"\x80\x02]q\x00(cnumpy.core.multiarray\nscalar\nq\x01cnumpy\ndtype\nq\x02"
            b"U\x02i8K\x00K\x01\x87Rq\x03(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            b"U\x08<\x00\x00\x00\x00\x00\x00\x00\x86Rq\x04c__builtin__\nset\nq\x05]q\x06K\x07a"
            b"\x85Rq\x07e.")
    assert safe_load_pickle(data, "py2.pickle") == [60, {7}]


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    data = pickle.dumps({"train": [Evil(marker)]}, protocol=2)
    with pytest.raises(DataError, match=r"evil\.pickle.*forbidden global .*system"):
        safe_load_pickle(data, "evil.pickle")
    assert not marker.exists()


@pytest.mark.parametrize("obj", [
    np.arange(3),                        # arrays need numpy's reconstructor
    np.array([1, 2], dtype=object)[0:1],
    Path("x"),
    print,
])
def test_unpickler_refuses_other_globals(obj: object) -> None:
    with pytest.raises(DataError, match="forbidden global"):
        safe_load_pickle(pickle.dumps(obj, protocol=2), "x.pickle")


def test_unpickler_refuses_object_dtype_and_garbage() -> None:
    # numpy.dtype is allowed only as an inert stand-in for integer/float codes
    data = b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R."
    with pytest.raises(DataError, match="not an integer or float"):
        safe_load_pickle(data, "dtype.pickle")
    with pytest.raises(DataError, match="garbage.pickle"):
        safe_load_pickle(b"not a pickle at all", "garbage.pickle")
    with pytest.raises(DataError, match="truncated.pickle"):
        safe_load_pickle(pickle.dumps([1, 2, 3])[:-3], "truncated.pickle")
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


# --- conversion --------------------------------------------------------------------------------

def test_convert_round_trip() -> None:
    obj = {"train": [[[64, 60], [], [62]], [[21, 108]]],
           "valid": [[[70.0, 60, 60]]],
           "test": [[[50], [55, 50]]]}
    arrays = convert(obj, "tiny")
    assert sorted(arrays) == sorted(ARRAY_KEYS)
    assert arrays["train_notes"].tolist() == [60, 64, 62, 21, 108]
    assert arrays["train_step_sizes"].tolist() == [2, 0, 1, 2]
    assert arrays["train_seq_lengths"].tolist() == [3, 1]
    assert arrays["valid_notes"].tolist() == [60, 70]  # sorted, a repeated note counts once
    assert arrays["train_notes"].dtype == np.uint8 and arrays["train_seq_lengths"].dtype == np.int32
    for s in ("train", "valid", "test"):
        rolls = rolls_from_notes(arrays[f"{s}_notes"], arrays[f"{s}_step_sizes"],
                                 arrays[f"{s}_seq_lengths"])
        assert len(rolls) == len(obj[s])
        for roll, seq in zip(rolls, obj[s], strict=True):
            want = np.zeros((len(seq), 88), dtype=np.float32)
            for t, step in enumerate(seq):
                want[t, [int(n) - 21 for n in step]] = 1
            np.testing.assert_array_equal(roll, want)


@pytest.mark.parametrize("obj,match", [
    ({"train": [[[60]]], "valid": [[[60]]]}, "train, valid, test"),
    ({"train": [[[20]]], "valid": [[[60]]], "test": [[[60]]]}, "outside 21..108"),
    ({"train": [[[109]]], "valid": [[[60]]], "test": [[[60]]]}, "outside 21..108"),
    ({"train": [[]], "valid": [[[60]]], "test": [[[60]]]}, "non-empty list of time steps"),
    ({"train": [], "valid": [[[60]]], "test": [[[60]]]}, "non-empty list of sequences"),
    ({"train": [[["60"]]], "valid": [[[60]]], "test": [[[60]]]}, "not a number"),
    ({"train": [[[60.5]]], "valid": [[[60]]], "test": [[[60]]]}, "whole MIDI"),
    ({"train": [[60]], "valid": [[[60]]], "test": [[[60]]]}, "not a list of notes"),
])
def test_convert_rejects_bad_content(obj: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        convert(obj, "bad")


def test_arrays_sha256_depends_on_content_dtype_and_shape() -> None:
    arrays = convert({"train": [[[60]]], "valid": [[[62]]], "test": [[[64]]]}, "t")
    h = arrays_sha256(arrays)
    assert h == arrays_sha256({k: a.copy() for k, a in arrays.items()})
    assert h != arrays_sha256({**arrays, "test_notes": np.array([65], dtype=np.uint8)})
    assert h != arrays_sha256({**arrays, "test_notes": np.array([64], dtype=np.int64)})
    assert h != arrays_sha256({**arrays, "test_notes": np.array([[64]], dtype=np.uint8)})
    with pytest.raises(DataError, match="missing array"):
        arrays_sha256({k: a for k, a in arrays.items() if k != "valid_notes"})


@pytest.mark.parametrize("name", sorted(KNOWN_SHA256))
def test_known_hashes_match_local_copies(name: str, data_dir: Path) -> None:
    path = data_dir / f"{name}.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    d = np.load(path, allow_pickle=False)
    assert arrays_sha256({k: d[k] for k in ARRAY_KEYS}) == KNOWN_SHA256[name]


# --- download ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jsb_payload() -> tuple[dict, bytes]:
    from conftest import shared_data_dir

    d = shared_data_dir()
    if d is None:
        pytest.skip("real data sets not found: set SRNN_DATA_DIR to a directory with jsb.npz")
    obj = nested_from_npz(d / "jsb.npz")
    return obj, pickle.dumps(obj, protocol=2)


def test_download_writes_verified_file(tmp_path: Path, jsb_payload) -> None:
    _, payload = jsb_payload
    calls: list = []
    path = download("jsb", root=tmp_path, url_opener=opener_for(payload, calls), timeout=7)
    assert calls == [("http://www-etud.iro.umontreal.ca/~boulanni/icml2012/"
                      "JSB%20Chorales.pickle", 7)]
    assert path == tmp_path / "jsb.npz" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jsb.npz"]  # no temporary left
    d = np.load(path, allow_pickle=False)
    assert arrays_sha256({k: d[k] for k in ARRAY_KEYS}) == KNOWN_SHA256["jsb"]
    ds = load_dataset("jsb", root=tmp_path)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (229, 76, 77)
    assert ds.dim == 88 and ds.protocol == "canonical"


def test_download_uses_data_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    jsb_payload) -> None:
    monkeypatch.setenv("SRNN_DATA_DIR", str(tmp_path / "env"))
    path = download("jsb", url_opener=opener_for(jsb_payload[1]))
    assert path == tmp_path / "env" / "jsb.npz" and path.is_file()


def test_tampered_download_writes_nothing(tmp_path: Path, jsb_payload) -> None:
    obj, _ = jsb_payload
    tampered = {s: [[list(step) for step in seq] for seq in seqs] for s, seqs in obj.items()}
    step = tampered["test"][5][3]
    step[-1] = int(step[-1]) + 1 if int(step[-1]) < 108 else int(step[-1]) - 1
    step.sort()
    with pytest.raises(DataError, match="SHA-256"):
        download("jsb", root=tmp_path, url_opener=opener_for(pickle.dumps(tampered)))
    assert list(tmp_path.iterdir()) == []


def test_malicious_download_writes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    out = tmp_path / "out"
    with pytest.raises(DataError, match="forbidden global"):
        download("jsb", root=out, url_opener=opener_for(pickle.dumps(Evil(marker))))
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("error", [
    urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
    urllib.error.URLError(OSError("line one\nline two")),
    TimeoutError("timed out"),
    ConnectionRefusedError(111, "Connection refused"),
])
def test_fetch_failure_is_one_line_with_hints(tmp_path: Path, error: Exception) -> None:
    def failing(url: str, timeout: float | None = None):
        raise error

    with pytest.raises(DataError) as info:
        download("nottingham", root=tmp_path, url_opener=failing)
    msg = str(info.value)
    assert "SRNN_DATA_DIR" in msg and "--data-dir" in msg and "nottingham" in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_unknown_name() -> None:
    with pytest.raises(DataError, match="choose one of"):
        download("bach", url_opener=opener_for(b""))
