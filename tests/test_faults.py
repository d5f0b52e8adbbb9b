"""Faults during training: signals, SIGKILL, non-finite losses and gradients, damaged
checkpoints. Every resumed run must end exactly where an uninterrupted one does."""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from srnn.cli import main
from srnn.errors import CheckpointError, TrainingError
from srnn.train.checkpoint import load_checkpoint
from srnn.train.trainer import RunConfig, TrainConfig, Trainer

trainer_mod = importlib.import_module("srnn.train.trainer")  # (srnn.train is also a function)
objectives_mod = importlib.import_module("srnn.train.objectives")

TINY = {"d_dim": 8, "a_dim": 8, "z_dim": 3, "hidden": 8, "feature_dim": 8}
TINY_ARGS = ["--d-dim", "8", "--a-dim", "8", "--z-dim", "3", "--hidden", "8",
             "--feature-dim", "8"]


def make_trainer(run_dir: Path, **train) -> Trainer:
    tc = TrainConfig(**{"epochs": 3, "subset": 64, "kl_epochs": 2.0, **train})
    return Trainer(RunConfig(dataset="bach", model_options=dict(TINY), train=tc), run_dir,
                   progress=False)


def metric_lines(run_dir: Path) -> list[dict]:
    keep = ("epoch", "step", "train_elbo", "valid_elbo", "kl_weight", "skipped_batches")
    return [{k: json.loads(ln)[k] for k in keep}
            for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def count_calls(monkeypatch, on_call) -> None:
    """Call ``on_call(n, terms)`` after the n-th training ELBO (n = 1, 2, ...)."""
    original = objectives_mod.elbo_terms
    calls = [0]

    def wrapped(*args, **kwargs):
        terms = original(*args, **kwargs)
        calls[0] += 1
        return on_call(calls[0], terms) or terms

    monkeypatch.setattr(objectives_mod, "elbo_terms", wrapped)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, list[dict]]:
    """An uninterrupted tiny run: its results and metric lines."""
    run = tmp_path_factory.mktemp("reference")
    res = make_trainer(run).fit()
    return res, metric_lines(run)


# -- interruption inside an epoch ----------------------------------------------------------


@pytest.mark.parametrize("stop_at", [3, 9])  # inside epoch 1 and inside epoch 2
def test_stop_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch,
                                                                 reference, stop_at):
    tr = make_trainer(tmp_path)

    def stop(n, terms):
        if n == stop_at:
            tr.stop_requested = True  # what SIGINT / SIGTERM do

    count_calls(monkeypatch, stop)
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["partial"]["batch"] >= 1 and saved["step"] == stop_at
    monkeypatch.undo()
    again = make_trainer(tmp_path)
    assert again.resume()
    res = again.fit()
    ref_res, ref_lines = reference
    assert metric_lines(tmp_path) == ref_lines
    assert res["elbo_per_step"] == ref_res["elbo_per_step"]


# -- non-finite losses and gradients -------------------------------------------------------


def test_nan_losses_and_gradients_are_skipped_and_counted(tmp_path, monkeypatch):
    nan_loss_at, nan_grad_at = {2, 7}, {4}
    tr = make_trainer(tmp_path)

    def inject(n, terms):
        if n in nan_loss_at:
            terms.recon = terms.recon * float("nan")
        if n in nan_grad_at:
            terms.recon.register_hook(lambda g: g * float("inf"))
        return terms

    count_calls(monkeypatch, inject)
    res = tr.fit()
    lines = metric_lines(tmp_path)
    assert sum(ln["skipped_batches"] for ln in lines) == 3
    assert all(math.isfinite(ln["train_elbo"]) for ln in lines)
    assert math.isfinite(res["elbo_per_step"])
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert tr.progress.skipped == 3 and tr.progress.bad_in_row == 0


