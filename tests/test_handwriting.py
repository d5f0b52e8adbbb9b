"""Handwriting: IAM-OnDB pen trajectories (``srnn.data.iamondb``), the pen and mixed emissions
(``srnn.nn.pen``) and drawings (``srnn.handwriting``).

No free copy of IAM-OnDB exists, so the corpus here is written by the tests in its XML layout:
lines of sampled Bezier strokes by several writers. Checked: points to steps and back; the
training statistics normalise the offsets and round-trip through ``data.json``; the standard
split lists and the seeded split by writer (by form, with a warning, without writerIDs); every
bad file is one error naming it and the problem; the pen emission's density against
``torch.distributions`` composed by hand, its
samples against its moments; the mixed emission likewise and through ``.npz`` arrays; every
model trains a step with the pen emission and every bound evaluates it; a run trains, evaluates,
samples drawings and plots from the command line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from emission_checks import check_generation_matches_training, check_one_particle_identities
from test_models import tiny

from srnn.cli import main
from srnn.data import lookup
from srnn.data.card import DataCard, data_card, read_card
from srnn.data.iamondb import (
    GRID,
    OffsetNormaliser,
    decode,
    load_iamondb,
    read_line,
    steps_to_strokes,
    strokes_to_steps,
)
from srnn.data.sequences import Modality, SequenceDataset, Split
from srnn.errors import ConfigError, DataError
from srnn.evaluate import evaluate_elbo, evaluate_particle_bound
from srnn.models import Batch
from srnn.nn.emissions import make_emission
from srnn.nn.pen import MixedColumns, PenMixture
from srnn.train.run_dir import RunDirectory
from srnn.train.trainer import RunConfig, TrainConfig, build_from_config, load_trained

PEN_MODELS = ["srnn", "vrnn", "vrnn-i", "storn", "zforcing", "dmm", "rnn", "srnn-dai"]


# -- a synthetic corpus in the IAM-OnDB layout ------------------------------------------------

def bezier_stroke(rng: np.random.Generator, x0: float, slant: float) -> np.ndarray:
    """A cubic Bezier curve from x0, sampled at 8-16 points, integer whiteboard units."""
    p = np.array([[x0, 1000.0], [x0 + 20, 960.0 + 40 * slant],
                  [x0 + 40, 1040.0 - 30 * slant], [x0 + 60, 1000.0]])
    p += rng.normal(0, 6, size=p.shape)
    t = np.linspace(0, 1, int(rng.integers(8, 17)))[:, None]
    pts = ((1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t ** 2 * p[2]
           + t ** 3 * p[3])
    return np.round(pts)


def line_xml(strokes: list[np.ndarray], writer: str | None = None) -> str:
    head = f'<General><Form id="f" writerID="{writer}"/></General>' if writer else ""
    body = "".join(
        '<Stroke colour="black" start_time="0" end_time="1">'
        + "".join(f'<Point x="{x:g}" y="{y:g}" time="{i * 0.01:.2f}"/>'
                  for i, (x, y) in enumerate(s)) + "</Stroke>" for s in strokes)
    return ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>'
            '<WhiteboardDescription><SensorLocation corner="top_left"/>'
            '<DiagonallyOppositeCoords x="6512" y="1376"/></WhiteboardDescription>'
            f'{head}<StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>')


def write_corpus(root: Path, forms: int = 8, lines: int = 3, seed: int = 0,
                 tagged: bool = False) -> dict[str, list[np.ndarray]]:
    """``forms`` forms (a01-000u, a01-001u, ...) of ``lines`` lines each under
    root/lineStrokes; each form a writer with its own slant (with ``tagged``, two forms per
    writerID). Returns the strokes of every line by id."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in range(forms):
        form = f"a0{f % 3 + 1}-{f:03d}u"
        folder = root / "lineStrokes" / form[:3] / form[:-1]
        folder.mkdir(parents=True, exist_ok=True)
        slant = (f % 4) / 3
        for k in range(lines):
            strokes = [bezier_stroke(rng, 100.0 + 80 * j, slant)
                       for j in range(int(rng.integers(3, 6)))]
            line_id = f"{form}-{k + 1:02d}"
            writer = f"w{f // 2}" if tagged else None
            (folder / f"{line_id}.xml").write_text(line_xml(strokes, writer))
            out[line_id] = strokes
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, list[np.ndarray]]]:
    root = tmp_path_factory.mktemp("iamondb")
    return root, write_corpus(root, forms=8, lines=4)


