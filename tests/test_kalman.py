"""The ELBO against an exact log-likelihood: a linear-Gaussian state-space model written as an
SRNN and as a DMM (identity activations, linear maps, Gaussian emission), whose log p(x) a
Kalman filter gives in closed form. The ELBO is a lower bound for every q, and a trained q
comes close."""

from __future__ import annotations

import math

import pytest
import torch

from srnn.bounds import elbo_terms
from srnn.linear_gaussian import (
    SIGMA_V,
    SIGMA_W,
    A,
    C,
    as_batch,
    fit_inference,
    kalman_log_likelihood,
    linear_gaussian_dmm,
    linear_gaussian_srnn,
    simulate,
)
from srnn.models import Batch, StateSpaceModel

T = 25


def elbo_samples(m: StateSpaceModel, x, n: int, seed: int) -> torch.Tensor:
    """n independent one-sample ELBOs of the whole sequence."""
    with torch.no_grad():
        return elbo_terms(m, as_batch(x, n),
                          generator=torch.Generator().manual_seed(seed)).elbo().sum(1)


@pytest.mark.parametrize("build", [linear_gaussian_srnn, linear_gaussian_dmm],
                         ids=["srnn", "dmm"])
def test_generative_part_is_the_linear_gaussian_model(build) -> None:
    """z_t ~ N(A z_{t-1}, Q) from the prior and x_t ~ N(C z_t, R) from the emission."""
    m = build()
    z = torch.randn(5, 2)
    pre = m.precompute(Batch(torch.zeros(5, 3, 2), torch.zeros(5, 3, 2), torch.ones(5, 3)))
    prm = m.step(z, 1, pre)
    torch.testing.assert_close(prm.p_loc, z @ torch.tensor(A, dtype=torch.float32).T)
    torch.testing.assert_close(prm.p_scale, torch.full((5, 2), SIGMA_W))
    # The emission at step 1 given z_1 = z (the SRNN's d-part is zeroed).
    pre = m.precompute(Batch(torch.zeros(5, 1, 2), torch.zeros(5, 1, 2), torch.ones(5, 1)))
    obs = m.observation(z.unsqueeze(1), pre)
    torch.testing.assert_close(obs.mean[:, 0], z @ torch.tensor(C, dtype=torch.float32).T)
    torch.testing.assert_close(obs.stddev[:, 0], torch.full((5, 2), SIGMA_V))


@pytest.mark.parametrize("build", [linear_gaussian_srnn, linear_gaussian_dmm],
                         ids=["srnn", "dmm"])
def test_elbo_never_exceeds_the_kalman_log_likelihood(build) -> None:
    m = build()
    x = simulate(T, seed=1)
    exact = kalman_log_likelihood(x)
    n = 2000

    def stats(seed: int) -> tuple[float, float]:
        e = elbo_samples(m, x, n, seed).double()
        return float(e.mean()), float(e.std() / math.sqrt(n))

    before, se0 = stats(10)
    assert before <= exact + 3 * se0
    fit_inference(m, [x] * 32)  # train only q towards the exact posterior
    after, se1 = stats(11)
    assert after <= exact + 3 * se1, (after, exact, se1)  # a lower bound for every q
    assert after > before + 5 * (se0 + se1)  # training q tightened it ...
    assert exact - after < 1.0, (exact, after)  # ... to within a nat of log p(x) over 25 steps
