"""The flat view (RNN-flat, SRNN-flat of Lai, Dai et al. 2019): each step of D values as D
scalar steps, with every figure still per original step."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rolls, synthetic_dataset

from srnn.bounds.elbo import elbo_terms
from srnn.cli import main
from srnn.data import Modality, SequenceDataset, Split
from srnn.data.batching import lane_streams, pad_batch, windows
from srnn.data.card import DataCard, data_card, read_card
from srnn.data.flat import flatten_dataset, flatten_split, fold_steps, step_sums
from srnn.errors import ConfigError
from srnn.evaluate import evaluate_elbo
from srnn.models import build_model
from srnn.models.base import sample_normal
from srnn.train.config import RunConfig, TrainConfig
from srnn.train.trainer import Trainer

FSDD = Path(os.environ.get("SRNN_DATA_DIR", "")) / "speech" / "fsdd" / "files.csv"
TINY_RNN = dict(x_dim=1, d_dim=8, hidden=8, feature_layers=1, feature_dim=8)
TINY_SRNN = dict(TINY_RNN, z_dim=2, a_dim=6)


def _dataset(rolls: list[np.ndarray]) -> SequenceDataset:
    split = Split.from_targets(rolls)
    return SequenceDataset(name="r", protocol="r", time_step="step", train=split, valid=split,
                           test=split)


def test_flatten_and_fold_are_inverse() -> None:
    rolls = random_rolls(5, (3, 9), dim=4, seed=3)
    flat = flatten_dataset(_dataset(rolls))
    assert flat.flat and flat.dim == 1 and flat.steps_per_step == 4
    split = flat.test
    assert split.steps == 4 * sum(len(r) for r in rolls)
    assert split.reported_steps == sum(len(r) for r in rolls)
    for r, x in zip(rolls, split.x, strict=True):
        assert x.shape == (4 * len(r), 1)
        np.testing.assert_array_equal(x[:, 0], r.ravel())  # step by step, values in order
        np.testing.assert_array_equal(fold_steps(x, 4), r)
    np.testing.assert_array_equal(fold_steps(np.stack(split.x[:1]), 4)[0], rolls[0])
    terms = np.arange(12.0)
    np.testing.assert_array_equal(step_sums(terms, 4), [6.0, 22.0, 38.0])
    with pytest.raises(ValueError, match="already a flat view"):
        flatten_dataset(flat)
    with pytest.raises(ValueError, match="whole number"):
        fold_steps(np.zeros((7, 1)), 4)


def test_the_input_of_a_scalar_is_the_scalar_before_it_across_steps() -> None:
    rolls = random_rolls(3, (4, 8), dim=5, seed=1, p=0.5)
    split = flatten_split(Split.from_targets(rolls))
    for x, u in zip(split.x, split.u, strict=True):
        assert u[0, 0] == 0  # u of the very first scalar
        np.testing.assert_array_equal(u[1:], x[:-1])  # within and across step boundaries
    # Stream-ordered windows (u_t = x_{t-1} stored across windows): flattening window by window
    # gives the flat view of the whole streams.
    whole = rolls[0]
    cut = Split(x=[whole[:3], whole[3:]], u=[Split.from_targets([whole]).u[0][:3],
                                            Split.from_targets([whole]).u[0][3:]], streams=1)
    joined = flatten_split(cut).joined_streams()
    np.testing.assert_array_equal(joined.x[0], split.x[0])
    np.testing.assert_array_equal(joined.u[0], split.u[0])
    assert joined.steps_per_step == 5


def test_windows_count_original_steps_and_cut_on_their_boundaries() -> None:
    rolls = random_rolls(6, (5, 30), dim=3, seed=2)
    plain, flat = Split.from_targets(rolls), flatten_split(Split.from_targets(rolls))
    px, pu = windows(plain, 7, np.random.default_rng(4))
    fx, fu = windows(flat, 7, np.random.default_rng(4))  # the same cuts, in scalar steps
    assert len(px) == len(fx)
    for a, b, ua, ub in zip(px, fx, pu, fu, strict=True):
        assert len(b) == 3 * len(a) <= 3 * 7
        np.testing.assert_array_equal(fold_steps(b, 3), a)
        np.testing.assert_array_equal(ub, flatten_split(Split(x=[a], u=[ua])).u[0])
    lanes = lane_streams(flat, 2, 4, np.random.default_rng(0))
    assert lanes.steps_per_step == 3 and max(len(x) for x in lanes.x) == 12


def _hand_log_likelihood(model, roll: np.ndarray) -> float:
    """log p(roll) = sum_t sum_j log p(x_tj | x_t<j, x_<t), one scalar at a time through the
    model's generative step (independent of the flat view's code)."""
    state, prev, total = model.init_generative_state(1), torch.zeros(1, 1), 0.0
    for step in roll:
        for value in step:
            x = torch.tensor([[float(value)]])
            s = model.generative_step(state, prev, sample_normal)
            total += float(s.emission.log_prob(x).sum())
            state, prev = s.state, x
    return total


@torch.no_grad()
def test_an_exact_rnn_on_the_flat_view_reports_nats_per_original_step() -> None:
    torch.manual_seed(0)
    model = build_model("rnn", **TINY_RNN).eval()
    rolls = random_rolls(4, (3, 7), dim=5, seed=6)
    res = evaluate_elbo(model, flatten_dataset(_dataset(rolls)).test)
    ll = np.array([_hand_log_likelihood(model, r) for r in rolls])
    steps = np.array([len(r) for r in rolls])
    assert res["bound"] == "exact" and res["steps"] == steps.sum()
    assert res["steps_per_step"] == 5
    assert res["elbo_per_step"] == pytest.approx(ll.sum() / steps.sum(), rel=1e-6)  # not / T·D
    assert res["elbo_mean_of_sequences"] == pytest.approx(np.mean(ll / steps), rel=1e-6)


@torch.no_grad()
def test_an_srnn_on_the_flat_view_reports_its_elbo_per_original_step() -> None:
    torch.manual_seed(1)
    model = build_model("srnn", **TINY_SRNN).eval()
    roll = random_rolls(1, (6, 7), dim=4, seed=2)[0]
    split = flatten_dataset(_dataset([roll])).test
    res = evaluate_elbo(model, split, seed=3)
    terms = elbo_terms(model, pad_batch(split.x, split.u),
                       generator=torch.Generator().manual_seed(3))  # the same draws
    assert terms.mask.sum() == 4 * len(roll)
    assert res["elbo_per_step"] == pytest.approx(float(terms.elbo().sum()) / len(roll),
                                                 rel=1e-5)
    assert res["kl_per_step"] == pytest.approx(float(terms.kl.sum()) / len(roll), rel=1e-5)


def test_training_figures_are_per_original_step(tmp_path) -> None:
    """A flat model whose emission gives p = 1/2 to every value: -D log 2 per original step in
    the epoch's training figure, its validation figure and the test results."""
    data = flatten_dataset(synthetic_dataset(dim=6))
    for s in ("train", "valid", "test"):
        setattr(data, s, data.split(s).subset(8))
    cfg = RunConfig(dataset="synthetic", model="rnn", model_options=dict(TINY_RNN),
                    train=TrainConfig(epochs=1, batch_size=8, window=5, lr=0.0), flat=True)
    t = Trainer(cfg, tmp_path / "run", data=data, progress=False)
    with torch.no_grad():
        for p in t.model.emission.parameters():
            p.zero_()
    res = t.fit()
    line = t.run.metrics()[0]
    for value in (line["train_elbo"], line["valid_elbo"], res["elbo_per_step"]):
        assert value == pytest.approx(-6 * math.log(2), rel=1e-6)
    assert res["flat"] is True and res["steps"] == data.test.reported_steps
    with pytest.raises(ConfigError, match="flat"):  # the config and the data must agree
        Trainer(RunConfig(dataset="synthetic", model="rnn"), tmp_path / "other", data=data)
    with pytest.raises(ConfigError, match="flat view"):  # no pitches to shift in one value
        Trainer(RunConfig(dataset="synthetic", model="rnn", train=TrainConfig(transpose=2),
                          flat=True), tmp_path / "other",
                data=replace(data, modality=Modality.MUSIC))