# -- points, steps, strokes -------------------------------------------------------------------

def test_a_line_becomes_steps_of_pen_lift_and_offsets() -> None:
    strokes = [np.array([[10.0, 5.0], [12.0, 6.0], [15.0, 4.0]]), np.array([[30.0, 5.0]]),
               np.array([[31.0, 7.0], [33.0, 9.0]])]
    steps = strokes_to_steps(strokes)
    np.testing.assert_array_equal(steps, [[0, 0, 0], [0, 2, 1], [1, 3, -2], [1, 15, 1],
                                          [0, 1, 2], [1, 2, 2]])
    back = steps_to_strokes(steps, origin=(10.0, 5.0))  # the first point's position
    assert len(back) == 3
    for a, b in zip(back, strokes, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_loader_normalises_offsets_with_the_training_statistics(corpus) -> None:
    root, lines = corpus
    data = load_iamondb(root)
    assert (data.modality, data.grid, data.protocol, data.emission) == \
        (Modality.HANDWRITING, GRID, "iamondb", "pen")
    assert data.dim == 3 and not data.binary and data.binary_columns == (0,)
    offsets = np.concatenate([x[1:, 1:] for x in data.train.x]).astype(np.float64)
    np.testing.assert_allclose(offsets.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(offsets.std(0), 1, atol=1e-5)
    norm = OffsetNormaliser.from_dict(data.info["normaliser"])
    for split in ("train", "valid", "test"):
        for line_id, x, u in zip(data.info["lines"][split], data.split(split).x,
                                 data.split(split).u, strict=True):
            assert set(np.unique(x[:, 0])) == {0.0, 1.0}
            np.testing.assert_array_equal(u[1:], x[:-1])
            strokes = lines[line_id]
            drawn = decode(x, norm)  # from the origin: the line moved by its first point
            assert len(drawn) == len(strokes)
            for a, b in zip(drawn, strokes, strict=True):
                np.testing.assert_allclose(a + strokes[0][0], b, atol=1e-3)
    assert sum(len(data.info["lines"][s]) for s in ("train", "valid", "test")) == len(lines)


def test_the_seeded_split_is_by_writer_and_fixed(tmp_path, caplog) -> None:
    write_corpus(tmp_path, forms=12, lines=2, tagged=True)  # writers w0..w5, two forms each
    with caplog.at_level("WARNING", logger="srnn.data.iamondb"):
        data = load_iamondb(tmp_path, seed=3)
    assert not caplog.records  # writer-disjoint: nothing to warn about
    assert data.info["split_by"] == "writer" and "by writer" in data.info["split_rule"]
    writers = data.info["groups"]
    assert sorted(w for ws in writers.values() for w in ws) == [f"w{i}" for i in range(6)]
    assert len(writers["test"]) == len(writers["valid"]) == 1
    lines = data.info["lines"]
    for split, ws in writers.items():  # both forms of a writer in the writer's split
        forms = {line[:-3] for line in lines[split]}
        assert len(forms) == 2 * len(ws)
    assert load_iamondb(tmp_path, seed=3).info["lines"] == lines  # the seed fixes it


def test_without_writer_ids_the_seeded_split_is_by_form_and_says_so(tmp_path, caplog) -> None:
    write_corpus(tmp_path, forms=12, lines=2)  # no writerID: each form is a group
    with caplog.at_level("WARNING", logger="srnn.data.iamondb"):
        data = load_iamondb(tmp_path)
    assert data.info["split_by"] == "form"
    assert "by form" in data.info["split_rule"] and "by writer" not in data.info["split_rule"]
    assert "not writer-disjoint" in data.info["split_rule"]
    assert sum(len(g) for g in data.info["groups"].values()) == 12
    assert any("not writer-disjoint" in r.getMessage() for r in caplog.records)


def test_the_standard_lists_split_the_lines(tmp_path) -> None:
    write_corpus(tmp_path, forms=6, lines=2)
    task = tmp_path / "task1"
    task.mkdir()
    (task / "trainset.txt").write_text("a01-000u\na02-001u\n a03-002u \n\na01-003u-01\n")
    (task / "testset_v.txt").write_text("a02-004u\n")
    (task / "testset_t.txt").write_text("a03-005u-02\n")
    (task / "testset_f.txt").write_text("a01-003u-02\na03-005u-01\n")
    data = load_iamondb(tmp_path)
    lines = data.info["lines"]
    assert lines["train"] == ["a01-000u-01", "a01-000u-02", "a01-003u-01", "a02-001u-01",
                              "a02-001u-02", "a03-002u-01", "a03-002u-02"]
    assert lines["valid"] == ["a02-004u-01", "a02-004u-02", "a03-005u-02"]
    assert lines["test"] == ["a01-003u-02", "a03-005u-01"]
    assert data.info["unlisted"] == 0 and "trainset.txt" in data.info["split_rule"]
    (task / "testset_f.txt").write_text("a01-003u-02\na02-004u\n")  # also in testset_v
    with pytest.raises(DataError, match=r"testset_f\.txt: 'a02-004u' is also listed in .*"
                                        r"testset_v\.txt \(valid\), expected disjoint"):
        load_iamondb(tmp_path)
    (task / "testset_f.txt").unlink()
    with pytest.raises(DataError, match=r"task1: trainset\.txt is here but testset_f\.txt"):
        load_iamondb(tmp_path)


GOOD_POINTS = '<Point x="1" y="2"/><Point x="3" y="4"/>'


def _stroke_set(body: str) -> str:
    return f"<WhiteboardCaptureSession><StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>"


BAD_FILES = {
    "malformed XML": _stroke_set(f"<Stroke>{GOOD_POINTS}")[:-10],
    "document type declaration": (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        '"&lol;&lol;&lol;">]><WhiteboardCaptureSession>&lol2;</WhiteboardCaptureSession>'),
    r"a document type declaration \(<!DOCTYPE>\) is refused": (  # an external DTD
        '<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">'
        f'{_stroke_set(f"<Stroke>{GOOD_POINTS}</Stroke>")}'),
    r"malformed XML \(ExpatError: undefined entity": _stroke_set("&xxe;"),
    r"root element <StrokeSet>, expected <WhiteboardCaptureSession>":
        f"<StrokeSet><Stroke>{GOOD_POINTS}</Stroke></StrokeSet>",
    "no <StrokeSet>": "<WhiteboardCaptureSession><Other/></WhiteboardCaptureSession>",
    r"no strokes \(the <StrokeSet> holds no <Stroke>\)": _stroke_set(""),
    r"stroke 1 of 2 is empty \(no <Point>\)":
        _stroke_set(f"<Stroke>{GOOD_POINTS}</Stroke><Stroke></Stroke>"),
    "point 1 of stroke 0 has no y attribute": _stroke_set('<Stroke><Point x="1" y="2"/>'
                                                          '<Point x="3"/></Stroke>'),
    "point 0 of stroke 0: x='left' is not a number":
        _stroke_set('<Stroke><Point x="left" y="2"/></Stroke>'),
    r"point 1 of stroke 0: absurd coordinate y=1e12 \(expected a finite \|y\| <= 1e\+06\)":
        _stroke_set('<Stroke><Point x="1" y="2"/><Point x="3" y="1e12"/></Stroke>'),
    "point 0 of stroke 0: absurd coordinate x=nan":
        _stroke_set('<Stroke><Point x="nan" y="2"/><Point x="3" y="4"/></Stroke>'),
    r"the line: sequence too short \(1 step\)": _stroke_set('<Stroke><Point x="1" y="2"/>'
                                                            '</Stroke>'),
}


@pytest.mark.parametrize("problem", list(BAD_FILES))
def test_a_bad_file_is_an_error_naming_it_and_the_problem(tmp_path, problem: str) -> None:
    path = tmp_path / "a01-000u-01.xml"
    path.write_text(BAD_FILES[problem])
    with pytest.raises(DataError, match=problem) as e:
        read_line(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_mutated_files_load_or_fail_naming_the_file(tmp_path) -> None:
    """400 truncations, bit flips, random bytes and changed digits of a valid line file: each
    one reads into strokes of finite points or is a DataError that names the file; both
    happen."""
    from srnn.errors import SRNNError

    rng = np.random.default_rng(0)
    seed = line_xml([bezier_stroke(rng, 100.0, 0.5), bezier_stroke(rng, 180.0, 0.5)]).encode()
    loaded = refused = 0
    digits = [i for i, c in enumerate(seed) if chr(c).isdigit()]
    for i in range(400):
        data = bytearray(seed)
        kind = i % 4
        if kind == 3:
            for _ in range(int(rng.integers(1, 9))):
                data[digits[int(rng.integers(len(digits)))]] = ord("0") + int(rng.integers(10))
        elif kind == 0:
            data = data[:int(rng.integers(0, len(data)))]
        elif kind == 1:
            for _ in range(int(rng.integers(1, 9))):
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        else:
            data = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 400)),
                                          dtype=np.uint8).tobytes())
        path = tmp_path / f"m{i}.xml"
        path.write_bytes(bytes(data))
        try:
            line = read_line(path)
        except SRNNError as e:
            assert isinstance(e, DataError) and str(e).startswith(str(path)), e
            refused += 1
        else:
            assert line.points >= 2 and all(np.isfinite(s).all() for s in line.strokes)
            loaded += 1
    assert loaded > 50 and refused > 200


