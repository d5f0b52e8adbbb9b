"""``srnn reproduce``: the experiments of the SRNN paper and poster, one command each.

- ``poster``: SRNN on the four polyphonic sets with z in {2, 10, 25, 50, 100, 200} at d = 300
  and d in {50, 300, 500} at z = 100 (d sets both GRU widths, d_t and a_t).
- ``table2``: SRNN smoothing / filtering x Res_q on / off on the four sets (Fraccaro et al.
  2016, Table 2; the paper reports the music sets for smooth + Res_q only).
- ``compare``: SRNN against VRNN, STORN and the RNN on the four sets at matched parameter
  counts.
- ``reexamine``: the re-examination of Lai, Dai, Yang and Yoo (2019): the RNN and Dai's
  simplified SRNN with factorised and autoregressive ("hier") emissions, and the δ-RNN-random
  on speech, on MuseData, Nottingham, FSDD and FSDD-perm, under their recipe (cosine learning
  rate, KL weight rising per update), each RNN no larger than its SRNN on music.

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

from srnn.data.pianoroll import PITCHES
from srnn.data.registry import lookup
from srnn.data.speech import FRAME_SIZE
from srnn.errors import ConfigError
from srnn.experiments.compare import plan
from srnn.experiments.jobs import Job, run_jobs, sweep_folder
from srnn.experiments.paper import (
    DAI_EPOCHS,
    DAI_RECIPE,
    FLAT_VARIANTS,
    POSTER_D,
    POSTER_Z,
    REEXAMINE_SETS,
    REEXAMINE_VARIANTS,
    SETS,
    TABLE2_VARIANTS,
    DaiVariant,
)
from srnn.experiments.report import result_row, write_report
from srnn.experiments.sizes import count_parameters, match_parameters
from srnn.models import model_fields
from srnn.nn.emissions import EMISSION_OPTIONS, emission_options
from srnn.train.run_dir import RunDirectory, write_plan

log = logging.getLogger("srnn.reproduce")

EXPERIMENTS = ("poster", "table2", "compare", "reexamine")
PROTOCOLS = ("canonical", "fraccaro")

# quick: minutes on a laptop (16 sequences, or streams, of each split; 4 epochs); full: the
# paper's recipe (the training defaults: 50 epochs, KL annealed over 20, LR decay after 20).
BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 4, "kl_epochs": 1.0, "subset": 16},
    "full": {},
}

# How each job trains (applied under the budget: the quick budget's epochs and subset win).
# paper: the training defaults, the paper's recipe. dropout: dropout 0.2 on the layers before
# the outputs, the prior's and posterior's heads shared, PyTorch's initialisation, a slower
# learning-rate decay (divided by 1.05 per epoch after epoch 40) and early stopping deciding
# (patience 25, at most 200 epochs); chosen on the validation split of JSB (README, Results).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"model": {}, "train": {}},
    "dropout": {"model": {"dropout": 0.2, "two_networks": False, "init": "torch"},
                "train": {"epochs": 200, "lr_decay_start": 40, "lr_decay": 1.05,
                          "patience": 25}},
}

COMPARE_MODELS = ("srnn", "vrnn", "storn", "rnn")

# reexamine: Dai et al.'s recipe in both. quick: 4 epochs on 16 sequences, the KL weight
# annealed over the first epoch (at 5e-5 per update it would hardly leave 0.2); full:
# DAI_UPDATES updates (DAI_EPOCHS of each set) without early stopping.
REEXAMINE_BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {**{k: v for k, v in DAI_RECIPE.items() if k != "kl_rate"}, "epochs": 4,
              "kl_epochs": 1.0, "subset": 16},
    "full": dict(DAI_RECIPE),
}
# Where each RNN is kept no larger than its SRNN (Dai et al. do so on MIDI); elsewhere every
# model keeps its default sizes, and the tables list the counts.
MATCHED_MODALITIES = ("music",)
X_DIM = {"music": PITCHES, "speech": FRAME_SIZE}  # values per step: notes, frame samples


def dataset_name(protocol: str, name: str) -> str:
    return name if protocol == "canonical" else f"{name}-fraccaro"


def protocols(protocol: str) -> tuple[str, ...]:
    if protocol == "both":
        return PROTOCOLS
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose canonical, fraccaro or both")
    return (protocol,)


def recipe(name: str) -> dict[str, dict[str, Any]]:
    """The model and training options of :data:`RECIPES` ``name``."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose {', '.join(RECIPES)}")
    return RECIPES[name]


