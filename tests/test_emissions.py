"""The autoregressive emissions (MADE, NADE; ``srnn.nn.autoregressive``): the autoregressive
property in each order, exact normalisation, samples that follow ``log_prob``, the sampler's
recursion equal to the teacher-forced pass, NADE's position-by-position sums equal to its
cumulative sum (values and gradients); then through every model: the K = 1 identities of the
bounds, padding, generation against the training path, sampling / continuation /
reconstruction, a tiny training run, and the refusal of real-valued data.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from conftest import batch_from, random_rolls, synthetic_dataset
from emission_checks import (
    check_generation_matches_training,
    check_one_particle_bounds_and_padding,
    check_tiny_training_improves,
)
from test_models import NAMES, model_of, tiny, tiny_options

import srnn.nn.autoregressive as ar
from srnn.data import SequenceDataset, Split
from srnn.experiments.compare import plan
from srnn.experiments.sizes import count_parameters
from srnn.models import build_model
from srnn.nn.autoregressive import (
    AutoregressiveBernoulli,
    MADEEmission,
    NADEEmission,
    autoregressive_order,
)
from srnn.nn.emissions import EMISSIONS, make_emission
from srnn.sampling import continuation, reconstruct
from srnn.train.trainer import RunConfig, TrainConfig, Trainer

ORDERS = ["ascending", "descending", "random:3", [2, 0, 7, 5, 1, 3, 6, 4]]
AR = ["made", "nade"]


@pytest.fixture(params=["cumsum", "recursion"])
def nade_path(request, monkeypatch):
    """NADE's teacher-forced sums in one pass (few rows) or position by position (many)."""
    if request.param == "recursion":
        monkeypatch.setattr(ar, "NADE_LOOP_ELEMENTS", 0)
    return request.param


def emissions(x_dim: int = 8, in_dim: int = 5) -> list[tuple[str, torch.nn.Module]]:
    """MADE in every order with 1 and 2 hidden layers, NADE in every order (small sizes)."""
    torch.manual_seed(0)
    out = []
    for order in ORDERS:
        tag = order if isinstance(order, str) else "permutation"
        out.append((f"made-{tag}", MADEEmission(in_dim, x_dim, hidden=12, order=order)))
        out.append((f"made2-{tag}", MADEEmission(in_dim, x_dim, hidden=20, layers=2,
                                                 order=order)))
        out.append((f"nade-{tag}", NADEEmission(in_dim, x_dim, hidden=7, order=order)))
    return [(n, e.double()) for n, e in out]


def all_binary(D: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=torch.float64)


def test_an_order_is_a_fixed_permutation() -> None:
    assert autoregressive_order("ascending", 4).tolist() == [0, 1, 2, 3]
    assert autoregressive_order("descending", 4).tolist() == [3, 2, 1, 0]
    r = autoregressive_order("random:7", 10)
    assert sorted(r.tolist()) == list(range(10)) and r.tolist() != list(range(10))
    assert torch.equal(r, autoregressive_order("random:7", 10))  # fixed by its seed
    assert not torch.equal(r, autoregressive_order("random:8", 10))
    assert autoregressive_order((1, 0, 2), 3).tolist() == [1, 0, 2]
    for bad in ("sideways", "random:", "random:x"):
        with pytest.raises(ValueError, match="unknown order"):
            autoregressive_order(bad, 4)
    with pytest.raises(ValueError, match="permutation"):
        autoregressive_order([0, 0, 1], 3)


