"""The autoregressive emissions for real values (ar-rnn, delta-random;
``srnn.nn.autoregressive_real``): the autoregressive property of every unit's parameters,
normalisation and moments on a grid, the teacher-forced pass against a sequential one written
here, the sampler against the teacher-forced conditionals, the Monte-Carlo mean and variance;
then through every model: the K = 1 identities of the bounds, padding, generation against the
training path, sampling / continuation / reconstruction, tiny training runs, the options, the
command line and a speech run with ``srnn plot``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import batch_from
from emission_checks import (
    check_generation_matches_training,
    check_one_particle_bounds_and_padding,
    check_tiny_training_improves,
)
from test_models import NAMES, model_of, tiny, tiny_options
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from srnn.bounds import elbo_terms
from srnn.data import SequenceDataset, Split
from srnn.experiments.sizes import count_parameters
from srnn.models import build_model
from srnn.nn.autoregressive_real import (
    ARRNN_HIDDEN,
    DELTA_HIDDEN,
    ARRNNEmission,
    AutoregressiveGMM,
    DeltaRandomEmission,
    default_chunk,
)
from srnn.nn.emissions import EMISSIONS, check_emission_fits, make_emission
from srnn.sampling import continuation, reconstruct

REAL_AR = ["ar-rnn", "delta-random"]
D, IN = 7, 5


def emissions(x_dim: int = D, in_dim: int = IN) -> list[tuple[str, torch.nn.Module]]:
    """ar-rnn value by value, in padded chunks of 3 (7 = 3 + 3 + 1), with two GRU layers and
    one component, in several orders; delta-random with one and two layers, in two splits
    (float64, small sizes)."""
    torch.manual_seed(0)
    out = [
        ("ar-rnn-1", ARRNNEmission(in_dim, x_dim, 3, hidden=6, chunk=1)),
        ("ar-rnn-3-descending", ARRNNEmission(in_dim, x_dim, 2, hidden=6, chunk=3,
                                              order="descending")),
        ("ar-rnn-2-layers-gauss", ARRNNEmission(in_dim, x_dim, 1, hidden=5, layers=2,
                                                chunk=2, order="random:4")),
        ("delta", DeltaRandomEmission(in_dim, x_dim, 3, hidden=8)),
        ("delta-2-layers-gauss", DeltaRandomEmission(in_dim, x_dim, 1, hidden=8, layers=2,
                                                     order="random:9")),
    ]
    return [(n, e.double()) for n, e in out]


def unit_of(em, x_dim: int) -> torch.Tensor:
    """The unit each dimension belongs to, (D,)."""
    unit = torch.empty(x_dim, dtype=torch.long)
    for i in range(len(em.units)):
        unit[em.unit_dimensions(i)] = i
    return unit


def test_units_partition_a_frame() -> None:
    """ar-rnn: n = ceil(D / C) chunks of consecutive positions, C = ceil(D / 10) by default;
    delta-random: the first ceil(D / 2) positions of a seeded random order, then the rest."""
    assert default_chunk(200) == 20 and default_chunk(6) == 1 and default_chunk(88) == 9
    em = ARRNNEmission(4, 200, 5)
    assert (em.chunk, em.chunks, em.last) == (20, 10, 20)
    em = ARRNNEmission(4, 7, 2, chunk=3)
    assert em.units == [(0, 3), (3, 6), (6, 7)] and em.last == 1
    delta = DeltaRandomEmission(4, 10, 2)
    first = delta.unit_dimensions(0)
    assert len(first) == 5 and sorted(torch.cat([first, delta.unit_dimensions(1)]).tolist()) \
        == list(range(10))
    assert first.tolist() != list(range(5))  # a random half, not the leading one
    assert torch.equal(first, DeltaRandomEmission(4, 10, 2).unit_dimensions(0))  # seeded
    assert not torch.equal(first,
                           DeltaRandomEmission(4, 10, 2, order="random:1").unit_dimensions(0))
    assert len(DeltaRandomEmission(4, 1, 2).units) == 1  # D = 1: no second part


def test_each_units_parameters_ignore_its_own_and_later_values() -> None:
    """theta_i (the teacher-forced density parameters of unit i) is bit for bit unchanged when
    any value of unit i or a later unit moves, and changes when a value of an earlier unit
    moves (for every element of theta_i)."""
    g = torch.Generator().manual_seed(1)
    for name, em in emissions():
        unit = unit_of(em, D)
        dist = em.distribution(torch.randn(3, IN, generator=g, dtype=torch.float64))
        x = torch.randn(3, D, generator=g, dtype=torch.float64)
        base = dist.unit_parameters(x)
        assert len(base) == len(em.units) and all(t.shape[0] == 3 for t in base)
        for j in range(D):
            moved_x = x.clone()
            moved_x[:, j] += 0.7
            moved = dist.unit_parameters(moved_x)
            for i, (a, b) in enumerate(zip(base, moved, strict=True)):
                if i <= unit[j]:
                    assert torch.equal(a, b), (name, j, i)
                else:
                    assert (a != b).all(), (name, j, i)


def gmm_log_prob(theta: torch.Tensor, K: int, C: int, v: torch.Tensor) -> torch.Tensor:
    """log of a K-component diagonal GMM over the first len(v) of C values (their marginal),
    theta = [logits (K, when K > 1), means (K C), raw scales (K C)], with torch.distributions."""
    off = K if K > 1 else 0
    logits = theta[:K] if K > 1 else theta.new_zeros(1)
    loc = theta[off:off + K * C].view(K, C)[:, :len(v)]
    scale = F.softplus(theta[off + K * C:].view(K, C)[:, :len(v)]) + 1e-3
    return MixtureSameFamily(Categorical(logits=logits),
                             Independent(Normal(loc, scale), 1)).log_prob(v)


def gru_cell(x, s, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's GRU cell, written out (gates r, z, n)."""
    ri, zi, ni = F.linear(x, w_ih, b_ih).chunk(3)
    rh, zh, nh = F.linear(s, w_hh, b_hh).chunk(3)
    r, z = torch.sigmoid(ri + rh), torch.sigmoid(zi + zh)
    n = torch.tanh(ni + r * nh)
    return (1 - z) * n + z * s


