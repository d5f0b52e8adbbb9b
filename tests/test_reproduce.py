"""`srnn reproduce`: stable job ids, skipping and resuming, backends, and the written files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from srnn.cli import main
from srnn.errors import ConfigError
from srnn.experiments import jobs as jobs_mod
from srnn.experiments.jobs import Job, run_jobs
from srnn.experiments.reproduce import make_jobs, reproduce
from srnn.train.trainer import train

TINY = {"d_dim": 8, "a_dim": 8, "z_dim": 3, "hidden": 8, "feature_dim": 8}
TINY_TRAIN = {"epochs": 2, "subset": 3, "kl_epochs": 1.0}


def tiny_job(label: str = "t", seed: int = 0, **train_options) -> Job:
    return Job(label=label, dataset="jsb", model_options=TINY,
               train_options={**TINY_TRAIN, **train_options}, seed=seed)


def read_csv(path: Path, drop: tuple[str, ...] = ("train_minutes",)) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


# -- ids -----------------------------------------------------------------------------------


def test_job_id_depends_on_settings_only():
    a = tiny_job()
    assert a.id == tiny_job().id
    # Key order, the label's meta columns and the time budget do not change the id ...
    b = Job(label="t", dataset="jsb", model_options=dict(reversed(list(TINY.items()))),
            train_options={**TINY_TRAIN, "max_minutes": 5}, meta={"x": 1})
    assert b.id == a.id
    # ... every setting of the computation does.
    ids = {a.id, tiny_job(seed=1).id, tiny_job(epochs=3).id,
           Job(label="t", dataset="jsb-fraccaro", model_options=TINY,
               train_options=TINY_TRAIN).id,
           Job(label="t", dataset="jsb", model_options={**TINY, "z_dim": 4},
               train_options=TINY_TRAIN).id,
           Job(label="t", dataset="jsb", model="vrnn", model_options=TINY,
               train_options=TINY_TRAIN).id}
    assert len(ids) == 6
    assert a.id.startswith("t-s0-")


def test_job_id_is_the_same_in_another_process():
    # A content hash, not Python's per-process salted hash(): a sweep resumed after a reboot
    # finds its run directories again.
    code = ("from srnn.experiments.reproduce import make_jobs; "
            "print(' '.join(j.id for j in make_jobs('table2', 'both', ('jsb',), 'full')))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert other == [j.id for j in make_jobs("table2", "both", ("jsb",), "full")]
    # Pinned: a change of the id scheme would orphan every existing run directory.
    assert other[0] == "jsb-smooth-resq-s0-9ab799e6a6"


def test_experiments_define_the_papers_settings():
    poster = make_jobs("poster", "both", budget="full")
    assert len(poster) == 2 * 4 * 8  # protocols x sets x (6 z + 2 more d)
    canon_jsb = [j for j in poster if j.dataset == "jsb"]
    assert sorted(j.meta["z"] for j in canon_jsb if j.meta["d"] == 300) == [2, 10, 25, 50,
                                                                          100, 200]
    assert sorted(j.meta["d"] for j in canon_jsb if j.meta["z"] == 100) == [50, 300, 500]
    assert all(j.model_options["a_dim"] == j.model_options["d_dim"] for j in poster)
    t2 = make_jobs("table2", "fraccaro", budget="full", seeds=3)
    assert len(t2) == 4 * 4 * 3
    assert {(j.model_options["smoothing"], j.model_options["res_q"]) for j in t2} == {
        (True, True), (True, False), (False, True), (False, False)}
    assert {j.dataset for j in t2} == {"jsb-fraccaro", "nottingham-fraccaro",
                                       "musedata-fraccaro", "piano-fraccaro"}
    cmp = make_jobs("compare", "canonical", ("jsb",), "full")
    assert [j.model for j in cmp] == ["srnn", "vrnn", "storn", "rnn"]
    from srnn.experiments.sizes import count_parameters

    counts = [count_parameters(j.model, {"x_dim": 88, **j.model_options}) for j in cmp]
    assert max(counts) / min(counts) < 1.1
    # The budget sets training options; quick is small, full is the paper's recipe.
    assert make_jobs("table2", sets=("jsb",), budget="quick")[0].train_options["subset"]
    assert make_jobs("table2", sets=("jsb",), budget="full")[0].train_options == {}


@pytest.mark.parametrize("kwargs, message", [
    ({"sets": ("bach",)}, "unknown set"), ({"protocol": "x"}, "unknown protocol"),
    ({"budget": "huge"}, "unknown budget"), ({"seeds": 0}, "at least 1"),
    ({"overrides": {"nonsense": 1}}, "no model"),
])
def test_bad_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_jobs("table2", **kwargs)


# -- running -------------------------------------------------------------------------------


def test_finished_jobs_are_skipped(tmp_path, data_dir, monkeypatch):
    jobs = [tiny_job("a"), tiny_job("b", seed=1)]
    first = run_jobs(jobs, tmp_path, data_dir=data_dir)
    assert all("error" not in r for r in first.values())

    def no_training(*args, **kwargs):
        raise AssertionError("a finished job was trained again")

    monkeypatch.setattr(jobs_mod, "run_training_job", no_training)
    again = run_jobs(jobs, tmp_path, data_dir=data_dir)
    assert again == first
    settings = json.loads((tmp_path / "jobs" / jobs[0].id / "job.json").read_text())
    assert settings["seed"] == 0 and settings["model_options"] == TINY


def test_an_interrupted_job_resumes_where_it_stopped(tmp_path, data_dir):
    job = tiny_job(epochs=3)
    whole = run_jobs([job], tmp_path / "whole", data_dir=data_dir)[job.id]
    # The state a sweep is left in when killed after the first epoch's checkpoint: the same
    # run directory with one epoch done, its last.pt, and no results.
    run_dir = tmp_path / "cut" / "jobs" / job.id
    train("jsb", run_dir, data_dir=data_dir, model_options=TINY,
          **{**job.train_options, "epochs": 1, "seed": job.seed, "keep_checkpoints": True})
    (run_dir / "results.json").unlink()
    resumed = run_jobs([job], tmp_path / "cut", data_dir=data_dir)[job.id]
    assert "resumed" in (run_dir / "train.log").read_text()
    epochs = [json.loads(ln)["epoch"] for ln in (run_dir / "metrics.jsonl").open()]
    assert epochs == [1, 2, 3]
    for key in ("elbo_per_step", "valid_elbo_per_step", "best_epoch", "epochs"):
        assert resumed[key] == pytest.approx(whole[key], abs=1e-5), key


@pytest.mark.slow
def test_two_workers_write_the_same_results_as_one(tmp_path, data_dir):
    common = {"sets": ("jsb",), "budget": "quick", "epochs": 1, "overrides": TINY,
              "threads": 1, "data_dir": data_dir}
    reproduce("table2", tmp_path / "one", workers=1, **common)
    reproduce("table2", tmp_path / "two", workers=2, **common)
    one, two = read_csv(tmp_path / "one" / "results.csv"), read_csv(tmp_path / "two" /
                                                                     "results.csv")
    assert len(one) == 4 and one == two
    assert not any(r["error"] for r in one)


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_jobs(tmp_path, data_dir):
    pytest.importorskip("submitit")
    jobs = [tiny_job("a"), tiny_job("b", seed=1)]
    local = run_jobs(jobs, tmp_path / "local", data_dir=data_dir)
    sub = run_jobs(jobs, tmp_path / "sub", backend="submitit-local", workers=2,
                   data_dir=data_dir)
    for j in jobs:
        assert sub[j.id]["elbo_per_step"] == pytest.approx(local[j.id]["elbo_per_step"],
                                                           abs=1e-5)
    assert (tmp_path / "sub" / "submitit").is_dir()


def test_slurm_backend_without_a_cluster_is_a_clear_error(tmp_path, data_dir):
    pytest.importorskip("submitit")
    import shutil

    if shutil.which("srun"):
        pytest.skip("this machine is a Slurm node")
    with pytest.raises(ConfigError, match="Slurm cluster"):
        run_jobs([tiny_job()], tmp_path, backend="slurm", data_dir=data_dir)


def test_failed_job_is_reported_and_the_others_go_on(tmp_path, data_dir):
    bad = Job(label="bad", dataset="jsb", model_options={**TINY, "z_dim": -1},
              train_options=TINY_TRAIN)
    res = run_jobs([bad, tiny_job("good")], tmp_path, data_dir=data_dir)
    assert "error" in res[bad.id] and "error" not in res[tiny_job("good").id]


# -- files ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_poster_sweep_writes_csv_markdown_and_plots(tmp_path, data_dir):
    rows = reproduce("poster", tmp_path, sets=("jsb",), budget="quick", epochs=1,
                     overrides={"hidden": 8, "feature_dim": 8}, data_dir=data_dir,
                     command="srnn reproduce poster ...")
    assert len(rows) == 8 and not any(r["error"] for r in rows)
    csv_rows = read_csv(tmp_path / "results.csv")
    assert len(csv_rows) == 8
    for r in csv_rows:
        assert float(r["test_per_step"]) < 0 and float(r["cross_entropy_per_note"]) > 0
        assert int(r["parameters"]) > 0 and r["protocol"] == "canonical"
    assert {int(r["z"]) for r in csv_rows} == {2, 10, 25, 50, 100, 200}
    md = (tmp_path / "tables.md").read_text()
    assert "| z | JSB Chorales |" in md and "| d | JSB Chorales |" in md
    assert "cross-entropy" in md and "srnn reproduce poster" in md
    for name in ("poster-canonical-elbo-vs-z.png", "poster-canonical-elbo-vs-d.png",
                 "poster-canonical-cross-entropy-vs-z.png", "poster-canonical-jsb-curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.slow
def test_cli_table2_with_seeds_gives_mean_and_std(tmp_path, data_dir, capsys):
    args = ["reproduce", "table2", "--out", str(tmp_path), "--sets", "jsb", "--protocol",
            "fraccaro", "--epochs", "1", "--seeds", "2", "--data-dir", str(data_dir),
            "--threads", "1"]
    args += [f"--set={k}={v}" for k, v in TINY.items() if k != "a_dim"]
    assert main(args) == 0
    md = (tmp_path / "tables.md").read_text()
    assert "±" in md and "-4.74" in md and "smooth + Res_q" in md
    rows = read_csv(tmp_path / "results.csv")
    assert len(rows) == 8 and {r["dataset"] for r in rows} == {"jsb-fraccaro"}
    assert (tmp_path / "table2-fraccaro-curves.png").is_file()
    assert (tmp_path / "table2-fraccaro-test.png").is_file()
    text = capsys.readouterr().out
    out = json.loads(text[text.rindex("\n{\n") + 1:])
    assert out["jobs"] == 8 and out["failed"] == []


def test_dry_run_lists_jobs_and_their_state(tmp_path, data_dir, capsys):
    args = ["reproduce", "table2", "--out", str(tmp_path), "--sets", "jsb", "--epochs", "1",
            "--dry-run", *[f"--set={k}={v}" for k, v in TINY.items() if k != "a_dim"]]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.count("to do ") == 4 and not (tmp_path / "jobs").exists()
    jobs = make_jobs("table2", sets=("jsb",), epochs=1,
                     overrides={k: v for k, v in TINY.items() if k != "a_dim"})
    run_jobs(jobs[:1], tmp_path, data_dir=data_dir)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"done     {jobs[0].id}" in text and text.count("to do ") == 3


def test_cli_reports_bad_options_cleanly(tmp_path, capsys):
    assert main(["reproduce", "table2", "--out", str(tmp_path), "--sets", "bach"]) == 2
    assert "unknown set" in capsys.readouterr().err


# -- recipes, variants, seeds per set, particle bounds -----------------------------------------


def test_dropout_recipe_sets_model_and_training_options():
    full = make_jobs("table2", sets=("jsb",), budget="full", recipe_name="dropout")
    assert all(j.model_options["dropout"] == 0.2 and j.model_options["two_networks"] is False
               and j.model_options["init"] == "torch" for j in full)
    assert full[0].train_options == {"epochs": 200, "lr_decay_start": 40, "lr_decay": 1.05,
                                     "patience": 25}
    assert full[0].meta["recipe"] == "dropout"
    # The paper recipe is the old plan, ids unchanged; a recipe's jobs are other jobs.
    paper = make_jobs("table2", sets=("jsb",), budget="full")
    assert {j.id for j in paper}.isdisjoint(j.id for j in full)
    # The quick budget's epochs win, and --set wins over the recipe's model options.
    quick = make_jobs("table2", sets=("jsb",), budget="quick", recipe_name="dropout",
                      overrides={"dropout": 0.1})
    assert quick[0].train_options["epochs"] == 4 and quick[0].train_options["lr_decay"] == 1.05
    assert quick[0].model_options["dropout"] == 0.1
    with pytest.raises(ConfigError, match="unknown recipe"):
        make_jobs("table2", recipe_name="fancy")


def test_variants_and_seeds_per_set_choose_the_jobs():
    jobs = make_jobs("table2", "both", ("jsb", "piano"), "full", seeds={"jsb": 3, "piano": 1},
                     variants=("smooth-resq",))
    assert [(j.dataset, j.seed) for j in jobs] == [
        ("jsb", 0), ("jsb", 1), ("jsb", 2), ("jsb-fraccaro", 0), ("jsb-fraccaro", 1),
        ("jsb-fraccaro", 2), ("piano", 0), ("piano-fraccaro", 0)]
    assert {j.meta["variant"] for j in jobs} == {"smooth + Res_q"}
    by_label = make_jobs("table2", sets=("jsb",), variants=("smooth + Res_q", "filter"))
    assert [j.meta["variant"] for j in by_label] == ["smooth + Res_q", "filter"]
    with pytest.raises(ConfigError, match="no variant"):
        make_jobs("table2", variants=("smoothest",))
    with pytest.raises(ConfigError, match="not among"):
        make_jobs("table2", sets=("jsb",), seeds={"bach": 2})
    with pytest.raises(ConfigError, match="at least 1"):
        make_jobs("table2", sets=("jsb",), seeds={"jsb": 0})


def test_particle_bounds_are_tested_once_and_tabulated(tmp_path, data_dir, monkeypatch):
    from srnn.evaluate import evaluate_particle_bound
    from srnn.experiments.report import result_row, tables
    from srnn.train.trainer import load_trained

    job = tiny_job("b")
    first = run_jobs([job], tmp_path, data_dir=data_dir, bounds=(("iwae", 3),))[job.id]
    # The figure is srnn evaluate's: the trained model under IWAE with seed 0.
    model, _, data = load_trained(job.run_dir(tmp_path), data_dir=data_dir)
    direct = evaluate_particle_bound(model, data.split("test"), "iwae", 3, seed=0)
    assert first["iwae_k3_per_step"] == pytest.approx(direct["iwae_k3_per_step"], abs=1e-6)
    assert "fivo_k3_per_step" not in first

    def no_training(*args, **kwargs):
        raise AssertionError("a finished job was trained again")

    import importlib

    monkeypatch.setattr(importlib.import_module("srnn.train.trainer"), "train", no_training)
    again = run_jobs([job], tmp_path, data_dir=data_dir,
                     bounds=(("iwae", 3), ("fivo", 3)))[job.id]
    assert again["iwae_k3_per_step"] == first["iwae_k3_per_step"]  # kept, not recomputed
    assert again["fivo_k3_per_step"] < 0 and "fivo_k3_resampling_rate" in again
    assert again["elbo_per_step"] == first["elbo_per_step"]
    row = result_row(Job(label="b", dataset="jsb", model_options=TINY,
                         train_options=TINY_TRAIN,
                         meta={"experiment": "table2", "protocol": "canonical", "set": "jsb",
                               "variant": "smooth + Res_q"}), again)
    assert row["iwae_per_step"] == again["iwae_k3_per_step"]
    assert row["fivo_mean_of_sequences"] == again["fivo_k3_mean_of_sequences"]
    assert row["particles"] == "3"
    md = tables("table2", [row])
    assert "K = 3" in md and f"{again['fivo_k3_per_step']:.3f}" in md


def test_report_only_tables_the_finished_jobs(tmp_path, data_dir):
    opts = {k: v for k, v in TINY.items() if k != "a_dim"}
    kwargs = dict(sets=("jsb",), budget="quick", epochs=1, overrides=opts)
    with pytest.raises(ConfigError, match="none of the 4 jobs"):
        reproduce("table2", tmp_path, report_only=True, **kwargs)
    jobs = make_jobs("table2", **kwargs)
    run_jobs(jobs[:1], tmp_path, data_dir=data_dir)
    rows = reproduce("table2", tmp_path, report_only=True, command="srnn reproduce x",
                     **kwargs)
    assert [r["job_id"] for r in rows] == [jobs[0].id]
    md = (tmp_path / "tables.md").read_text()
    assert "(1 of 4 jobs finished)" in md and "smooth + Res_q" in md
    assert not (tmp_path / "jobs" / jobs[1].id).exists()  # nothing else was trained