def test_each_conditional_ignores_its_own_and_later_values(nade_path) -> None:
    """logit_d depends only on the values before d in the order: its Jacobian w.r.t. x is
    strictly lower-triangular in the order (and nonzero below the diagonal), and flipping any
    value at or after d leaves logit_d bit for bit unchanged."""
    g = torch.Generator().manual_seed(1)
    for name, em in emissions():
        if nade_path == "recursion" and not name.startswith("nade"):
            continue
        order = em.order
        h = torch.randn(3, 5, generator=g, dtype=torch.float64)
        dist = em.distribution(h)
        for row in range(3):
            x = (torch.rand(8, generator=g) < 0.5).double()
            J = torch.autograd.functional.jacobian(
                lambda v, d=dist, row=row: d.conditional_logits(v)[row], x)
            Jp = J[order][:, order]  # in positions: Jp[k, j] = d l_k / d x_{o_j}
            assert (Jp.triu() == 0).all(), name
            assert (Jp.tril(-1)[torch.ones(8, 8).tril(-1).bool()] != 0).all(), name
            base = dist.conditional_logits(x)[row]
            for j in range(8):
                flipped = x.clone()
                flipped[j] = 1 - flipped[j]
                moved = dist.conditional_logits(flipped)[row]
                before = em.rank <= em.rank[j]  # the d that x_j is at or after in the order
                assert torch.equal(moved[before], base[before]), (name, j)
                assert (moved[~before] != base[~before]).all(), (name, j)


def test_probabilities_of_all_binary_vectors_sum_to_one(nade_path) -> None:
    X = all_binary(8)  # (256, 8)
    for name, em in emissions():
        h = torch.randn(4, 5, dtype=torch.float64)
        lp = em.distribution(h).log_prob(X.unsqueeze(1))  # (256, 4): each row's conditioning
        assert lp.shape == (256, 4)
        torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros(4, dtype=lp.dtype),
                                   atol=1e-5, rtol=0, msg=name)
        assert lp.std(1).max() > 0.01  # the conditioning matters


@pytest.mark.parametrize("name", ["made", "nade"])
def test_sample_frequencies_follow_log_prob(name: str) -> None:
    """Per cell of the 2^3 outcomes, the frequency of N draws is within 4.5 binomial standard
    errors of exp(log_prob), for two conditioning vectors."""
    torch.manual_seed(2)
    em = make_emission(name, 4, 3, ar_hidden=6, ar_order="descending")
    h = 2 * torch.randn(2, 4)
    with torch.no_grad():
        dist = em.distribution(h)
        p = dist.log_prob(all_binary(3).float().unsqueeze(1)).exp()  # (8, 2)
        N = 40_000
        x = dist.sample((N,))  # (N, 2, 3)
    assert x.shape == (N, 2, 3) and set(x.unique().tolist()) <= {0.0, 1.0}
    cell = (x * torch.tensor([4.0, 2.0, 1.0])).sum(-1).long()  # the index into all_binary(3)
    freq = torch.stack([(cell == i).float().mean(0) for i in range(8)])  # (8, 2)
    se = (p * (1 - p) / N).sqrt()
    assert ((freq - p).abs() <= 4.5 * se + 1e-4).all(), (freq, p)
    assert (p.max(0).values - p.min(0).values > 0.1).all()  # far from uniform


def test_the_sampler_runs_the_teacher_forced_conditionals(nade_path) -> None:
    """Along a sample, the conditional probabilities the sequential sampler used are those of
    the one-pass teacher-forced logits of the sampled x (MADE's units computed degree by
    degree, NADE's recursion)."""
    torch.manual_seed(4)
    for name, em in emissions():
        dist = em.distribution(torch.randn(3, 5, dtype=torch.float64))
        x, probs = dist._ancestral(torch.Size([6]))
        assert x.shape == probs.shape == (6, 3, 8)
        torch.testing.assert_close(probs, torch.sigmoid(dist.conditional_logits(x)),
                                   rtol=1e-10, atol=1e-12, msg=name)


def test_one_variable_and_one_dimension() -> None:
    """D = 1: the only conditional reads h alone (MADE's units, of degree 0, still reach the
    output), and the two outcomes sum to one."""
    assert MADEEmission(3, 1, hidden=4).out.mask.all()
    for em in (MADEEmission(3, 1, hidden=4), NADEEmission(3, 1, hidden=4)):
        dist = em.distribution(torch.randn(2, 3))
        lp = dist.log_prob(torch.tensor([[[0.0]], [[1.0]]]))
        torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros(2))
        assert dist.sample().shape == (2, 1)