def test_the_corpus_reports_its_first_bad_file_and_missing_folders(tmp_path) -> None:
    write_corpus(tmp_path, forms=4, lines=1)
    bad = next((tmp_path / "lineStrokes").rglob("*.xml"))
    bad.write_text(_stroke_set("<Stroke></Stroke>"))
    with pytest.raises(DataError, match=f"{bad}: stroke 0 of 1 is empty"):
        load_iamondb(tmp_path)
    with pytest.raises(DataError, match="no lineStrokes/ folder"):
        load_iamondb(tmp_path / "lineStrokes" / "a01")
    assert main(["train", "--dataset", f"iamondb:{tmp_path / 'nowhere'}", "--out",
                 str(tmp_path / "run")]) == 2


def test_the_registry_knows_iamondb_paths(tmp_path) -> None:
    entry = lookup("iamondb:/somewhere")
    assert (entry.kind, entry.protocol, entry.modality, entry.grid, entry.time_step) == \
        ("iamondb", "iamondb", Modality.HANDWRITING, GRID, "pen point")
    assert entry.path() == Path("/somewhere")
    with pytest.raises(DataError, match="is not a folder"):
        lookup(f"iamondb:{tmp_path / 'none'}").load()


def test_the_normaliser_round_trips_through_the_data_card(corpus) -> None:
    data = load_iamondb(corpus[0])
    card = json.loads(json.dumps(data_card(data)))
    assert card["modality"] == "handwriting" and card["normaliser"] == data.info["normaliser"]
    typed = read_card(card, "iamondb:x")
    assert typed == DataCard.of(data) and typed.handwriting is not None
    x = data.test.x[0]
    for a, b in zip(typed.handwriting.decode(x),
                    decode(x, OffsetNormaliser.from_dict(data.info["normaliser"])), strict=True):
        np.testing.assert_array_equal(a, b)
    for bad in ({"mean": [0.0], "std": [1.0, 1.0]}, {"mean": [0, 0], "std": [1, 0]}, "x"):
        with pytest.raises(ConfigError, match="run/data.json: iamondb normaliser"):
            read_card({**card, "normaliser": bad}, "iamondb:x", where="run/data.json")


