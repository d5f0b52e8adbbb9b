"""Properties every model of ``srnn.models.MODELS`` shares, each test run for every model: shapes,
masks and signs of the ELBO terms, padding, gradients, a tiny training run, sampling, carried
state, and generation that agrees with training (the log p(x, z) summed while a path is drawn
equals the training path's for the same x and z). Then the few checks that belong to one peer
model (the RNN's exact likelihood, the VRNN-I prior, Z-forcing's auxiliary cost, the DMM's
transition) or to a shared block (SplitInputGRUCell, the GMM emission, StepSlices).
SRNN-specific checks of the paper's equations are in test_srnn.py; the tiny ``tiny(name)`` models
built here are shared with the other test files.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import batch_from, random_rolls, synthetic_dataset

from srnn.bounds import elbo_terms, joint_log_prob
from srnn.data.batching import pad_batch
from srnn.data.sequences import shift_inputs
from srnn.models import MODELS, Batch, build_model
from srnn.nn.recurrent import SplitInputGRUCell
from srnn.train.trainer import RunConfig, TrainConfig, Trainer

# Options that change a model's structure, tested as models of their own.
VARIANTS: dict[str, tuple[str, dict]] = {"dmm-aug": ("dmm", {"prev_input": True})}
NAMES = list(MODELS) + list(VARIANTS)


def model_of(name: str) -> str:
    """The registry name of model or variant ``name``."""
    return VARIANTS.get(name, (name, {}))[0]


def tiny_options(name: str, **kw) -> dict:
    """Small sizes for model or variant ``name`` (only the options its config has)."""
    sizes = dict(x_dim=6, z_dim=3, d_dim=8, a_dim=7, hidden=10, feature_layers=1,
                 feature_dim=9, emission_hidden=5, h_dim=6)
    fields = MODELS[model_of(name)].config.__dataclass_fields__
    variant = VARIANTS.get(name, (name, {}))[1]
    return {k: v for k, v in {**sizes, **variant, **kw}.items() if k in fields}


def tiny(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model(model_of(name), **tiny_options(name, **kw))


@pytest.mark.parametrize("name", NAMES)
def test_shapes_masks_and_signs(name: str) -> None:
    m = tiny(name)
    b = batch_from(random_rolls(4, (4, 11)))
    terms = elbo_terms(m, b)
    B, T = b.mask.shape
    assert terms.recon.shape == terms.kl.shape == (B, T)
    assert torch.isfinite(terms.per_step())
    assert (terms.recon <= 0).all()  # Bernoulli log-probabilities
    assert (terms.kl >= 0).all()
    pad = b.mask == 0
    assert (terms.recon[pad] == 0).all() and (terms.kl[pad] == 0).all()
    if name == "rnn":
        assert (terms.kl == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_a_result(name: str) -> None:
    """Garbage beyond each length changes nothing: backward RNNs start at each sequence's own
    last step and every draw is made step by step."""
    m = tiny(name, seed=1)
    rolls = random_rolls(3, (3, 9), seed=1)
    tight = batch_from(rolls)
    T, extra = tight.x.shape[1], 5
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, T + extra, 6, generator=g).round()
    u = torch.rand(3, T + extra, 6, generator=g).round()
    mask = torch.zeros(3, T + extra)
    for i, r in enumerate(rolls):
        L = len(r)
        x[i, :L], u[i, :L], mask[i, :L] = tight.x[i, :L], tight.u[i, :L], 1
    a = elbo_terms(m, tight, generator=torch.Generator().manual_seed(0))
    b = elbo_terms(m, Batch(x, u, mask), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.recon[:, :T], a.recon)
    torch.testing.assert_close(b.kl[:, :T], a.kl)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", ["bernoulli", "gmm"])
def test_gradients_reach_every_parameter(name: str, emission: str) -> None:
    m = tiny(name, emission=emission, mixtures=2)
    rolls = random_rolls(3, (5, 8), seed=2)
    b = batch_from(rolls)
    if emission != "bernoulli":
        b = Batch(b.x + 0.1 * torch.randn_like(b.x), b.u, b.mask)
    (-elbo_terms(m, b).objective()).backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_tiny_training_improves_the_validation_bound(tmp_path, name: str) -> None:
    opts = tiny_options(name, d_dim=16, a_dim=16, hidden=24, feature_dim=16, emission_hidden=16,
                        h_dim=64)
    opts.pop("x_dim")
    cfg = RunConfig(dataset="synthetic", model=model_of(name), model_options=opts,
                    train=TrainConfig(epochs=5, batch_size=8, lr=3e-3, kl_epochs=2,
                                      lr_decay_start=3))
    t = Trainer(cfg, tmp_path / name, data=synthetic_dataset(), progress=False)
    res = t.fit()
    lines = [json.loads(ln) for ln in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert res["valid_elbo_per_step"] > lines[0]["valid_elbo"] + 0.1
    assert res["bound"] == ("exact" if name == "rnn" else "elbo")
    assert res["model_options"] == t.model.config.to_dict()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", ["bernoulli", "gauss", "gmm"])
def test_sampling_from_the_prior(name: str, emission: str) -> None:
    m = tiny(name, emission=emission, mixtures=3)
    m.eval()
    torch.manual_seed(0)
    x = m.generate(3, 7)
    assert x.shape == (3, 7, 6) and torch.isfinite(x).all()
    values = set(np.unique(x.numpy()))
    if emission == "bernoulli":
        assert values <= {0.0, 1.0}
    else:
        assert len(values) > 20  # real-valued


def teacher_batch(x: torch.Tensor, x_last: torch.Tensor | None = None) -> Batch:
    """The training batch of generated x (num, T, D), in x's dtype: u_t = x_{t-1}, with
    u_1 = 0, or the primer's last x when the path continues a primer."""
    x0 = torch.zeros_like(x[:, 0]) if x_last is None else x_last.to(x.dtype)
    u = torch.cat([x0.unsqueeze(1), x[:, :-1]], dim=1)
    return Batch(x, u, torch.ones(x.shape[:2], dtype=x.dtype))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", ["bernoulli", "gauss"])