def sequential_log_prob(em, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | h) of one frame, unit by unit, from the emission's weights alone."""
    xp = x[em.order]  # in positions
    if isinstance(em, ARRNNEmission):
        C, L, K = em.chunk, em.layers, em.mixture.k
        s = list(torch.tanh(F.linear(h, em.init.weight, em.init.bias)).view(L, em.hidden))
        prev, total = torch.zeros(C, dtype=x.dtype), x.new_zeros(())
        for i in range(em.chunks):
            inp = prev  # the previous chunk, zero for the first
            for layer in range(L):
                w = [getattr(em.gru, f"{k}_l{layer}") for k in
                     ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                s[layer] = inp = gru_cell(inp, s[layer], *w)
            theta = F.linear(inp, em.head.weight, em.head.bias)
            v = xp[i * C:(i + 1) * C]
            total = total + gmm_log_prob(theta, K, C, v)
            prev = v
        return total
    A = (len(x) + 1) // 2
    K = em.mixtures[0].k
    total = gmm_log_prob(F.linear(h, em.first.weight, em.first.bias), K, A, xp[:A])
    u = torch.relu(F.linear(h, em.cond_h.weight, em.cond_h.bias)
                   + F.linear(xp[:A], em.cond_x.weight))
    for layer in em.hiddens:
        u = torch.relu(F.linear(u, layer.weight, layer.bias))
    theta = F.linear(u, em.second.weight, em.second.bias)
    return total + gmm_log_prob(theta, K, len(x) - A, xp[A:])


def test_the_teacher_forced_log_prob_is_the_product_of_sequential_conditionals() -> None:
    """log_prob over (B, T, D) in one pass equals, row by row, the sum of the units'
    conditional log-densities computed one unit at a time (GRU cell and mixtures written out)."""
    g = torch.Generator().manual_seed(2)
    for name, em in emissions():
        h = torch.randn(2, 3, IN, generator=g, dtype=torch.float64)
        x = 1.5 * torch.randn(2, 3, D, generator=g, dtype=torch.float64)
        with torch.no_grad():
            lp = em.distribution(h).log_prob(x)
            assert lp.shape == (2, 3)
            seq = torch.stack([torch.stack([sequential_log_prob(em, h[b, t], x[b, t])
                                            for t in range(3)]) for b in range(2)])
        torch.testing.assert_close(lp, seq, rtol=1e-10, atol=1e-10, msg=name)


def test_the_sampler_runs_the_teacher_forced_conditionals() -> None:
    """Along a sample, the conditional means and variances the sequential sampler used are
    those of the one-pass teacher-forced parameters of the sampled x."""
    torch.manual_seed(4)
    for name, em in emissions():
        dist = em.distribution(torch.randn(3, IN, dtype=torch.float64))
        x, m, v = dist._ancestral(torch.Size([6]))
        assert x.shape == m.shape == v.shape == (6, 3, D)
        tm, tv = torch.empty_like(m), torch.empty_like(v)
        for i, theta in enumerate(dist.unit_parameters(x)):
            dims = em.unit_dimensions(i)
            mean, var = em.unit_mixture(i).moments(theta)
            tm[..., dims], tv[..., dims] = mean[..., :len(dims)], var[..., :len(dims)]
        torch.testing.assert_close(m, tm, rtol=1e-10, atol=1e-12, msg=name)
        torch.testing.assert_close(v, tv, rtol=1e-10, atol=1e-12, msg=name)


GRID_STEP, GRID_HALF = 0.05, 12.0


class OnGrid(NamedTuple):
    """A D = 2 emission, three conditioning vectors, and its density on the grid."""

    name: str
    emission: torch.nn.Module
    h: torch.Tensor  # (3, 3)
    weight: torch.Tensor  # exp(log_prob) times the cell's area, (G^2, 3)
    mean: torch.Tensor  # (3, 2), by the grid
    cov: torch.Tensor  # (3, 2, 2), by the grid


@pytest.fixture(scope="module")
def on_grid() -> list[OnGrid]:
    """ar-rnn with chunks of one value (3 components; 1 in the other order) and delta-random
    (1 + 1 values), float64, each on the points of [-12, 12]^2 at a step of 0.05. The weights
    that carry the first value into the second's parameters are doubled, so that the two are
    visibly correlated."""
    torch.manual_seed(5)
    ems = [("ar-rnn-gmm", ARRNNEmission(3, 2, 3, hidden=4, chunk=1)),
           ("ar-rnn-gauss", ARRNNEmission(3, 2, 1, hidden=4, chunk=1, order="descending")),
           ("delta", DeltaRandomEmission(3, 2, 2, hidden=4, order="random:1"))]
    axis = torch.arange(-GRID_HALF, GRID_HALF + GRID_STEP / 2, GRID_STEP, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis).unsqueeze(1)  # (G^2, 1, 2)
    edge = grid[:, 0].abs().amax(-1) > GRID_HALF - GRID_STEP / 2
    out = []
    torch.manual_seed(6)
    for name, em in ems:
        em = em.double()
        with torch.no_grad():
            (em.gru.weight_ih_l0 if isinstance(em, ARRNNEmission) else em.cond_x.weight).mul_(2)
            h = torch.randn(3, 3, dtype=torch.float64)
            dist = em.distribution(h)
            p = dist.log_prob(grid).exp()  # (G^2, 3)
            # The premises of the tolerances below: the density is negligible on the grid's
            # edge, and every component that matters is at least two steps wide where the
            # density is not negligible (the rectangle rule is then exact far below 1e-6).
            assert p[edge].max() < 1e-9, name
            for i, theta in enumerate(dist.unit_parameters(grid)):
                logits, _, scale = em.unit_mixture(i).split(theta)
                pi = torch.ones_like(scale[..., 0]) if logits is None else logits.softmax(-1)
                matters = (p > 1e-9).unsqueeze(-1) & (pi > 1e-3)
                assert scale[..., 0].expand_as(matters)[matters].min() > 2 * GRID_STEP, name
            w = p * GRID_STEP ** 2
            mean = (w.unsqueeze(-1) * grid).sum(0)
            dev = grid - mean
            cov = torch.einsum("gb,gbi,gbj->bij", w, dev, dev)
        out.append(OnGrid(name, em, h, w, mean, cov))
    return out


def test_two_value_densities_integrate_to_one_and_samples_have_their_moments(on_grid) -> None:
    """D = 2: the sum of exp(log_prob) over the grid is 1 within 1e-6, for three conditioning
    vectors each (see ``on_grid`` for why the rectangle rule is that exact). 40,000 samples
    have the grid's mean and covariance within 4.5 standard errors, and the two values are
    correlated (|corr| > 0.05 for some vector: not a factorised density)."""
    torch.manual_seed(6)
    for g in on_grid:
        mass = g.weight.sum(0)
        torch.testing.assert_close(mass, torch.ones_like(mass), atol=1e-6, rtol=0, msg=g.name)
        N = 40_000
        with torch.no_grad():
            x = g.emission.distribution(g.h).sample((N,))  # (N, 3, 2)
        assert x.shape == (N, 3, 2)
        se = x.std(0) / N ** 0.5
        assert ((x.mean(0) - g.mean).abs() <= 4.5 * se).all(), (g.name, x.mean(0), g.mean)
        xd = x - x.mean(0)
        prods = xd.unsqueeze(-1) * xd.unsqueeze(-2)  # (N, 3, 2, 2)
        se_cov = prods.std(0) / N ** 0.5
        assert ((prods.mean(0) - g.cov).abs() <= 4.5 * se_cov).all(), (g.name, prods.mean(0))
        corr = g.cov[:, 0, 1] / (g.cov[:, 0, 0] * g.cov[:, 1, 1]).sqrt()
        assert corr.abs().max() > 0.05, (g.name, corr)


def test_the_mean_and_variance_are_monte_carlo_estimates(on_grid, monkeypatch) -> None:
    """``mean`` and ``variance`` (law of total variance over MEAN_SAMPLES draws of the global
    generator, computed once, reproducible from its seed) are exact for the first unit and
    approach the grid's marginal moments of the second with many draws."""
    for g in on_grid:
        var = g.cov.diagonal(dim1=-2, dim2=-1)
        first = g.emission.unit_dimensions(0)
        dist = g.emission.distribution(g.h)
        torch.manual_seed(0)
        m, v = dist.mean, dist.variance
        assert m.shape == v.shape == (3, 2) and dist.mean is m and (v > 0).all()
        torch.testing.assert_close(m[:, first], g.mean[:, first], atol=1e-6, rtol=0)  # exact
        torch.testing.assert_close(v[:, first], var[:, first], atol=1e-6, rtol=0)
        assert ((m - g.mean).abs() < 0.5 * var.sqrt()).all(), g.name  # 32 draws
        torch.manual_seed(0)
        assert torch.equal(g.emission.distribution(g.h).mean, m)  # the same draws, same seed
        monkeypatch.setattr(AutoregressiveGMM, "MEAN_SAMPLES", 20_000)
        monkeypatch.setattr(AutoregressiveGMM, "MEAN_ROWS", 12_000)  # chunks of 4,000 draws
        many = g.emission.distribution(g.h)
        assert ((many.mean - g.mean).abs() < 0.03 * var.sqrt()).all(), (g.name, many.mean)
        assert ((many.variance / var - 1).abs() < 0.04).all(), (g.name, many.variance, var)
        monkeypatch.undo()


def test_options_through_make_emission_and_the_configs() -> None:
    assert not EMISSIONS["ar-rnn"].binary and not EMISSIONS["delta-random"].binary
    em = make_emission("ar-rnn", 10, 12, 3, ar_order="random:2", ar_hidden=9, ar_layers=2,
                       ar_chunk=5)
    assert isinstance(em, ARRNNEmission)
    assert (em.hidden, em.layers, em.chunk, em.chunks, em.mixture.k) == (9, 2, 5, 3, 3)
    assert make_emission("ar-rnn", 10, 200).hidden == ARRNN_HIDDEN
    delta = make_emission("delta-random", 10, 12)  # ascending, the default, is random:0
    assert isinstance(delta, DeltaRandomEmission) and delta.hidden == DELTA_HIDDEN
    assert torch.equal(delta.order, make_emission("delta-random", 10, 12,
                                                  ar_order="random:0").order)
    assert not torch.equal(delta.order, torch.arange(12))
    with pytest.raises(ValueError, match="random order"):
        make_emission("delta-random", 10, 12, ar_order="descending")
    with pytest.raises(ValueError, match="no chunks"):
        make_emission("delta-random", 10, 12, ar_chunk=3)
    with pytest.raises(ValueError, match="no chunks"):
        make_emission("gauss", 10, 12, ar_chunk=3)
    with pytest.raises(ValueError, match="1 to 12 values"):
        make_emission("ar-rnn", 10, 12, ar_chunk=13)
    with pytest.raises(ValueError, match="at least one component"):
        make_emission("delta-random", 10, 12, 0)
    # Orders are rebuilt from the options, not stored: a checkpoint holds weights.
    assert not any("order" in k or "rank" in k for k in em.state_dict())
    m = build_model("srnn", x_dim=8, z_dim=3, d_dim=8, a_dim=8, hidden=10, feature_layers=1,
                    feature_dim=8, emission="ar-rnn", ar_chunk=4, ar_hidden=6)
    assert (m.emission.chunk, m.emission.hidden) == (4, 6)
    # Real-valued emissions may model binary data (as gauss does): nothing refuses them.
    for name in REAL_AR:
        check_emission_fits(name, True, "binary set")
        check_emission_fits(name, False, "real set")
        opts = dict(x_dim=200, emission=name)  # counted on the meta device as built for real
        assert count_parameters("srnn", opts) == build_model("srnn", **opts).num_parameters()


# -- through every model ----------------------------------------------------------------------

def random_frames(n: int, lengths: tuple[int, int], dim: int = 6, seed: int = 0
                  ) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(*lengths)), dim)).astype(np.float32)
            for _ in range(n)]