def test_a_tensorboard_sample_of_a_handwriting_run_is_a_drawing(corpus, monkeypatch) -> None:
    import srnn.handwriting
    from srnn.sampling import MEDIA_POINTS, sample_media

    drawn = []
    figure = srnn.handwriting.handwriting_figure
    monkeypatch.setattr(srnn.handwriting, "handwriting_figure",
                        lambda drawings, *a, **k: drawn.append(drawings) or figure(drawings))
    card = DataCard.of(load_iamondb(corpus[0]))
    torch.manual_seed(0)
    media = sample_media(_tiny_pen("rnn").eval(), card)
    assert media.kind == "handwriting" and media.audio is None  # not the grey value matrix
    assert media.image.dtype == np.uint8 and media.image.ndim == 3 and media.image.shape[2] == 3
    assert len(drawn) == 1 and sum(len(s) for s in next(iter(drawn[0].values()))) == MEDIA_POINTS


# -- the pen emission ---------------------------------------------------------------------------

def _pen(batch: tuple[int, ...] = (4, 5), K: int = 3, seed: int = 0) -> PenMixture:
    torch.manual_seed(seed)
    em = make_emission("pen", 7, 3, K).double()
    return em.distribution(torch.randn(*batch, 7, dtype=torch.float64) * 2)