def test_persistent_nans_stop_the_run_with_a_clear_message(tmp_path, monkeypatch):
    tr = make_trainer(tmp_path, max_bad_batches=4)
    per_epoch = None

    def inject(n, terms):
        nonlocal per_epoch
        if tr.progress.epoch == 1:
            per_epoch = n
        if tr.progress.epoch >= 2:  # from the second epoch on every loss is NaN
            terms.recon = terms.recon * float("nan")
        return terms

    count_calls(monkeypatch, inject)
    with pytest.raises(TrainingError) as err:
        tr.fit()
    msg = str(err.value)
    assert f"step {per_epoch + 4}" in msg and "epoch 2" in msg
    assert "4 batches in a row" in msg and "non-finite loss" in msg and "--lr" in msg
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # the last good state


def test_no_finite_validation_elbo_is_a_clear_error(tmp_path, monkeypatch):
    import srnn.evaluate

    original = srnn.evaluate.evaluate_elbo

    def nan_valid(*args, **kwargs):
        return {**original(*args, **kwargs), "elbo_per_step": float("nan")}

    monkeypatch.setattr(trainer_mod, "evaluate_elbo", nan_valid)
    with pytest.raises(TrainingError, match="no epoch gave a finite validation ELBO"):
        make_trainer(tmp_path, epochs=2).fit()


def test_log_std_is_bounded():
    from srnn.nn.layers import MAX_STD, GaussianHead

    head = GaussianHead(4, 3, min_std=1e-3)
    _, std = head(torch.full((2, 4), 1e12))
    _, low = head(torch.full((2, 4), -1e12))
    assert torch.isfinite(std).all() and std.max() <= MAX_STD + 1e-3
    assert (low >= 1e-3).all()


# -- damaged checkpoints -------------------------------------------------------------------


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_is_kept(tmp_path, capsys):
    make_trainer(tmp_path, epochs=2, keep_checkpoints=True).fit()
    last = tmp_path / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        make_trainer(tmp_path, epochs=3).resume()
    assert "last.prev.pt" in str(err.value) and "last.pt" in str(err.value)
    assert load_checkpoint(tmp_path / "last.prev.pt")["epoch"] == 1
    assert main(["train", "--resume", "--out", str(tmp_path), "--epochs", "3"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    flipped = bytearray(data)
    for i in rng.integers(0, len(data), 64):
        flipped[i] ^= 0xFF
    last.write_bytes(bytes(flipped))
    try:
        load_checkpoint(last)
    except CheckpointError:
        pass  # an error of the library, or (if the flips missed the structure) a checkpoint


# -- real signals to a real process --------------------------------------------------------


def _train_command(out: Path, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "srnn.cli", "train", "--out", str(out), "--epochs", "4",
           "--subset", "64", "--kl-epochs", "2", "--threads", "1", "--no-progress",
           "--deterministic", *TINY_ARGS]
    return cmd + ["--resume"] if resume else cmd


def _results(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    return {k: res[k] for k in ("elbo_per_step", "valid_elbo_per_step", "best_epoch",
                                "epochs")}


@pytest.fixture(scope="module")
def process_reference(tmp_path_factory) -> tuple[dict, list[dict], float]:
    run = tmp_path_factory.mktemp("process-reference")
    t0 = time.perf_counter()
    subprocess.run(_train_command(run), check=True, capture_output=True, env=os.environ)
    return _results(run), metric_lines(run), time.perf_counter() - t0


@pytest.mark.slow
def test_sigint_saves_and_exits_cleanly_then_resumes_exactly(tmp_path, process_reference):
    ref, ref_lines, seconds = process_reference
    proc = subprocess.Popen(_train_command(tmp_path), stderr=subprocess.PIPE, text=True)
    # Wait for training to start (the first checkpoint), then interrupt it.
    deadline = time.monotonic() + 120
    while not (tmp_path / "last.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    subprocess.run(_train_command(tmp_path, resume=True), check=True, capture_output=True)
    assert _results(tmp_path) == ref
    assert metric_lines(tmp_path) == ref_lines


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_same_run(tmp_path,
                                                                   process_reference):
    ref, ref_lines, seconds = process_reference
    rng = np.random.default_rng(1)
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(_train_command(tmp_path, resume=attempt > 0),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.3, 1.0)) * seconds)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
    subprocess.run(_train_command(tmp_path, resume=True), check=True, capture_output=True)
    print(f"SIGKILLs delivered: {kills} of 3")
    assert kills >= 1
    assert _results(tmp_path) == ref
    assert metric_lines(tmp_path) == ref_lines
