"""`srnn tune`: a tiny model tuned for a few hundred updates raises a simple reward with a
finite KL, writes an ordinary run directory, resumes when killed, and takes runs of 0.1.0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from srnn.cli import main
from srnn.errors import ConfigError
from srnn.tuning.tune import curves, tune

FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"
FAST = {"batch": 16, "length": 8, "eval_num": 16, "iwae_samples": 2, "write_num": 1,
        "progress": False}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Path:
    """A copy of the run directory srnn 0.1.0 wrote (the tuner must not write into it)."""
    out = tmp_path_factory.mktemp("old") / "run"
    shutil.copytree(FIXTURE, out)
    return out


@pytest.fixture(scope="module")
def tuned(old_run, tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("tuned") / "t"
    tune(old_run, out, rewards=["note:60=1"], kl_weight=0.05, updates=200, lr=3e-3,
         data_dir=str(data_dir), checkpoint_every=100, **FAST)
    return out


def test_tuning_raises_the_reward_and_keeps_the_kl_finite(tuned):
    rows = curves(tuned)
    assert [r["update"] for r in rows] == list(range(1, 201))
    first = np.mean([r["rewards"]["note:60"] for r in rows[:20]])
    last = np.mean([r["rewards"]["note:60"] for r in rows[-20:]])
    assert last > first + 0.3, (first, last)
    assert all(np.isfinite(r["kl_per_step"]) for r in rows)
    assert rows[-1]["kl_per_step"] > 0.01  # it moved away from the pretrained model
    s = json.loads((tuned / "before_after.json").read_text())
    assert s["tuned"]["rewards"]["note:60"] > s["pretrained"]["rewards"]["note:60"] + 0.3
    assert s["pretrained"]["kl_per_step_from_pretrained"] == pytest.approx(0, abs=1e-9)
    for k in ("test_elbo_per_step", "test_iwae_per_step"):
        assert np.isfinite(s["tuned"][k]) and np.isfinite(s["pretrained"][k])
    md = (tuned / "before_after.md").read_text()
    assert "reward: note:60" in md and "test IWAE per step" in md


def test_the_tuned_folder_is_an_ordinary_run(tuned, data_dir, tmp_path, capsys):
    for name in ("config.json", "data.json", "best.pt", "results.json", "tuning.json",
                 "tuning.jsonl", "tuning.png", "samples/tuned.mid", "samples/pretrained.mid"):
        assert (tuned / name).is_file(), name
    assert main(["sample", str(tuned), "--out", str(tmp_path / "s.mid"), "--length", "8"]) == 0
    assert (tmp_path / "s.mid").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(tuned), "--data-dir", str(data_dir)]) == 0
    text = capsys.readouterr().out
    res = json.loads(text[text.index("{"):])
    assert np.isfinite(res["elbo_per_step"]) and res["model"] == "srnn"
    assert json.loads((tuned / "results.json").read_text())["elbo_per_step"] == pytest.approx(
        res["elbo_per_step"], abs=1e-6)


def test_a_killed_tuning_resumes_and_gives_the_same_curves(old_run, tmp_path, data_dir):
    common = dict(rewards=["note:60=1", "voices=0.5"], voices=2, kl_weight=0.1, lr=1e-3,
                  data_dir=str(data_dir), checkpoint_every=5, **FAST)
    whole = tmp_path / "whole"
    tune(old_run, whole, updates=12, **common)
    cut = tmp_path / "cut"
    tune(old_run, cut, updates=10, **common)
    # Killed after update 11 was logged but before a state was saved after it:
    lines = (cut / "tuning.jsonl").read_text().splitlines()
    extra = {**json.loads(lines[-1]), "update": 11, "reward": -1.0}
    (cut / "tuning.jsonl").write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    tune(old_run, cut, updates=12, **common)
    a, b = curves(whole), curves(cut)
    assert [r["update"] for r in b] == list(range(1, 13))
    for x, y in zip(a, b, strict=True):
        assert x["reward"] == pytest.approx(y["reward"], abs=1e-9)
        assert x["kl_per_step"] == pytest.approx(y["kl_per_step"], rel=1e-6, abs=1e-9)
    with pytest.raises(ConfigError, match="other settings"):
        tune(old_run, cut, updates=12, **{**common, "kl_weight": 0.5})


def test_bad_options_and_inputs_are_clear_errors(old_run, tmp_path, capsys):
    for args, message in ((["--kl-weight", "-1"], "--kl-weight"), (["--updates", "0"],
                          "--updates"), (["--reward", "nonsense=1"], "unknown reward"),
                          (["--lr", "nan"], "--lr")):
        assert main(["tune", str(old_run), "--out", str(tmp_path / "x"), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["tune", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_tune_works_on_a_midi_folder_run_with_a_primer(tmp_path):
    from test_midi import make_folder

    from srnn.music.midi import write_midi
    from srnn.train.trainer import train

    folder = tmp_path / "mine"
    make_folder(folder, 6, bad=False)
    run = tmp_path / "run"
    train(str(folder), run, model="vrnn", epochs=1, progress=False,
          model_options={"d_dim": 8, "z_dim": 3, "hidden": 8, "feature_dim": 8})
    # A primer in G major: the key reward then counts G major's scale.
    primer = np.zeros((8, 88), dtype=np.float32)
    for t, p in enumerate([55, 59, 62, 67, 62, 59, 55, 66]):
        primer[t, p - 21] = 1
    write_midi(primer, tmp_path / "p.mid", 0.25)
    out = tmp_path / "tuned"
    s = tune(run, out, rewards=["key=1", "melody=0.5"], updates=3, primer=str(tmp_path / "p.mid"),
             **FAST)
    assert json.loads((out / "tuning.json").read_text())["key"] == [7, "major"]
    assert len(curves(out)) == 3 and np.isfinite(s["tuned"]["test_elbo_per_step"])
    # The written samples hold the primer and then the continuation.
    from srnn.music.midi import read_midi

    assert (out / "samples" / "tuned.mid").is_file()
    assert len(read_midi(out / "samples" / "tuned.mid", step_seconds=0.25)) >= 8


def test_tradeoff_tables_several_tunings(tuned, tmp_path):
    from srnn.tuning.tradeoff import main as tradeoff

    assert tradeoff([str(tuned), "--out", str(tmp_path)]) == 0
    rs = json.loads((tmp_path / "tradeoff.json").read_text())["tunings"]
    s = json.loads((tuned / "before_after.json").read_text())
    assert rs[0]["reward_gain_relative"] == pytest.approx(
        s["tuned"]["reward"] / s["pretrained"]["reward"] - 1)
    assert rs[0]["elbo_drop"] == pytest.approx(
        s["pretrained"]["test_elbo_per_step"] - s["tuned"]["test_elbo_per_step"])
    assert "| 0.05 | 200 |" in (tmp_path / "tradeoff.md").read_text()
    assert (tmp_path / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert tradeoff([str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2


def test_the_data_anchor_keeps_the_test_elbo_closer_and_is_recorded(old_run, tmp_path,
                                                                         data_dir):
    """With --data-weight the tuner also climbs the ELBO of training windows: the same tuning
    loses less test ELBO than KL control alone, logs the data term, and records it."""
    opts = dict(rewards=["note:60=1"], kl_weight=0.05, updates=60, lr=3e-3,
                data_dir=str(data_dir), **FAST)
    free = tune(old_run, tmp_path / "free", **opts)
    anchored = tune(old_run, tmp_path / "anchored", data_weight=1.0, data_batch=8, **opts)
    lost = {k: s["pretrained"]["test_elbo_per_step"] - s["tuned"]["test_elbo_per_step"]
            for k, s in (("free", free), ("anchored", anchored))}
    assert lost["anchored"] < lost["free"] - 0.05, lost
    assert anchored["tuned"]["rewards"]["note:60"] > anchored["pretrained"]["rewards"]["note:60"]
    rows = curves(tmp_path / "anchored")
    assert all(np.isfinite(r["data_elbo_per_step"]) for r in rows)
    assert "data_elbo_per_step" not in curves(tmp_path / "free")[0]
    st = json.loads((tmp_path / "anchored" / "tuning.json").read_text())
    assert st["data_weight"] == 1.0 and "ELBO of training windows" in st["objective"]
    assert "data_weight" not in json.loads((tmp_path / "free" / "tuning.json").read_text())
