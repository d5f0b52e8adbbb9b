"""Every option's value is checked before any work: a bad one is one line
``srnn: error: --OPTION VALUE: must be ...`` and exit status 2, from the command line or a
``--config`` file alike; a run's ``config.json`` re-runs it; ``--resume RUN_DIR``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from srnn.cli import _parser, main, parse_args, run_config
from srnn.errors import ConfigError
from srnn.models import MODELS
from srnn.train.config import MODEL_OPTIONS, TrainConfig

# What each command needs besides the option tried. Nothing here is ever read: the checks come
# first; should one let a bad value through, the command fails fast on the missing run, data
# directory or (reproduce) only lists its jobs.
REQUIRED = {
    ("train",): ["--dataset", "jsb", "--data-dir", "{tmp}/none", "--out", "{tmp}/run"],
    ("evaluate",): ["{tmp}/run"],
    ("tune",): ["{tmp}/run", "--out", "{tmp}/tuned"],
    ("sample",): ["{tmp}/run", "--out", "{tmp}/s.mid"],
    ("reconstruct",): ["{tmp}/run", "--input", "{tmp}/p.mid", "--out", "{tmp}/r.mid"],
    ("plot",): ["{tmp}/run"],
    ("report",): ["{tmp}/run"],
    ("compare",): ["--dataset", "jsb", "--data-dir", "{tmp}/none", "--out", "{tmp}/cmp"],
    ("reproduce",): ["poster", "--out", "{tmp}/rep", "--dry-run"],
    ("shrink",): ["{tmp}/run"],
    ("data", "list"): [],
    ("data", "download"): ["jsb"],
    ("data", "export"): ["jsb", "--data-dir", "{tmp}/none", "--out", "{tmp}/p.mid"],
}
TRIED = {int: ["0", "-1"], float: ["0", "-1", "nan", "inf", "-inf"]}
# Bad values beyond those, for options with an upper bound.
ALSO_BAD = {"--dropout": ["1", "1.5"], "--kl-start": ["1.5"], "--ess-threshold": ["1.5"],
            "--seed": ["4294967296"]}
# Values among TRIED that an option allows, and why (read off the code that uses them). The
# same flag allows the same values in every command that has it.
ALLOWED = {
    "--feature-layers": ("0", "0 layers feed raw x and u (models' feature networks)"),
    "--ar-hidden": ("0", "0 stands for the emission's default width (nn/emissions.py)"),
    "--ar-chunk": ("0", "0 stands for ceil(x_dim / 10) (ar-rnn)"),
    "--dropout": ("0", "no dropout"),
    "--aux-weight": ("0", "Z-forcing without its auxiliary cost"),
    "--weight-decay": ("0", "plain Adam instead of AdamW (make_optimiser)"),
    "--kl-start": ("0", "the KL weight may start at 0 (KLAnnealing)"),
    "--kl-epochs": ("0", "no annealing (KLAnnealing: 0 updates = weight 1)"),
    "--kl-rate": ("0", "off: --kl-epochs anneals instead"),
    "--lr-decay-start": ("0", "decay from the first epoch (lr_at_epoch)"),
    "--lr-min": ("0", "the cosine schedule may end at 0"),
    "--tbptt": ("0", "independent windows of --window"),
    "--transpose": ("0", "no pitch shifts"),
    "--seed": ("0", "any 32-bit seed; negative ones are refused by numpy's default_rng"),
    "--ess-threshold": ("0", "FIVO that never resamples"),
    "--kl-weight": ("0", "tune: reward only, no KL term"),
    "--data-weight": ("0", "tune: KL control alone, no data anchor"),
    "--iwae-samples": ("0", "tune: the test ELBO only, no IWAE"),
    "--write": ("0", "tune: no MIDI samples written"),
    "--piece": ("0", "an index: the first piece"),
    "--split-seed": ("0", "a MIDI folder's split: any 32-bit seed, as --seed"),
}
# Model options only some models have: the model to accept their allowed values with.
MODEL_OF = {"--aux-weight": "zforcing", "--emission-hidden": "dmm", "--h-dim": "srnn-dai"}
# Options of a folder of MIDI files: tried with a folder (the test's own) in place of jsb.
FOLDER_OPTIONS = {"--steps-per-beat", "--step-seconds", "--split-seed"}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _long(action: argparse.Action) -> str:
    return next(s for s in action.option_strings if s.startswith("--"))


def _valued_options() -> list[tuple[tuple[str, ...], argparse.Action]]:
    """(command, option) for every option of every command that takes a number or a choice."""
    return [(cmd, action) for cmd, parser in _commands(_parser()) if cmd
            for action in parser._actions
            if action.option_strings and (action.type in (int, float) or action.choices)]


def _bad_values(action: argparse.Action) -> list[str]:
    if action.choices:
        return ["nonsense"]
    flag = _long(action)
    allowed = ALLOWED.get(flag, ("",))[0]
    return [v for v in TRIED[action.type] + ALSO_BAD.get(flag, []) if v != allowed]


def _args(cmd: tuple[str, ...], tmp: Path) -> list[str]:
    return [*cmd, *(a.format(tmp=tmp) for a in REQUIRED[cmd])]


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err and len(err.splitlines()) == 1, captured.err
    return err


def test_every_command_with_options_is_covered() -> None:
    commands = {cmd for cmd, _ in _commands(_parser()) if cmd and cmd != ("data",)}
    assert commands == set(REQUIRED), "add the new command's required arguments to REQUIRED"
    flags = {_long(a) for _, a in _valued_options()}
    assert set(ALLOWED) | set(ALSO_BAD) | set(MODEL_OF) | FOLDER_OPTIONS <= flags  # no stale


def test_a_bad_number_or_choice_of_any_option_is_one_line_and_status_2(tmp_path, capsys):
    tried = 0
    for cmd, action in _valued_options():
        flag = _long(action)
        for value in _bad_values(action):
            rc = main([*_args(cmd, tmp_path), f"{flag}={value}"])  # = for -inf
            err = _one_error_line(capsys)
            where = f"srnn {' '.join(cmd)} {flag} {value}"
            assert rc == 2, where
            if action.choices:
                assert err.startswith(f"srnn: error: argument {flag}"), (where, err)
                assert "invalid choice" in err, (where, err)
            else:
                assert err.startswith(f"srnn: error: {flag} {value}: must be "), (where, err)
            tried += 1
    assert tried > 150


def test_the_values_an_option_allows_pass_the_checks(tmp_path) -> None:
    accepted = 0
    for cmd, action in _valued_options():
        flag = _long(action)
        if flag not in ALLOWED:
            continue
        model = ["--model", MODEL_OF[flag]] if flag in MODEL_OF and "train" in cmd else []
        args = [str(tmp_path) if flag in FOLDER_OPTIONS and x == "jsb" else x
                for x in _args(cmd, tmp_path)]
        a = parse_args([*args, *model, flag, ALLOWED[flag][0]])
        assert getattr(a, action.dest) == action.type(ALLOWED[flag][0])
        accepted += 1
    assert accepted >= len(ALLOWED)


def test_the_reported_failures_are_one_line_each(tmp_path, capsys) -> None:
    base = ["train", "--out", str(tmp_path / "r")]
    for args, line in (
            (["--z-dim", "0"], "--z-dim 0: must be a positive integer"),
            (["--batch-size", "0"], "--batch-size 0: must be a positive integer"),
            (["--lr", "-1"], "--lr -1: must be a positive finite number"),
            (["--epochs", "0"], "--epochs 0: must be a positive integer"),
            (["--dropout", "1"], "--dropout 1: must be a probability in [0, 1)")):
        assert main([*base, *args]) == 2
        assert _one_error_line(capsys) == f"srnn: error: {line}"


def test_every_model_and_training_option_has_its_rule() -> None:
    fields = {f.name for spec in MODELS.values() for f in dataclasses.fields(spec.config)}
    assert fields == set(MODEL_OPTIONS)
    assert set(TrainConfig.rules()) == {f.name for f in dataclasses.fields(TrainConfig)}
    TrainConfig().validate()  # the defaults are allowed values


def test_a_bad_value_in_a_config_file_names_the_file(tmp_path, capsys) -> None:
    tried = 0
    for cmd, action in _valued_options():
        if cmd != ("train",) or action.dest == "config":
            continue
        flag = _long(action)
        for value in _bad_values(action):
            path = tmp_path / f"{action.dest}.json"
            parsed = value if action.choices else action.type(value)
            path.write_text(json.dumps({action.dest.replace("_", "-"): parsed}))
            assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
            err = _one_error_line(capsys)
            assert err.startswith(f"srnn: error: {flag} {value}: must be "), err
            assert err.endswith(f"(in {path})"), err
            tried += 1
    assert tried > 80
    # a flag given on the command line overrides the file's bad value
    path = tmp_path / "batch.toml"
    path.write_text("batch_size = 0\n")
    a = parse_args(["train", "--config", str(path), "--out", "x", "--batch-size", "8"])
    assert a.batch_size == 8


def test_a_config_file_sets_options_and_flags_override_it(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('dataset = "jsb"\nout = "runs/from-file"\nfiltering = true\n'
                    'batch-size = 4\n[train]\nlr = 0.01\neval_batch_size = 7\n'
                    '[model_options]\nz_dim = 5\nmin_std = 0.01\nx_dim = 3\n')
    a = parse_args(["train", "--config", str(path), "--batch-size", "8", "--z-dim", "6"])
    cfg = run_config(a)
    assert a.out == "runs/from-file" and cfg.dataset == "jsb"
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.eval_batch_size) == (8, 0.01, 7)
    # x_dim is set from the data, not from the file
    assert cfg.model_options == {"z_dim": 6, "min_std": 0.01, "smoothing": False}


def test_an_unknown_key_names_the_file_and_the_closest_options(tmp_path, capsys) -> None:
    for text, key, close in (("bach-size = 4\n", "bach-size", "batch_size"),
                             ("[model_options]\nzdim = 4\n", "zdim", "z_dim")):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
        err = _one_error_line(capsys)
        assert str(path) in err and repr(key) in err and close in err, err
    for text, problem in (("x = [", "not valid TOML"), ("3", "a table of options")):
        path = tmp_path / ("bad.toml" if text == "x = [" else "bad.json")
        path.write_text(text)
        with pytest.raises(ConfigError, match=problem):
            parse_args(["train", "--config", str(path), "--out", "x"])


def test_the_run_directory_comes_from_out_or_resume(tmp_path, capsys) -> None:
    assert parse_args(["train", "--resume", "runs/a"]).out == "runs/a"
    a = parse_args(["train", "--resume", "--out", "runs/a"])
    assert (a.out, a.resume) == ("runs/a", True)
    assert parse_args(["train", "--out", "runs/a"]).resume is False
    for args, message in ((["--resume", "a", "--out", "b"], "two run directories"),
                          ([], "--out RUN_DIR"),
                          (["--resume", "a", "--overwrite"], "give one of them")):
        assert main(["train", *args]) == 2
        assert message in _one_error_line(capsys)


TINY = ["--dataset", "jsb", "--subset", "3", "--epochs", "1", "--z-dim", "4", "--d-dim", "8",
        "--a-dim", "8", "--hidden", "8", "--feature-dim", "8", "--feature-layers", "1",
        "--no-progress"]


def test_a_runs_config_json_reruns_it_and_both_resume_forms_continue(data_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", *TINY, "--data-dir", str(data_dir), "--out", str(first),
                 "--keep-checkpoints"]) == 0
    assert main(["train", "--config", str(first / "config.json"), "--out", str(second),
                 "--no-progress"]) == 0
    configs = [json.loads((d / "config.json").read_text()) for d in (first, second)]
    assert configs[0] == configs[1]
    results = [json.loads((d / "results.json").read_text()) for d in (first, second)]
    figures = [{k: v for k, v in r.items() if "seconds" not in k} for r in results]
    assert figures[0] == figures[1]
    # --resume RUN_DIR continues a run (here one more epoch); --resume --out RUN_DIR too
    assert main(["train", "--resume", str(first), "--epochs", "2", "--no-progress"]) == 0
    lines = (first / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]
    assert main(["train", "--resume", "--out", str(second), "--no-progress"]) == 0
    assert json.loads((second / "results.json").read_text())["epochs"] == 1


def test_set_values_of_compare_and_reproduce_are_checked_too(tmp_path, capsys) -> None:
    for args, line in (
            (["compare", *_args(("compare",), tmp_path)[1:], "--set", "vrnn.z_dim=0"],
             "--set vrnn.z_dim=0: must be a positive integer"),
            (["reproduce", *_args(("reproduce",), tmp_path)[1:], "--set", "dropout=1"],
             "--set dropout=1: must be a probability in [0, 1)")):
        assert main(args) == 2
        assert _one_error_line(capsys) == f"srnn: error: {line}"