def test_a_generated_path_has_the_training_paths_log_joint(name: str, emission: str) -> None:
    """log p(z_t | ...) + log p(x_t | z_t, ...) summed while generating equals what the training
    path gives for the same x and z (float64, tight tolerance): generation and training are one
    generative model. Any z, or the masked steps of shorter sequences, changes it as it must."""
    m = tiny(name, emission=emission).double().eval()
    torch.manual_seed(3)
    with torch.no_grad():
        path = m.sample_path(4, 6)
        assert path.x.shape == (4, 6, 6) and path.log_prob.shape == (4, 6)
        assert (path.z is None) == (name == "rnn")
        assert path.z is None or path.z.shape == (4, 6, 3)
        batch = teacher_batch(path.x)
        train = joint_log_prob(m, batch, path.z)
        torch.testing.assert_close(train, path.log_prob, rtol=1e-10, atol=1e-10)
        # The batch is the data layer's: u shifted by shift_inputs, padded by pad_batch.
        if emission == "bernoulli":
            rolls = [r[:L] for r, L in zip(path.x.numpy(), (6, 3, 5, 1), strict=True)]
            padded = pad_batch(rolls, [shift_inputs(r) for r in rolls])
            padded = Batch(padded.x.double(), padded.u.double(), padded.mask.double())
            torch.testing.assert_close(padded.u[0], batch.u[0])
            masked = joint_log_prob(m, padded, path.z)
            torch.testing.assert_close(masked, path.log_prob * padded.mask,
                                       rtol=1e-10, atol=1e-10)
        # Not vacuous: the training path's value moves with z.
        if path.z is not None:
            other = joint_log_prob(m, batch, path.z + 0.1)
            assert (other - train).abs().amin() > 1e-6
    torch.manual_seed(3)
    assert torch.equal(m.generate(4, 6), path.x)  # generate is the same loop, x only


@pytest.mark.parametrize("name", NAMES)
def test_a_continuation_has_the_training_paths_log_joint(name: str) -> None:
    """From the carry of a primer (through ``elbo_terms``) and its last x, the continued path's
    log p(x, z) equals the training path's from the same carry, u_1 being the primer's last x."""
    m = tiny(name, seed=2).double().eval()
    primer = batch_from(random_rolls(3, (5, 6), seed=7))
    primer = Batch(primer.x.double(), primer.u.double(), primer.mask.double())
    with torch.no_grad():
        terms = elbo_terms(m, primer, generator=torch.Generator().manual_seed(4))
        x_last = primer.x[:, -1]
        torch.manual_seed(8)
        path = m.sample_path(3, 5, carry=terms.carry, x_last=x_last)
        train = joint_log_prob(m, teacher_batch(path.x, x_last), path.z, carry=terms.carry)
        torch.testing.assert_close(train, path.log_prob, rtol=1e-10, atol=1e-10)
        # Not vacuous: without the carry the training path gives other values.
        fresh = joint_log_prob(m, teacher_batch(path.x, x_last), path.z)
        assert not torch.allclose(fresh, path.log_prob)


