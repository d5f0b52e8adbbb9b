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


# -- the fused posterior recursion (srnn.nn.fused_posterior) -----------------------------------

ACTIVATIONS = ["clipped_leaky_relu", "relu", "tanh", "identity"]


def _step_by_step(model: torch.nn.Module, m: pytest.MonkeyPatch) -> None:
    """The model without its fused posterior: the bounds run its step interface step by step."""
    m.setattr(model, "fused_posterior", lambda *args: None)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_grad_is_autograds(act: str) -> None:
    from srnn.nn.fused_posterior import activation_grad, supports
    from srnn.nn.layers import activation

    f = activation(act)
    assert supports(f)
    # the kinks themselves (-9, 0, 3 for the paper's activation) and values on either side
    kinks = torch.tensor([-9.0, 0.0, 3.0], dtype=torch.float64)
    a = torch.cat([torch.linspace(-12, 6, 1001, dtype=torch.float64), kinks,
                   kinks + 1e-9, kinks - 1e-9]).requires_grad_()
    (g,) = torch.autograd.grad(f(a).sum(), a)
    d = activation_grad(f, a.detach())
    assert d.dtype == torch.float64
    torch.testing.assert_close(d, g, rtol=0, atol=1e-15)


@pytest.mark.parametrize("prior", [True, False])
@pytest.mark.parametrize("act", ["clipped_leaky_relu", "tanh"])
def test_fused_recursion_gradcheck(prior: bool, act: str) -> None:
    from srnn.nn.fused_posterior import gaussian_recursion
    from srnn.nn.layers import activation

    torch.manual_seed(0)
    B, T, Z, H = 2, 4, 3, 5
    n = 3 if prior else 2
    kw = dict(dtype=torch.float64, requires_grad=True)
    z0 = torch.randn(B, Z, **kw)
    context = torch.randn(B, T, n * H, **kw)
    w_z = torch.randn(n * H, Z, **kw)
    heads = [torch.randn(Z, H, **kw), torch.randn(Z, **kw), torch.randn(Z, H, **kw),
             torch.randn(Z, **kw)]
    p_head = [torch.randn(Z, H, **kw), torch.randn(Z, **kw)] if prior else []
    eps = torch.randn(B, T, Z, dtype=torch.float64)
    f = activation(act)

    def run(z0, context, w_z, *params):
        q = tuple(params[len(p_head):])
        p = tuple(params[:len(p_head)]) or None
        cut = H if prior else 2 * H  # two blocks: the contexts are read where they lie
        z, q_loc, q_scale, p_loc = gaussian_recursion(
            z0, (context[..., :cut], context[..., cut:]), eps, (w_z[:cut], w_z[cut:]), f, 1e-4,
            q, p)
        return (z, q_loc, q_scale) + ((p_loc,) if prior else ())

    assert torch.autograd.gradcheck(run, (z0, context, w_z, *p_head, *heads))