def test_the_mean_is_a_monte_carlo_estimate_of_the_marginals(monkeypatch) -> None:
    """``mean`` averages the conditional probabilities along MEAN_SAMPLES draws of the global
    generator (reproducible from its seed, computed once); ``variance`` is mean (1 - mean).
    With many draws it approaches the exact marginals (from all 2^8 vectors)."""
    X = all_binary(8)
    for name, em in [emissions()[i] for i in (0, 4, 8, 11)]:  # MADE 1 and 2 layers, NADE
        h = torch.randn(2, 5, dtype=torch.float64)
        dist = em.distribution(h)
        with torch.no_grad():
            exact = (dist.log_prob(X.unsqueeze(1)).exp().unsqueeze(-1) * X.unsqueeze(1)).sum(0)
        torch.manual_seed(0)
        m = dist.mean
        assert m.shape == (2, 8) and dist.mean is m  # computed once
        assert (abs(m - exact) < 0.25).all(), name  # 32 draws
        torch.testing.assert_close(dist.variance, m * (1 - m))
        torch.manual_seed(0)
        assert torch.equal(em.distribution(h).mean, m)  # the same draws from the same seed
        monkeypatch.setattr(AutoregressiveBernoulli, "MEAN_SAMPLES", 4000)
        monkeypatch.setattr(AutoregressiveBernoulli, "MEAN_ROWS", 3000)  # chunks of 1500 draws
        assert (abs(em.distribution(h).mean - exact) < 0.015).all(), name
        monkeypatch.undo()


def test_nade_recursion_equals_its_cumulative_sum_with_gradients(monkeypatch) -> None:
    """The position-by-position autograd Function and the one-pass cumulative sum give the same
    values and the same gradients for x, c, W and V (float64)."""
    torch.manual_seed(5)
    x = (torch.rand(2, 7, 9) < 0.4).double().requires_grad_()
    c = torch.randn(2, 1, 6, dtype=torch.float64, requires_grad=True)  # broadcast over steps
    W = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    V = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 7, 9, dtype=torch.float64)

    def run():
        out = ar.nade_sums(x, c, W, V)
        return out.detach(), torch.autograd.grad((out * w).sum(), (x, c, W, V))

    one_pass = run()
    monkeypatch.setattr(ar, "NADE_LOOP_ELEMENTS", 0)
    by_position = run()
    torch.testing.assert_close(by_position[0], one_pass[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(by_position[1], one_pass[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # without gradients it keeps no (D, N, H) block
        torch.testing.assert_close(ar.nade_sums(x, c, W, V), one_pass[0])
    rows_c = c[0].expand(7, 6).detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(ar._NADERecursion.apply, (x[0], rows_c, W, V))


def test_made_and_nade_through_make_emission() -> None:
    assert {"made", "nade"} <= set(EMISSIONS) and EMISSIONS["made"].binary
    made = make_emission("made", 10, 6, ar_order="random:1", ar_hidden=30, ar_layers=3)
    assert isinstance(made, MADEEmission) and (made.hidden, made.layers) == (30, 3)
    assert not torch.equal(made.order, torch.arange(6))
    nade = make_emission("nade", 10, 6)
    assert isinstance(nade, NADEEmission) and nade.hidden == ar.NADE_HIDDEN
    assert make_emission("made", 10, 6).hidden == ar.MADE_HIDDEN
    with pytest.raises(ValueError, match="one hidden layer"):
        make_emission("nade", 10, 6, ar_layers=2)
    with pytest.raises(ValueError, match="has no order"):
        make_emission("bernoulli", 10, 6, ar_order="descending")
    with pytest.raises(ValueError, match="at least one"):
        make_emission("made", 10, 6, ar_layers=0)
    with pytest.raises(ValueError, match="at least one"):
        make_emission("nade", 10, 6, ar_hidden=0)
    # Masks and orders are rebuilt from the options, not stored: a checkpoint holds weights.
    assert not any("mask" in k or "order" in k for k in made.state_dict())


@pytest.mark.parametrize("emission", AR)
def test_compare_can_match_parameter_counts_with_them(emission: str) -> None:
    """``srnn compare`` counts parameters on the meta device; the emissions build there, count
    what a real model has, and parameter matching plans with them."""
    opts = dict(x_dim=88, emission=emission)
    assert count_parameters("srnn", opts) == build_model("srnn", **opts).num_parameters()
    planned = plan(["srnn", "rnn"], 88, True, options={"rnn": {"emission": emission}})
    assert planned["rnn"]["emission"] == emission
    rnn = count_parameters("rnn", planned["rnn"])
    assert abs(rnn / count_parameters("srnn", {"x_dim": 88}) - 1) < 0.02


def test_real_valued_data_is_refused(tmp_path) -> None:
    em = make_emission("nade", 4, 3)
    dist = em.distribution(torch.randn(2, 4))
    with pytest.raises(ValueError, match="nade emission models binary 0/1 data"):
        dist.log_prob(torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.0]]))
    assert torch.isfinite(dist.log_prob(torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))).all()
    g = torch.Generator().manual_seed(0)
    splits = {s: Split.from_targets([torch.randn(10, 3, generator=g).numpy() for _ in range(4)])
              for s in ("train", "valid", "test")}
    data = SequenceDataset(name="real", protocol="synthetic", time_step="step", binary=False,
                           **splits)
    cfg = RunConfig(dataset="real", model="srnn", model_options=dict(
        emission="made", z_dim=2, d_dim=4, a_dim=4, hidden=4, feature_dim=4, feature_layers=1),
        train=TrainConfig(epochs=1, batch_size=2))
    # Refused before anything is built or written (see also the CLI test below).
    from srnn.errors import ConfigError

    with pytest.raises(ConfigError, match="--emission made models binary 0/1 data"):
        Trainer(cfg, tmp_path / "real", data=data, progress=False)
    assert not (tmp_path / "real").exists()


