"""``srnn report``: a run's page and a folder's index page reference only files written beside
them, link every run, escape every text and name no external URL (no browser here; the pages
in a real headless Chromium: tests/test_report_browser.py)."""

from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from srnn.cli import main
from srnn.music.midi import write_midi
from srnn.report_page import PAGE, RUNS, markdown
from srnn.train.run_dir import REPORT

TINY = ["--z-dim", "2", "--d-dim", "8", "--a-dim", "8", "--hidden", "8", "--feature-dim", "8",
        "--no-progress", "--threads", "1"]
FSDD = Path(os.environ.get("SRNN_DATA_DIR", "")) / "speech" / "fsdd" / "files.csv"


def tune_folder(folder: Path, pieces: int = 6, steps: int = 24) -> Path:
    """A data set of short MIDI files (1/4 beat steps of 0.125 s, three notes a step): a music
    run that trains, samples and renders in seconds."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(pieces):
        roll = np.zeros((steps, 88), np.float32)
        for t in range(0, steps, 2):
            roll[t:t + 2, rng.choice(np.arange(36, 60), 3, replace=False)] = 1
        write_midi(roll, folder / f"tune-{i}.mid", 0.125)
    return folder


def train_tiny_run(tmp: Path, out: Path, epochs: int = 2) -> Path:
    """A tiny SRNN trained for ``epochs`` epochs on :func:`tune_folder` into ``out``."""
    tunes = tmp / "tunes" if (tmp / "tunes").is_dir() else tune_folder(tmp / "tunes")
    assert main(["train", "--dataset", str(tunes), "--out", str(out), "--epochs", str(epochs),
                 *TINY]) == 0
    return out


class Links(HTMLParser):
    """The tags of a page and every ``src`` / ``href`` it references."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def local_files(page: Path, root: Path) -> list[Path]:
    """The files ``page`` references, each checked to be a relative link that stays inside
    ``root`` (no scheme, no host: the page names no external URL)."""
    files = []
    for ref in parse(page).refs:
        if ref.startswith("#") or ref == "data:,":  # a section anchor; the empty favicon
            continue
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc and not ref.startswith("/"), ref
        target = (page.parent / unquote(parts.path)).resolve()
        assert target.is_relative_to(root.resolve()), ref
        files.append(target)
    return files


@pytest.fixture(scope="module")
def music_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    return train_tiny_run(tmp, tmp / "run")