def by_hand(d: PenMixture) -> tuple[torch.distributions.Distribution, ...]:
    """Bernoulli(e) and MixtureSameFamily(pi, MultivariateNormal(mu, Sigma)) with Sigma from
    sigma_1, sigma_2 and rho."""
    s1, s2, rho = d.scale[..., 0], d.scale[..., 1], d.rho
    cov = torch.stack([torch.stack([s1 * s1, rho * s1 * s2], -1),
                       torch.stack([rho * s1 * s2, s2 * s2], -1)], -2)
    D = torch.distributions
    mix = D.MixtureSameFamily(D.Categorical(logits=d.mix_logits),
                              D.MultivariateNormal(d.loc, covariance_matrix=cov))
    return D.Bernoulli(logits=d.pen_logit), mix


def test_the_pen_density_is_a_bernoulli_times_a_bivariate_gaussian_mixture() -> None:
    d = _pen()
    assert d.batch_shape == (4, 5) and d.event_shape == (3,)
    assert (d.rho.abs() < 1).all() and (d.scale > 0).all()
    assert torch.allclose(d.weights.sum(-1), torch.ones(4, 5, dtype=torch.float64))
    pen, mix = by_hand(d)
    x = torch.randn(4, 5, 3, dtype=torch.float64) * 1.5
    x[..., 0] = (torch.rand(4, 5) < 0.5).double()
    torch.testing.assert_close(d.log_prob(x), pen.log_prob(x[..., 0]) + mix.log_prob(x[..., 1:]))
    # x broadcast against a batch of distributions; a garbage pen value stays finite
    x[..., 0] = 0.37
    assert torch.isfinite(d.log_prob(x)).all()