def test_srnn_flat_trains_on_the_flat_view(tmp_path) -> None:
    data = flatten_dataset(synthetic_dataset(dim=4))
    for s in ("train", "valid", "test"):
        setattr(data, s, data.split(s).subset(6))
    cfg = RunConfig(dataset="synthetic", model="srnn", model_options=dict(TINY_SRNN),
                    train=TrainConfig(epochs=2, batch_size=4, window=6, lr=1e-2), flat=True)
    res = Trainer(cfg, tmp_path / "run", data=data, progress=False).fit()
    assert res["model_options"]["x_dim"] == 1 and np.isfinite(res["elbo_per_step"])
    assert res["steps"] == data.test.reported_steps


def test_old_configs_and_cards_are_of_the_plain_view() -> None:
    cfg = RunConfig(dataset="jsb", flat=True)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).flat is True
    old = {k: v for k, v in RunConfig(dataset="jsb").to_dict().items() if k != "flat"}
    assert RunConfig.from_dict(old).flat is False
    flat = flatten_dataset(synthetic_dataset(dim=3))
    card = json.loads(json.dumps(data_card(flat)))
    assert (card["flat"], card["steps_per_step"], card["dim"]) == (True, 3, 1)
    assert read_card(card, "synthetic") == DataCard.of(flat)
    plain = read_card({k: v for k, v in card.items() if k not in ("flat", "steps_per_step")},
                      "synthetic")
    assert (plain.flat, plain.steps_per_step) == (False, 1)


