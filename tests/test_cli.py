"""The command line: train, evaluate, sample, data list, help and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pretty_midi
import pytest

from srnn.cli import main

TINY = ["--z-dim", "4", "--d-dim", "16", "--a-dim", "16", "--hidden", "24",
        "--feature-dim", "16", "--feature-layers", "1"]
RESULT_FIELDS = {"dataset", "model", "split", "elbo_per_step", "recon_per_step", "kl_per_step",
                 "steps", "sequences", "seconds", "elbo_mean_of_sequences"}
METRIC_FIELDS = {"epoch", "train_elbo", "valid_elbo", "kl_weight", "seconds"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from conftest import shared_data_dir

    data = shared_data_dir()
    if data is None:
        pytest.skip("real data sets not found: set SRNN_DATA_DIR to a directory with jsb.npz")
    out = tmp_path_factory.mktemp("run") / "jsb"
    rc = main(["train", "--dataset", "jsb", "--out", str(out), "--epochs", "2", "--subset", "12",
               "--data-dir", str(data), "--no-progress", *TINY])
    assert rc == 0
    return out, data


def test_train_writes_the_run_files(trained_run) -> None:
    out, _ = trained_run
    res = json.loads((out / "results.json").read_text())
    assert RESULT_FIELDS <= set(res)
    assert res["split"] == "test" and res["dataset"] == "jsb" and res["model"] == "srnn"
    assert res["sequences"] == 12
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    assert all(METRIC_FIELDS <= set(ln) for ln in lines)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_options"]["z_dim"] == 4 and cfg["train"]["epochs"] == 2
    # Finished: best.pt keeps the weights and settings, the resumable state is gone.
    assert (out / "best.pt").is_file() and not (out / "last.pt").exists()


def test_evaluate_recomputes_results(trained_run, capsys) -> None:
    out, data = trained_run
    trained = json.loads((out / "results.json").read_text())  # what training wrote
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data-dir", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    # The same checkpoint, split and seed: evaluation gives training's test figure again.
    assert printed["elbo_per_step"] == pytest.approx(trained["elbo_per_step"], abs=1e-9)
    assert printed["steps"] == trained["steps"]
    res = json.loads((out / "results.json").read_text())
    assert res["elbo_per_step"] == printed["elbo_per_step"]
    # Another bound is merged into results.json; what was there stays.
    assert main(["evaluate", str(out), "--data-dir", str(data), "--bound", "iwae",
                 "-K", "2"]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert {k: merged[k] for k in trained} == {**trained, **{k: res[k] for k in trained}}
    assert merged["iwae_k2_per_step"] >= merged["elbo_per_step"] - 0.5


def test_sample_writes_midi(trained_run, monkeypatch) -> None:
    out, _ = trained_run
    monkeypatch.delenv("SRNN_DATA_DIR", raising=False)
    target = out / "sample.mid"
    # Sampling needs only the run directory, not the data set it was trained on.
    assert main(["sample", str(out), "--out", str(target), "--length", "16", "--num", "2"]) == 0
    for i in range(2):
        pm = pretty_midi.PrettyMIDI(str(out / f"sample-{i}.mid"))
        assert pm.get_end_time() <= 16 * 0.5 + 1e-6


def test_data_list(data_dir, capsys) -> None:
    assert main(["data", "list", "--data-dir", str(data_dir)]) == 0
    text = capsys.readouterr().out
    assert "jsb-fraccaro" in text and str(data_dir) in text


def test_missing_data_is_one_clear_line(tmp_path, capsys) -> None:
    rc = main(["train", "--dataset", "jsb", "--out", str(tmp_path / "r"),
               "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "SRNN_DATA_DIR" in err and "--data-dir" in err


def _commands(parser, path=()):
    """Every command of the parser (``("train",)``, ``("data", "list")``, ...) and its parser."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_help_describes_every_option(capsys) -> None:
    """Every option of every command appears, with a description, in its --help."""
    from srnn.cli import _parser

    commands = list(_commands(_parser()))
    assert {c for c, _ in commands} >= {(), ("train",), ("evaluate",), ("sample",),
                                        ("reconstruct",), ("plot",), ("compare",),
                                        ("reproduce",), ("data", "list"),
                                        ("data", "download"), ("data", "export")}
    # and as a program
    out = subprocess.run([sys.executable, "-m", "srnn.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("usage: srnn")
    for cmd, parser in commands:
        with pytest.raises(SystemExit) as done:
            main([*cmd, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: srnn")
        for action in parser._actions:
            if not action.option_strings or action.help == "==SUPPRESS==":
                continue
            assert action.help, f"srnn {' '.join(cmd)} {action.option_strings[0]}: no help"
            for opt in action.option_strings:
                assert opt in out, f"srnn {' '.join(cmd)} --help does not list {opt}"
