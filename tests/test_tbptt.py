"""Truncated backpropagation through time: lanes of whole sequences, state carried."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import batch_from, random_rolls, synthetic_dataset
from test_models import tiny

from srnn.bounds import elbo_terms
from srnn.data.batching import lane_streams, stream_batches
from srnn.data.sequences import Split
from srnn.models import Batch


def test_lanes_hold_every_step_once() -> None:
    split = Split.from_targets(random_rolls(11, (3, 30), seed=1))
    s = lane_streams(split, lanes=4, window=7, rng=np.random.default_rng(0))
    assert s.streams == 4 and len(s) % 4 == 0
    assert all(len(x) <= 7 for x in s.x) and s.steps == split.steps
    lanes = [np.concatenate(s.x[i::4]) for i in range(4)]
    assert max(map(len, lanes)) - min(map(len, lanes)) <= 30  # greedy balance
    pieces = sorted(tuple(x.ravel()) for x in split.x)
    joined = np.concatenate([np.concatenate(s.x[i::4]) for i in range(4)])
    assert joined.shape == (split.steps, 6) and len(pieces) == 11
    for batch in stream_batches(s):  # every row batches, empty windows masked
        assert batch.x.shape[0] == 4


@pytest.mark.parametrize("name,kw", [("rnn", {}), ("srnn", {"smoothing": False}), ("vrnn", {}),
                                     ("vrnn-i", {}), ("storn", {})])
def test_carried_windows_equal_one_pass(name: str, kw: dict) -> None:
    """For every model whose inference looks only at the past, evaluating window by window with
    the carried state gives exactly the one-pass ELBO (same noise)."""
    m = tiny(name, **kw)
    m.eval()
    rolls = random_rolls(3, (20, 21), seed=2)
    whole = batch_from(rolls)
    cut = 8
    first = Batch(whole.x[:, :cut], whole.u[:, :cut], whole.mask[:, :cut])
    second = Batch(whole.x[:, cut:], whole.u[:, cut:], whole.mask[:, cut:])
    with torch.no_grad():
        one = elbo_terms(m, whole, generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        a = elbo_terms(m, first, generator=g)
        b = elbo_terms(m, second, carry=a.carry, generator=g)
    torch.testing.assert_close(torch.cat([a.recon, b.recon], 1), one.recon)
    torch.testing.assert_close(torch.cat([a.kl, b.kl], 1), one.kl)


def test_training_with_tbptt(tmp_path) -> None:
    from srnn.train.trainer import RunConfig, TrainConfig, Trainer

    cfg = RunConfig(dataset="synthetic", model_options=dict(
        d_dim=16, z_dim=4, a_dim=16, hidden=24, feature_layers=1, feature_dim=16),
        train=TrainConfig(epochs=4, batch_size=4, lr=3e-3, kl_epochs=1, tbptt=10))
    t = Trainer(cfg, tmp_path / "t", data=synthetic_dataset(), progress=False)
    res = t.fit()
    lines = [json.loads(ln) for ln in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert res["valid_elbo_per_step"] > lines[0]["valid_elbo"] + 0.1
    steps = synthetic_dataset().train.steps
    assert steps / 40 <= lines[0]["step"] <= steps / 40 + 8  # windows of 10 steps in 4 lanes


def test_user_corpora_by_name(tmp_path) -> None:
    """``vctk:PATH`` (and ``-perm``) reach the corpus readers through load_dataset."""
    from test_speech import tone, write_pcm

    from srnn.data import dataset_path, load_dataset, time_step
    from srnn.errors import DataError

    for s in range(20):
        for k in range(2):
            write_pcm(tmp_path / "wav48" / f"p{s:03d}" / f"p{s:03d}_{k:03d}.wav",
                      tone(48000 // 4, 48000, 200 + 10 * s), 48000)
    name = f"vctk:{tmp_path}"
    d = load_dataset(name)
    assert d.dim == 200 and not d.binary and len(d.test) == 2 and len(d.valid) == 2
    assert time_step(name) == "200-sample frame at 16 kHz" and dataset_path(name) == tmp_path
    perm = load_dataset(f"vctk-perm:{tmp_path}")
    assert perm.info["permute_seed"] is not None
    assert not np.allclose(perm.train.x[0], d.train.x[0])
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"timit:{tmp_path / 'nope'}")
