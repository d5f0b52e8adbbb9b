"""The run directory: its readers, a folder that holds a run is protected (refused, replaced
only on request, locked while written), and sweep folders likewise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srnn.cli import main
from srnn.errors import ConfigError, DataError
from srnn.train.config import RunConfig
from srnn.train.run_dir import FolderLock, RunDirectory

TINY = ["--z-dim", "3", "--d-dim", "8", "--a-dim", "8", "--hidden", "8", "--feature-dim", "8",
        "--feature-layers", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def arrays(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    arr = {f"{s}_{i}": (rng.random((int(rng.integers(6, 12)), 5)) < 0.3).astype(np.float32)
           for s, n in (("train", 12), ("valid", 4), ("test", 4)) for i in range(n)}
    path = tmp_path_factory.mktemp("arrays") / "a.npz"
    np.savez(path, **arr)
    return path


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", str(data), "--out", str(out), "--epochs", "2", *TINY, *extra]


def lines(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


def test_metrics_reader_keeps_the_last_line_of_a_repeated_epoch(tmp_path) -> None:
    run = RunDirectory(tmp_path)
    assert run.metrics() == [] and run.results() == {} and run.data_card() == {}
    for epoch, v in ((1, -3.0), (2, -2.5), (2, -2.0), (3, -1.5)):
        run.append_metrics({"epoch": epoch, "valid_elbo": v})
    assert [(r["epoch"], r["valid_elbo"]) for r in run.metrics()] == [(1, -3.0), (2, -2.0),
                                                                      (3, -1.5)]
    run.keep_metrics_through(1)
    assert [r["epoch"] for r in run.metrics()] == [1]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(DataError, match=r"metrics.jsonl: line 2"):
        run.metrics()


def test_results_are_merged_and_writes_are_atomic(tmp_path) -> None:
    run = RunDirectory(tmp_path)
    run.write_results({"elbo_per_step": -2.0, "steps": 10})
    merged = run.update_results({"iwae_k10_per_step": -1.9})
    assert merged == run.results() == {"elbo_per_step": -2.0, "steps": 10,
                                       "iwae_k10_per_step": -1.9}
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_a_view_that_does_not_write(tmp_path) -> None:
    view = RunDirectory(tmp_path, writable=False)
    view.write_config(RunConfig(dataset="bach"))
    view.append_metrics({"epoch": 1})
    view.write_results({"a": 1})
    assert not any(tmp_path.iterdir())


def test_a_new_run_refuses_a_folder_that_holds_one(arrays, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(train_args(arrays, out, "--z-dim", "4")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    # Another model into the same folder: refused, nothing touched.
    assert main(train_args(arrays, out, "--z-dim", "2")) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "already holds a run" in err
    assert "--resume" in err and "--overwrite" in err and "srnn on" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # --overwrite replaces it: the metrics are the new run's alone.
    assert main(train_args(arrays, out, "--z-dim", "2", "--overwrite",
                           "--keep-checkpoints")) == 0
    assert [ln["epoch"] for ln in lines(out)] == [1, 2]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_options"]["z_dim"] == 2
    assert json.loads((out / "results.json").read_text())["model_options"]["z_dim"] == 2
    # --resume of a finished run extends it; --resume with --overwrite is refused.
    assert main(train_args(arrays, out, "--resume", "--epochs", "3")) == 0
    assert [ln["epoch"] for ln in lines(out)] == [1, 2, 3]
    assert main(train_args(arrays, out, "--resume", "--overwrite")) == 2
    # --overwrite removes the run's own files only.
    (out / "notes.txt").write_text("mine")
    assert main(train_args(arrays, out, "--overwrite")) == 0
    assert (out / "notes.txt").read_text() == "mine"


def test_an_empty_or_foreign_folder_is_not_a_run(arrays, tmp_path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "readme.txt").write_text("a folder of my own")
    assert main(train_args(arrays, out)) == 0  # files that are not a run's are no obstacle
    assert (out / "readme.txt").is_file() and RunDirectory(out).status == "done"


def test_resume_without_a_checkpoint_starts_afresh_without_doubled_lines(arrays,
                                                                         tmp_path) -> None:
    out = tmp_path / "run"
    assert main(train_args(arrays, out)) == 0
    ref = [{k: v for k, v in ln.items() if k not in ("seconds", "elapsed")} for ln in lines(out)]
    for name in ("last.pt", "last.prev.pt", "best.pt", "results.json"):
        # as if killed after the first line but before any checkpoint
        (out / name).unlink(missing_ok=True)
    assert main(train_args(arrays, out, "--resume")) == 0
    again = [{k: v for k, v in ln.items() if k not in ("seconds", "elapsed")}
             for ln in lines(out)]
    assert again == ref


def test_a_second_writer_gets_a_clear_error_naming_the_first(arrays, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    lock = FolderLock(out)
    with lock():
        # In this process ...
        with pytest.raises(ConfigError, match=r"being written by process \d+"):
            with FolderLock(out)():
                pass
        # ... and from another process, which exits with the message.
        proc = subprocess.run([sys.executable, "-m", "srnn.cli", *train_args(arrays, out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "being written by process" in proc.stderr and "srnn" in proc.stderr
        assert not (out / "metrics.jsonl").exists()
    # Released with the context: the run can now be written.
    assert main(train_args(arrays, out)) == 0
    assert RunDirectory(out).status == "done"


def test_a_sweep_folder_is_refused_to_another_sweep(tmp_path) -> None:
    from srnn.experiments.jobs import sweep_folder

    with sweep_folder(tmp_path, "reproduction", {"experiment": "poster"}):
        (tmp_path / "plan.json").write_text(json.dumps({"experiment": "poster"}))
        with pytest.raises(ConfigError, match="being written by process"):
            with sweep_folder(tmp_path, "reproduction", {"experiment": "poster"}):
                pass
    with sweep_folder(tmp_path, "reproduction", {"experiment": "poster"}):
        pass  # the same sweep again: resumes
    with pytest.raises(ConfigError, match="holds another reproduction .experiment 'poster'"):
        with sweep_folder(tmp_path, "reproduction", {"experiment": "table2"}):
            pass


def test_the_runs_of_a_folder_come_in_the_plans_order_each_once(tmp_path) -> None:
    from srnn.train.run_dir import PLAN, runs_in

    sweep = tmp_path / "sweep"
    for name in ("jobs/b-1", "jobs/a-2", "jobs/c-3", "lstm", ".hidden/x", "deep/er/run"):
        (sweep / name).mkdir(parents=True)
        (sweep / name / "config.json").write_text("{}")
    (sweep / "jobs" / "d-4").mkdir()
    (sweep / "jobs" / "d-4" / "job.json").write_text("{}")  # planned, not started
    (sweep / "jobs" / "again").symlink_to(sweep / "jobs" / "b-1")  # one run, two names
    (sweep / PLAN).write_text(json.dumps({"jobs": [{"id": "c-3"}, {"id": "d-4"}, {"id": "b-1"}],
                                          "models": {"lstm": {}}}))
    rel = [p.relative_to(sweep).as_posix() for p in runs_in(sweep)]
    assert rel[:3] == ["jobs/c-3", "jobs/b-1", "lstm"]  # the plan's, then by path
    assert sorted(rel[3:]) == ["deep/er/run", "jobs/a-2"] and len(rel) == 5
    with_jobs = [p.relative_to(sweep).as_posix() for p in runs_in(sweep, jobs=True)]
    assert with_jobs[:4] == ["jobs/c-3", "jobs/d-4", "jobs/b-1", "lstm"]
    assert runs_in(sweep / "lstm") == [sweep / "lstm"]  # a run directory: itself
    assert runs_in(tmp_path / "sweep" / "jobs" / "d-4") == []
    with pytest.raises(ConfigError, match="no such folder"):
        runs_in(tmp_path / "gone")


def test_a_run_written_before_data_cards_had_grids_still_samples_and_plots(data_dir, tmp_path,
                                                                            capsys) -> None:
    """A run directory as the previous version wrote it (its data.json without grid and
    modality) gives the same samples, reconstruction, plots and evaluation as a current one."""
    new = tmp_path / "new"
    assert main(["train", "--dataset", "jsb", "--subset", "6", "--data-dir", str(data_dir),
                 "--out", str(new), "--epochs", "1", *TINY]) == 0
    old = tmp_path / "old"
    old.mkdir()
    for p in new.iterdir():
        if p.is_file():
            (old / p.name).write_bytes(p.read_bytes())
    card = json.loads((new / "data.json").read_text())
    assert card["grid"]["steps_per_beat"] == 1 and card["modality"] == "music"
    (old / "data.json").write_text(json.dumps(
        {k: card[k] for k in ("name", "protocol", "time_step", "binary", "dim")}))
    outputs = {}
    for run in (new, old):
        primer = tmp_path / "primer.mid"
        assert main(["data", "export", "jsb", "--data-dir", str(data_dir), "--steps", "12",
                     "--out", str(primer)]) == 0
        assert main(["sample", str(run), "--out", str(run / "s.mid"), "--length", "8",
                     "--primer", str(primer)]) == 0
        assert main(["reconstruct", str(run), "--input", str(primer),
                     "--out", str(run / "r.mid")]) == 0
        assert main(["plot", str(run), "--out", str(run / "plots"), "--num", "2",
                     "--data-dir", str(data_dir)]) == 0
        capsys.readouterr()
        assert main(["evaluate", str(run), "--data-dir", str(data_dir)]) == 0
        printed = json.loads(capsys.readouterr().out)
        stats = json.loads((run / "plots" / "sample_stats.json").read_text())
        stats.pop("run")  # the folder's name
        outputs[run.name] = ((run / "s.mid").read_bytes(), (run / "r.mid").read_bytes(), stats,
                             (run / "plots" / "rolls.png").read_bytes(), printed["elbo_per_step"])
    assert outputs["old"] == outputs["new"]
