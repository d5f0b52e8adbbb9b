"""``srnn reproduce``: the experiments of the SRNN paper and poster, one command each.

- ``poster``: SRNN on the four polyphonic sets with z in {2, 10, 25, 50, 100, 200} at d = 300
  and d in {50, 300, 500} at z = 100 (d sets both GRU widths, d_t and a_t).
- ``table2``: SRNN smoothing / filtering x Res_q on / off on the four sets (Fraccaro et al.
  2016, Table 2; the paper reports the music sets for smooth + Res_q only).
- ``compare``: SRNN against VRNN, STORN and the RNN on the four sets at matched parameter
  counts.

Each is a list of :class:`~srnn.experiments.jobs.Job` s (one per setting, data set and seed),
run by :func:`~srnn.experiments.jobs.run_jobs`; the results go to ``OUT/results.csv`` (one row
per job), ``OUT/results.json``, ``OUT/tables.md`` and ``OUT/*.png``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from srnn.errors import ConfigError
from srnn.experiments.compare import plan
from srnn.experiments.jobs import Job, run_jobs
from srnn.io import write_json
from srnn.models import model_fields

log = logging.getLogger("srnn.reproduce")

EXPERIMENTS = ("poster", "table2", "compare")
SETS = ("jsb", "nottingham", "musedata", "piano")
PROTOCOLS = ("canonical", "fraccaro")
SET_TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData",
              "piano": "Piano-midi.de"}

# Test ELBO per time step of SRNN (smooth + Res_q), Fraccaro et al. 2016, Table 2: the paper's
# own files (``*-fraccaro``) and its convention (mean over test sequences of each one's value
# per step). The paper reports no other SRNN variant on music.
PAPER_TABLE2 = {"piano": -8.20, "nottingham": -2.94, "musedata": -6.28, "jsb": -4.74}

# quick: minutes on a laptop (16 sequences, or streams, of each split; 4 epochs); full: the
# paper's recipe (the training defaults: 50 epochs, KL annealed over 20, LR decay after 20).
BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 4, "kl_epochs": 1.0, "subset": 16},
    "full": {},
}

POSTER_Z = (2, 10, 25, 50, 100, 200)
POSTER_D = (50, 300, 500)
TABLE2_VARIANTS = (("smooth + Res_q", True, True), ("smooth", True, False),
                   ("filter + Res_q", False, True), ("filter", False, False))
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


COLUMNS = ["job_id", "experiment", "protocol", "set", "dataset", "model", "variant", "z", "d",
           "seed", "parameters", "bound", "test_per_step", "test_mean_of_sequences",
           "valid_per_step", "recon_per_step", "kl_per_step", "cross_entropy_per_note",
           "epochs", "best_epoch", "train_minutes", "error"]


def result_row(job: Job, res: dict[str, Any]) -> dict[str, Any]:
    """One ``results.csv`` row: the job's settings and its test results."""
    row: dict[str, Any] = {"job_id": job.id, "dataset": job.dataset, "model": job.model,
                           "seed": job.seed, "z": "", "d": "", **job.meta, "error": ""}
    if "error" in res:
        row["error"] = res["error"]
        return row
    x_dim = res["model_options"]["x_dim"]
    row.update({
        "parameters": res["parameters"],
        "bound": "exact" if res.get("bound") == "exact" else "elbo",
        "test_per_step": res["elbo_per_step"],
        "test_mean_of_sequences": res["elbo_mean_of_sequences"],
        "valid_per_step": res["valid_elbo_per_step"],
        "recon_per_step": res["recon_per_step"],
        "kl_per_step": res["kl_per_step"],
        # The negative reconstruction term per note (binary cross-entropy of the emission).
        "cross_entropy_per_note": -res["recon_per_step"] / x_dim,
        "epochs": res["epochs"], "best_epoch": res["best_epoch"],
        "train_minutes": res["train_seconds"] / 60,
    })
    return row


def reproduce(experiment: str, out: str | Path, protocol: str = "canonical",
              sets: tuple[str, ...] = SETS, budget: str = "quick", seeds: int = 1,
              epochs: int | None = None, max_minutes: float | None = None, workers: int = 1,
              backend: str = "local", threads: int = 1,
              data_dir: str | os.PathLike[str] | None = None,
              slurm: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
              command: str | None = None) -> list[dict[str, Any]]:
    """Run (or resume) ``experiment`` into ``out`` and write its results, tables and plots."""
    from srnn.experiments.report import write_report

    out = Path(out)
    jobs = make_jobs(experiment, protocol, tuple(sets), budget, seeds, epochs, max_minutes,
                     overrides)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "plan.json", {
        "experiment": experiment, "protocol": protocol, "sets": list(sets), "budget": budget,
        "seeds": seeds, "command": command, "backend": backend, "workers": workers,
        "threads_per_job": threads,
        "jobs": [{"id": j.id, **j.settings(), "meta": j.meta} for j in jobs]})
    results = run_jobs(jobs, out, workers=workers, backend=backend, threads=threads,
                       data_dir=data_dir, slurm=slurm)
    rows = [result_row(j, results[j.id]) for j in jobs]
    curves = {j.id: _curve(out / "jobs" / j.id) for j in jobs}
    write_report(out, experiment, rows, curves, command)
    return rows


def _curve(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
