"""What the SRNN paper and poster define and report: the four music sets, the settings swept,
and the published figures (each with its source); and the models, sets and recipe of the
re-examination of Lai, Dai, Yang and Yoo (2019). ``srnn reproduce`` builds its jobs from these
(:mod:`srnn.experiments.reproduce`) and its tables and plots set our results beside them
(:mod:`srnn.experiments.report`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

# The four polyphonic music sets of Boulanger-Lewandowski et al. (2012), as the paper uses
# them (Fraccaro et al. 2016, section 5 and Table 2), and their titles in tables and plots.
SETS = ("jsb", "nottingham", "musedata", "piano")
SET_TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData",
              "piano": "Piano-midi.de", "fsdd": "FSDD", "fsdd-perm": "FSDD-perm"}

# Test ELBO per time step of SRNN (smooth + Res_q), Fraccaro et al. 2016, Table 2: the paper's
# own files (``*-fraccaro``) and its convention (mean over test sequences of each one's value
# per step). The paper reports no other SRNN variant on music.
PAPER_TABLE2 = {"piano": -8.20, "nottingham": -2.94, "musedata": -6.28, "jsb": -4.74}

# The poster's sweeps: the latent size z at d = 300, and the GRU width d (both d_t and a_t) at
# z = 100.
POSTER_Z = (2, 10, 25, 50, 100, 200)
POSTER_D = (50, 300, 500)

# The inference networks of the paper's ablation (Table 1, on speech): smoothing or filtering,
# with or without the Res_q mean (eq. 12): (label, smoothing, res_q).
TABLE2_VARIANTS = (("smooth + Res_q", True, True), ("smooth", True, False),
                   ("filter + Res_q", False, True), ("filter", False, False))


# -- Lai, Dai, Yang and Yoo, "Re-examination of the Role of Latent Variables in Sequence
# Modeling", NeurIPS 2019 ("Dai et al. 2019"; code: github.com/zihangdai/reexamine-srnn) -----

# Their MIDI sets, as the canonical piano rolls, and the Free Spoken Digit Dataset and its
# frame-permuted version as stand-ins for their TIMIT and Perm-TIMIT.
REEXAMINE_MUSIC = ("musedata", "nottingham")
REEXAMINE_SPEECH = ("fsdd", "fsdd-perm")
REEXAMINE_SETS = (*REEXAMINE_MUSIC, *REEXAMINE_SPEECH)


class DaiVariant(NamedTuple):
    """A model of the re-examination: its name in their tables, the job label's part, the
    library's model, its emission per modality (a modality left out: not run there), the
    variant whose parameter count it must not exceed on music, and options of the run itself
    (RunConfig fields such as ``flat``, which :func:`srnn.train.trainer.train` takes as
    keywords)."""

    label: str
    slug: str
    model: str
    emissions: dict[str, str]
    at_most: str | None = None
    run_options: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs, e.g. flat=True


# F-: factorised p(x_t | h); -hier: autoregressive within a step (MADE over the notes, a GRU
# over the chunks of a frame); δ-RNN-random: a random half of a frame first, the rest given it.
REEXAMINE_VARIANTS = (
    DaiVariant("F-RNN", "f-rnn", "rnn", {"music": "bernoulli", "speech": "gmm"}, "F-SRNN"),
    DaiVariant("F-SRNN", "f-srnn", "srnn-dai", {"music": "bernoulli", "speech": "gmm"}),
    DaiVariant("RNN-hier", "rnn-hier", "rnn", {"music": "made", "speech": "ar-rnn"},
               "SRNN-hier"),
    DaiVariant("SRNN-hier", "srnn-hier", "srnn-dai", {"music": "made", "speech": "ar-rnn"}),
    DaiVariant("δ-RNN-random", "delta-rnn-random", "rnn", {"speech": "delta-random"}),
)
# -flat: one value per step (the flat view, RunConfig.flat), a factorised emission of x_dim 1.
FLAT_VARIANTS = (
    DaiVariant("RNN-flat", "rnn-flat", "rnn", {"music": "bernoulli", "speech": "gmm"},
               "SRNN-flat", (("flat", True),)),
    DaiVariant("SRNN-flat", "srnn-flat", "srnn-dai", {"music": "bernoulli", "speech": "gmm"},
               None, (("flat", True),)),
)

# Their recipe (as the issue states it from the paper's appendix): Adam at 1e-3 on a cosine
# down to 1e-6 over the run's updates, batches of 16, the KL weight from 0.2 rising by 5e-5 per
# update. (Their code's defaults differ by domain: MIDI batches of 16, KL rising by 1e-4,
# 20,000 updates, midi/options.py; TIMIT batches of 32, 5e-5, 40,000 updates,
# speech/options.py.) Early stopping: none; the best validation checkpoint is tested.
DAI_RECIPE: dict[str, Any] = {"batch_size": 16, "lr": 1e-3, "lr_schedule": "cosine",
                              "lr_min": 1e-6, "kl_start": 0.2, "kl_rate": 5e-5}
DAI_UPDATES = 20_000  # updates of a full run (their MIDI code's max_step)
# Epochs of DAI_UPDATES updates: ceil(20,000 / updates per epoch) at batches of 16 windows of
# at most 100 steps, in the mean over the random tilings of the pieces
# (srnn.train.trainer.updates_per_epoch: MuseData 182.1 per epoch, Nottingham 152.9; FSDD and
# FSDD-perm, 2,400 recordings of at most 100 frames, 150).
DAI_EPOCHS = {"musedata": 110, "nottingham": 131, "fsdd": 134, "fsdd-perm": 134}
