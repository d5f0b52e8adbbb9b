"""The peer benchmark (benchmarks/peer.py): our worker, the run without a peer, and the
alternation with a fake peer checkout (the real peer is never needed here)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from benchmarks import peer

TINY = ["--batch", "2", "--steps", "5", "--warmup", "1", "--timed", "1", "--peak-repeats", "0",
        "--rounds", "1", "--threads", "1"]

FAKE_MODEL = '''
import torch
from torch import nn


class _Fake(nn.Module):
    """Time-major (T, B, x_dim) in, logits out; sets the peer's z attributes."""

    def __init__(self, x_dim, z_dim):
        super().__init__()
        self.enc = nn.Linear(x_dim, 2 * z_dim)
        self.dec = nn.Linear(z_dim, x_dim)

    def forward(self, x):
        self.z_mean, self.z_logvar = self.enc(x).chunk(2, -1)
        self.z_mean_p = torch.zeros_like(self.z_mean)
        self.z_logvar_p = torch.zeros_like(self.z_logvar)
        return self.dec(self.z_mean)
'''

FAKE_SRNN = FAKE_MODEL + '''

class SRNN(_Fake):
    def __init__(self, x_dim, z_dim=16, activation="tanh", dense_x_h=[], dim_RNN_h=128,
                 num_RNN_h=1, dense_hx_g=[], dim_RNN_g=128, num_RNN_g=1, dense_gz_z=[128, 128],
                 dense_hz_z=[128, 128], dense_hz_x=[256], dropout_p=0, beta=1, device="cpu"):
        super().__init__(x_dim, z_dim)
'''

FAKE_VRNN = FAKE_MODEL + '''

class VRNN(_Fake):
    def __init__(self, x_dim, z_dim=16, activation="tanh", dense_x=[128], dense_z=[128],
                 dense_hx_z=[128, 128], dense_hz_x=[128, 128], dense_h_z=[128, 128],
                 dim_RNN=128, num_RNN=1, dropout_p=0, beta=1, device="cpu"):
        super().__init__(x_dim, z_dim)
'''

FAKE_LOSS = '''
import torch


def loss_KLD(z_mean, z_logvar, z_mean_p=0, z_logvar_p=0):
    return -0.5 * torch.sum(z_logvar - z_logvar_p - torch.div(
        z_logvar.exp() + (z_mean - z_mean_p).pow(2), z_logvar_p.exp() + 1e-10))