def tiny_real(name: str, emission: str, **kw):
    extra = dict(ar_chunk=2) if emission == "ar-rnn" else {}
    return tiny(name, emission=emission, mixtures=2, ar_hidden=6, **{**extra, **kw})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", REAL_AR)
def test_one_particle_bounds_are_the_monte_carlo_elbo(name: str, emission: str) -> None:
    """K = 1: IWAE = FIVO = the ELBO with a Monte-Carlo KL, draw for draw, and padding with
    garbage changes no bound (ELBO, IWAE, FIVO)."""
    m = tiny_real(name, emission).eval()
    check_one_particle_bounds_and_padding(  # real-valued garbage beyond each length
        m, random_frames(4, (4, 10), seed=3), lambda shape, g: 5 * torch.randn(shape, generator=g))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", REAL_AR)
def test_a_generated_path_has_the_training_paths_log_joint(name: str, emission: str) -> None:
    """log p(z_t | ...) + log p(x_t | z_t, ...) summed while generating (the emission's
    ``sample`` then ``log_prob``) equals the training path's for the same x and z (float64),
    and from a primer's carry as well."""
    m = tiny_real(name, emission).double().eval()
    check_generation_matches_training(
        m, random_frames(3, (5, 6), seed=7),
        lambda x: bool(torch.isfinite(x).all()) and x.unique().numel() > 100)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("emission", REAL_AR)
