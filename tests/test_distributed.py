"""Data-parallel training: two gloo processes started by torchrun follow one process that
trains on the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srnn.cli import main

TINY_ARGS = ["--d-dim", "8", "--a-dim", "8", "--z-dim", "3", "--hidden", "8",
             "--feature-dim", "8"]


def _train_args(out: Path) -> list[str]:
    # bach windows: 2 epochs of 3 batches, the last one smaller and odd-sized
    return ["train", "--out", str(out), "--epochs", "2", "--subset", "40", "--kl-epochs", "1",
            "--threads", "1", "--no-progress", "--keep-checkpoints", *TINY_ARGS]


@pytest.mark.slow
def test_two_processes_give_the_parameters_of_one_with_the_whole_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "srnn.cli", *_train_args(one)], check=True,
                   capture_output=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "srnn.cli", *_train_args(two)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr
    assert "data-parallel training: 2 processes (gloo)" in proc.stderr
    a = torch.load(one / "last.pt", weights_only=True)
    b = torch.load(two / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=0, atol=1e-5)
    lines = [[json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
             for d in (one, two)]
    for la, lb in zip(*lines, strict=True):
        for key in ("train_elbo", "train_recon", "train_kl", "valid_elbo"):
            assert lb[key] == pytest.approx(la[key], rel=1e-5), key
    # One process wrote the files, once.
    assert len(lines[1]) == 2
    res = [json.loads((d / "results.json").read_text()) for d in (one, two)]
    assert res[1]["elbo_per_step"] == pytest.approx(res[0]["elbo_per_step"], rel=1e-5)


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", "--out", str(tmp_path), "--device", "cuda", "--epochs", "1",
                 "--subset", "8", *TINY_ARGS]) == 2
    assert "no CUDA device" in capsys.readouterr().err
