"""IWAE and FIVO: equal to the ELBO at K = 1, masked, bounded by the exact Kalman
log-likelihood and approaching it as K grows; FIVO tighter than IWAE on long sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import batch_from, random_rolls
from emission_checks import check_one_particle_identities
from test_models import NAMES, tiny

from srnn.bounds import fivo, iwae
from srnn.bounds.particles import ancestors
from srnn.linear_gaussian import (
    as_batch,
    fit_inference,
    kalman_log_likelihood,
    linear_gaussian_dmm,
    linear_gaussian_srnn,
    simulate,
)
from srnn.models import Batch


@pytest.mark.parametrize("name", NAMES)
def test_one_sample_iwae_and_fivo_are_the_elbo(name: str) -> None:
    """K = 1: log of one importance weight = the ELBO with a Monte-Carlo KL, draw for draw."""
    m = tiny(name)
    m.eval()
    check_one_particle_identities(m, batch_from(random_rolls(4, (4, 10), seed=3)))


@pytest.mark.parametrize("bound", [iwae, fivo])
@pytest.mark.parametrize("name", ["srnn", "vrnn", "dmm", "storn"])
def test_padding_never_changes_a_particle_bound(name: str, bound) -> None:
    m = tiny(name, seed=2)
    m.eval()
    rolls = random_rolls(3, (3, 9), seed=4)
    tight = batch_from(rolls)
    T = tight.x.shape[1]
    g = torch.Generator().manual_seed(5)
    x, u = tight.x.clone(), tight.u.clone()
    for i, r in enumerate(rolls):  # garbage where the mask is 0
        x[i, len(r):] = torch.rand(T - len(r), 6, generator=g).round()
        u[i, len(r):] = torch.rand(T - len(r), 6, generator=g).round()
    garbage = Batch(x, u, tight.mask)
    with torch.no_grad():
        a = bound(m, tight, 20, generator=torch.Generator().manual_seed(0))
        b = bound(m, garbage, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.log_likelihood, b.log_likelihood)
    assert (a.resamples <= a.steps).all()


def test_systematic_and_multinomial_resampling() -> None:
    torch.manual_seed(0)
    log_w = torch.log(torch.tensor([[0.05, 0.25, 0.1, 0.6]]).expand(500, 4))
    g = torch.Generator().manual_seed(1)
    sys_idx = ancestors(log_w, "systematic", g)
    counts = torch.stack([(sys_idx == k).sum(1) for k in range(4)], 1).float()
    expected = 4 * torch.tensor([0.05, 0.25, 0.1, 0.6])
    # Systematic resampling keeps each count within one of K p_k.
    assert ((counts - expected).abs() < 1).all()
    multi = ancestors(log_w, "multinomial", g)
    freq = torch.stack([(multi == k).float().mean() for k in range(4)])
    se = torch.sqrt(expected / 4 * (1 - expected / 4) / 2000)
    assert ((freq - expected / 4).abs() < 4 * se).all()
    with pytest.raises(ValueError, match="unknown resampling"):
        ancestors(log_w, "stratified-ish", g)


def replicated(bound, m, x: np.ndarray, K: int, reps: int, seed: int) -> tuple[float, float]:
    """Mean and standard error of ``reps`` independent estimates of one sequence's bound."""
    with torch.no_grad():
        v = bound(m, as_batch(x, reps), K, generator=torch.Generator().manual_seed(seed))
    ll = v.log_likelihood.double()
    return float(ll.mean()), float(ll.std() / math.sqrt(reps))


@pytest.fixture(scope="module", params=["srnn", "dmm"])
def fitted(request):
    """A linear-Gaussian SRNN or DMM with q trained on short sequences of the model."""
    m = (linear_gaussian_srnn if request.param == "srnn" else linear_gaussian_dmm)()
    fit_inference(m, [simulate(25, seed=s) for s in range(16)], updates=150)
    m.eval()
    return m