# -- through every model ----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", ["made", "nade", "nade-by-position"])
def test_one_particle_bounds_are_the_monte_carlo_elbo(name: str, emission: str,
                                                      monkeypatch) -> None:
    """K = 1: IWAE = FIVO = the ELBO with a Monte-Carlo KL, draw for draw, and padding with
    garbage changes no bound (ELBO, IWAE, FIVO); NADE with either form of its sums."""
    if emission == "nade-by-position":
        monkeypatch.setattr(ar, "NADE_LOOP_ELEMENTS", 0)
        emission = "nade"
    m = tiny(name, emission=emission).eval()
    check_one_particle_bounds_and_padding(  # binary garbage beyond each length
        m, random_rolls(4, (4, 10), seed=3),
        lambda shape, g: torch.rand(shape, generator=g).round())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", AR)
def test_a_generated_path_has_the_training_paths_log_joint(name: str, emission: str) -> None:
    """log p(z_t | ...) + log p(x_t | z_t, ...) summed while generating (the emission's
    ``sample`` then ``log_prob``) equals the training path's for the same x and z (float64),
    and from a primer's carry as well."""
    m = tiny(name, emission=emission).double().eval()
    check_generation_matches_training(m, random_rolls(3, (5, 6), seed=7),
                                      lambda x: set(x.unique().tolist()) <= {0.0, 1.0})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", AR)