def test_pen_samples_have_its_moments() -> None:
    d = _pen(batch=(2,), K=2, seed=1)
    torch.manual_seed(0)
    n = 200_000
    x = d.sample((n,))
    assert x.shape == (n, 2, 3) and set(x[..., 0].unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(x.mean(0), d.mean, atol=0.02, rtol=0.02)
    torch.testing.assert_close(x.var(0), d.variance, atol=0.02, rtol=0.03)
    pen, mix = by_hand(d)
    torch.testing.assert_close(d.mean[..., 0], pen.mean)
    torch.testing.assert_close(d.mean[..., 1:], mix.mean)
    torch.testing.assert_close(d.variance[..., 1:], mix.variance)
    # the correlation within a component: the covariance of dx and dy of the mixture
    w, mu = d.weights, d.loc
    m = (w[..., None] * mu).sum(-2)
    cross = (w * (d.rho * d.scale[..., 0] * d.scale[..., 1]
                  + (mu[..., 0] - m[..., None, 0]) * (mu[..., 1] - m[..., None, 1]))).sum(-1)
    c = x[..., 1:] - x[..., 1:].mean(0)
    torch.testing.assert_close((c[..., 0] * c[..., 1]).mean(0), cross, atol=0.02, rtol=0.03)


def test_the_pen_emission_refuses_other_shapes_and_data() -> None:
    with pytest.raises(ValueError, match="steps of 3 values"):
        make_emission("pen", 7, 5)
    with pytest.raises(ValueError, match="no binary columns"):
        make_emission("pen", 7, 3, binary_columns=[0])
    rng = np.random.default_rng(0)
    real = SequenceDataset("r", Split.from_targets([rng.normal(size=(5, 3)) for _ in range(3)]),
                           Split.from_targets([rng.normal(size=(5, 3))]),
                           Split.from_targets([rng.normal(size=(5, 3))]), "x", "step",
                           binary=False)
    with pytest.raises(ConfigError, match="--emission pen .* first column that is not all 0/1"):
        build_from_config(RunConfig("r", "rnn", {"emission": "pen"}), real)
    with pytest.raises(ConfigError, match="column 1 of data set 'r' holds values other than 0"):
        build_from_config(RunConfig("r", "rnn", {"emission": "mixed", "binary_columns": [1]}),
                          real)


def _tiny_pen(name: str, **kw):
    return tiny(name, x_dim=3, emission="pen", mixtures=2, **kw)


def _pen_data(corpus) -> SequenceDataset:
    return load_iamondb(corpus[0])


@pytest.mark.parametrize("name", PEN_MODELS)
def test_every_model_trains_a_step_with_the_pen_emission(name: str, corpus) -> None:
    data = _pen_data(corpus)
    m = _tiny_pen(name)
    from srnn.bounds import elbo_terms
    from srnn.data.batching import pad_batch

    batch = pad_batch(data.train.x[:4], data.train.u[:4])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in m.emission.parameters()]
    loss = -elbo_terms(m, batch).objective()
    loss.backward()
    for pname, p in m.emission.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, \
            pname
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, m.emission.parameters(),
                                                      strict=True))
    for bound in ("iwae", "fivo"):
        res = evaluate_particle_bound(m, data.valid, bound, 3)
        assert math.isfinite(res[f"{bound}_k3_per_step"])
        assert math.isfinite(res[f"{bound}_k3_per_sequence"])
    res = evaluate_elbo(m, data.valid)
    assert math.isfinite(res["elbo_per_step"]) and math.isfinite(res["elbo_per_sequence"])


@pytest.mark.parametrize("name", PEN_MODELS)
def test_the_pen_emission_keeps_the_bound_identities_and_generation(name: str, corpus) -> None:
    """K = 1: IWAE = FIVO = the Monte-Carlo ELBO; log p(x, z) while generating = training's."""
    data = _pen_data(corpus)
    m = _tiny_pen(name).eval()
    from srnn.data.batching import pad_batch

    check_one_particle_identities(m, pad_batch(data.valid.x[:3], data.valid.u[:3]))
    check_generation_matches_training(
        _tiny_pen(name).double().eval(), [x[:6] for x in data.train.x[:3]],
        lambda x: bool(torch.isfinite(x).all()) and set(x[..., 0].unique().tolist()) <= {0, 1}
        and x[..., 1:].unique().numel() > 20)


# -- the mixed emission -------------------------------------------------------------------------