def test_bounds_tighten_with_k_towards_the_kalman_likelihood(fitted) -> None:
    x = simulate(25, seed=100)
    exact = kalman_log_likelihood(x)
    reps = 200
    means = {}
    for K in (1, 10, 100):
        mean, se = replicated(iwae, fitted, x, K, reps, seed=K)
        means[K] = (mean, se)
        assert mean <= exact + 3 * se, (K, mean, exact, se)  # a lower bound in expectation
        f_mean, f_se = replicated(fivo, fitted, x, K, reps, seed=K + 1)
        assert f_mean <= exact + 3 * f_se, (K, f_mean, exact, f_se)
    (m1, s1), (m10, s10), (m100, s100) = means[1], means[10], means[100]
    assert m1 < m10 + 3 * (s1 + s10) and m10 < m100 + 3 * (s10 + s100)  # ELBO <= IWAE_K
    assert m100 > m1 + 3 * (s1 + s100)  # strictly tighter in practice
    assert exact - m100 < 0.1, (exact, m100)  # close to log p(x) at K = 100


def test_fivo_beats_iwae_on_long_sequences(fitted) -> None:
    """The weights of IWAE degenerate as T grows; resampling keeps FIVO's gap small."""
    x = simulate(300, seed=200)
    exact = kalman_log_likelihood(x)
    i_mean, i_se = replicated(iwae, fitted, x, 50, 20, seed=1)
    f_mean, f_se = replicated(fivo, fitted, x, 50, 20, seed=2)
    assert i_mean <= exact + 3 * i_se and f_mean <= exact + 3 * f_se
    assert exact - f_mean < 0.5 * (exact - i_mean), (exact, f_mean, i_mean)
    assert f_mean > i_mean + 3 * (i_se + f_se)


def test_evaluate_command_writes_each_bound(data_dir, tmp_path, capsys) -> None:
    import json

    from srnn.cli import main

    run = tmp_path / "run"
    assert main(["train", "--dataset", "jsb", "--data-dir", str(data_dir), "--out", str(run),
                 "--subset", "3", "--epochs", "1", "--z-dim", "4", "--d-dim", "8",
                 "--a-dim", "8", "--hidden", "8", "--feature-dim", "8", "--no-progress"]) == 0
    for args in (["--bound", "iwae", "-K", "4"], ["--bound", "fivo", "-K", "4",
                                                   "--resampling", "systematic"],
                 ["--bound", "iwae", "-K", "2", "--split", "valid"]):
        assert main(["evaluate", str(run), "--data-dir", str(data_dir), *args]) == 0
    res = json.loads((run / "results.json").read_text())
    for key in ("elbo_per_step", "iwae_k4_per_step", "fivo_k4_per_step",
                "fivo_k4_resampling_rate", "valid_iwae_k2_per_step"):
        assert math.isfinite(res[key]), key
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(data_dir), "--bound", "iwae",
                 "-K", "0"]) == 2
    assert "--samples 0: must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("objective", ["iwae", "fivo"])
def test_training_with_a_particle_objective(tmp_path, objective: str) -> None:
    import json

    from conftest import synthetic_dataset

    from srnn.train.trainer import RunConfig, TrainConfig, Trainer

    cfg = RunConfig(dataset="synthetic", model_options=dict(
        d_dim=16, z_dim=4, a_dim=16, hidden=24, feature_layers=1, feature_dim=16),
        train=TrainConfig(epochs=4, batch_size=8, lr=3e-3, objective=objective, samples=4))
    t = Trainer(cfg, tmp_path / objective, data=synthetic_dataset(), progress=False)
    res = t.fit()
    lines = [json.loads(ln) for ln in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert res["valid_elbo_per_step"] > lines[0]["valid_elbo"] + 0.1
    assert lines[0]["train_kl"] is None and math.isfinite(lines[-1]["train_elbo"])
