"""Checkpoints of finished runs: shrunk to the weights and settings when a run ends (unless
``--keep-checkpoints``), while an unfinished run keeps everything that resumes it; ``srnn
shrink`` for runs and sweep folders written before, refusing unfinished and live ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from srnn.cli import main
from srnn.errors import ConfigError
from srnn.experiments.jobs import Job, run_jobs
from srnn.train.checkpoint import RESUME_ONLY, load_checkpoint
from srnn.train.run_dir import FolderLock, RunDirectory, shrink_runs
from srnn.train.trainer import RunConfig, TrainConfig, Trainer

TINY = ["--z-dim", "3", "--d-dim", "8", "--a-dim", "8", "--hidden", "8", "--feature-dim", "8",
        "--feature-layers", "1", "--no-progress", "--threads", "1"]
TINY_OPTIONS = dict(z_dim=3, d_dim=8, a_dim=8, hidden=8, feature_dim=8, feature_layers=1)
FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"


def train_jsb(data_dir: Path, out: Path, *extra: str) -> None:
    assert main(["train", "--dataset", "jsb", "--data-dir", str(data_dir), "--out", str(out),
                 "--epochs", "2", "--subset", "8", *TINY, *extra]) == 0


def figures(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    return {k: v for k, v in res.items() if "seconds" not in k and k != "train_options"}


def printed(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def trainer(run_dir: Path, epochs: int, **train) -> Trainer:
    """A tiny run on 8 JSB pieces (4 updates per epoch)."""
    from conftest import shared_data_dir

    data = shared_data_dir()
    if data is None:
        pytest.skip("real data sets not found: set SRNN_DATA_DIR to a directory with jsb.npz")
    tc = TrainConfig(epochs=epochs, subset=8, batch_size=2, **train)
    return Trainer(RunConfig(dataset="jsb", model_options=dict(TINY_OPTIONS), train=tc,
                             data_dir=str(data)), run_dir, progress=False)


def stop_in_epoch_2(monkeypatch) -> None:
    """Ask every trainer to stop (as SIGINT does) after its second update of epoch 2."""
    update = Trainer._update

    def counting(self, loss):
        ok = update(self, loss)
        if self.progress.epoch == 2:
            self.made_in_epoch_2 = getattr(self, "made_in_epoch_2", 0) + 1
            if self.made_in_epoch_2 == 2:
                self.stop_requested = True
        return ok

    monkeypatch.setattr(Trainer, "_update", counting)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """The same tiny run twice: shrunk when it ended (the default) and kept whole."""
    root = tmp_path_factory.mktemp("runs")
    train_jsb(data_dir, root / "shrunk")
    train_jsb(data_dir, root / "kept", "--keep-checkpoints")
    return root / "shrunk", root / "kept"


def test_a_finished_run_keeps_only_the_weights_and_settings(two_runs) -> None:
    shrunk, kept = two_runs
    assert not (shrunk / "last.pt").exists() and not (shrunk / "last.prev.pt").exists()
    best = torch.load(shrunk / "best.pt", weights_only=True)
    assert not set(RESUME_ONLY) & set(best)
    # The settings stay: those train_jsb asked for, read from the checkpoint itself.
    cfg = json.loads(best["config"])
    assert (cfg["dataset"], cfg["model"]) == ("jsb", "srnn")
    assert {k: cfg["model_options"][k] for k in TINY_OPTIONS} == TINY_OPTIONS
    assert cfg["model_options"]["x_dim"] == 88  # the JSB piano roll's 88 keys
    assert {k: cfg["train"][k] for k in ("epochs", "subset", "keep_checkpoints")} == {
        "epochs": 2, "subset": 8, "keep_checkpoints": False}
    whole = torch.load(kept / "best.pt", weights_only=True)
    assert set(RESUME_ONLY) <= set(whole) and whole["optimizer"]["state"]
    # Adam's two moments per weight are gone: about a third of the size is left.
    assert (shrunk / "best.pt").stat().st_size < 0.5 * (kept / "best.pt").stat().st_size
    # The same weights, bit for bit, and the same test figures.
    assert best["model"].keys() == whole["model"].keys()
    for k, v in whole["model"].items():
        assert torch.equal(best["model"][k], v), k
    assert figures(shrunk) == figures(kept)
    assert {k: best[k] for k in ("epoch", "best_epoch", "best_valid")} == {
        k: whole[k] for k in ("epoch", "best_epoch", "best_valid")}


def test_keep_checkpoints_keeps_everything_and_is_in_the_run_settings(two_runs) -> None:
    shrunk, kept = two_runs
    for name in ("best.pt", "last.pt", "last.prev.pt"):
        assert set(RESUME_ONLY) <= set(load_checkpoint(kept / name)), name
    assert json.loads((kept / "config.json").read_text())["train"]["keep_checkpoints"] is True
    assert json.loads((shrunk / "config.json").read_text())["train"]["keep_checkpoints"] is False


def test_a_shrunk_run_evaluates_and_samples_as_the_whole_one(two_runs, data_dir, capsys,
                                                             tmp_path) -> None:
    shrunk, kept = two_runs
    for bound in (["--bound", "elbo"], ["--bound", "iwae", "--samples", "3"]):
        a, b = (printed(capsys, ["evaluate", str(run), "--data-dir", str(data_dir), *bound])
                for run in (shrunk, kept))
        assert {k: v for k, v in a.items() if not k.endswith("seconds")} == {
            k: v for k, v in b.items() if not k.endswith("seconds")}
    rolls = []
    for run in (shrunk, kept):
        out = tmp_path / f"{run.name}.npy"
        assert main(["sample", str(run), "--out", str(out), "--length", "12", "--num", "2"]) == 0
        rolls.append(np.load(out))
    np.testing.assert_array_equal(rolls[0], rolls[1])
    assert main(["sample", str(shrunk), "--out", str(tmp_path / "s.mid")]) == 0


def test_resuming_a_shrunk_run_reports_it_or_refuses_to_extend_it(two_runs, data_dir,
                                                                 capsys) -> None:
    shrunk, _ = two_runs
    before = {p.name: p.read_bytes() for p in shrunk.iterdir() if p.is_file() and
              p.name != ".lock"}
    # Asked for nothing more, the finished run's results stand.
    out = printed(capsys, ["train", "--resume", str(shrunk), "--data-dir", str(data_dir),
                           "--no-progress"])
    assert out == json.loads((shrunk / "results.json").read_text())
    # Asked to train on, it cannot continue exactly: one clear line, nothing touched.
    assert main(["train", "--resume", str(shrunk), "--epochs", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "finished run without last.pt" in err and "--keep-checkpoints" in err
    assert "--config" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in shrunk.iterdir() if p.is_file() and
            p.name != ".lock"} == before


def _figures_of(line: dict) -> dict:
    return {k: v for k, v in line.items() if k not in ("seconds", "elapsed")}


def test_a_stopped_run_keeps_its_resumable_state_and_resumes_exactly(tmp_path, monkeypatch
                                                                     ) -> None:
    whole = trainer(tmp_path / "whole", 3).fit()
    stop_in_epoch_2(monkeypatch)  # best.pt and last.pt of epoch 1 are written
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "cut", 3).fit()
    cut = tmp_path / "cut"
    for name in ("best.pt", "last.pt"):
        assert set(RESUME_ONLY) <= set(load_checkpoint(cut / name)), name
    with pytest.raises(ConfigError, match="has not finished"):
        shrink_runs([cut])
    assert load_checkpoint(cut / "last.pt")["partial"]["batch"] == 2
    monkeypatch.undo()
    again = trainer(cut, 3)
    assert again.resume()
    res = again.fit()
    assert res["elbo_per_step"] == whole["elbo_per_step"]
    assert [_figures_of(ln) for ln in RunDirectory(cut).metrics()] == [
        _figures_of(ln) for ln in RunDirectory(tmp_path / "whole").metrics()]
    assert not (cut / "last.pt").exists()  # finished now: shrunk
    assert not set(RESUME_ONLY) & set(load_checkpoint(cut / "best.pt"))


def test_a_stopped_extension_of_a_finished_run_is_not_shrunk(tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    trainer(run, 1, keep_checkpoints=True).fit()
    stop_in_epoch_2(monkeypatch)  # --resume --epochs 2, stopped inside epoch 2
    t = trainer(run, 2, keep_checkpoints=True)
    assert t.resume()
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert RunDirectory(run).status == "done"  # the results of epoch 1 are still there
    with pytest.raises(ConfigError, match="a resumption of the run was stopped"):
        shrink_runs([run])
    assert load_checkpoint(run / "last.pt")["partial"] is not None


def test_a_run_stopped_past_its_time_budget_finishes_on_resume(tmp_path, monkeypatch) -> None:
    whole = trainer(tmp_path / "whole", 2).fit()
    stop_in_epoch_2(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "cut", 3).fit()
    monkeypatch.undo()
    cut, lowered = tmp_path / "cut", tmp_path / "lowered"
    shutil.copytree(cut, lowered)
    # Resumed with its --max-minutes spent (a sweep job killed near its budget): the epoch it
    # was stopped in is finished, as the uninterrupted run would have, then it stops, is
    # tested and shrunk, with no error.
    again = trainer(cut, 3, max_minutes=1e-6)
    assert again.resume() and again.progress.elapsed > 60 * 1e-6
    res = again.fit()
    assert res["epochs"] == 2 and res["elbo_per_step"] == whole["elbo_per_step"]
    assert [_figures_of(ln) for ln in RunDirectory(cut).metrics()] == [
        _figures_of(ln) for ln in RunDirectory(tmp_path / "whole").metrics()]
    assert not (cut / "last.pt").exists() and not (cut / "last.prev.pt").exists()
    # Resumed with --epochs lowered below the epoch it was stopped in: it ends after epoch 1,
    # and its last.pt is not taken for a stopped resumption.
    short = trainer(lowered, 1)
    assert short.resume()
    res = short.fit()
    assert res["epochs"] == 1 and len(RunDirectory(lowered).metrics()) == 1
    assert not (lowered / "last.pt").exists()


def test_resuming_a_finished_kept_run_for_nothing_more_keeps_its_checkpoints(tmp_path, data_dir,
                                                                            capsys) -> None:
    run = tmp_path / "run"
    trainer(run, 1, keep_checkpoints=True).fit()
    # As written before --keep-checkpoints existed: no keep_checkpoints (so False) in config.
    cfg = json.loads((run / "config.json").read_text())
    del cfg["train"]["keep_checkpoints"]
    (run / "config.json").write_text(json.dumps(cfg))
    tested = figures(run)
    whole = {n: (run / n).read_bytes() for n in ("best.pt", "last.pt")}
    out = printed(capsys, ["train", "--resume", str(run), "--data-dir", str(data_dir),
                           "--no-progress"])
    assert {k: v for k, v in out.items() if "seconds" not in k and k != "train_options"
            } == tested
    assert {n: (run / n).read_bytes() for n in whole} == whole  # nothing shrunk or removed
    # Asked to train on, it trains in this process, so it is shrunk when it ends.
    out = printed(capsys, ["train", "--resume", str(run), "--epochs", "2", "--data-dir",
                           str(data_dir), "--no-progress"])
    assert out["epochs"] == 2
    assert not (run / "last.pt").exists()
    assert not set(RESUME_ONLY) & set(load_checkpoint(run / "best.pt"))


def test_srnn_shrink_takes_a_run_reached_two_ways_once(tmp_path, data_dir) -> None:
    out = tmp_path / "sweep"
    jobs = _sweep(out, data_dir, seeds=1)
    run = jobs[0].run_dir(out)
    other = tmp_path / "here" / ".." / "sweep"  # the same folder, spelled otherwise
    (tmp_path / "here").mkdir()
    res = shrink_runs([out, other, run, Path(str(run) + "/")])
    assert [Path(r["run"]).resolve() for r in res] == [run.resolve()]
    assert not (run / "last.pt").exists()


def _sweep(out: Path, data_dir: Path, seeds: int = 2) -> list[Job]:
    jobs = [Job(label="tiny", dataset="jsb", model_options=dict(TINY_OPTIONS),
                train_options={"epochs": 1, "subset": 8}, seed=s) for s in range(seeds)]
    results = run_jobs(jobs, out, data_dir=data_dir, keep_checkpoints=True)
    assert not any("error" in r for r in results.values())
    return jobs


def test_srnn_shrink_on_a_finished_sweep_folder(tmp_path, data_dir, capsys) -> None:
    out = tmp_path / "sweep"
    jobs = _sweep(out, data_dir)
    runs = [j.run_dir(out) for j in jobs]
    kept = {r: figures(r) for r in runs}
    assert all((r / "last.pt").is_file() for r in runs)  # kept: run_jobs(keep_checkpoints)
    before = printed(capsys, ["evaluate", str(runs[0]), "--data-dir", str(data_dir)])
    done = printed(capsys, ["shrink", str(out)])
    assert [Path(r["run"]) for r in done["runs"]] == sorted(runs)
    assert done["bytes_after"] < 0.5 * done["bytes_before"]
    for r in runs:
        assert not (r / "last.pt").exists()
        assert not set(RESUME_ONLY) & set(load_checkpoint(r / "best.pt"))
        assert figures(r) == kept[r]
    after = printed(capsys, ["evaluate", str(runs[0]), "--data-dir", str(data_dir)])
    assert after["elbo_per_step"] == before["elbo_per_step"]
    # Shrinking again changes nothing; a re-run of the sweep reads the jobs back.
    again = printed(capsys, ["shrink", str(out)])
    assert again["bytes_before"] == again["bytes_after"] == done["bytes_after"]
    results = run_jobs(jobs, out, data_dir=data_dir)
    assert {j.id: figures(j.run_dir(out)) for j in jobs} == {j.id: kept[j.run_dir(out)]
                                                               for j in jobs}
    assert all("error" not in r for r in results.values())


def test_srnn_shrink_refuses_unfinished_and_live_runs_and_changes_nothing(tmp_path, data_dir,
                                                                         capsys) -> None:
    out = tmp_path / "sweep"
    jobs = _sweep(out, data_dir)
    finished, unfinished = (j.run_dir(out) for j in jobs)
    (unfinished / "results.json").unlink()  # as if killed before its test: resumable
    snapshot = {p: p.read_bytes() for p in out.rglob("*.pt")}
    capsys.readouterr()
    assert main(["shrink", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing shrunk: 1 of 2 runs" in err and str(unfinished) in err
    assert "srnn train --resume" in err and str(finished) not in err
    assert {p: p.read_bytes() for p in out.rglob("*.pt")} == snapshot
    # A run or a sweep folder being written is refused too, naming the writer.
    for folder in (finished, out):
        with FolderLock(folder)():
            assert main(["shrink", str(finished if folder == finished else out)]) == 2
            assert "being written by process" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*.pt")} == snapshot
    # The finished run alone can be shrunk; an empty folder is no run.
    assert printed(capsys, ["shrink", str(finished)])["runs"][0]["run"] == str(finished)
    (tmp_path / "empty").mkdir()
    assert main(["shrink", str(tmp_path / "empty")]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_a_run_of_version_0_1_0_shrinks_and_samples_the_same(tmp_path) -> None:
    run = tmp_path / "old"
    shutil.copytree(FIXTURE, run)
    assert main(["sample", str(run), "--out", str(tmp_path / "a.npy"), "--length", "8"]) == 0
    res = shrink_runs([run])
    assert res[0]["bytes_after"] < 0.5 * res[0]["bytes_before"]
    assert not set(RESUME_ONLY) & set(load_checkpoint(run / "best.pt"))
    assert main(["sample", str(run), "--out", str(tmp_path / "b.npy"), "--length", "8"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_sweeps_pass_keep_checkpoints_to_their_jobs_outside_the_job_ids(tmp_path,
                                                                       monkeypatch) -> None:
    import srnn.experiments.compare as compare_mod
    import srnn.experiments.reproduce as reproduce_mod

    job = Job(label="a", dataset="jsb", train_options={"epochs": 1})
    assert Job(label="a", dataset="jsb",
               train_options={"epochs": 1, "keep_checkpoints": True}).id == job.id
    seen = {}

    def fake(name: str, table: str):
        def run(*args, **kwargs):
            seen[name] = kwargs["keep_checkpoints"]
            out = Path(args[2] if name == "compare" else args[1])
            out.mkdir(parents=True, exist_ok=True)
            (out / table).write_text("")
            return []
        return run

    monkeypatch.setattr(compare_mod, "compare", fake("compare", "comparison.md"))
    monkeypatch.setattr(reproduce_mod, "reproduce", fake("reproduce", "tables.md"))
    for keep in ([], ["--keep-checkpoints"]):
        assert main(["compare", "--dataset", "jsb", "--models", "srnn,rnn",
                     "--out", str(tmp_path / "c"), *keep]) == 0
        assert main(["reproduce", "poster", "--out", str(tmp_path / "r"), *keep]) == 0
        assert seen == {"compare": bool(keep), "reproduce": bool(keep)}
