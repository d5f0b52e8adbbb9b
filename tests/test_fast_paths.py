"""The speed paths compute what the plain computation does: one weight-gradient product per
layer for the time loops (StepLinear) and one feature pass over x and u."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import batch_from, random_rolls
from test_models import tiny

import srnn.bounds.elbo as elbo_module
import srnn.bounds.particles as particles_module
from srnn.bounds import elbo_terms
from srnn.bounds.particles import fivo, iwae
from srnn.models import MODELS, Batch
from srnn.models.base import x_and_u_features
from srnn.nn import step_linear
from srnn.nn.layers import ClippedLeakyReLU
from srnn.nn.step_linear import StepLinear, batched_weight_grads

LATENT = [n for n in MODELS if n != "rnn"]


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the batched weight gradients off: every StepLinear is a plain nn.Linear."""
    def off(module: torch.nn.Module) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()
    monkeypatch.setattr(elbo_module, "batched_weight_grads", off)
    monkeypatch.setattr(particles_module, "batched_weight_grads", off)


def _grads(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _graph_nodes(t: torch.Tensor) -> set[str]:
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        names.add(type(f).__name__)
        stack.extend(g for g, _ in f.next_functions)
    return names


def _bounds(model, batch, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = elbo_terms(model, batch, generator=g).objective(1.0)
    if model.z_dim:
        out = out + iwae(model, batch, 3, generator=g).log_likelihood.mean()
        out = out + fivo(model, batch, 3, generator=g).log_likelihood.mean()
    return out


@pytest.mark.parametrize("name", LATENT)
def test_batched_weight_gradients_equal_autograds(name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny(name)
    batch = batch_from(random_rolls(5, (4, 13)))
    # Two passes before one backward (ELBO, IWAE and FIVO): each keeps its own steps.
    loss = _bounds(model, batch, 0)
    assert "_CollectBackward" in _graph_nodes(loss)  # the batched path is the one measured
    fast = _grads(model, loss)
    with monkeypatch.context() as m:
        _plain(m)
        loss_plain = _bounds(model, batch, 0)
        assert "_CollectBackward" not in _graph_nodes(loss_plain)
        plain = _grads(model, loss_plain)
    torch.testing.assert_close(loss, loss_plain, rtol=1e-6, atol=1e-6)
    assert fast.keys() == plain.keys()
    for k in plain:
        torch.testing.assert_close(fast[k], plain[k], rtol=1e-4, atol=1e-6, msg=k)


def test_step_linear_is_plain_outside_the_loop_and_without_gradients() -> None:
    torch.manual_seed(0)
    layer = StepLinear(5, 3)
    x = torch.randn(4, 5, requires_grad=True)
    ref = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert torch.equal(layer(x), ref)
    assert layer(x).grad_fn.__class__.__name__ == "AddmmBackward0"
    with batched_weight_grads(layer):
        y = layer(x)
        with torch.no_grad():
            assert torch.equal(layer(x), ref.detach())
    assert "_StepBackward" in y.grad_fn.__class__.__name__
    assert layer._pass is None  # left as it was after the block
    # a layer whose weight is frozen is not deferred (no weight gradient to gather)
    layer.weight.requires_grad_(False)
    with batched_weight_grads(layer):
        assert layer(x).grad_fn.__class__.__name__ != "_StepBackward"


@pytest.mark.parametrize("flush_rows", [512, 7, 1])
def test_step_linear_gradient_on_a_recurrence(flush_rows: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Weight, bias and input gradients of h_t = tanh(W x_t + b + h_{t-1}) over 9 steps, the
    gathered rows folded in once at the end, every few steps, or at every step."""
    monkeypatch.setattr(step_linear, "FLUSH_ROWS", flush_rows)
    torch.manual_seed(1)
    layer = StepLinear(6, 4)
    xs = torch.randn(9, 3, 6, requires_grad=True)

    def run(block: contextlib.AbstractContextManager) -> dict[str, torch.Tensor]:
        h = torch.zeros(3, 4)
        with block:
            for t in range(9):
                h = torch.tanh(layer(xs[t]) + h)
        layer.zero_grad(set_to_none=True)
        xs.grad = None
        (h ** 2).sum().backward()
        return {"w": layer.weight.grad, "b": layer.bias.grad, "x": xs.grad}

    fast = run(batched_weight_grads(layer))
    plain = run(contextlib.nullcontext())
    for k in plain:
        torch.testing.assert_close(fast[k], plain[k], rtol=1e-5, atol=1e-6, msg=k)


class _Counting(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(v)


def test_one_feature_pass_when_u_is_x_one_step_late() -> None:
    torch.manual_seed(0)
    net = _Counting(torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh()))
    batch = batch_from(random_rolls(4, (3, 12)))  # padded: lengths differ
    assert (batch.mask == 0).any()
    fx, fu = x_and_u_features(net, batch)
    assert net.calls == 1
    m = batch.mask.bool()
    torch.testing.assert_close(fx[m], net.net(batch.x)[m])
    torch.testing.assert_close(fu[m], net.net(batch.u)[m])
    # u that is not x one step late: two passes, exact
    u = batch.u.clone()
    u[0, 1, 0] = 1 - u[0, 1, 0]
    other = Batch(batch.x, u, batch.mask)
    net.calls = 0
    fx, fu = x_and_u_features(net, other)
    assert net.calls == 2
    assert torch.equal(fu, net.net(u)) and torch.equal(fx, net.net(batch.x))


@pytest.mark.parametrize("leak, clip", [(1 / 3, 3.0), (0.1, 1.0), (0.0, 2.0)])
def test_clipped_leaky_relu_is_clamp_of_leaky_relu(leak: float, clip: float) -> None:
    """The fused form equals ``clamp(leaky_relu(x), -clip, clip)``, values and gradients (away
    from the kinks, where the two one-sided derivatives differ)."""
    act = ClippedLeakyReLU(leak, clip)
    x = torch.linspace(-4 * clip / max(leak, 0.25), 4 * clip, 2001)
    kinks = torch.tensor([0.0, clip] + ([-clip / leak] if leak > 0 else []))
    x = x[(x.unsqueeze(1) - kinks).abs().min(1).values > 1e-3].requires_grad_()
    ref = torch.clamp(torch.nn.functional.leaky_relu(x, leak), -clip, clip)
    y = act(x)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-6)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=0)
    assert (g == 0).any() and (g == 1).any()  # both clipped and linear parts are covered
