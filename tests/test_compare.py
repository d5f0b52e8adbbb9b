"""Parameter matching and the comparison command."""

from __future__ import annotations

import csv
import json

import pytest

from srnn.cli import main, parse_settings
from srnn.errors import ConfigError
from srnn.experiments.compare import plan
from srnn.experiments.sizes import count_parameters
from srnn.models import MODELS


def test_matched_parameter_counts_are_within_ten_percent() -> None:
    opts = plan(list(MODELS), x_dim=88, binary=True)
    target = count_parameters("srnn", {"x_dim": 88})
    for name, o in opts.items():
        n = count_parameters(name, o)
        assert abs(n / target - 1) < 0.10, (name, n, target)
    assert opts["srnn"]["d_dim"] == 300  # the reference keeps its own sizes


def test_hand_set_options_are_kept_and_others_scaled() -> None:
    opts = plan(["vrnn", "rnn"], x_dim=88, binary=True, target=400_000,
                options={"vrnn": {"d_dim": 50}})
    assert opts["vrnn"]["d_dim"] == 50
    for name, o in opts.items():
        assert abs(count_parameters(name, o) / 400_000 - 1) < 0.10
    no_match = plan(["vrnn"], x_dim=88, binary=True, match=False)
    assert no_match["vrnn"] == {"x_dim": 88}
    assert plan(["rnn"], x_dim=3, binary=False, match=False)["rnn"]["emission"] == "gauss"


def test_bad_comparison_requests_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        plan(["srnn", "lstm"], x_dim=88, binary=True)
    with pytest.raises(ConfigError, match="'rnn' has no option"):
        plan(["rnn"], x_dim=88, binary=True, options={"rnn": {"z_dim": 4}})
    assert parse_settings(["vrnn.d_dim=40", "zforcing.aux_weight=0", "srnn.init=torch"]) == {
        "vrnn": {"d_dim": 40}, "zforcing": {"aux_weight": 0}, "srnn": {"init": "torch"}}
    with pytest.raises(ConfigError, match="MODEL.OPTION=VALUE"):
        parse_settings(["d_dim=40"])


@pytest.mark.slow
def test_compare_command_writes_tables_and_resumes(data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "--dataset", "jsb", "--data-dir", str(data_dir), "--out", str(out),
            "--models", "srnn,rnn,dmm", "--params", "30000", "--subset", "3", "--epochs", "1",
            "--jobs", "2", "--threads", "1", "--set", "srnn.z_dim=8", "--set", "dmm.z_dim=8"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["model"] for r in rows] == ["srnn", "rnn", "dmm"]
    assert [r["bound"] for r in rows] == ["elbo", "exact", "elbo"]  # as in results.csv
    for r in rows:
        assert abs(int(r["parameters"]) / 30000 - 1) < 0.10
        assert float(r["test_per_step"]) < 0 and r["error"] == ""
    md = (out / "comparison.md").read_text()
    assert "| rnn |" in md and "Command: `srnn compare" in md
    assert "| ELBO |" in md and "| exact |" in md
    # A second call trains nothing again: the finished runs are kept as they are.
    stamp = (out / "rnn" / "results.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "rnn" / "results.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "comparison.json").read_text())["rows"][1]["model"] == "rnn"


def test_train_any_model_from_the_command_line(data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--model", "vrnn-i", "--dataset", "jsb", "--data-dir", str(data_dir),
                 "--out", str(out), "--subset", "3", "--epochs", "1", "--z-dim", "4",
                 "--d-dim", "8", "--hidden", "8", "--feature-dim", "8", "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "vrnn-i" and cfg["model_options"]["independent_prior"] is True
    assert main(["sample", str(out), "--out", str(tmp_path / "s.npy"), "--length", "5"]) == 0
    capsys.readouterr()
    assert main(["train", "--model", "rnn", "--dataset", "jsb", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "bad"), "--a-dim", "8", "--epochs", "1"]) == 2
    assert "'rnn' has no option(s) a_dim" in capsys.readouterr().err