def train_options(budget: str, epochs: int | None = None,
                  max_minutes: float | None = None, recipe_name: str = "paper"
                  ) -> dict[str, Any]:
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose {', '.join(BUDGETS)}")
    opts = {**recipe(recipe_name)["train"], **BUDGETS[budget]}
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


def reexamine_variants(modality: str, flat: bool = True) -> list[DaiVariant]:
    """The models of the re-examination run on data of ``modality`` ("music", "speech"),
    with the flat ones (RNN-flat, SRNN-flat: ``RunConfig.flat``) when ``flat``."""
    chosen = (*REEXAMINE_VARIANTS, *(FLAT_VARIANTS if flat else ()))
    return [v for v in chosen if modality in v.emissions]


def reexamine_settings(modality: str, overrides: dict[str, Any] | None = None,
                       flat: bool = True) -> list[tuple[DaiVariant, dict[str, Any]]]:
    """Each model of the re-examination on data of ``modality`` with its model options: its
    emission, the ``overrides`` it has (an emission's own options, e.g. ``ar_hidden``, only
    where the emission reads them), and, on music (:data:`MATCHED_MODALITIES`), the widths of
    each RNN scaled so that it has at most as many parameters as its SRNN
    (``DaiVariant.at_most``; Dai et al. 2019). Widths set in ``overrides`` are not scaled. A
    flat variant is counted with one value per step."""
    overrides = dict(overrides or {})
    variants = reexamine_variants(modality, flat)
    known = set().union(*(model_fields(v.model) for v in variants))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"no model of 'reexamine' has the option(s) {', '.join(unknown)}")
    opts: dict[str, dict[str, Any]] = {}
    for v in variants:
        emission = v.emissions[modality]
        takes = set(model_fields(v.model)) - (set(EMISSION_OPTIONS) -
                                             set(emission_options(emission)))
        opts[v.label] = {**{k: x for k, x in overrides.items() if k in takes},
                         "emission": emission}
    if modality in MATCHED_MODALITIES:
        by_label = {v.label: v for v in variants}
        for v in variants:
            if v.at_most is None:
                continue
            x_dim = 1 if dict(v.run_options).get("flat") else X_DIM[modality]
            ref = by_label[v.at_most]
            target = count_parameters(ref.model, {"x_dim": x_dim, **opts[ref.label]})
            matched = match_parameters(v.model, target, {"x_dim": x_dim, **opts[v.label]},
                                       at_most=True)
            opts[v.label] = {k: x for k, x in matched.items() if k != "x_dim"}
    return [(v, opts[v.label]) for v in variants]


def reexamine_train_options(budget: str, name: str, epochs: int | None = None,
                            max_minutes: float | None = None) -> dict[str, Any]:
    """The training options of a re-examination job on set ``name``: Dai et al.'s recipe, and
    the budget's epochs (full: DAI_UPDATES updates of the set, without early stopping)."""
    if budget not in REEXAMINE_BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose {', '.join(REEXAMINE_BUDGETS)}")
    opts = dict(REEXAMINE_BUDGETS[budget])
    if budget == "full":
        opts["epochs"] = DAI_EPOCHS[name]
    if epochs is not None:
        opts["epochs"] = epochs
    if budget == "full":
        opts["patience"] = opts["epochs"]  # no early stopping: the best epoch is tested
    if max_minutes is not None:
        opts["max_minutes"] = max_minutes
    return opts


