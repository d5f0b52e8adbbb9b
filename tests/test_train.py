"""Training: the validation ELBO improves, seeds reproduce, resume continues exactly."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import synthetic_dataset

from srnn.errors import CheckpointError
from srnn.train.checkpoint import load_checkpoint
from srnn.train.trainer import RunConfig, TrainConfig, Trainer

TINY = dict(d_dim=16, z_dim=4, a_dim=16, hidden=24, feature_layers=1, feature_dim=16)


def run(tmp_path, name: str, epochs: int, resume: bool = False, **kw) -> Trainer:
    cfg = RunConfig(dataset="synthetic", model_options=dict(TINY),
                    train=TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, kl_epochs=2,
                                      lr_decay_start=3, **kw))
    t = Trainer(cfg, tmp_path / name, data=synthetic_dataset(), progress=False)
    if resume:
        assert t.resume()
    t.fit()
    return t


def metrics(trainer: Trainer) -> list[dict]:
    lines = (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
    out = []
    for ln in lines:
        d = json.loads(ln)
        out.append({k: v for k, v in d.items() if k not in ("seconds", "elapsed")})
    return out


def test_weight_decay_is_decoupled_and_refused_below_zero() -> None:
    """--weight-decay: AdamW, each update scales every parameter by (1 - lr wd) before Adam's
    step, so a parameter without gradient shrinks by exactly that; 0 keeps plain Adam."""
    from srnn.errors import ConfigError
    from srnn.train.trainer import make_optimiser

    lin = torch.nn.Linear(3, 2)
    assert type(make_optimiser(lin, TrainConfig())) is torch.optim.Adam
    opt = make_optimiser(lin, TrainConfig(lr=0.1, weight_decay=0.5))
    before = lin.weight.detach().clone()
    lin.weight.grad = torch.zeros_like(lin.weight)
    lin.bias.grad = torch.ones_like(lin.bias)
    opt.step()
    torch.testing.assert_close(lin.weight.detach(), before * (1 - 0.1 * 0.5))
    with pytest.raises(ConfigError, match="--weight-decay"):
        make_optimiser(lin, TrainConfig(weight_decay=-1.0))


def test_validation_elbo_improves(tmp_path) -> None:
    t = run(tmp_path, "a", epochs=6)
    m = metrics(t)
    assert m[-1]["valid_elbo"] > m[0]["valid_elbo"] + 0.1
    res = json.loads((t.run_dir / "results.json").read_text())
    assert res["elbo_per_step"] == pytest.approx(res["recon_per_step"] - res["kl_per_step"])
    assert res["steps"] == synthetic_dataset().test.steps


def test_same_seed_same_numbers(tmp_path) -> None:
    a, b = run(tmp_path, "a", epochs=2), run(tmp_path, "b", epochs=2)
    assert metrics(a) == metrics(b)
    c = run(tmp_path, "c", epochs=2, seed=1)
    assert metrics(c) != metrics(a)


def test_resume_continues_exactly(tmp_path) -> None:
    whole = run(tmp_path, "whole", epochs=4)
    run(tmp_path, "split", epochs=2, keep_checkpoints=True)  # resumable after it ends
    resumed = run(tmp_path, "split", epochs=4, resume=True)
    assert metrics(resumed) == metrics(whole)
    a = json.loads((whole.run_dir / "results.json").read_text())
    b = json.loads((resumed.run_dir / "results.json").read_text())
    assert a["elbo_per_step"] == b["elbo_per_step"]


def test_checkpoints_load_weights_only(tmp_path) -> None:
    t = run(tmp_path, "a", epochs=1, keep_checkpoints=True)
    for name in ("best.pt", "last.pt"):
        state = torch.load(t.run_dir / name, weights_only=True)
        assert set(state["model"]) == set(t.model.state_dict())
        assert state["epoch"] == 1
    (t.run_dir / "last.pt").write_bytes((t.run_dir / "last.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(t.run_dir / "last.pt")


def test_pitch_shift_augmentation_resumes_exactly_and_is_refused_off_piano_rolls(
        tmp_path) -> None:
    from srnn.data.sequences import Modality
    from srnn.errors import ConfigError

    def trainer(name: str, epochs: int, data, transpose: int = 2) -> Trainer:
        cfg = RunConfig(dataset="synthetic", model_options=dict(TINY),
                        train=TrainConfig(epochs=epochs, batch_size=8, transpose=transpose,
                                          keep_checkpoints=True))
        return Trainer(cfg, tmp_path / name, data=data, progress=False)

    music = synthetic_dataset(dim=12)  # notes in the lower 6 pitches only: room to move up
    music.modality = Modality.MUSIC
    for split in (music.train, music.valid, music.test):
        for a in (*split.x, *split.u):
            a[:, 6:] = 0
    whole = trainer("whole", 2, music)
    whole.fit()
    trainer("split", 1, music).fit()
    resumed = trainer("split", 2, music)
    assert resumed.resume()
    resumed.fit()
    assert metrics(resumed) == metrics(whole)
    plain = trainer("plain", 1, music, transpose=0)
    plain.fit()
    assert metrics(plain)[0]["train_elbo"] != metrics(whole)[0]["train_elbo"]  # it shifts
    with pytest.raises(ConfigError, match="not a piano roll"):
        trainer("other", 1, synthetic_dataset())