def test_sampling_continuation_and_reconstruction(name: str, emission: str) -> None:
    m = tiny(name, emission=emission)
    torch.manual_seed(0)
    primer = batch_from(random_rolls(1, (7, 8), seed=1)).x[0].numpy()
    out = continuation(m, primer, num=3, steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 12, 6) and (out[:, :7] == primer).all()
    assert set(out.flatten().tolist()) <= {0.0, 1.0}
    rec = reconstruct(m, primer, draws=4, generator=torch.Generator().manual_seed(0))
    assert rec.probabilities.shape == rec.variance.shape == (7, 6)
    assert ((rec.probabilities >= 0) & (rec.probabilities <= 1)).all()
    assert 0 < rec.probabilities.std()  # an estimate, not a constant
    assert (rec.recon <= 0).all() and math.isfinite(float(rec.kl.sum()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", AR)
def test_tiny_training_improves_the_validation_bound(tmp_path, name: str, emission: str) -> None:
    """Four epochs on the synthetic set: the best validation bound is well above the untrained
    model's and above the first epoch's."""
    opts = tiny_options(name, d_dim=16, a_dim=16, hidden=24, feature_dim=16, emission_hidden=16,
                        emission=emission)
    opts.pop("x_dim")
    check_tiny_training_improves(tmp_path / name, model_of(name), opts, synthetic_dataset(),
                                 margin=0.3)


# -- options through the model configs and the command line ----------------------------------


def test_order_and_size_are_model_options_and_cli_flags(tmp_path) -> None:
    import numpy as np

    from srnn.cli import main

    m = build_model("srnn", x_dim=8, z_dim=3, d_dim=8, a_dim=8, hidden=10, feature_layers=1,
                    feature_dim=8, emission="made", ar_order="descending", ar_hidden=24,
                    ar_layers=2)
    assert torch.equal(m.emission.order, torch.arange(7, -1, -1))
    assert sum(isinstance(x, ar.MaskedLinear) for x in m.emission.modules()) >= 2
    n = build_model("vrnn", x_dim=8, z_dim=3, d_dim=8, hidden=10, feature_layers=1,
                    feature_dim=8, emission="nade", ar_hidden=7)
    assert n.emission.distribution(torch.zeros(1, 10)).log_prob(torch.zeros(1, 8)).shape == (1,)
    with pytest.raises(ValueError, match="no order"):
        build_model("rnn", x_dim=8, emission="bernoulli", ar_hidden=5)

    rng = np.random.default_rng(0)
    binary = {f"{s}_{i}": (rng.random((9, 8)) < 0.3).astype(np.float32)
              for s, k in (("train", 8), ("valid", 2), ("test", 2)) for i in range(k)}
    np.savez(tmp_path / "b.npz", **binary)
    out = tmp_path / "run"
    args = ["train", "--dataset", str(tmp_path / "b.npz"), "--out", str(out), "--epochs", "1",
            "--model", "rnn", "--d-dim", "8", "--hidden", "8", "--feature-dim", "8",
            "--emission", "nade", "--ar-order", "random:1", "--ar-hidden", "6", "--no-progress"]
    assert main(args) == 0
    opts = json.loads((out / "config.json").read_text())["model_options"]
    assert (opts["emission"], opts["ar_order"], opts["ar_hidden"]) == ("nade", "random:1", 6)


def test_a_binary_emission_on_real_data_is_refused_before_training(tmp_path, capsys) -> None:
    import numpy as np

    from srnn.cli import main

    rng = np.random.default_rng(0)
    real = {f"{s}_{i}": rng.normal(size=(9, 4)).astype(np.float32)
            for s, k in (("train", 4), ("valid", 2), ("test", 2)) for i in range(k)}
    np.savez(tmp_path / "r.npz", **real)
    for emission in ("made", "nade", "bernoulli"):
        out = tmp_path / emission
        assert main(["train", "--dataset", str(tmp_path / "r.npz"), "--out", str(out),
                     "--epochs", "1", "--emission", emission]) == 2
        err = capsys.readouterr().err
        assert f"--emission {emission} models binary 0/1 data" in err and "gauss" in err
        assert not out.exists()
    with pytest.raises(Exception, match="models binary 0/1 data"):
        plan(["srnn"], x_dim=4, binary=False, match=False,
             options={"srnn": {"emission": "made"}})