def reexamine_jobs(sets: tuple[str, ...] = REEXAMINE_SETS, budget: str = "quick",
                   seeds: int = 1, epochs: int | None = None, max_minutes: float | None = None,
                   overrides: dict[str, Any] | None = None, flat: bool = True
                   ) -> list[Job]:
    """Every job of ``reexamine``: models x data sets x seeds."""
    bad = [s for s in sets if s not in REEXAMINE_SETS]
    if bad:
        raise ConfigError(f"unknown set(s) {', '.join(bad)} for reexamine; choose from "
                          f"{', '.join(REEXAMINE_SETS)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, not {seeds}")
    jobs = []
    for name in sets:
        entry = lookup(name)
        topts = reexamine_train_options(budget, name, epochs, max_minutes)
        for v, mopts in reexamine_settings(entry.modality.value, overrides, flat):
            for seed in range(seeds):
                # A run option (flat) reaches train() with the training options and enters
                # the id, as under `srnn compare --flat`.
                jobs.append(Job(
                    label=f"{name}-{v.slug}", dataset=name, model=v.model, model_options=mopts,
                    train_options={**topts, **dict(v.run_options)}, seed=seed,
                    meta={"experiment": "reexamine", "protocol": entry.protocol, "set": name,
                          "modality": entry.modality.value, "variant": v.label}))
    return jobs


def default_sets(experiment: str) -> tuple[str, ...]:
    """The data sets an experiment runs on unless told otherwise."""
    return REEXAMINE_SETS if experiment == "reexamine" else SETS


def variant_slug(variant: str) -> str:
    """The form of a variant's label in job ids and ``--variants``: ``smooth + Res_q`` ->
    ``smooth-resq``."""
    return variant.replace(" + ", "-").replace(" ", "-").replace("_", "").lower()


def seeds_per_set(seeds: int | dict[str, int], sets: tuple[str, ...]) -> dict[str, int]:
    """Seeds of each set: one count for all, or a count per set (sets not named get 1)."""
    per = ({s: seeds for s in sets} if isinstance(seeds, int)
           else {s: int(seeds.get(s, 1)) for s in sets})
    if not isinstance(seeds, int):
        unknown = sorted(set(seeds) - set(sets))
        if unknown:
            raise ConfigError(f"--seeds names set(s) {', '.join(unknown)} that are not among "
                              f"--sets ({', '.join(sets)})")
    bad = {s: n for s, n in per.items() if n < 1}
    if bad:
        raise ConfigError("--seeds must be at least 1, not "
                          + ", ".join(f"{n} ({s})" for s, n in bad.items()))
    return per


def make_jobs(experiment: str, protocol: str = "canonical", sets: tuple[str, ...] | None = None,
              budget: str = "quick", seeds: int | dict[str, int] = 1,
              epochs: int | None = None, max_minutes: float | None = None,
              overrides: dict[str, Any] | None = None, flat: bool = True,
              recipe_name: str = "paper", variants: tuple[str, ...] | None = None
              ) -> list[Job]:
    """Every job of ``experiment``: data sets x protocols x settings x seeds, set by set
    (``sets``: :func:`default_sets`; ``seeds``: a count, or a count per set; ``flat``: with
    reexamine's flat variants; ``recipe_name``: :data:`RECIPES`, whose model options yield to
    ``overrides``; ``variants``: only the settings with these labels or slugs)."""
    sets = tuple(sets) if sets else default_sets(experiment)
    if experiment == "reexamine":
        if protocol != "canonical":
            raise ConfigError("reexamine runs on the canonical MIDI sets and FSDD: --protocol "
                              f"{protocol} does not apply")
        if recipe_name != "paper" or variants:
            raise ConfigError("reexamine runs Dai et al.'s recipe and all its models: "
                              "--recipe and --variants do not apply")
        if not isinstance(seeds, int):
            raise ConfigError("reexamine takes one --seeds count for all its sets")
        return reexamine_jobs(sets, budget, seeds, epochs, max_minutes, overrides, flat)
    bad = [s for s in sets if s not in SETS]
    if bad:
        raise ConfigError(f"unknown set(s) {', '.join(bad)}; choose from {', '.join(SETS)}")
    n_seeds = seeds_per_set(seeds, sets)
    topts = train_options(budget, epochs, max_minutes, recipe_name)
    chosen = settings(experiment, {**recipe(recipe_name)["model"], **(overrides or {})})
    if variants:
        names = {v: (v, variant_slug(v)) for v, *_ in chosen}
        unknown = [x for x in variants if not any(x in n for n in names.values())]
        if unknown:
            raise ConfigError(f"{experiment} has no variant(s) {', '.join(unknown)}; choose "
                              f"from {', '.join(variant_slug(v) for v in names)}")
        chosen = [c for c in chosen if any(x in names[c[0]] for x in variants)]
    jobs = []
    for name in sets:
        for proto in protocols(protocol):
            for variant, model, mopts, cols in chosen:
                for seed in range(n_seeds[name]):
                    ds = dataset_name(proto, name)
                    jobs.append(Job(
                        label=f"{ds}-{variant_slug(variant)}", dataset=ds, model=model,
                        model_options=mopts, train_options=topts, seed=seed,
                        meta={"experiment": experiment, "protocol": proto, "set": name,
                              "variant": variant, "recipe": recipe_name, **cols}))
    return jobs


