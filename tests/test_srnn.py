"""SRNN itself (Fraccaro et al., 2016): checks of the paper's equations and of the SRNN's own
options, on the tiny SRNN of conftest.

Smoothing and filtering inference (eq. 10) with and without Res_q (eq. 12), the closed-form KL
of the ELBO (eq. 6) against its Monte-Carlo estimate, padding and batch mates never changing a
result (the backward GRU starts at each sequence's own last step), the forward state d_t
(eq. 1-2) carried across windows and never dropped out, and samples. Properties every model of
``srnn.models.MODELS`` shares (SRNN included) are in test_models.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import batch_from, random_rolls, tiny_model

from srnn.bounds import elbo_terms
from srnn.models import Batch


@pytest.mark.parametrize("smoothing,res_q", [(True, True), (True, False), (False, True)])
def test_shapes_and_finite(smoothing: bool, res_q: bool) -> None:
    m = tiny_model(smoothing=smoothing, res_q=res_q)
    b = batch_from(random_rolls(5, (4, 11)))
    terms = elbo_terms(m, b)
    B, T = b.mask.shape
    assert terms.recon.shape == terms.kl.shape == (B, T)
    assert torch.isfinite(terms.per_step()).all()
    assert (terms.kl >= 0).all()  # KL between Gaussians is non-negative
    assert (terms.recon[b.mask == 0] == 0).all() and (terms.kl[b.mask == 0] == 0).all()


def test_padding_never_changes_a_result() -> None:
    """A batch padded with garbage beyond each length gives the same per-step terms as a tight
    batch; the backward GRU must start at each sequence's own last step."""
    m = tiny_model()
    rolls = random_rolls(4, (3, 9), seed=1)
    tight = batch_from(rolls)
    T = tight.x.shape[1]
    extra = 7
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, T + extra, 6, generator=g).round()
    u = torch.rand(4, T + extra, 6, generator=g).round()
    mask = torch.zeros(4, T + extra)
    for i, r in enumerate(rolls):
        L = len(r)
        x[i, :L], u[i, :L], mask[i, :L] = tight.x[i, :L], tight.u[i, :L], 1
    padded = Batch(x, u, mask)
    a = elbo_terms(m, tight, generator=torch.Generator().manual_seed(0))
    b = elbo_terms(m, padded, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.recon[:, :T], a.recon)
    torch.testing.assert_close(b.kl[:, :T], a.kl)
    assert (b.recon[:, T:] == 0).all()
    # The same sequence alone in its batch gives its terms too (batch independence).
    for i, r in enumerate(rolls):
        alone = elbo_terms(m, batch_from([r]), generator=torch.Generator().manual_seed(1))
        with_pad = batch_from([r])
        with_pad = Batch(torch.cat([with_pad.x, x[i:i + 1, len(r):]], 1),
                         torch.cat([with_pad.u, u[i:i + 1, len(r):]], 1),
                         torch.cat([with_pad.mask, torch.zeros(1, T + extra - len(r))], 1))
        padded_one = elbo_terms(m, with_pad, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(padded_one.recon[:, : len(r)], alone.recon)
        torch.testing.assert_close(padded_one.kl[:, : len(r)], alone.kl)


def test_analytic_kl_matches_monte_carlo() -> None:
    """The ELBO with the closed-form KL and with a Monte-Carlo KL estimate agree within the
    Monte-Carlo error (both are unbiased for the same ELBO)."""
    m = tiny_model(seed=3)
    m.eval()
    rolls = random_rolls(3, (6, 10), seed=2)
    b = batch_from(rolls)
    n = 4000
    big = Batch(b.x.repeat(n, 1, 1), b.u.repeat(n, 1, 1), b.mask.repeat(n, 1))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ana = elbo_terms(m, big, generator=g).kl.sum(1).view(n, 3)
        mc = elbo_terms(m, big, generator=g, analytic_kl=False).kl.sum(1).view(n, 3)
    diff = ana.mean(0) - mc.mean(0)
    se = torch.sqrt(ana.var(0) / n + mc.var(0) / n)
    assert (diff.abs() < 4 * se).all(), (diff, se)
    assert (mc.std(0) > ana.std(0)).all()  # the analytic KL has the lower variance


def test_res_q_adds_the_prior_mean() -> None:
    """Eq. 12: with Res_q the posterior mean is the prior mean plus the posterior network."""
    torch.manual_seed(0)
    on = tiny_model(seed=0, res_q=True)
    off = tiny_model(seed=0, res_q=False)
    off.load_state_dict(on.state_dict())
    b = batch_from(random_rolls(2, (5, 6)))
    pre_on, pre_off = on.precompute(b), off.precompute(b)
    z = torch.randn(2, 3)
    p_on, p_off = on.step(z, 2, pre_on), off.step(z, 2, pre_off)
    torch.testing.assert_close(p_on.q_loc, p_off.q_loc + p_off.p_loc)
    torch.testing.assert_close(p_on.q_scale, p_off.q_scale)


def test_carried_state_equals_one_pass() -> None:
    """Truncated BPTT: d computed window by window with the carried d equals one pass."""
    m = tiny_model(seed=4, smoothing=False)
    roll = random_rolls(1, (20, 21), seed=3)[0]
    whole = batch_from([roll])
    first = Batch(whole.x[:, :12], whole.u[:, :12], whole.mask[:, :12])
    second = Batch(whole.x[:, 12:], whole.u[:, 12:], whole.mask[:, 12:])
    pre_all = m.precompute(whole)
    pre1 = m.precompute(first)
    carry = (pre1.d[:, -1], torch.zeros(1, 3))
    pre2 = m.precompute(second, carry)
    torch.testing.assert_close(torch.cat([pre1.d, pre2.d], 1), pre_all.d)
    # With the carried z as well, the filtering posterior of step 13 is the same.
    z12 = torch.randn(1, 3)
    torch.testing.assert_close(m.step(z12, 0, pre2).q_loc, m.step(z12, 12, pre_all).q_loc)


def test_generate_shapes_and_values() -> None:
    m = tiny_model()
    torch.manual_seed(0)
    x = m.generate(3, 7)
    assert x.shape == (3, 7, 6)
    assert set(np.unique(x.numpy())) <= {0.0, 1.0}


def test_carried_state_is_not_dropped_out() -> None:
    """Dropout acts on d_t where it feeds the networks, never on the state carried onward."""
    m = tiny_model(seed=5, dropout=0.5, d_dim=64)
    m.train()
    pre = m.precompute(batch_from(random_rolls(3, (10, 11), seed=6)))
    assert (pre.d[:, -1] == 0).float().mean() > 0.3  # dropped where it feeds the networks
    assert (pre.d_last != 0).all()  # but carried whole
    carry = m.final_carry(torch.zeros(3, 3), pre)
    assert torch.equal(carry[0], pre.d_last)