def test_the_rnn_likelihood_is_exact() -> None:
    """The RNN's probabilities of all 2^(D T) binary sequences sum to one."""
    m = tiny("rnn", x_dim=2)
    T = 3
    seqs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=2 * T))).view(-1, T, 2)
    u = torch.cat([torch.zeros(len(seqs), 1, 2), seqs[:, :-1]], 1)
    with torch.no_grad():
        ll = elbo_terms(m, Batch(seqs, u, torch.ones(len(seqs), T))).recon.sum(1)
    assert float(torch.logsumexp(ll.double(), 0)) == pytest.approx(0.0, abs=1e-5)


def test_vrnn_i_has_a_standard_normal_prior() -> None:
    m = tiny("vrnn-i")
    assert m.config.independent_prior and not hasattr(m, "phi_prior")
    pre = m.precompute(batch_from(random_rolls(2, (4, 5))))
    prm = m.step(torch.randn(2, 8), 0, pre)
    assert (prm.p_loc == 0).all() and (prm.p_scale == 1).all()
    assert (tiny("vrnn").step(torch.randn(2, 8), 0, tiny("vrnn").precompute(
        batch_from(random_rolls(2, (4, 5))))).p_scale != 1).any()


def test_dai_srnn_prior_reads_only_the_past_and_neither_reads_earlier_z() -> None:
    """p(z_t | x_<t) and q(z_t | v_{t-1}, b_t): the same whatever the state h (so whatever
    z_<t), and the prior at t unchanged when x_t, ..., x_T change."""
    m = tiny("srnn-dai")
    rolls = random_rolls(2, (6, 7))
    pre = m.precompute(batch_from(rolls))
    a, b = (m.step(torch.randn(2, m.config.h_dim), 3, pre) for _ in range(2))
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)
    changed = [r.copy() for r in rolls]
    for r in changed:
        r[3:] = 1 - r[3:]  # flip x_4 onwards (steps 3, 4, ... counted from 0)
    pre2 = m.precompute(batch_from(changed))
    torch.testing.assert_close(pre2.p_loc[:, :4], pre.p_loc[:, :4])  # reads x_<t only
    assert not torch.allclose(pre2.p_loc[:, 4:], pre.p_loc[:, 4:])
    assert not torch.allclose(pre2.q_loc[:, :4], pre.q_loc[:, :4])  # q reads the future


def test_zforcing_auxiliary_cost() -> None:
    """The auxiliary term is weighted, left out of the bound, and does not train b_t."""
    b = batch_from(random_rolls(3, (5, 8), seed=3))
    m = tiny("zforcing", aux_weight=0.5)
    terms = elbo_terms(m, b, generator=torch.Generator().manual_seed(0))
    assert terms.aux is not None
    torch.testing.assert_close(terms.objective(),
                               terms.per_step() + terms.aux.sum() / terms.mask.sum())
    # The target b_t is held fixed: with z given, nothing reaches the backward RNN.
    pre = m.precompute(b)
    m.auxiliary_log_prob(torch.randn(*b.mask.shape, 3), pre).sum().backward()
    assert all(p.grad is None for p in m.backward_rnn.parameters())
    assert all(p.grad is not None for p in m.aux.parameters())
    off = tiny("zforcing", aux_weight=0.0)
    assert elbo_terms(off, b).aux is None
    # The bound itself does not depend on the weight.
    twice = tiny("zforcing", aux_weight=1.0)
    again = elbo_terms(twice, b, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.per_step(), terms.per_step())


def test_dmm_transition_starts_linear_identity() -> None:
    m = tiny("dmm")
    torch.testing.assert_close(m.transition.linear.weight, torch.eye(3))


@pytest.mark.parametrize("name", ["dmm", "dmm-aug"])
def test_dmm_aug_reads_the_previous_input_in_its_prior_and_emission(name: str) -> None:
    """DMM-Aug: x_{t-1} moves p(z_t | z_{t-1}, x_{t-1}) and p(x_t | z_t, x_{t-1}) at step t
    only; the plain DMM reads neither."""
    from srnn.models.base import step_view

    m = tiny(name).eval()
    b = batch_from(random_rolls(2, (6, 7), seed=3))
    u = b.u.clone()
    u[:, 3] = 1 - u[:, 3]  # change x_{t-1} at t = 3 only
    moved = Batch(b.x, u, b.mask)
    z_prev, z = torch.randn(2, 3), torch.randn(2, 6, 3)
    for t in range(6):
        a, c = (step_view(m.precompute(bb)) for bb in (b, moved))
        same = t != 3 or name == "dmm"
        assert torch.equal(m.step(z_prev, t, a).p_loc, m.step(z_prev, t, c).p_loc) == same
    pa, pc = m.precompute(b), m.precompute(moved)
    la, lc = m.emission_log_prob(z, pa), m.emission_log_prob(z, pc)
    changed = (la != lc).any(0)
    assert changed.tolist() == [name == "dmm-aug" and t == 3 for t in range(6)]