def test_a_flat_run_on_jsb_evaluates_samples_and_plots(data_dir, tmp_path, capsys) -> None:
    from srnn.music.midi import read_midi, write_midi

    run = tmp_path / "jsb-flat"
    assert main(["train", "--dataset", "jsb", "--data-dir", str(data_dir), "--flat",
                 "--model", "rnn", "--out", str(run), "--subset", "2", "--epochs", "1",
                 "--window", "4", "--d-dim", "8", "--hidden", "8", "--feature-dim", "8",
                 "--feature-layers", "1", "--no-progress"]) == 0
    res = json.loads((run / "results.json").read_text())
    card = json.loads((run / "data.json").read_text())
    assert res["flat"] is True and res["steps_per_step"] == 88 and card["flat"] is True
    assert res["model_options"]["x_dim"] == 1 and res["model_options"]["emission"] == "bernoulli"
    assert -88 * math.log(2) - 5 < res["elbo_per_step"] < 0  # per original step of 88 notes
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(data_dir)]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["elbo_per_step"] == pytest.approx(res["elbo_per_step"]) and \
        ev["steps"] == res["steps"]
    assert main(["sample", str(run), "--out", str(tmp_path / "s.npy"), "--length", "6",
                 "--num", "2"]) == 0
    rolls = np.load(tmp_path / "s.npy")
    assert rolls.shape == (2, 6, 88) and set(np.unique(rolls)) <= {0.0, 1.0}
    assert main(["sample", str(run), "--out", str(tmp_path / "s.mid"), "--length", "6"]) == 0
    midi = read_midi(tmp_path / "s.mid", steps_per_beat=1)
    assert midi.shape[1] == 88 and len(midi) <= 6
    primer = (np.random.default_rng(0).random((4, 88)) < 0.05).astype(np.float32)
    primer[:, 40] = 1
    write_midi(primer, tmp_path / "p.mid", 0.5)
    assert main(["sample", str(run), "--out", str(tmp_path / "c.npy"), "--length", "3",
                 "--primer", str(tmp_path / "p.mid")]) == 0
    cont = np.load(tmp_path / "c.npy")
    assert cont.shape == (1, 7, 88)
    np.testing.assert_array_equal(cont[0, :4], read_midi(tmp_path / "p.mid", steps_per_beat=1))
    capsys.readouterr()
    assert main(["reconstruct", str(run), "--input", str(tmp_path / "p.mid"), "--out",
                 str(tmp_path / "r.mid"), "--probabilities", str(tmp_path / "r.npy"),
                 "--draws", "2"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["steps"] == 4 and np.load(tmp_path / "r.npy").shape == (4, 88)
    assert main(["plot", str(run), "--out", str(tmp_path / "plots"), "--num", "2",
                 "--length", "5", "--data-dir", str(data_dir)]) == 0
    stats = json.loads((tmp_path / "plots" / "sample_stats.json").read_text())
    assert stats["sample_length"] == 5


@pytest.mark.skipif(not FSDD.is_file(), reason="FSDD not found under $SRNN_DATA_DIR/speech/fsdd")
def test_a_flat_run_on_speech_writes_waveforms(tmp_path) -> None:
    from scipy.io import wavfile

    run = tmp_path / "fsdd-flat"
    assert main(["train", "--dataset", "fsdd", "--flat", "--model", "rnn", "--out", str(run),
                 "--subset", "2", "--epochs", "1", "--window", "3", "--d-dim", "8",
                 "--hidden", "8", "--feature-dim", "8", "--feature-layers", "1",
                 "--no-progress"]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["model_options"]["emission"] == "gauss" and res["steps_per_step"] == 200
    assert np.isfinite(res["elbo_per_step"])
    assert main(["sample", str(run), "--out", str(tmp_path / "s.wav"), "--length", "2"]) == 0
    rate, wav = wavfile.read(tmp_path / "s.wav")
    assert rate == 8000 and wav.shape == (400,)


def test_compare_trains_every_model_on_the_flat_view(tmp_path) -> None:
    from srnn.experiments.compare import compare

    rng = np.random.default_rng(0)
    arrays = tmp_path / "real.npz"  # real values: gauss scalars
    np.savez(arrays, **{s: rng.normal(size=(4, 6, 3)) for s in ("train", "valid", "test")})
    tiny = {k: v for k, v in TINY_RNN.items() if k != "x_dim"}
    kw = dict(match=False, options={"rnn": tiny}, epochs=1, window=4)
    rows = compare(str(arrays), ["rnn"], tmp_path / "cmp", flat=True, **kw)
    res = json.loads((tmp_path / "cmp" / "rnn" / "results.json").read_text())
    assert res["flat"] is True and res["steps"] == 24 and res["steps_per_step"] == 3
    assert res["model_options"]["emission"] == "gauss"
    assert rows[0]["test_per_step"] == res["elbo_per_step"]
    assert rows[0]["cross_entropy_per_note"] == pytest.approx(-res["recon_per_step"] / 3)
    plan = json.loads((tmp_path / "cmp" / "plan.json").read_text())
    assert plan["flat"] is True and plan["models"]["rnn"]["x_dim"] == 1
    with pytest.raises(Exception, match="another comparison"):  # a plain one is not mixed in
        compare(str(arrays), ["rnn"], tmp_path / "cmp", **kw)
