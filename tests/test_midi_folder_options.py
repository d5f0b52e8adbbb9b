"""A folder of MIDI files trained with its own options (grid, transposition, split fractions
and seed): they are checked like every option, recorded in the run (``config.json``,
``data.json``), and evaluating the run rebuilds the same splits from its run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srnn.cli import main, parse_args, run_config
from srnn.data.midi_folder import FOLDER_OPTIONS, midi_files
from srnn.music.midi import write_midi
from srnn.train.config import DATA_OPTIONS
from srnn.train.trainer import load_trained

OPTIONS = {"steps_per_beat": 2, "step_seconds": None, "transpose_to_c": True,
           "splits": [0.5, 0.25, 0.25], "split_seed": 3}
FLAGS = ["--steps-per-beat", "2", "--transpose-to-c", "--splits", "0.5,0.25,0.25",
         "--split-seed", "3"]
TINY = ["--epochs", "1", "--z-dim", "2", "--d-dim", "4", "--a-dim", "4", "--hidden", "4",
        "--feature-layers", "0", "--batch-size", "4", "--window", "16", "--no-progress"]


def write_folder(folder: Path, n: int = 8) -> list[str]:
    """``n`` short pieces (a scale in a different key each) at 0.25 s per step (two steps per
    beat at 120 bpm); their relative paths, sorted."""
    for i in range(n):
        roll = np.zeros((24 + 4 * i, 88), dtype=np.float32)
        for t in range(len(roll)):
            roll[t, 39 + i + (t // 2) % 8] = 1  # C4 + i semitones, a step up every beat
            roll[t, 27 + i] = 1  # a held bass note
        sub = folder / ("b" if i % 2 else "a")
        sub.mkdir(parents=True, exist_ok=True)
        write_midi(roll, sub / f"piece{i}.mid", 0.25)
    return [p.relative_to(folder).as_posix() for p in midi_files(folder)]


def expected_split(names: list[str], fractions: list[float], seed: int) -> dict[str, list[str]]:
    """The split rule of srnn.data.midi_folder, written out: a seeded permutation of the sorted
    files, valid and test max(1, round(fraction * n)) files each, train the rest."""
    n = len(names)
    n_valid, n_test = (max(1, round(f * n)) for f in fractions[1:])
    perm = np.random.RandomState(seed).permutation(n)
    parts = np.split(perm, [n - n_valid - n_test, n - n_test])
    return {s: [names[j] for j in sorted(p)] for s, p in zip(("train", "valid", "test"), parts,
                                                                strict=True)}


def test_every_folder_option_has_its_allowed_values() -> None:
    assert set(DATA_OPTIONS) == set(FOLDER_OPTIONS)


def test_a_folder_run_records_its_options_and_evaluate_rebuilds_its_splits(tmp_path, capsys):
    folder, run = tmp_path / "songs", tmp_path / "run"
    names = write_folder(folder)
    want = expected_split(names, OPTIONS["splits"], OPTIONS["split_seed"])
    assert want != expected_split(names, list(FOLDER_OPTIONS["splits"]), 0)  # not the default
    assert main(["train", "--dataset", str(folder), "--out", str(run), *FLAGS, *TINY]) == 0
    capsys.readouterr()

    card = json.loads((run / "data.json").read_text())
    assert card["options"] == OPTIONS
    assert card["grid"]["steps_per_beat"] == 2
    assert json.loads((run / "config.json").read_text())["data_options"] == OPTIONS

    _, _, data = load_trained(run)  # what evaluate, plot and tune read: the run's own splits
    assert data.info["files"] == want
    results = json.loads((run / "results.json").read_text())
    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["sequences"] == results["sequences"] == len(want["test"])
    assert evaluated["steps"] == results["steps"]
    assert evaluated["elbo_per_step"] == pytest.approx(results["elbo_per_step"], abs=1e-6)

    again = parse_args(["train", "--config", str(run / "config.json"), "--out",
                        str(tmp_path / "again")])
    assert run_config(again).data_options == {k: v for k, v in OPTIONS.items()
                                              if k != "step_seconds"}


def test_step_seconds_replaces_steps_per_beat(tmp_path) -> None:
    from srnn.data import load_dataset

    folder = tmp_path / "songs"
    write_folder(folder, n=3)
    data = load_dataset(str(folder), options={"step_seconds": 0.125})
    assert data.info["options"]["steps_per_beat"] is None
    assert data.grid.step_seconds == 0.125
    i = int(Path(data.info["files"]["train"][0]).stem.removeprefix("piece"))
    assert len(data.train.x[0]) == 2 * (24 + 4 * i)  # twice the steps of 0.25 s


@pytest.mark.parametrize("args,message", [
    (["--dataset", "jsb", "--steps-per-beat", "2"],
     "--steps-per-beat: options of a folder of MIDI files, but data set 'jsb' is not one"),
    (["--splits", "0.5,0.5"], "--splits [0.5, 0.5]: must be three positive fractions"),
    (["--splits", "0.5,0.6,-0.1"], "--splits [0.5, 0.6, -0.1]: must be three positive"),
    (["--splits", "a,b,c"], "argument --splits: 'a,b,c': expected three fractions"),
    (["--steps-per-beat", "0"], "--steps-per-beat 0: must be a positive integer"),
    (["--step-seconds", "nan"], "--step-seconds nan: must be a positive finite number"),
    (["--split-seed", "-1"], "--split-seed -1: must be an integer in 0 .. 4294967295"),
])
def test_bad_folder_options_are_one_line_and_status_2(tmp_path, capsys, args, message):
    folder = tmp_path / "songs"
    folder.mkdir()
    argv = ["train", "--dataset", str(folder), "--out", str(tmp_path / "run"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("srnn: error: ")
    assert message in err, err
    assert not (tmp_path / "run").exists()


def test_export_reads_a_folder_with_its_options(tmp_path, capsys) -> None:
    folder = tmp_path / "songs"
    names = write_folder(folder)
    out = tmp_path / "p.mid"
    assert main(["data", "export", str(folder), *FLAGS, "--split", "test", "--piece", "0",
                 "--out", str(out)]) == 0
    written = json.loads(capsys.readouterr().out)
    first = expected_split(names, OPTIONS["splits"], OPTIONS["split_seed"])["test"][0]
    i = int(Path(first).stem.removeprefix("piece"))
    assert written["steps"] == 24 + 4 * i  # that piece, on the two-steps-per-beat grid