def test_split_input_gru_cell_is_a_gru_cell() -> None:
    torch.manual_seed(0)
    cell = SplitInputGRUCell(4, 3, 5)
    ref = torch.nn.GRUCell(7, 5)
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([cell.c.weight, cell.z.weight], 1))
        ref.bias_ih.copy_(cell.c.bias)
        ref.weight_hh.copy_(cell.h.weight)
        ref.bias_hh.copy_(cell.h.bias)
    c, z, h = torch.randn(6, 4), torch.randn(6, 3), torch.randn(6, 5)
    torch.testing.assert_close(cell(cell.context(c), z, h), ref(torch.cat([c, z], 1), h))


@pytest.mark.parametrize("name", NAMES)
def test_carry_continues_streams(name: str) -> None:
    """Stream windows carry state: a model trained on stream files gets a usable carry."""
    m = tiny(name)
    roll = random_rolls(1, (12, 13), seed=4)[0]
    whole = batch_from([roll, roll])
    first = Batch(whole.x[:, :6], whole.u[:, :6], whole.mask[:, :6])
    second = Batch(whole.x[:, 6:], whole.u[:, 6:], whole.mask[:, 6:])
    t1 = elbo_terms(m, first)
    t2 = elbo_terms(m, second, carry=t1.carry)
    assert torch.isfinite(t2.per_step())
    if name in ("rnn",):  # deterministic: windows with carry equal one pass exactly
        torch.testing.assert_close(torch.cat([t1.recon, t2.recon], 1), elbo_terms(m, whole).recon)


def test_gmm_emission_density() -> None:
    """The mixture log-density equals log sum_k pi_k N(x; mu_k, sigma_k) computed by hand, and
    one component is the diagonal Gaussian."""
    from torch.distributions import Normal

    from srnn.nn.emissions import GMMEmission

    torch.manual_seed(0)
    em = GMMEmission(5, 3, mixtures=4)
    h, x = torch.randn(7, 5), torch.randn(7, 3)
    d = em.distribution(h)
    loc, scale = d.component_distribution.base_dist.loc, d.component_distribution.base_dist.scale
    log_pi = torch.log_softmax(em.logits(h), -1)
    manual = torch.logsumexp(log_pi + Normal(loc, scale).log_prob(x.unsqueeze(1)).sum(-1), -1)
    torch.testing.assert_close(em.log_prob(h, x), manual)
    one = GMMEmission(5, 3, mixtures=1)
    d1 = one.distribution(h)
    single = Normal(d1.component_distribution.base_dist.loc[:, 0],
                    d1.component_distribution.base_dist.scale[:, 0]).log_prob(x).sum(-1)
    torch.testing.assert_close(one.log_prob(h, x), single)
    with pytest.raises(ValueError, match="at least one component"):
        GMMEmission(5, 3, mixtures=0)


@pytest.mark.parametrize("name", ["srnn", "vrnn", "storn", "zforcing", "dmm"])
def test_split_per_step_fields_give_the_same_elbo_and_gradients(name, monkeypatch):
    # The z-loop reads per-step fields through StepSlices (split once); reading them by a
    # select per step must give the same numbers.
    import srnn.bounds.elbo as elbo_mod
    from srnn.models.base import StepSlices

    torch.manual_seed(0)
    model = build_model(name, x_dim=6, z_dim=3)
    x = (torch.rand(3, 7, 6) < 0.3).float()
    u = torch.zeros_like(x)
    u[:, 1:] = x[:, :-1]
    batch = Batch(x, u, torch.ones(3, 7))

    def run():
        loss = elbo_terms(model, batch, generator=torch.Generator().manual_seed(1)).per_step()
        return loss.detach(), torch.autograd.grad(loss, list(model.parameters()),
                                                  allow_unused=True)

    split = run()
    monkeypatch.setattr(elbo_mod, "step_view", lambda pre: pre)
    direct = run()
    assert torch.equal(split[0], direct[0])
    for a, b in zip(split[1], direct[1], strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-7)
    with pytest.raises(TypeError, match=r"v\[:, t\]"):
        StepSlices(torch.zeros(2, 3, 4))[0]