@pytest.mark.parametrize("res_q", [True, False])
@pytest.mark.parametrize("smoothing", [True, False])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_fused_srnn_posterior_equals_the_step_loop(res_q: bool, smoothing: bool, act: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The SRNN's ELBO through its fused posterior: the same bound terms, the same gradients,
    the same noise drawn (the generator ends in the same state), padding and a carried z_0
    included, as the step interface run step by step."""
    model = tiny("srnn", res_q=res_q, smoothing=smoothing, activation=act).double()
    batch = batch_from(random_rolls(4, (4, 13)))
    batch = Batch(batch.x.double(), batch.u.double(), batch.mask)
    assert (batch.mask == 0).any()
    carry = (torch.randn(4, model.config.d_dim, dtype=torch.float64),
             torch.randn(4, model.z_dim, dtype=torch.float64))

    def run() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(3)
        terms = elbo_terms(model, batch, carry=carry, generator=g)
        loss = terms.objective(0.6)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():  # evaluation keeps no per-step buffers: the same figures
            g = torch.Generator().manual_seed(3)
            no_grad = elbo_terms(model, batch, carry=carry, generator=g)
        return (terms.recon, terms.kl, terms.carry[1], torch.randn(1, generator=g),
                no_grad.recon, no_grad.kl, *grads)

    loss = elbo_terms(model, batch, carry=carry).objective(1.0)
    assert "_RecursionBackward" in _graph_nodes(loss)  # the fused path is the one taken
    fused = run()
    with monkeypatch.context() as m:
        _step_by_step(model, m)
        loss = elbo_terms(model, batch, carry=carry).objective(1.0)
        assert "_RecursionBackward" not in _graph_nodes(loss)
        plain = run()
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_posterior_with_noise_rows_draws_the_whole_batchs_noise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Data-parallel rows: each part draws the noise of the whole batch and keeps its rows, on
    the fused path as on the step loop, so the parts together give the whole batch's z."""
    from srnn.bounds.elbo import sample_posterior

    model = tiny("srnn")
    batch = batch_from(random_rolls(4, (6, 9)))
    pre = model.precompute(batch)
    rows = torch.tensor([1, 3])
    part = _rows_of(pre, rows)

    def z(p, noise_rows):
        g = torch.Generator().manual_seed(5)
        return sample_posterior(model, p, model.init_state(p), batch.x.shape[1], g,
                                noise_rows).z

    whole = z(pre, None)
    torch.testing.assert_close(z(part, (rows, 4)), whole[rows])
    with monkeypatch.context() as m:
        _step_by_step(model, m)
        torch.testing.assert_close(z(part, (rows, 4)), whole[rows])


def _rows_of(pre, rows: torch.Tensor):
    import dataclasses

    return dataclasses.replace(pre, **{
        f.name: getattr(pre, f.name)[rows] for f in dataclasses.fields(pre)
        if isinstance(getattr(pre, f.name), torch.Tensor)})


@pytest.mark.parametrize("name", ["srnn", "rnn", "storn", "srnn-dai"])
def test_models_with_fused_grus_equal_nn_gru(name: str) -> None:
    """Every FusedGRU of a model replaced by an nn.GRU with the same weights: the same bound and
    the same gradients (the models' GRUs are FusedGRU for its faster backward pass)."""
    import copy

    from srnn.nn.fused_gru import FusedGRU

    if name not in MODELS:
        pytest.skip(f"no model {name}")
    model = tiny(name).double()
    ref = copy.deepcopy(model)
    swapped = 0
    for parent in list(ref.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, FusedGRU):
                gru = torch.nn.GRU(child.input_size, child.hidden_size, batch_first=True)
                gru.load_state_dict(child.state_dict())
                setattr(parent, child_name, gru.double())
                swapped += 1
    assert swapped
    batch = batch_from(random_rolls(3, (4, 10)))
    batch = Batch(batch.x.double(), batch.u.double(), batch.mask)
    out = []
    for m in (model, ref):
        g = torch.Generator().manual_seed(2)
        loss = elbo_terms(m, batch, generator=g).objective(1.0)
        out.append((loss, torch.autograd.grad(loss, list(m.parameters()))))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(out[0][1], out[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["vrnn", "vrnn-i"])
def test_vrnn_prior_after_the_loop_equals_the_step_loop(name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The VRNN's fused z-loop without its prior (computed for all steps afterwards): the same
    bound terms, gradients and noise as the step interface step by step, padding and a carried
    h_0 included."""
    model = tiny(name).double()
    batch = batch_from(random_rolls(4, (4, 13)))
    batch = Batch(batch.x.double(), batch.u.double(), batch.mask)
    carry = torch.randn(4, model.config.d_dim, dtype=torch.float64)

    def run() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(3)
        terms = elbo_terms(model, batch, carry=carry, generator=g)
        grads = torch.autograd.grad(terms.objective(0.6), list(model.parameters()))
        return (terms.recon, terms.kl, terms.carry, torch.randn(1, generator=g), *grads)

    fused = run()
    with monkeypatch.context() as m:
        _step_by_step(model, m)
        plain = run()
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_reverse_padded_flips_unpadded_batches_and_gathers_padded_ones() -> None:
    from srnn.nn.recurrent import reverse_padded

    x = torch.randn(3, 6, 2, requires_grad=True)
    full = torch.tensor([6, 6, 6])
    assert torch.equal(reverse_padded(x, full), x[:, torch.arange(5, -1, -1)])
    lengths = torch.tensor([6, 4, 1])
    y = reverse_padded(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(y[b, :n], x[b, :n].flip(0))
        assert torch.equal(y[b, n:], x[b, n:])  # padding stays put
    assert torch.equal(reverse_padded(y, lengths), x)


@pytest.mark.parametrize("act", ["clipped_leaky_relu", "tanh"])
def test_fused_gru_recursion_gradcheck(act: str) -> None:
    from srnn.nn.fused_posterior import gru_recursion
    from srnn.nn.layers import activation

    torch.manual_seed(0)
    B, T, Z, H, E, F = 2, 4, 3, 4, 5, 3
    kw = dict(dtype=torch.float64, requires_grad=True)
    args = [torch.randn(B, H, **kw), torch.randn(B, T, E, **kw), torch.randn(B, T, 3 * H, **kw)]
    params = [torch.randn(E, H, **kw), torch.randn(3 * H, H, **kw), torch.randn(3 * H, **kw),
              torch.randn(2 * Z, E, **kw), torch.randn(2 * Z, **kw), torch.randn(F, Z, **kw),
              torch.randn(F, **kw), torch.randn(3 * H, F, **kw)]
    eps = torch.randn(B, T, Z, dtype=torch.float64)
    f = activation(act)

    def run(h0, c_enc, c_cell, *p):
        return gru_recursion(h0, c_enc, c_cell, eps, f, 1e-4, *p)

    assert torch.autograd.gradcheck(run, (*args, *params))
