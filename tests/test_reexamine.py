"""`srnn reproduce reexamine` (Lai, Dai, Yang and Yoo 2019) and the parts of its recipe that are
new to the trainer: the cosine learning rate and the KL weight rising per update."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from srnn.cli import main
from srnn.errors import ConfigError
from srnn.experiments.jobs import run_jobs
from srnn.experiments.paper import DAI_EPOCHS, DAI_RECIPE, DAI_UPDATES, REEXAMINE_SETS
from srnn.experiments.reproduce import make_jobs, reexamine_settings
from srnn.experiments.sizes import count_parameters, match_parameters
from srnn.train.config import RunConfig, TrainConfig
from srnn.train.run_dir import RunDirectory
from srnn.train.schedules import KLAnnealing, LRSchedule, cosine_lr
from srnn.train.trainer import Trainer, train, updates_per_epoch

TINY = {"d_dim": 8, "a_dim": 8, "z_dim": 3, "hidden": 8, "feature_dim": 8}
# Every width of both models set by hand (nothing left to scale), the emissions' too.
TINY_ALL = {**TINY, "h_dim": 8, "feature_layers": 1, "ar_hidden": 8, "mixtures": 2}


def read_csv(path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


# -- schedules -----------------------------------------------------------------------------


def test_cosine_schedule_starts_at_lr_halves_in_the_middle_and_ends_at_lr_min():
    s = LRSchedule("cosine", lr=1e-3, lr_min=1e-6, total_updates=1000)
    assert s(1, 0) == pytest.approx(1e-3)
    assert s(2, 500) == pytest.approx((1e-3 + 1e-6) / 2)
    assert s(4, 1000) == pytest.approx(1e-6)
    assert s(9, 4000) == pytest.approx(1e-6)  # past the end (a longer run) it stays there
    values = [s(1, k) for k in range(0, 1001, 25)]
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    # A function of the updates made only: the epoch does not enter, nor any state.
    assert s(1, 250) == s(3, 250) == cosine_lr(1e-3, 1e-6, 250, 1000)
    # The exponential schedule is the old one: divided per epoch after decay_start.
    e = LRSchedule("exponential", lr=1e-3, decay=2.0, decay_start=2)
    assert [e(k, 10 * k) for k in (1, 2, 3, 4)] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="cosine"):
        LRSchedule("linear")


def test_kl_rate_raises_the_weight_per_update_up_to_one():
    kl = KLAnnealing(0.2, updates=10, rate=5e-5)  # the rate wins over the updates
    assert kl(0) == pytest.approx(0.2)
    assert kl(1000) == pytest.approx(0.25)
    assert kl(15_999) < 1.0 and kl(16_000) == pytest.approx(1.0) and kl(10**6) == 1.0
    assert KLAnnealing(0.2, updates=10)(5) == pytest.approx(0.6)  # rate 0: over `updates`


def test_config_files_from_before_the_new_fields_still_load():
    d = RunConfig("jsb").to_dict()
    for key in ("lr_schedule", "lr_min", "kl_rate"):
        del d["train"][key]
    t = RunConfig.from_dict(json.loads(json.dumps(d))).train
    assert (t.lr_schedule, t.lr_min, t.kl_rate) == ("exponential", 1e-6, 0.0)


def test_a_cosine_run_resumed_inside_an_epoch_continues_the_same_curves(tmp_path, data_dir,
                                                                       monkeypatch):
    options = dict(model_options=TINY, data_dir=data_dir, progress=False, epochs=3, subset=3,
                   batch_size=1, lr=1e-2, lr_schedule="cosine", lr_min=1e-4, kl_start=0.2,
                   kl_rate=0.05)
    seen: list[tuple[int, float]] = []  # (updates made before, learning rate) of each update
    totals: set[int] = set()  # the updates the cosine runs over
    update = Trainer._update

    def spy(self, loss):
        seen.append((self.progress.step, self.opt.param_groups[0]["lr"]))
        totals.add(self.lr_at.total_updates)
        return update(self, loss)

    monkeypatch.setattr(Trainer, "_update", spy)
    whole = train("jsb", tmp_path / "whole", **options)
    reference, (total,) = list(seen), totals
    # 3 epochs of 3 pieces (one of two windows or, by the random tiling, three) in batches of 1
    assert abs(len(seen) - total) <= 3 and [s for s, _ in reference] == list(range(len(seen)))
    assert all(lr == pytest.approx(cosine_lr(1e-2, 1e-4, s, total)) for s, lr in reference)
    assert reference[0][1] == pytest.approx(1e-2) and reference[-1][1] < 1e-3
    kl = [(m["step"], m["kl_weight"]) for m in RunDirectory(tmp_path / "whole").metrics()]
    assert all(w == pytest.approx(min(1.0, 0.2 + 0.05 * step)) for step, w in kl)

    seen.clear()

    def stop_after_four(self, loss):  # as Ctrl-C does: stop after the current batch
        ok = spy(self, loss)
        if len(seen) == 4:
            self.stop_requested = True
        return ok

    monkeypatch.setattr(Trainer, "_update", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        train("jsb", tmp_path / "cut", **options)
    monkeypatch.setattr(Trainer, "_update", spy)
    resumed = train("jsb", tmp_path / "cut", resume=True, **options)
    assert seen == reference
    for key in ("elbo_per_step", "valid_elbo_per_step", "best_epoch"):
        assert resumed[key] == pytest.approx(whole[key], abs=1e-5), key


# -- the experiment ------------------------------------------------------------------------


def test_reexamine_has_dai_models_sets_recipe_and_matched_sizes():
    jobs = make_jobs("reexamine", budget="full", flat=True)
    by = {(j.meta["set"], j.meta["variant"]): j for j in jobs}
    assert {j.meta["set"] for j in jobs} == set(REEXAMINE_SETS)
    music = ["F-RNN", "F-SRNN", "RNN-hier", "SRNN-hier", "RNN-flat", "SRNN-flat"]
    assert [v for s, v in by if s == "musedata"] == music
    assert [v for s, v in by if s == "fsdd-perm"] == [*music[:4], "δ-RNN-random", *music[4:]]
    emission = {(s, v): j.model_options["emission"] for (s, v), j in by.items()}
    assert emission["nottingham", "RNN-hier"] == emission["nottingham", "SRNN-hier"] == "made"
    assert emission["fsdd", "SRNN-hier"] == "ar-rnn" and emission["fsdd", "F-RNN"] == "gmm"
    assert emission["fsdd", "δ-RNN-random"] == "delta-random"
    assert {j.model for (_, v), j in by.items() if "SRNN" in v} == {"srnn-dai"}
    assert {j.train_options.get("flat", False) for (_, v), j in by.items()
            if v.endswith("flat")} == {True}
    assert not any("flat" in j.train_options for (_, v), j in by.items()
                   if not v.endswith("flat"))
    for j in jobs:  # the recipe, DAI_UPDATES updates, no early stopping
        t = j.train_options
        assert (t["lr"], t["lr_schedule"], t["lr_min"], t["batch_size"]) == (
            1e-3, "cosine", 1e-6, 16)
        assert (t["kl_start"], t["kl_rate"]) == (0.2, 5e-5)
        assert t["epochs"] == t["patience"] == DAI_EPOCHS[j.meta["set"]]
    # On music each RNN has at most its SRNN's parameters, and nearly as many.
    for s in ("musedata", "nottingham"):
        for rnn, srnn, x_dim in (("F-RNN", "F-SRNN", 88), ("RNN-hier", "SRNN-hier", 88),
                                 ("RNN-flat", "SRNN-flat", 1)):
            n_rnn, n_srnn = (count_parameters(by[s, v].model,
                                              {"x_dim": x_dim, **by[s, v].model_options})
                             for v in (rnn, srnn))
            assert 0.98 * n_srnn <= n_rnn <= n_srnn, (s, rnn)
    # quick: a smoke run (4 epochs on 16 sequences, KL annealed over the first epoch).
    quick = make_jobs("reexamine", sets=("fsdd",), budget="quick", flat=False)[0]
    assert quick.train_options["subset"] == 16 and quick.train_options["epochs"] == 4
    assert "kl_rate" not in quick.train_options and len(make_jobs(
        "reexamine", sets=("fsdd",), flat=False)) == 5


@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": "fraccaro"}, "does not apply"), ({"sets": ("jsb",)}, "unknown set"),
    ({"overrides": {"nonsense": 1}}, "no model"), ({"budget": "huge"}, "unknown budget"),
])
def test_bad_reexamine_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_jobs("reexamine", **kwargs)


def test_full_budget_is_dai_updates_on_every_set(data_dir):
    from srnn.data import load_dataset

    recipe = TrainConfig(batch_size=DAI_RECIPE["batch_size"])
    for name in ("musedata", "nottingham", "fsdd"):
        per_epoch = updates_per_epoch(load_dataset(name, data_dir).train, recipe)
        assert DAI_UPDATES <= DAI_EPOCHS[name] * per_epoch < DAI_UPDATES + per_epoch, name


def test_at_most_matching_never_exceeds_the_target():
    for target in (400_000, 1_234_567, 3_216_388):
        opts = match_parameters("rnn", target, {"x_dim": 88}, at_most=True)
        assert 0.98 * target <= count_parameters("rnn", opts) <= target
    # The closest match may lie above the target; at_most never does.
    assert count_parameters("rnn", match_parameters("rnn", 10**6, {"x_dim": 88})) > 0


def test_options_set_by_hand_reach_only_the_models_and_emissions_that_read_them():
    settings = {v.label: o for v, o in reexamine_settings("music", {"ar_hidden": 16,
                                                                     "h_dim": 40}, flat=False)}
    assert settings["RNN-hier"]["ar_hidden"] == settings["SRNN-hier"]["ar_hidden"] == 16
    assert "ar_hidden" not in settings["F-RNN"] and "ar_hidden" not in settings["F-SRNN"]
    assert settings["F-SRNN"]["h_dim"] == 40 and "h_dim" not in settings["F-RNN"]


# -- end to end ----------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_reexamine_runs_end_to_end_and_writes_tables_and_plots(tmp_path, data_dir,
                                                                    capsys):
    args = ["reproduce", "reexamine", "--out", str(tmp_path), "--sets", "nottingham,fsdd",
            "--budget", "quick", "--epochs", "1", "--no-flat", "--data-dir", str(data_dir),
            "--threads", "1", *[f"--set={k}={v}" for k, v in TINY_ALL.items()]]
    assert main(args) == 0
    out = json.loads((text := capsys.readouterr().out)[text.rindex("\n{\n") + 1:])
    assert out["jobs"] == 4 + 5 and out["failed"] == []
    rows = read_csv(tmp_path / "results.csv")
    assert {r["modality"] for r in rows} == {"music", "speech"}
    count = {(r["set"], r["variant"]): int(r["parameters"]) for r in rows}
    assert count["nottingham", "F-RNN"] <= count["nottingham", "F-SRNN"]
    assert count["nottingham", "RNN-hier"] <= count["nottingham", "SRNN-hier"]
    for r in rows:
        assert r["bound"] == ("elbo" if r["model"] == "srnn-dai" else "exact")
        assert float(r["test_per_step"]) < 0 and float(r["test_per_sequence"]) < 0
        options = json.loads((tmp_path / "jobs" / r["job_id"] / "config.json").read_text())
        assert options["train"]["lr_schedule"] == "cosine"
    md = (tmp_path / "tables.md").read_text()
    for text in ("## Music", "## Speech", "per time step", "per frame", "per recording",
                 "| *bound* | exact | ELBO |", "δ-RNN-random", "Nottingham", "FSDD"):
        assert text in md, text
    for name in ("music-test", "music-curves", "speech-test", "speech-curves"):
        assert (tmp_path / f"reexamine-{name}.png").read_bytes()[:4] == b"\x89PNG", name


def test_a_flat_job_trains_on_the_flat_view(tmp_path, data_dir):
    (job,) = [j for j in make_jobs("reexamine", sets=("fsdd",), epochs=1, overrides=TINY_ALL,
                                   flat=True) if j.meta["variant"] == "RNN-flat"]
    job = dataclasses.replace(job, train_options={**job.train_options, "subset": 2})
    res = run_jobs([job], tmp_path, data_dir=data_dir)[job.id]
    assert "error" not in res, res.get("error")
    assert res["flat"] and res["model_options"]["x_dim"] == 1 and res["bound"] == "exact"
