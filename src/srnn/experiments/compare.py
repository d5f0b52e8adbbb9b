"""``srnn compare``: train several models on one data set under the same protocol and tabulate.

Each model is a :class:`~srnn.experiments.jobs.Job` that trains into ``OUT/<model>/`` (an
ordinary run directory), run by the sweeps' job runner, several at once where ``jobs > 1``: a
finished model is not trained again and a started one resumes, so an interrupted comparison
continues where it stopped. The table goes to ``OUT/comparison.csv``, ``OUT/comparison.md`` and
``OUT/comparison.json``. With ``flat`` every model trains on the flat view of the data set
(:mod:`srnn.data.flat`; x_dim 1, parameter counts matched on it), and the figures stay per
original time step.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

from srnn.errors import ConfigError
from srnn.experiments.jobs import Job, run_jobs, sweep_folder
from srnn.experiments.report import result_row
from srnn.experiments.sizes import count_parameters, match_parameters
from srnn.io import atomic_write, write_json
from srnn.models import MODELS, model_fields
from srnn.nn.emissions import check_emission_fits
from srnn.train.run_dir import write_plan

log = logging.getLogger("srnn.compare")

BOUND_NAMES = {"elbo": "ELBO", "exact": "exact"}
COLUMNS = ["model", "parameters", "bound", "test_per_step", "test_mean_of_sequences",
           "valid_per_step", "train_minutes", "epochs", "best_epoch", "options", "error"]


def plan(models: list[str], x_dim: int, binary: bool, match: bool = True,
         target: int | None = None, reference: str = "srnn",
         options: dict[str, dict[str, Any]] | None = None, emission: str = ""
         ) -> dict[str, dict[str, Any]]:
    """The model options of each job: hand-set ``options[model]``, then widths scaled so each
    parameter count meets ``target`` (default: that of ``reference`` with its options).
    ``emission`` is the data's own default on real values (``SequenceDataset.emission``: pen
    for handwriting; "" for gauss)."""
    options = options or {}
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        opts = {"x_dim": x_dim, **options.get(m, {})}
        if not binary:
            opts.setdefault("emission", emission or "gauss")
        bad = sorted(set(opts) - set(model_fields(m)))
        if bad:
            raise ConfigError(f"model {m!r} has no option(s) {', '.join(bad)}")
        try:
            check_emission_fits(opts.get("emission", "bernoulli"), binary, "the data set")
        except ValueError as e:
            raise ConfigError(f"model {m!r}: {e}") from e
        out[m] = opts
    if match:
        if target is None:
            ref_opts = out.get(reference) or {"x_dim": x_dim, **options.get(reference, {})}
            target = count_parameters(reference, ref_opts)
        for m in models:
            out[m] = match_parameters(m, target, out[m])
            n = count_parameters(m, out[m])
            if abs(n / target - 1) > 0.10:
                log.warning("%s: %d parameters, more than 10%% away from the target %d (its "
                            "fixed sizes, e.g. z_dim, leave too little to scale)", m, n, target)
    return out


def row(job: Job, res: dict[str, Any]) -> dict[str, Any]:
    """One table row: the sweeps' results row of the job (see
    :func:`srnn.experiments.report.result_row`) and the sizes it was trained with."""
    out = result_row(job, res)
    if not out["error"]:
        spec = MODELS[job.model]
        out["options"] = json.dumps({k: v for k, v in res["model_options"].items()
                                     if k in spec.config.SIZE_FIELDS or k == "z_dim"})
    return out


def markdown(rows: list[dict[str, Any]], dataset: str, command: str | None = None) -> str:
    lines = [f"# Model comparison on `{dataset}`", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += ["Log-likelihood bounds in nats per time step on the whole split (ELBO; exact for "
              "the RNN). *Test, mean of sequences*: the mean over sequences of each one's value "
              "per step (the SRNN paper's convention).", "",
              "| model | parameters | bound | test | test, mean of sequences | valid | "
              "minutes | epochs (best) |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | | failed: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {BOUND_NAMES[r['bound']]} | "
            f"{r['test_per_step']:.3f} | "
            f"{r['test_mean_of_sequences']:.3f} | {r['valid_per_step']:.3f} | "
            f"{r['train_minutes']:.1f} | {r['epochs']} ({r['best_epoch']}) |")
    return "\n".join(lines) + "\n"


def write_tables(out: Path, rows: list[dict[str, Any]], dataset: str,
                 command: str | None = None) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in COLUMNS})
    data = buf.getvalue().encode()
    atomic_write(out / "comparison.csv", lambda f: f.write(data))
    md = markdown(rows, dataset, command).encode()
    atomic_write(out / "comparison.md", lambda f: f.write(md))
    write_json(out / "comparison.json", {"dataset": dataset, "command": command, "rows": rows})


def compare(dataset: str, models: list[str], out: str | os.PathLike[str], jobs: int = 1,
            threads: int | None = None, data_dir: str | None = None, match: bool = True,
            target: int | None = None, options: dict[str, dict[str, Any]] | None = None,
            command: str | None = None, flat: bool = False, keep_checkpoints: bool = False,
            progress: bool | None = None, **train_options: Any) -> list[dict[str, Any]]:
    """Train ``models`` on ``dataset`` (its flat view with ``flat``) into ``out/<model>`` and
    write the comparison tables (``keep_checkpoints``: the runs stay resumable after they
    end, see :func:`~srnn.experiments.jobs.run_jobs`). The training options that say what is
    logged (``tensorboard``, ``tensorboard_every``: :data:`srnn.train.config.LOG_OPTIONS`)
    go to every model's training but not into the job ids or ``plan.json``; ``progress``: the
    bar of models trained."""
    from srnn.train.config import LOG_OPTIONS
    from srnn.train.trainer import RunConfig, prepare_data

    out = Path(out)
    data = prepare_data(RunConfig(dataset=dataset, data_dir=data_dir, flat=flat))
    opts = plan(models, data.dim, data.binary, match=match, target=target, options=options,
                emission=data.emission)
    threads = threads or max(1, (os.cpu_count() or 1) // max(jobs, 1))
    train_options = dict(train_options)
    seed = int(train_options.pop("seed", 0))
    logged = {k: train_options.pop(k) for k in LOG_OPTIONS if k in train_options}
    # `flat` reaches srnn.train.trainer.train with the training options (and enters the job
    # ids); left out when off, so the ids of other comparisons stay as they were.
    job_options = {**train_options, "flat": True} if flat else train_options
    todo = [Job(label=m, dataset=dataset, model=m, model_options=opts[m],
                train_options=job_options, seed=seed, folder=m) for m in models]
    with sweep_folder(out, "comparison", {"dataset": dataset, "flat": flat}):
        write_plan(out, {"dataset": dataset, "flat": flat, "models": opts,
                         "train_options": {**train_options, "seed": seed}, "jobs": jobs,
                         "threads_per_job": threads})
        results = run_jobs(todo, out, workers=jobs, threads=threads, data_dir=data_dir,
                           keep_checkpoints=keep_checkpoints, log_options=logged,
                           progress=progress)
        rows = [row(j, results[j.id]) for j in todo]
        write_tables(out, rows, dataset, command)
    return rows
