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
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()


def test_evaluate_recomputes_results(trained_run, capsys) -> None:
    out, data = trained_run
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data-dir", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    res = json.loads((out / "results.json").read_text())
    assert printed["elbo_per_step"] == pytest.approx(res["elbo_per_step"], abs=1e-9)


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


@pytest.mark.parametrize("cmd", [[], ["train"], ["evaluate"], ["sample"], ["data", "download"]])
def test_help_describes_every_option(cmd: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "srnn.cli", *cmd, "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: srnn" in out
    if cmd == ["train"]:
        for opt in ("--dataset", "--filtering", "--no-res-q", "--z-dim", "--resume", "--lr"):
            assert opt in out
