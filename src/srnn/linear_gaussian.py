"""A linear-Gaussian state-space model with an exact log-likelihood (Kalman filter), written as
an SRNN and as a DMM: the reference every bound is checked against.

    z_t = A z_{t-1} + w_t,  w_t ~ N(0, sigma_w^2 I),  z_0 = 0
    x_t = C z_t + v_t,      v_t ~ N(0, sigma_v^2 I)

Both models get this exact generative part (identity activations, linear maps, constant
scales); only their inference networks q are free, so every bound they give is a lower bound
on the Kalman log-likelihood, whatever q is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from srnn.models import DMM, SRNN, Batch, DMMConfig, SRNNConfig, StateSpaceModel

A = np.array([[0.9, 0.2], [-0.15, 0.8]])
C = np.array([[1.0, 0.5], [-0.3, 1.2]])
SIGMA_W, SIGMA_V = 0.7, 0.5


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


def simulate(T: int, seed: int) -> np.ndarray:
    """One sequence x_1:T (T, 2) from the model."""
    rng = np.random.default_rng(seed)
    z, xs = np.zeros(2), []
    for _ in range(T):
        z = A @ z + SIGMA_W * rng.standard_normal(2)
        xs.append(C @ z + SIGMA_V * rng.standard_normal(2))
    return np.array(xs, dtype=np.float32)


def _softplus_inv(y: float) -> float:
    return math.log(math.expm1(y))


def _set_gaussian_head(proj: nn.Linear, weight: np.ndarray, sigma: float, min_std: float
                       ) -> None:
    """A fused Gaussian head with mean ``weight @ h`` and constant standard deviation."""
    proj.weight.copy_(torch.cat([torch.tensor(weight, dtype=torch.float32), torch.zeros(2, 2)]))
    proj.bias.copy_(torch.tensor([0.0, 0.0] + [_softplus_inv(sigma - min_std)] * 2))


def linear_gaussian_srnn(seed: int = 0) -> SRNN:
    """An SRNN whose generative part is exactly the model above (its d_t is unused)."""
    torch.manual_seed(seed)
    m = SRNN(SRNNConfig(x_dim=2, z_dim=2, d_dim=4, a_dim=16, hidden=2, feature_layers=0,
                        activation="identity", emission="gauss", two_networks=False,
                        init="torch"))
    with torch.no_grad():
        for lin in (m.prior_in, m.emit_in):  # first layers: h = z (no d-part)
            lin.z.weight.copy_(torch.eye(2))
            lin.c.weight.zero_()
            lin.c.bias.zero_()
        _set_gaussian_head(m.prior_out.proj, A, SIGMA_W, m.prior_out.min_std)
        _set_gaussian_head(m.emission.head.proj, C, SIGMA_V, m.emission.head.min_std)
    return m


def linear_gaussian_dmm(seed: int = 0) -> DMM:
    """A DMM whose generative part is exactly the model above: the gate closed
    (g_t = sigmoid(-40)), the linear path W_mu = A, a constant scale, a linear emitter."""
    torch.manual_seed(seed)
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
        tr.scale.bias.fill_(_softplus_inv(SIGMA_W - tr.min_std))
        for lin in (m.emitter[0], m.emitter[2]):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
        _set_gaussian_head(m.emission.head.proj, C, SIGMA_V, m.emission.head.min_std)
    return m


def generative_parameters(m: StateSpaceModel) -> list[nn.Parameter]:
    """The parameters of p (held fixed: they are the linear-Gaussian model's)."""
    if isinstance(m, DMM):
        return [m.z_0, *m.transition.parameters(), *m.emitter.parameters(),
                *m.emission.parameters()]
    assert isinstance(m, SRNN)
    return [*m.prior_in.parameters(), *m.prior_out.parameters(), *m.emit_in.parameters(),
            *m.emission.parameters()]


def as_batch(x: np.ndarray, n: int = 1) -> Batch:
    """``n`` copies of one sequence as a batch (u_t = x_{t-1})."""
    xt = torch.from_numpy(x)
    u = torch.zeros_like(xt)
    u[1:] = xt[:-1]
    T = len(x)
    return Batch(xt.expand(n, -1, -1), u.expand(n, -1, -1), torch.ones(n, T))


def fit_inference(m: StateSpaceModel, xs: list[np.ndarray], updates: int = 150,
                  lr: float = 2e-2, seed: int = 0) -> None:
    """Train only q (the generative part held fixed) by the ELBO on sequences ``xs``."""
    from srnn.bounds.elbo import elbo_terms
    from srnn.data.batching import pad_batch
    from srnn.data.sequences import shift_inputs

    for p in generative_parameters(m):
        p.requires_grad_(False)
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    batch = pad_batch(xs, [shift_inputs(x) for x in xs])
    for _ in range(updates):
        loss = -elbo_terms(m, batch).per_step()
        opt.zero_grad()
        loss.backward()
        opt.step()