def reproduce(experiment: str, out: str | Path, protocol: str = "canonical",
              sets: tuple[str, ...] | None = None, budget: str = "quick",
              seeds: int | dict[str, int] = 1,
              epochs: int | None = None, max_minutes: float | None = None, workers: int = 1,
              backend: str = "local", threads: int = 1,
              data_dir: str | os.PathLike[str] | None = None,
              slurm: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
              command: str | None = None, flat: bool = True, recipe_name: str = "paper",
              variants: tuple[str, ...] | None = None,
              bounds: tuple[tuple[str, int], ...] = (), report_only: bool = False,
              keep_checkpoints: bool = False, tensorboard: bool = False,
              tensorboard_every: int | None = None, progress: bool | None = None
              ) -> list[dict[str, Any]]:
    """Run (or resume) ``experiment`` into ``out`` and write its results, tables and plots
    (``flat``: reexamine with its flat variants; ``bounds``: (``iwae`` or ``fivo``, particles)
    each finished job is also tested with, see :class:`~srnn.experiments.jobs.JobRun`;
    ``report_only``: train nothing, write the tables of the jobs finished so far;
    ``keep_checkpoints``: finished jobs stay resumable, see
    :func:`~srnn.experiments.jobs.run_jobs`; ``tensorboard``: each job's training logs to
    TensorBoard in its run directory, a sample every ``tensorboard_every`` epochs, so
    ``tensorboard --logdir OUT`` shows them side by side (not in the job ids); ``progress``:
    the bar of jobs finished)."""
    out = Path(out)
    sets = tuple(sets) if sets else default_sets(experiment)
    jobs = make_jobs(experiment, protocol, sets, budget, seeds, epochs, max_minutes,
                     overrides, flat, recipe_name, variants)
    if report_only:  # the finished jobs' tables, while the sweep may still run
        runs = {j.id: RunDirectory(j.run_dir(out)) for j in jobs}
        done = [j for j in jobs if runs[j.id].status == "done"]
        rows = [result_row(j, runs[j.id].results()) for j in done]
        if not rows:
            raise ConfigError(f"{out}: none of the {len(jobs)} jobs has finished yet")
        curves = {j.id: runs[j.id].metrics() for j in done}
        write_report(out, experiment, rows, curves,
                     f"{command} ({len(done)} of {len(jobs)} jobs finished)" if command
                     else None)
        return rows
    with sweep_folder(out, "reproduction", {"experiment": experiment}):
        write_plan(out, {
            "experiment": experiment, "protocol": protocol, "sets": list(sets),
            "budget": budget, "recipe": recipe_name, "seeds": seeds,
            "bounds": [list(b) for b in bounds], "command": command, "backend": backend,
            "workers": workers, "threads_per_job": threads,
            "jobs": [{"id": j.id, **j.settings(), "meta": j.meta} for j in jobs]})
        logged: dict[str, Any] = {"tensorboard": True} if tensorboard else {}
        if tensorboard and tensorboard_every is not None:
            logged["tensorboard_every"] = tensorboard_every
        results = run_jobs(jobs, out, workers=workers, backend=backend, threads=threads,
                           data_dir=data_dir, slurm=slurm, bounds=bounds,
                           keep_checkpoints=keep_checkpoints, log_options=logged,
                           progress=progress)
        rows = [result_row(j, results[j.id]) for j in jobs]
        curves = {j.id: RunDirectory(j.run_dir(out)).metrics() for j in jobs}
        write_report(out, experiment, rows, curves, command)
    return rows
