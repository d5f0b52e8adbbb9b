"""The same command and seed give the same figures as before: four short runs (ELBO with KL
annealing; FIVO; IWAE on the RNN; truncated BPTT on lanes) against ``metrics.jsonl`` and
``results.json`` values recorded with an earlier version (tests/pinned/short_runs.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srnn.train.trainer import train

PINNED = json.loads((Path(__file__).parent / "pinned" / "short_runs.json").read_text())["runs"]
TINY = dict(d_dim=8, z_dim=3, a_dim=7, hidden=10, feature_layers=1, feature_dim=9)
RUNS = {
    "srnn-elbo": dict(model="srnn", model_options=TINY, epochs=2, batch_size=8, kl_epochs=1),
    "vrnn-fivo": dict(model="vrnn", model_options=dict(d_dim=8, z_dim=3, hidden=10,
                                                       feature_layers=1, feature_dim=9),
                      epochs=2, batch_size=8, objective="fivo", samples=3),
    "storn-tbptt": dict(model="storn", model_options=TINY, epochs=2, batch_size=4, tbptt=6),
    "rnn-iwae": dict(model="rnn", model_options=dict(d_dim=8, hidden=10, feature_layers=1,
                                                     feature_dim=9),
                     epochs=2, batch_size=8, objective="iwae", samples=2),
}
# Different CPUs may round the last bits of a product differently; any change of what is
# computed (an extra random draw, another order of updates) moves these figures by far more.
REL = 1e-5


@pytest.fixture(scope="module")
def arrays(tmp_path_factory) -> Path:
    """24 / 6 / 6 binary sequences of 8..19 steps and 6 values (seeded)."""
    rng = np.random.default_rng(0)
    arr = {}
    for split, n in (("train", 24), ("valid", 6), ("test", 6)):
        for i in range(n):
            arr[f"{split}_{i}"] = (rng.random((int(rng.integers(8, 20)), 6)) < 0.3
                                   ).astype(np.float32)
    path = tmp_path_factory.mktemp("pinned") / "arrays.npz"
    np.savez(path, **arr)
    return path


def close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return b == pytest.approx(a, rel=REL)
    return a == b


@pytest.mark.parametrize("name", list(RUNS))
def test_short_run_gives_the_pinned_figures(arrays, tmp_path, name) -> None:
    kw = dict(RUNS[name])
    model, options = kw.pop("model"), kw.pop("model_options")
    out = tmp_path / name
    train(str(arrays), out, model=model, progress=False, model_options=options, **kw)
    want = PINNED[name]
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == len(want["metrics"])
    for got, exp in zip(lines, want["metrics"], strict=True):
        bad = {k: (got.get(k), v) for k, v in exp.items() if not close(v, got.get(k))}
        assert not bad, f"epoch {exp['epoch']}: (now, pinned) {bad}"
    res = json.loads((out / "results.json").read_text())
    bad = {k: (res.get(k), v) for k, v in want["results"].items() if not close(v, res.get(k))}
    assert not bad, f"results.json: (now, pinned) {bad}"