def test_a_run_page_references_only_files_written_beside_it(music_run, capsys) -> None:
    capsys.readouterr()
    assert main(["report", str(music_run), "--num", "2", "--length", "12", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    page = music_run / REPORT / PAGE
    assert printed["page"] == str(page) and printed["notes"] == []
    files = local_files(page, page.parent)
    assert files and all(f.is_file() and f.stat().st_size > 0 for f in files)
    names = {f.name for f in files}
    # The test piece and its reconstruction, two samples and two continuations, each heard.
    wavs = {"piece.wav", "reconstruction.wav", "sample-0.wav", "sample-1.wav",
            "continuation-0.wav", "continuation-1.wav"}
    assert wavs | {"curves.png", "rolls.png", "kl.png", "sample-0.png", "continuation-1.png",
                   "sample-1.mid", "sample_stats.json"} <= names
    links = parse(page)
    assert links.tags["audio"] == len(wavs) and links.tags["img"] >= 7
    assert "script" not in links.tags
    for f in files:
        head = f.read_bytes()[:4]
        assert head == {".png": b"\x89PNG", ".wav": b"RIFF", ".mid": b"MThd"}.get(f.suffix, head)
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert "srnn train --config" in text and "elbo_per_step" in text


def test_the_index_page_links_every_run_and_escapes_their_names(music_run, tmp_path,
                                                                 capsys) -> None:
    sweep = tmp_path / "sweep"
    names = ["srnn-s0-aa", 'odd <b>&"name']
    for name in names:
        shutil.copytree(music_run, sweep / "jobs" / name, ignore=shutil.ignore_patterns(REPORT))
    (sweep / "jobs" / "not-a-run").mkdir()
    (sweep / "plan.json").write_text(json.dumps({"experiment": "poster", "command":
                                                 "srnn reproduce poster <x>"}))
    (sweep / "tables.md").write_text("# Results <i>\n\n| model | test |\n|---|---:|\n"
                                     "| `srnn` | **-7.1** |\n\n- a [link](https://example.org)\n")
    (sweep / "results.csv").write_text("job_id,test_per_step\nsrnn-s0-aa,-7.123456789\n")
    assert main(["report", str(sweep), "--num", "1", "--length", "4", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    index = sweep / REPORT / PAGE
    assert printed["page"] == str(index) and printed["runs"] == printed["pages"] == 2
    files = local_files(index, index.parent)
    for name in names:
        run_page = index.parent / RUNS / "jobs" / name / PAGE
        assert run_page in files  # linked, and written
        assert index in local_files(run_page, index.parent)  # and links back
        assert all(f.is_file() for f in local_files(run_page, index.parent))
    text = index.read_text(encoding="utf-8")
    assert "odd &lt;b&gt;&amp;&quot;name" in text and "<b>&" not in text
    assert "srnn reproduce poster &lt;x&gt;" in text and "Results &lt;i&gt;" in text
    assert "<code>srnn</code>" in text and "<strong>-7.1</strong>" in text
    assert "https://" not in text and "-7.12346" in text  # the CSV's rows, rounded
    assert "not-a-run" not in text


def test_markdown_tables_escape_everything_and_keep_links_as_text() -> None:
    html = markdown("## A & B\n\n| a \\| b | c |\n|:--|--:|\n| <script> | *x* |\n\n"
                    "text with `<code>` and [a link](http://x.org)")
    assert "<h4>A &amp; B</h4>" in html and "<td>&lt;script&gt;</td>" in html
    assert "<th>a | b</th>" in html and '<td class=num><em>x</em></td>' in html
    assert "<code>&lt;code&gt;</code>" in html and "and a link" in html
    assert "<a " not in html and "http" not in html


def test_a_run_whose_data_are_gone_still_gets_a_page_of_what_it_holds(music_run,
                                                                       tmp_path) -> None:
    run = tmp_path / "moved"
    shutil.copytree(music_run, run, ignore=shutil.ignore_patterns(REPORT))
    config = json.loads((run / "config.json").read_text())
    config["dataset"] = str(tmp_path / "gone")  # the MIDI folder it was trained on
    (run / "config.json").write_text(json.dumps(config))
    assert main(["report", str(run), "--out", str(tmp_path / "page"), "--num", "1",
                 "--length", "6", "--no-progress"]) == 0
    page = tmp_path / "page" / PAGE
    names = {f.name for f in local_files(page, page.parent)}
    assert {"curves.png", "sample-0.png", "sample-0.wav"} <= names
    assert "piece.wav" not in names and "continuation-0.wav" not in names
    assert "could not be read" in page.read_text(encoding="utf-8")


def test_report_on_a_folder_without_runs_is_one_line_and_status_2(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("srnn: error: ") and "neither a run directory" in err
    assert len(err.splitlines()) == 1
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not FSDD.is_file(), reason="FSDD not found under $SRNN_DATA_DIR/speech/fsdd")
def test_a_speech_run_page_shows_waveforms_and_plays_its_samples(tmp_path) -> None:
    run = tmp_path / "speech"
    assert main(["train", "--dataset", "fsdd", "--out", str(run), "--subset", "8", "--epochs",
                 "1", *TINY]) == 0
    assert main(["report", str(run), "--num", "2", "--length", "6", "--no-progress"]) == 0
    page = run / REPORT / PAGE
    names = {f.name for f in local_files(page, page.parent)}
    assert {"curves.png", "speech.png", "piece.wav", "reconstruction.wav", "sample-0.wav",
            "sample-0.png", "sample-1.wav", "sample-1.png"} <= names
    assert parse(page).tags["audio"] == 4


def test_a_run_on_other_data_gets_its_results_curves_and_settings(tmp_path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "seq.npz", **{s: rng.normal(size=(n, 10, 3)).astype(np.float32)
                                      for s, n in (("train", 8), ("valid", 4), ("test", 4))})
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "seq.npz"), "--out", str(run),
                 "--epochs", "1", *TINY]) == 0
    assert main(["report", str(run), "--no-progress"]) == 0
    page = run / REPORT / PAGE
    assert {f.name for f in local_files(page, page.parent)} == {"curves.png"}
    text = page.read_text(encoding="utf-8")
    assert "No figures or samples of this run (modality other)" in text
    assert "elbo_per_step" in text and "srnn train --config" in text


def test_every_figure_of_an_evaluated_bound_is_in_the_results_table(tmp_path) -> None:
    from srnn.evaluate import BOUND_SUFFIXES
    from srnn.report_page import Page, _results_section
    from srnn.train.run_dir import RunDirectory

    page = Page(tmp_path, "run")
    figures = {f"iwae_k8{s}": -1.5 for s in BOUND_SUFFIXES}  # srnn evaluate's keys
    _results_section(page, RunDirectory(tmp_path), {"elbo_per_step": -2.0, **figures,
                                                    "iwae_k8_seconds": 3.0})
    main_table, rest = page.parts[2], "".join(page.parts[3:])
    assert "iwae_k8_per_sequence" in main_table and "_per_sequence" in "".join(BOUND_SUFFIXES)
    for key in figures:
        assert key in main_table and key not in rest, key
    assert "iwae_k8_seconds" in rest and "iwae_k8_seconds" not in main_table
