"""The ELBO against an exact log-likelihood: a linear-Gaussian state-space model written as an
SRNN and as a DMM (identity activations, linear maps, Gaussian emission), whose log p(x) a
Kalman filter gives in closed form. The ELBO is a lower bound for every q, and a trained q
comes close."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from srnn.bounds import elbo_terms
from srnn.models import DMM, SRNN, Batch, DMMConfig, SRNNConfig, StateSpaceModel

A = np.array([[0.9, 0.2], [-0.15, 0.8]])  # transition z_t = A z_{t-1} + w_t, w ~ N(0, Q)
C = np.array([[1.0, 0.5], [-0.3, 1.2]])  # emission    x_t = C z_t + v_t,     v ~ N(0, R)
SIGMA_W, SIGMA_V = 0.7, 0.5
T = 25


def kalman_log_likelihood(x: np.ndarray) -> float:
    """log p(x_1:T) by the prediction-error decomposition, with z_1 ~ N(0, Q) (z_0 = 0)."""
    Q = SIGMA_W**2 * np.eye(2)
    R = SIGMA_V**2 * np.eye(2)
    m, P = np.zeros(2), np.zeros((2, 2))
    ll = 0.0
    for t in range(len(x)):
        m, P = A @ m, A @ P @ A.T + Q  # predict
        S = C @ P @ C.T + R
        e = x[t] - C @ m
        ll += -0.5 * (e @ np.linalg.solve(S, e) + np.log(np.linalg.det(S))
                      + 2 * math.log(2 * math.pi))
        K = P @ C.T @ np.linalg.inv(S)  # update
        m, P = m + K @ e, (np.eye(2) - K @ C) @ P
    return ll


def simulate(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, xs = np.zeros(2), []
    for _ in range(T):
        z = A @ z + SIGMA_W * rng.standard_normal(2)
        xs.append(C @ z + SIGMA_V * rng.standard_normal(2))
    return np.array(xs, dtype=np.float32)


def softplus_inv(y: float) -> float:
    return math.log(math.expm1(y))


def linear_gaussian_srnn() -> SRNN:
    """SRNN whose generative part is exactly the linear-Gaussian model above."""
    torch.manual_seed(0)
    cfg = SRNNConfig(x_dim=2, z_dim=2, d_dim=4, a_dim=16, hidden=2, feature_layers=0,
                     activation="identity", emission="gauss", two_networks=False,
                     init="torch")
    m = SRNN(cfg)
    eye, zero = torch.eye(2), torch.zeros
    with torch.no_grad():
        for lin in (m.prior_in, m.emit_in):  # first layers: h = z (no d-part)
            lin.z.weight.copy_(eye)
            lin.c.weight.zero_()
            lin.c.bias.zero_()
        m.prior_out.proj.weight.copy_(torch.cat([torch.tensor(A, dtype=torch.float32),
                                                 zero(2, 2)]))
        m.prior_out.proj.bias.copy_(torch.tensor(
            [0.0, 0.0] + [softplus_inv(SIGMA_W - m.prior_out.min_std)] * 2))
        head = m.emission.head
        head.proj.weight.copy_(torch.cat([torch.tensor(C, dtype=torch.float32), zero(2, 2)]))
        head.proj.bias.copy_(torch.tensor([0.0, 0.0] + [softplus_inv(SIGMA_V - head.min_std)] * 2))
    return m


def linear_gaussian_dmm() -> DMM:
    """DMM whose generative part is exactly the linear-Gaussian model above: the gate closed
    (g_t = sigmoid(-40)), the linear path W_mu = A, a constant scale, a linear emission."""
    torch.manual_seed(0)
    m = DMM(DMMConfig(x_dim=2, z_dim=2, a_dim=16, hidden=2, emission_hidden=2,
                      activation="identity", emission="gauss"))
    tr = m.transition
    with torch.no_grad():
        m.z_0.zero_()
        tr.gate.weight.zero_()
        tr.gate.bias.fill_(-40.0)
        tr.linear.weight.copy_(torch.tensor(A, dtype=torch.float32))
        tr.linear.bias.zero_()
        tr.scale.weight.zero_()
        tr.scale.bias.fill_(softplus_inv(SIGMA_W - tr.min_std))
        for lin in (m.emitter[0], m.emitter[2]):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
        head = m.emission.head
        head.proj.weight.copy_(torch.cat([torch.tensor(C, dtype=torch.float32),
                                          torch.zeros(2, 2)]))
        head.proj.bias.copy_(torch.tensor([0.0, 0.0] + [softplus_inv(SIGMA_V - head.min_std)] * 2))
    return m


def generative_parameters(m: StateSpaceModel) -> list[nn.Parameter]:
    if isinstance(m, DMM):
        return [m.z_0, *m.transition.parameters(), *m.emitter.parameters(),
                *m.emission.parameters()]
    assert isinstance(m, SRNN)
    return [*m.prior_in.parameters(), *m.prior_out.parameters(), *m.emit_in.parameters(),
            *m.emission.parameters()]


def elbo_samples(m: StateSpaceModel, x: np.ndarray, n: int, seed: int) -> torch.Tensor:
    """n independent one-sample ELBOs of the whole sequence."""
    xt = torch.from_numpy(x)
    u = torch.zeros_like(xt)
    u[1:] = xt[:-1]
    b = Batch(xt.expand(n, -1, -1), u.expand(n, -1, -1), torch.ones(n, T))
    with torch.no_grad():
        return elbo_terms(m, b, generator=torch.Generator().manual_seed(seed)).elbo().sum(1)


def test_generative_part_is_the_linear_gaussian_model() -> None:
    """With q replaced by the prior, z_t ~ N(A z_{t-1}, Q) and x_t ~ N(C z_t, R)."""
    m = linear_gaussian_srnn()
    z = torch.randn(5, 2)
    pre = m.precompute(Batch(torch.zeros(5, 3, 2), torch.zeros(5, 3, 2), torch.ones(5, 3)))
    prm = m.step(z, 1, pre)
    torch.testing.assert_close(prm.p_loc, z @ torch.tensor(A, dtype=torch.float32).T)
    torch.testing.assert_close(prm.p_scale, torch.full((5, 2), SIGMA_W))


def test_dmm_generative_part_is_the_linear_gaussian_model() -> None:
    m = linear_gaussian_dmm()
    z = torch.randn(5, 2)
    pre = m.precompute(Batch(torch.zeros(5, 3, 2), torch.zeros(5, 3, 2), torch.ones(5, 3)))
    prm = m.step(z, 1, pre)
    torch.testing.assert_close(prm.p_loc, z @ torch.tensor(A, dtype=torch.float32).T)
    torch.testing.assert_close(prm.p_scale, torch.full((5, 2), SIGMA_W))
    loc, scale = m.emission.head(m.emitter(z))
    torch.testing.assert_close(loc, z @ torch.tensor(C, dtype=torch.float32).T)
    torch.testing.assert_close(scale, torch.full((5, 2), SIGMA_V))


@pytest.mark.parametrize("build", [linear_gaussian_srnn, linear_gaussian_dmm],
                         ids=["srnn", "dmm"])
def test_elbo_never_exceeds_the_kalman_log_likelihood(build) -> None:
    m = build()
    for p in generative_parameters(m):
        p.requires_grad_(False)
    x = simulate(seed=1)
    exact = kalman_log_likelihood(x)
    n = 2000

    def stats(seed: int) -> tuple[float, float]:
        e = elbo_samples(m, x, n, seed).double()
        return float(e.mean()), float(e.std() / math.sqrt(n))

    before, se0 = stats(10)
    assert before <= exact + 3 * se0
    # Train only q (backward GRU, posterior network) towards the exact posterior.
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=2e-2)
    xt = torch.from_numpy(x)
    u = torch.zeros_like(xt)
    u[1:] = xt[:-1]
    b = Batch(xt.expand(32, -1, -1), u.expand(32, -1, -1), torch.ones(32, T))
    for _ in range(150):
        loss = -elbo_terms(m, b).per_step()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, se1 = stats(11)
    assert after <= exact + 3 * se1, (after, exact, se1)  # a lower bound for every q
    assert after > before + 5 * (se0 + se1)  # training q tightened it ...
    assert exact - after < 1.0, (exact, after)  # ... to within a nat of log p(x) over 25 steps
