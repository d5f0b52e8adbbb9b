"""Checks every emission must pass inside every model, shared by the emission tests:
the K = 1 identities of the bounds with padding, and generation against the training path."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from conftest import batch_from
from test_models import teacher_batch

from srnn.bounds import elbo_terms, fivo, iwae, joint_log_prob
from srnn.models import Batch


def check_one_particle_identities(m, b: Batch):
    """K = 1: log of one importance weight (IWAE) = FIVO's = the ELBO with a Monte-Carlo KL,
    draw for draw (the same generator seed); returns the ELBO's terms."""
    with torch.no_grad():
        e = elbo_terms(m, b, generator=torch.Generator().manual_seed(7), analytic_kl=False)
        i = iwae(m, b, 1, generator=torch.Generator().manual_seed(7))
        f = fivo(m, b, 1, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(i.log_likelihood, e.recon.sum(1) - e.kl.sum(1))
    torch.testing.assert_close(f.log_likelihood, i.log_likelihood)
    assert (i.steps == b.mask.sum(1)).all()
    return e


def check_one_particle_bounds_and_padding(m, seqs: list[np.ndarray],
                                          garbage: Callable[[tuple, torch.Generator],
                                                            torch.Tensor]) -> None:
    """K = 1: IWAE = FIVO = the ELBO with a Monte-Carlo KL, draw for draw; and the same
    sequences padded with ``garbage(shape, generator)`` beyond each length, in a longer batch,
    change no bound (ELBO, IWAE, FIVO)."""
    b = batch_from(seqs)
    e = check_one_particle_identities(m, b)
    n, T, D = b.x.shape
    g = torch.Generator().manual_seed(5)
    x, u = garbage((n, T + 3, D), g), garbage((n, T + 3, D), g)
    mask = torch.zeros(n, T + 3)
    for r, L in enumerate(len(s) for s in seqs):
        x[r, :L], u[r, :L], mask[r, :L] = b.x[r, :L], b.u[r, :L], 1
    padded = Batch(x, u, mask)
    with torch.no_grad():
        ep = elbo_terms(m, padded, generator=torch.Generator().manual_seed(7), analytic_kl=False)
        torch.testing.assert_close(ep.recon[:, :T], e.recon)
        torch.testing.assert_close(ep.kl[:, :T], e.kl)
        for bound in (iwae, fivo):
            a = bound(m, b, 5, generator=torch.Generator().manual_seed(1))
            c = bound(m, padded, 5, generator=torch.Generator().manual_seed(1))
            torch.testing.assert_close(c.log_likelihood, a.log_likelihood)


def check_generation_matches_training(m, primer_seqs: list[np.ndarray],
                                      check_x: Callable[[torch.Tensor], bool]) -> None:
    """log p(z_t | ...) + log p(x_t | z_t, ...) summed while generating (the emission's
    ``sample`` then ``log_prob``) equals the training path's for the same x and z (``m`` in
    float64), from the start and from the carry of ``primer_seqs``; ``check_x`` says the
    samples are of the emission's kind."""
    torch.manual_seed(3)
    with torch.no_grad():
        path = m.sample_path(4, 6)
        assert check_x(path.x)
        train = joint_log_prob(m, teacher_batch(path.x), path.z)
        torch.testing.assert_close(train, path.log_prob, rtol=1e-10, atol=1e-10)
        if path.z is not None:  # not vacuous: the training path moves with z
            moved = joint_log_prob(m, teacher_batch(path.x), path.z + 0.1)
            assert (moved - train).abs().amin() > 1e-6
        primer = batch_from(primer_seqs)
        primer = Batch(primer.x.double(), primer.u.double(), primer.mask.double())
        terms = elbo_terms(m, primer, generator=torch.Generator().manual_seed(4))
        x_last = primer.x[:, -1]
        cont = m.sample_path(3, 5, carry=terms.carry, x_last=x_last)
        train = joint_log_prob(m, teacher_batch(cont.x, x_last), cont.z, carry=terms.carry)
        torch.testing.assert_close(train, cont.log_prob, rtol=1e-10, atol=1e-10)


def check_tiny_training_improves(run_dir, name: str, options: dict, data, margin: float
                                 ) -> None:
    """Four epochs of model ``name`` with ``options`` on ``data``: the best validation bound is
    ``margin`` above the untrained model's and above the first epoch's."""
    from srnn.evaluate import evaluate_elbo
    from srnn.train.trainer import RunConfig, TrainConfig, Trainer

    cfg = RunConfig(dataset=data.name, model=name, model_options=options,
                    train=TrainConfig(epochs=4, batch_size=8, lr=1e-2, kl_epochs=2,
                                      lr_decay_start=3))
    t = Trainer(cfg, run_dir, data=data, progress=False)
    assert t.model.config.emission == options["emission"]
    untrained = evaluate_elbo(t.model, data.valid)["elbo_per_step"]
    res = t.fit()
    first = t.run.metrics()[0]["valid_elbo"]
    assert res["valid_elbo_per_step"] > untrained + margin
    assert res["valid_elbo_per_step"] > first