def test_the_mixed_density_is_bernoullis_times_gaussians_and_samples_have_its_moments() -> None:
    torch.manual_seed(0)
    em = make_emission("mixed", 6, 5, binary_columns=[3, 0]).double()
    assert em.binary_columns == (0, 3)
    d: MixedColumns = em.distribution(torch.randn(2, 6, dtype=torch.float64))
    D = torch.distributions
    bern = D.Independent(D.Bernoulli(logits=d.logits), 1)
    gauss = D.Independent(D.Normal(d.loc, d.scale), 1)
    x = torch.randn(2, 5, dtype=torch.float64)
    x[:, [0, 3]] = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(d.log_prob(x),
                               bern.log_prob(x[:, [0, 3]]) + gauss.log_prob(x[:, [1, 2, 4]]))
    torch.manual_seed(1)
    s = d.sample((100_000,))
    assert set(s[..., [0, 3]].unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(s.mean(0), d.mean, atol=0.02, rtol=0.02)
    torch.testing.assert_close(s.var(0), d.variance, atol=0.02, rtol=0.03)
    torch.testing.assert_close(d.mean[:, [0, 3]], torch.sigmoid(d.logits))
    for columns in ([5], [1, 1]):
        with pytest.raises(ValueError, match="binary column"):
            make_emission("mixed", 6, 5, binary_columns=columns)
    only_real = make_emission("mixed", 6, 2).distribution(torch.randn(3, 6))
    assert only_real.sample().shape == (3, 2)
    assert only_real.log_prob(torch.zeros(3, 2)).shape == (3,)


@pytest.mark.parametrize("name", ["srnn", "vrnn", "rnn"])
def test_the_mixed_emission_keeps_the_bound_identities_and_generation(name: str) -> None:
    rng = np.random.default_rng(2)
    seqs = []
    for _ in range(3):
        x = rng.normal(size=(int(rng.integers(5, 8)), 4))
        x[:, [0, 3]] = rng.random((len(x), 2)) < 0.4
        seqs.append(x.astype(np.float32))
    from srnn.data.batching import pad_batch
    from srnn.data.sequences import shift_inputs

    m = tiny(name, x_dim=4, emission="mixed", binary_columns=[0, 3]).eval()
    check_one_particle_identities(m, pad_batch(seqs, [shift_inputs(x) for x in seqs]))
    check_generation_matches_training(
        tiny(name, x_dim=4, emission="mixed", binary_columns=[0, 3]).double().eval(), seqs,
        lambda x: set(x[..., [0, 3]].unique().tolist()) <= {0, 1}
        and x[..., [1, 2]].unique().numel() > 20)


def mixed_arrays(path: Path, record: bool) -> None:
    rng = np.random.default_rng(0)

    def seq() -> np.ndarray:
        x = rng.normal(size=(int(rng.integers(6, 12)), 4)).astype(np.float32)
        x[:, 0] = rng.random(len(x)) < 0.3
        x[:, 3] = rng.random(len(x)) < 0.6
        return x

    arrays = {f"{s}_{i}": seq() for s, n in (("train", 8), ("valid", 3), ("test", 3))
              for i in range(n)}
    if record:
        arrays["binary_columns"] = np.array([3, 0])
    np.savez(path, **arrays)


def test_mixed_columns_through_arrays_and_the_command_line(tmp_path, capsys) -> None:
    from srnn.data.arrays import load_arrays

    mixed_arrays(tmp_path / "rec.npz", record=True)
    mixed_arrays(tmp_path / "plain.npz", record=False)
    rec, plain = load_arrays(tmp_path / "rec.npz"), load_arrays(tmp_path / "plain.npz")
    assert (rec.emission, rec.binary_columns) == ("mixed", (0, 3))
    assert (plain.emission, plain.binary_columns) == ("", (0, 3))  # found, not the default
    tiny_flags = ["--model", "rnn", "--d-dim", "8", "--hidden", "8", "--feature-dim", "8",
                  "--epochs", "1", "--no-progress"]
    runs = {"recorded": (["--dataset", str(tmp_path / "rec.npz")], "mixed", [0, 3]),
            "chosen": (["--dataset", str(tmp_path / "plain.npz"), "--emission", "mixed",
                        "--binary-columns", "3"], "mixed", [3]),
            "found": (["--dataset", str(tmp_path / "plain.npz"), "--emission", "mixed"],
                      "mixed", [0, 3]),
            "default": (["--dataset", str(tmp_path / "plain.npz")], "gauss", [])}
    for name, (args, emission, columns) in runs.items():
        out = tmp_path / name
        assert main(["train", *args, "--out", str(out), *tiny_flags]) == 0, name
        opts = json.loads((out / "config.json").read_text())["model_options"]
        assert (opts["emission"], opts["binary_columns"]) == (emission, columns), name
    capsys.readouterr()
    assert main(["train", "--dataset", str(tmp_path / "plain.npz"), "--emission", "mixed",
                 "--binary-columns", "1", "--out", str(tmp_path / "bad"), *tiny_flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "column 1 of data set" in err
    np.savez(tmp_path / "wrong.npz", **{**dict(np.load(tmp_path / "rec.npz")),
                                        "binary_columns": np.array([1])})
    with pytest.raises(DataError, match=r"wrong.npz \[binary_columns\]: column 1 holds values"):
        load_arrays(tmp_path / "wrong.npz")


# -- a run from the command line ----------------------------------------------------------------

@pytest.mark.slow
def test_a_handwriting_run_trains_evaluates_samples_and_plots(corpus, tmp_path, capsys) -> None:
    root, _ = corpus
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"iamondb:{root}", "--model", "vrnn", "--out", str(run),
                 "--z-dim", "3", "--d-dim", "12", "--hidden", "12", "--feature-dim", "12",
                 "--mixtures", "3", "--epochs", "2", "--batch-size", "8", "--lr", "3e-3",
                 "--no-progress"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model_options"]["emission"] == "pen" and cfg["model_options"]["x_dim"] == 3
    res = json.loads((run / "results.json").read_text())
    for key in ("elbo_per_step", "elbo_per_sequence", "elbo_mean_of_sequences"):
        assert math.isfinite(res[key]), key
    assert res["sequences"] == len(load_iamondb(root).test)
    # evaluate and sample rebuild the same data: the statistics in data.json are the loader's
    card = RunDirectory(run).card()
    _, _, data = load_trained(run)
    assert card.handwriting.normaliser == OffsetNormaliser.from_dict(data.info["normaliser"])
    assert main(["evaluate", str(run), "--bound", "iwae", "--samples", "3"]) == 0
    res = json.loads((run / "results.json").read_text())
    assert math.isfinite(res["iwae_k3_per_step"]) and math.isfinite(res["iwae_k3_per_sequence"])
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png"), "--length", "40",
                 "--num", "2"]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    assert written == [str(tmp_path / "s.png"), str(tmp_path / "s.svg")]
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "s.svg").read_text()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.npy"), "--length", "40",
                 "--num", "2"]) == 0
    steps = np.load(tmp_path / "s.npy")
    assert steps.shape == (2, 40, 3) and set(np.unique(steps[..., 0])) <= {0.0, 1.0}
    assert main(["sample", str(run), "--out", str(tmp_path / "s.mid")]) == 2
    assert main(["plot", str(run), "--out", str(tmp_path / "plots"), "--num", "2",
                 "--length", "30"]) == 0
    for f in ("curves.png", "handwriting.png", "handwriting.svg", "samples.npy"):
        assert (tmp_path / "plots" / f).stat().st_size > 0, f


