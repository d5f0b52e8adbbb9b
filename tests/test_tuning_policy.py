"""The tuner's policy-gradient estimator: unbiased against exact enumeration on tiny models."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from srnn.models import build_model
from srnn.tuning.policy import exact_objective, leave_one_out, sample_paths, surrogate

SIZES = {"x_dim": 2, "d_dim": 3, "hidden": 4, "feature_dim": 3, "feature_layers": 1}


def tiny(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    extra = {"z_dim": 1, "a_dim": 3} if name == "srnn" else {}
    return build_model(name, **SIZES, **extra).double().eval()


def outcomes(T: int, D: int) -> torch.Tensor:
    """Every binary sequence of T steps of D notes, (2^(T*D), T, D)."""
    rows = list(itertools.product([0.0, 1.0], repeat=T * D))
    return torch.tensor(rows, dtype=torch.float64).view(-1, T, D)


def reward(x: torch.Tensor) -> torch.Tensor:
    """A reward with structure: note 0 at step 1, and the notes differing at the last step."""
    return x[:, 0, 0] + 0.5 * (x[:, -1, 0] != x[:, -1, 1]).double()


def flat_grad(model: torch.nn.Module) -> torch.Tensor:
    """All gradients as one vector (zeros for the inference network, which sampling skips)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()])


def estimator_mean(policy, prior, T, eps, c, batches=24, per=2000, pathwise_only=False):
    grads = []
    for _ in range(batches):
        policy.zero_grad()
        e = None if eps is None else eps.expand(per, *eps.shape[1:])
        paths = sample_paths(policy, prior, per, T, eps=e)
        obj = surrogate(paths, reward(paths.x), c)
        loss = obj.loss
        if pathwise_only:  # the estimator without its score-function term: biased
            f = reward(paths.x) - c * paths.kl.sum(1) / T
            loss = -f.mean()
        loss.backward()
        grads.append(-flat_grad(policy).clone())  # the loss is minimised: −∇J
    g = torch.stack(grads)
    return g.mean(0), g.std(0) / len(grads) ** 0.5


@pytest.mark.parametrize("name", ["rnn", "srnn"])
def test_estimator_is_unbiased_against_enumeration(name):
    T, c = 2, 0.3
    prior = tiny(name, 0)
    policy = tiny(name, 1)  # another point, so that the KL term and its gradient are not 0
    for p in prior.parameters():
        p.requires_grad_(False)
    torch.manual_seed(2)
    eps = torch.randn(1, T, 1, dtype=torch.float64) if name == "srnn" else None
    policy.zero_grad()
    exact = exact_objective(policy, prior, outcomes(T, 2), reward, c, eps)
    exact.backward()
    g_exact = flat_grad(policy).clone()
    torch.manual_seed(3)
    mean, se = estimator_mean(policy, prior, T, eps, c)
    # Every component within 4.5 standard errors, and the whole vector close.
    assert torch.all((mean - g_exact).abs() <= 4.5 * se + 1e-9), (mean - g_exact) / se
    assert (mean - g_exact).norm() < 0.1 * g_exact.norm()
    # The same check catches a biased estimator: the pathwise part alone is far off.
    torch.manual_seed(3)
    biased, _ = estimator_mean(policy, prior, T, eps, c, batches=4, pathwise_only=True)
    assert (biased - g_exact).norm() > 0.3 * g_exact.norm()


def test_paths_score_the_frozen_model_on_the_policys_path():
    T = 3
    prior = tiny("srnn", 0)
    policy = copy.deepcopy(prior)
    torch.manual_seed(0)
    paths = sample_paths(policy, prior, 5, T)
    # The same weights: log π = log p_0 on every step, so the KL estimate is exactly 0.
    assert torch.allclose(paths.log_ratio, torch.zeros_like(paths.log_ratio), atol=1e-12)
    assert paths.x.shape == (5, T, 2) and paths.z.shape == (5, T, 1)
    assert paths.log_p0.requires_grad is False and paths.log_pi_x.requires_grad
    # log p(x, z) per step equals the model's own ancestral sampler's on the same draws.
    torch.manual_seed(0)
    own = prior.sample_path(5, T)
    assert torch.equal(own.x, paths.x)
    assert torch.allclose(own.log_prob, paths.log_pi_x + paths.log_pi_z, atol=1e-10)


def test_leave_one_out_baseline():
    v = torch.tensor([1.0, 2.0, 6.0])
    assert torch.allclose(leave_one_out(v), torch.tensor([4.0, 3.5, 1.5]))
    assert leave_one_out(torch.tensor([5.0])).item() == 0.0
