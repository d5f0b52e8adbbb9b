"""Progress bars (:mod:`srnn.progress`): live on a terminal, plain lines without carriage returns
elsewhere, drawn when forced, silenced by ``--no-progress`` on every command that has bars."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from srnn import progress
from srnn.cli import main, parse_args
from srnn.progress import default_enabled, progress_bar
from srnn.train.trainer import train

TINY = ["--dataset", "jsb", "--subset", "3", "--epochs", "1", "--z-dim", "4", "--d-dim", "8",
        "--a-dim", "8", "--hidden", "8", "--feature-dim", "8", "--feature-layers", "1"]
TINY_MODEL = {"z_dim": 4, "d_dim": 8, "a_dim": 8, "hidden": 8, "feature_dim": 8,
              "feature_layers": 1}
# What each command with bars needs besides --no-progress (nothing is run: parsing only).
COMMANDS = {
    "train": ["train", "--out", "{tmp}/run"],
    "evaluate": ["evaluate", "{tmp}/run", "--bound", "iwae"],
    "tune": ["tune", "{tmp}/run", "--out", "{tmp}/tuned"],
    "compare": ["compare", "--out", "{tmp}/cmp"],
    "reproduce": ["reproduce", "poster", "--out", "{tmp}/rep"],
}


def run_bar(enabled: bool | None, n: int = 20, leave: bool = True) -> str:
    out = io.StringIO()  # not a terminal
    bar = progress_bar(range(n), desc="work", unit="item", enabled=enabled, stream=out,
                       leave=leave)
    for i in bar:
        bar.set_postfix(i=i)
    return out.getvalue()


def test_off_a_terminal_a_bar_is_plain_lines_without_carriage_returns(monkeypatch):
    monkeypatch.setattr(progress, "LINE_SECONDS", 3600.0)  # no line on the way
    text = run_bar(None)
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == [text.splitlines()[0]]  # the end of a kept bar only
    assert text.startswith("work: 20/20 [") and "i=19" in text
    assert run_bar(None, leave=False) == ""  # a bar that is not kept, and ends soon
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # a line at every redraw
    lines = run_bar(None).splitlines()
    assert len(lines) > 2 and lines[0].startswith("work: 0/20")
    assert "\r" not in run_bar(None, leave=False)


def test_a_forced_bar_is_drawn_in_place_even_off_a_terminal():
    text = run_bar(True)
    assert "\r" in text and "20/20" in text


def test_no_progress_writes_nothing_down_to_the_bars_inside(capsys):
    assert run_bar(False) == ""
    with default_enabled(False):  # what --no-progress sets for the whole command
        assert run_bar(None) == ""
        assert run_bar(True) != ""  # asked for by name, it still shows
    assert run_bar(None) != ""


def test_every_command_with_bars_accepts_no_progress(tmp_path):
    for name, args in COMMANDS.items():
        a = parse_args([x.format(tmp=tmp_path) for x in [*args, "--no-progress"]])
        assert a.command == name and a.no_progress is True
        assert parse_args([x.format(tmp=tmp_path) for x in args]).no_progress is False


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    run = tmp_path_factory.mktemp("progress") / "run"
    assert main(["train", *TINY, "--data-dir", str(data_dir), "--out", str(run),
                 "--no-progress"]) == 0
    return run


def test_a_training_off_a_terminal_writes_lines_and_no_carriage_return(tmp_path, data_dir,
                                                                      capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # its short epoch writes lines too
    assert main(["train", *TINY, "--data-dir", str(data_dir), "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "epoch 1: " in err and "\r" not in err


def test_a_training_draws_its_bar_when_forced(tmp_path, data_dir, capsys):
    train("jsb", tmp_path / "r", data_dir=data_dir, progress=True, model_options=TINY_MODEL,
          subset=3, epochs=1)
    err = capsys.readouterr().err
    assert "\repoch 1:" in err


def test_evaluate_with_a_particle_bound_shows_its_bar_unless_no_progress(tiny_run, data_dir,
                                                                        capsys):
    args = ["evaluate", str(tiny_run), "--bound", "iwae", "--samples", "2", "--data-dir",
            str(data_dir)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "iwae K=2: 3/3 [" in err and "\r" not in err  # the test split's 3 sequences
    assert main([*args, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "iwae K=2" not in captured.err
    assert json.loads(captured.out)["bound"] == "iwae"


def test_a_comparison_shows_its_jobs_finished(tmp_path, data_dir, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "jsb", "--models", "rnn", "--no-match", "--set",
                 "rnn.d_dim=8", "--set", "rnn.hidden=8", "--subset", "3", "--epochs", "1",
                 "--data-dir", str(data_dir), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "jobs: 1/1 [" in err and "\r" not in err
    assert "epoch 1" not in err  # the job itself draws nothing