def test_sampling_continuation_reconstruction_and_gradients(name: str, emission: str) -> None:
    m = tiny_real(name, emission)
    primer = random_frames(1, (7, 8), seed=1)[0]
    out = continuation(m, primer, num=3, steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 12, 6) and (out[:, :7] == primer).all() and np.isfinite(out).all()
    torch.manual_seed(0)
    rec = reconstruct(m, primer, draws=4, generator=torch.Generator().manual_seed(0))
    assert rec.probabilities.shape == rec.variance.shape == (7, 6)  # the mean, an estimate
    assert np.isfinite(rec.probabilities).all() and (rec.variance > 0).all()
    assert np.isfinite(rec.recon).all() and np.isfinite(rec.kl).all()
    m.train()
    (-elbo_terms(m, batch_from(random_frames(3, (5, 8), seed=2))).objective()).backward()
    for pname, p in m.emission.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def correlated_frames(dim: int = 6, seed: int = 0) -> SequenceDataset:
    """A learnable real-valued set whose values within a frame are strongly correlated:
    x_t = a_t v + 0.1 noise, one factor a_t = 0.9 a_{t-1} + 0.45 e_t per step, v fixed."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=dim)

    def piece() -> np.ndarray:
        T = int(rng.integers(10, 20))
        a = np.zeros(T)
        for t in range(T):
            a[t] = 0.9 * (a[t - 1] if t else 0.0) + 0.45 * rng.normal()
        return (a[:, None] * v + 0.1 * rng.normal(size=(T, dim))).astype(np.float32)

    splits = {s: Split.from_targets([piece() for _ in range(n)])
              for s, n in (("train", 32), ("valid", 8), ("test", 8))}
    return SequenceDataset(name="correlated", protocol="synthetic", time_step="step",
                           binary=False, **splits)


@pytest.mark.parametrize("name", ["srnn", "rnn", "vrnn"])
@pytest.mark.parametrize("emission", REAL_AR)
def test_tiny_training_improves_the_validation_bound(tmp_path, name: str, emission: str) -> None:
    """Four epochs on the correlated set: the best validation bound is well above the untrained
    model's and above the first epoch's."""
    opts = tiny_options(name, d_dim=16, a_dim=16, hidden=24, feature_dim=16, emission=emission,
                        mixtures=2, ar_hidden=16)
    if emission == "ar-rnn":
        opts["ar_chunk"] = 2
    opts.pop("x_dim")
    check_tiny_training_improves(tmp_path / name, model_of(name), opts, correlated_frames(),
                                 margin=1.0)


# -- the command line -------------------------------------------------------------------------

def test_the_options_are_cli_flags(tmp_path) -> None:
    from srnn.cli import main

    rng = np.random.default_rng(0)
    real = {f"{s}_{i}": rng.normal(size=(9, 8)).astype(np.float32)
            for s, k in (("train", 4), ("valid", 2), ("test", 2)) for i in range(k)}
    np.savez(tmp_path / "r.npz", **real)
    for emission, flags in (("ar-rnn", ["--ar-chunk", "3", "--ar-layers", "2"]),
                            ("delta-random", ["--ar-order", "random:5"])):
        out = tmp_path / emission
        assert main(["train", "--dataset", str(tmp_path / "r.npz"), "--out", str(out),
                     "--epochs", "1", "--model", "rnn", "--d-dim", "8", "--hidden", "8",
                     "--feature-dim", "8", "--emission", emission, "--ar-hidden", "6",
                     "--mixtures", "2", "--no-progress", *flags]) == 0
        opts = json.loads((out / "config.json").read_text())["model_options"]
        assert opts["emission"] == emission and opts["ar_hidden"] == 6
        if emission == "ar-rnn":
            assert (opts["ar_chunk"], opts["ar_layers"]) == (3, 2)
        else:
            assert opts["ar_order"] == "random:5"


FSDD = Path(os.environ.get("SRNN_DATA_DIR", "")) / "speech" / "fsdd" / "files.csv"


@pytest.mark.skipif(not FSDD.is_file(), reason="FSDD not found under $SRNN_DATA_DIR/speech/fsdd")
@pytest.mark.parametrize("model,emission", [("srnn", "ar-rnn"), ("rnn", "delta-random")])
def test_a_speech_model_trains_samples_and_plots(tmp_path, model: str, emission: str) -> None:
    """On FSDD's 200-value frames (ar-rnn: the default 10 chunks of 20): train, sample a WAV
    file, and ``srnn plot`` (reconstruction mean and log-variance from the estimates)."""
    from scipy.io import wavfile

    from srnn.cli import main

    run = tmp_path / model
    opts = ["--d-dim", "16", "--hidden", "16", "--feature-dim", "16", "--ar-hidden", "16",
            "--mixtures", "2"]
    if model == "srnn":
        opts += ["--z-dim", "4", "--a-dim", "16"]
    assert main(["train", "--dataset", "fsdd", "--model", model, "--emission", emission,
                 "--out", str(run), "--subset", "6", "--epochs", "1", "--no-progress",
                 *opts]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["model_options"]["emission"] == emission and np.isfinite(res["elbo_per_step"])
    assert main(["sample", str(run), "--out", str(tmp_path / "s.wav"), "--length", "4"]) == 0
    rate, wav = wavfile.read(tmp_path / "s.wav")
    assert rate == 8000 and wav.shape == (800,)
    assert main(["plot", str(run), "--out", str(tmp_path / "plots"), "--num", "1",
                 "--length", "4"]) == 0
    png = (tmp_path / "plots" / "speech.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 1000