'''


@pytest.fixture
def fake_peer(tmp_path: Path) -> Path:
    src = tmp_path / "fake_dvae"
    for rel, text in (("dvae/model/srnn.py", FAKE_SRNN), ("dvae/model/vrnn.py", FAKE_VRNN),
                      ("dvae/utils/loss.py", FAKE_LOSS)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(textwrap.dedent(text))
    return src


def test_srnn_worker_times_a_tiny_configuration() -> None:
    r = peer.srnn_worker("srnn-no-res-q", 1, batch=2, steps=5, warmup=1, timed=1,
                         peak_repeats=1)
    assert r["options"] == {"res_q": False} and r["registry_name"] == "srnn"
    assert r["train_steps_per_s"] > 0 and r["eval_steps_per_s"] > 0
    assert r["train_mflop_per_step"] > 0 and 0 < r["train_fraction_of_peak"]
    assert r["loss_first"] > 0  # nats per step, like the peer's loss


def test_peer_worker_loads_the_named_files(fake_peer: Path) -> None:
    r = peer.peer_worker("vrnn", 1, batch=2, steps=5, warmup=1, timed=1, src=str(fake_peer))
    assert r["peer_class"] == "VRNN" and r["train_steps_per_s"] > 0 and r["eval_steps_per_s"] > 0


def test_without_the_peer_only_srnn_is_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PEER_SRC", raising=False)
    out = tmp_path / "peer.json"
    peer.main(["--models", "srnn", *TINY, "--out", str(out)])
    text = capsys.readouterr().out
    assert "peer skipped" in text and "PEER_SRC" in text and peer.PEER_COMMIT in text
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["srnn_train_steps_per_s"] > 0 and "train_ratio_of_medians" not in row
    assert data["rounds"][0]["peer"] is None and data["info"]["peer"] is None
    assert "| srnn | 1 | – |" in text
    assert not list(tmp_path.glob(".peer-*"))  # the temporary file was renamed


def test_a_folder_without_the_peer_files_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "dvae" / "model").mkdir(parents=True)
    assert peer.find_peer(str(tmp_path)) is None
    assert "has no dvae/model/srnn.py" in peer.skip_message(str(tmp_path))


def test_rounds_alternate_peer_then_srnn_and_give_ratios() -> None:
    calls: list[tuple[str, str, int]] = []
    speed = {"peer": 100.0, "srnn": 0.0}

    def runner(side: str, model: str, threads: int, settings: dict[str, Any],
               src: str | None) -> dict[str, Any]:
        calls.append((side, model, threads))
        speed["srnn"] += 50.0 if side == "srnn" else 0.0  # 50, 100, 150 over the rounds
        v = speed[side]
        return {"train_steps_per_s": v, "eval_steps_per_s": 2 * v, "train_mflop_per_step": 1.0}

    rows, raw = peer.run_rounds(["srnn", "vrnn"], [1, 2], 3, {}, "somewhere", runner,
                                log=lambda s: None)
    assert calls[:6] == [("peer", "srnn", 1), ("srnn", "srnn", 1)] * 3
    assert [c[0] for c in calls] == ["peer", "srnn"] * 12
    assert len(rows) == 4 and len(raw) == 12
    assert [r["train_ratio"] for r in raw[:3]] == [0.5, 1.0, 1.5]
    first = rows[0]
    assert first["train_ratio_median_of_rounds"] == first["train_ratio_of_medians"] == 1.0
    assert first["eval_ratio_of_medians"] == 1.0 and first["peer_model"] == "srnn"


def test_alternation_with_a_fake_peer_gives_ratios(fake_peer: Path) -> None:
    # Both workers in this process (the fresh-process path is the no-peer test's).
    settings = {"batch": 2, "steps": 5, "warmup": 1, "timed": 1, "peak_repeats": 0}
    rows, raw = peer.run_rounds(["srnn-no-res-q"], [1], 2, settings, str(fake_peer),
                                peer.measure, log=lambda s: None)
    (row,) = rows
    assert [r["round"] for r in raw] == [0, 1]
    for rnd in raw:
        assert rnd["peer"]["side"] == "peer" and rnd["peer"]["peer_class"] == "SRNN"
        assert rnd["srnn"]["side"] == "srnn" and rnd["srnn"]["options"] == {"res_q": False}
        assert rnd["train_ratio"] == pytest.approx(
            rnd["srnn"]["train_steps_per_s"] / rnd["peer"]["train_steps_per_s"])
    assert row["peer_model"] == "srnn" and row["rounds"] == 2
    assert row["train_ratio_of_medians"] > 0 and row["eval_ratio_median_of_rounds"] > 0
    assert "srnn_train_fraction_of_peak" not in row  # peak_repeats 0: no peak measured
    assert "| srnn-no-res-q | 1 |" in peer.table(rows)


def test_interleaved_rounds_alternate_both_sides_in_one_worker(fake_peer: Path) -> None:
    """--interleave: one worker per round holds both models and alternates their steps; each
    side gets its own medians, ours its FLOPs, and the round its ratios."""
    settings = {"batch": 2, "steps": 5, "warmup": 1, "timed": 2, "peak_repeats": 0}
    calls: list[str] = []

    def runner(side: str, model: str, threads: int, settings: dict[str, Any],
               peer_src: str | None) -> dict[str, Any]:
        calls.append(side)
        return peer.measure(side, model, threads, settings, peer_src)

    rows, raw = peer.run_rounds(["srnn-no-res-q"], [1], 2, settings, str(fake_peer),
                                runner=runner, log=lambda s: None, interleave=True)
    assert calls == ["pair", "pair"]
    for r in raw:
        assert r["peer"]["side"] == "peer" and r["srnn"]["side"] == "srnn"
        assert len(r["peer"]["train_seconds"]) == len(r["srnn"]["eval_seconds"]) == 2
        assert r["srnn"]["train_mflop_per_step"] > 0
        assert r["train_ratio"] == pytest.approx(
            r["srnn"]["train_steps_per_s"] / r["peer"]["train_steps_per_s"])
    assert rows[0]["train_ratio_of_medians"] > 0