def test_a_batch_with_garbage_padding_gives_the_same_pen_bounds(corpus) -> None:
    data = _pen_data(corpus)
    m = _tiny_pen("srnn").eval()
    from srnn.bounds import elbo_terms
    from srnn.data.batching import pad_batch

    seqs = data.valid.x[:3]
    b = pad_batch(seqs, data.valid.u[:3])
    n, T, _ = b.x.shape
    g = torch.Generator().manual_seed(0)
    x = 5 * torch.randn(n, T + 4, 3, generator=g)
    u = 5 * torch.randn(n, T + 4, 3, generator=g)
    mask = torch.zeros(n, T + 4)
    for r, s in enumerate(seqs):
        x[r, :len(s)], u[r, :len(s)], mask[r, :len(s)] = b.x[r, :len(s)], b.u[r, :len(s)], 1
    with torch.no_grad():
        e = elbo_terms(m, b, generator=torch.Generator().manual_seed(1))
        p = elbo_terms(m, Batch(x, u, mask), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(p.recon[:, :T], e.recon)
    torch.testing.assert_close(p.kl[:, :T], e.kl)


def test_the_training_config_round_trips(corpus, tmp_path) -> None:
    """A run's config.json re-runs it: the pen emission and its mixtures are saved."""
    cfg = RunConfig(f"iamondb:{corpus[0]}", "rnn", {"d_dim": 8, "hidden": 8, "feature_dim": 8},
                    TrainConfig(epochs=1))
    model = build_from_config(cfg, load_iamondb(corpus[0]))
    assert model.config.emission == "pen" and model.config.binary_columns == []
