"""What the SRNN paper and poster define and report: the four music sets, the settings swept,
and the published figures (each with its source). ``srnn reproduce`` builds its jobs from these
(:mod:`srnn.experiments.reproduce`) and its tables and plots set our results beside them
(:mod:`srnn.experiments.report`).
"""

from __future__ import annotations

# The four polyphonic music sets of Boulanger-Lewandowski et al. (2012), as the paper uses
# them (Fraccaro et al. 2016, section 5 and Table 2), and their titles in tables and plots.
SETS = ("jsb", "nottingham", "musedata", "piano")
SET_TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData",
              "piano": "Piano-midi.de"}

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
