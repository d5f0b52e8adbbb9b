"""``srnn reproduce``: the experiments of the SRNN paper and poster, one command each.

- ``poster``: SRNN on the four polyphonic sets with z in {2, 10, 25, 50, 100, 200} at d = 300
  and d in {50, 300, 500} at z = 100 (d sets both GRU widths, d_t and a_t).
- ``table2``: SRNN smoothing / filtering x Res_q on / off on the four sets (Fraccaro et al.
  2016, Table 2; the paper reports the music sets for smooth + Res_q only).
- ``compare``: SRNN against VRNN, STORN and the RNN on the four sets at matched parameter
  counts.

Each is a list of :class:`~srnn.experiments.jobs.Job` s (one per setting, data set and seed),
run by :func:`~srnn.experiments.jobs.run_jobs`; the results go to ``OUT/results.csv`` (one row
per job), ``OUT/results.json``, ``OUT/tables.md`` and ``OUT/*.png``
(:mod:`srnn.experiments.report`). The paper's sets, sweeps and figures are in
:mod:`srnn.experiments.paper`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from srnn.errors import ConfigError
from srnn.experiments.compare import plan
from srnn.experiments.jobs import Job, run_jobs, sweep_folder
from srnn.experiments.paper import POSTER_D, POSTER_Z, SETS, TABLE2_VARIANTS
from srnn.experiments.report import result_row, write_report
from srnn.io import write_json
from srnn.models import model_fields
from srnn.train.run_dir import RunDirectory

log = logging.getLogger("srnn.reproduce")

EXPERIMENTS = ("poster", "table2", "compare")
PROTOCOLS = ("canonical", "fraccaro")

# quick: minutes on a laptop (16 sequences, or streams, of each split; 4 epochs); full: the
# paper's recipe (the training defaults: 50 epochs, KL annealed over 20, LR decay after 20).
BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 4, "kl_epochs": 1.0, "subset": 16},
    "full": {},
}

COMPARE_MODELS = ("srnn", "vrnn", "storn", "rnn")


def dataset_name(protocol: str, name: str) -> str:
    return name if protocol == "canonical" else f"{name}-fraccaro"


def protocols(protocol: str) -> tuple[str, ...]:
    if protocol == "both":
        return PROTOCOLS
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose canonical, fraccaro or both")
    return (protocol,)


def train_options(budget: str, epochs: int | None = None,
                  max_minutes: float | None = None) -> dict[str, Any]:
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose {', '.join(BUDGETS)}")
    opts = dict(BUDGETS[budget])
    if epochs is not None:
        opts["epochs"] = epochs
    if max_minutes is not None:
        opts["max_minutes"] = max_minutes
    return opts


def settings(experiment: str, overrides: dict[str, Any] | None = None
             ) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(variant label, model, model options, table columns) of each setting of ``experiment``
    on one data set. ``overrides`` set further model options of every job (the experiment's own
    settings, e.g. the poster's z and d, stay as they are); an option a model lacks is left out
    for that model, and one that no model has is an error."""
    overrides = dict(overrides or {})
    chosen = _settings(experiment, overrides)
    known = set().union(*(model_fields(m) for _, m, _, _ in chosen))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"no model of {experiment!r} has the option(s) {', '.join(unknown)}")
    out = []
    for variant, model, mopts, cols in chosen:
        fields = model_fields(model)
        extra = {k: v for k, v in overrides.items() if k in fields and k not in mopts}
        out.append((variant, model, {**extra, **mopts}, cols))
    return out


def _settings(experiment: str, overrides: dict[str, Any]
              ) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    if experiment == "poster":
        out = []
        for z in POSTER_Z:
            out.append((f"z{z}-d300", "srnn", {"z_dim": z, "d_dim": 300, "a_dim": 300},
                        {"z": z, "d": 300}))
        for d in POSTER_D:
            if d != 300:
                out.append((f"z100-d{d}", "srnn", {"z_dim": 100, "d_dim": d, "a_dim": d},
                            {"z": 100, "d": d}))
        return out
    if experiment == "table2":
        return [(name, "srnn", {"smoothing": smooth, "res_q": res_q}, {})
                for name, smooth, res_q in TABLE2_VARIANTS]
    if experiment == "compare":
        # All four music sets have 88 binary notes; widths matched to the SRNN's count (the
        # paper's sizes unless overridden), options set by hand kept.
        hand = {m: {k: v for k, v in overrides.items() if k in model_fields(m)}
                for m in COMPARE_MODELS}
        opts = plan(list(COMPARE_MODELS), x_dim=88, binary=True, options=hand)
        return [(m, m, {k: v for k, v in opts[m].items() if k != "x_dim"}, {})
                for m in COMPARE_MODELS]
    raise ConfigError(f"unknown experiment {experiment!r}; choose {', '.join(EXPERIMENTS)}")


def make_jobs(experiment: str, protocol: str = "canonical", sets: tuple[str, ...] = SETS,
              budget: str = "quick", seeds: int = 1, epochs: int | None = None,
              max_minutes: float | None = None, overrides: dict[str, Any] | None = None
              ) -> list[Job]:
    """Every job of ``experiment``: settings x protocols x data sets x seeds."""
    bad = [s for s in sets if s not in SETS]
    if bad:
        raise ConfigError(f"unknown set(s) {', '.join(bad)}; choose from {', '.join(SETS)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, not {seeds}")
    topts = train_options(budget, epochs, max_minutes)
    jobs = []
    for proto in protocols(protocol):
        for name in sets:
            for variant, model, mopts, cols in settings(experiment, overrides):
                for seed in range(seeds):
                    ds = dataset_name(proto, name)
                    slug = variant.replace(" + ", "-").replace(" ", "-").replace("_", "")
                    jobs.append(Job(
                        label=f"{ds}-{slug}".lower(), dataset=ds, model=model,
                        model_options=mopts, train_options=topts, seed=seed,
                        meta={"experiment": experiment, "protocol": proto, "set": name,
                              "variant": variant, **cols}))
    return jobs


def reproduce(experiment: str, out: str | Path, protocol: str = "canonical",
              sets: tuple[str, ...] = SETS, budget: str = "quick", seeds: int = 1,
              epochs: int | None = None, max_minutes: float | None = None, workers: int = 1,
              backend: str = "local", threads: int = 1,
              data_dir: str | os.PathLike[str] | None = None,
              slurm: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
              command: str | None = None) -> list[dict[str, Any]]:
    """Run (or resume) ``experiment`` into ``out`` and write its results, tables and plots."""
    out = Path(out)
    jobs = make_jobs(experiment, protocol, tuple(sets), budget, seeds, epochs, max_minutes,
                     overrides)
    with sweep_folder(out, "reproduction", {"experiment": experiment}):
        write_json(out / "plan.json", {
            "experiment": experiment, "protocol": protocol, "sets": list(sets),
            "budget": budget, "seeds": seeds, "command": command, "backend": backend,
            "workers": workers, "threads_per_job": threads,
            "jobs": [{"id": j.id, **j.settings(), "meta": j.meta} for j in jobs]})
        results = run_jobs(jobs, out, workers=workers, backend=backend, threads=threads,
                           data_dir=data_dir, slurm=slurm)
        rows = [result_row(j, results[j.id]) for j in jobs]
        curves = {j.id: RunDirectory(j.run_dir(out)).metrics() for j in jobs}
        write_report(out, experiment, rows, curves, command)
    return rows
