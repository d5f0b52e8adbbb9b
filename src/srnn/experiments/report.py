"""Files of a reproduction: ``results.csv`` / ``results.json`` (one row per job,
:func:`result_row` with the :data:`COLUMNS` of the CSV), ``tables.md`` (means ± standard
deviations over seeds, the paper's values beside ours, from :mod:`srnn.experiments.paper`) and
the plots (:class:`matplotlib.figure.Figure`, never pyplot, saved by
:func:`srnn.plots.save_figure`)."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srnn.experiments.paper import (
    PAPER_TABLE2,
    POSTER_D,
    POSTER_Z,
    REEXAMINE_SETS,
    SET_TITLES,
    SETS,
)
from srnn.io import atomic_write, write_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from srnn.experiments.jobs import Job

Rows = list[dict[str, Any]]
DPI = 110

COLUMNS = ["job_id", "experiment", "protocol", "set", "dataset", "modality", "model", "variant",
           "z", "d", "seed", "parameters", "bound", "test_per_step", "test_mean_of_sequences",
           "test_per_sequence",
           "valid_per_step", "recon_per_step", "kl_per_step", "cross_entropy_per_note",
           "iwae_per_step", "iwae_mean_of_sequences", "fivo_per_step", "fivo_mean_of_sequences",
           "particles", "recipe", "epochs", "best_epoch", "train_minutes", "error"]
PARTICLE_BOUNDS = ("iwae", "fivo")


def _particle_figures(res: dict[str, Any]) -> dict[str, Any]:
    """The IWAE and FIVO figures of a job's results (keys ``iwae_k100_per_step``, ...), each
    with the most particles it was tested with, and that count (``particles``; one count when
    both were run with the same)."""
    out: dict[str, Any] = {}
    counts = []
    for bound in PARTICLE_BOUNDS:
        ks = sorted(int(k[len(bound) + 2:-len("_per_step")]) for k in res
                    if k.startswith(f"{bound}_k") and k.endswith("_per_step")
                    and k[len(bound) + 2:-len("_per_step")].isdigit())
        if ks:
            key = f"{bound}_k{ks[-1]}"
            out[f"{bound}_per_step"] = res[f"{key}_per_step"]
            out[f"{bound}_mean_of_sequences"] = res.get(f"{key}_mean_of_sequences", "")
            counts.append(ks[-1])
    if counts:
        out["particles"] = "/".join(str(k) for k in sorted(set(counts)))
    return out


def result_row(job: Job, res: dict[str, Any]) -> dict[str, Any]:
    """One ``results.csv`` row: the job's settings and its test results."""
    row: dict[str, Any] = {"job_id": job.id, "dataset": job.dataset, "model": job.model,
                           "seed": job.seed, "z": "", "d": "", **job.meta, "error": ""}
    if "error" in res:
        row["error"] = res["error"]
        return row
    # Values per time step: x_dim, times the scalar steps per step of a flat view (x_dim 1).
    x_dim = res["model_options"]["x_dim"] * res.get("steps_per_step", 1)
    row.update({
        "parameters": res["parameters"],
        "bound": "exact" if res.get("bound") == "exact" else "elbo",
        "test_per_step": res["elbo_per_step"],
        "test_mean_of_sequences": res["elbo_mean_of_sequences"],
        "test_per_sequence": res.get("elbo_per_sequence", ""),  # mean of each one's total
        "valid_per_step": res["valid_elbo_per_step"],
        "recon_per_step": res["recon_per_step"],
        "kl_per_step": res["kl_per_step"],
        # The negative reconstruction term per note (binary cross-entropy of the emission).
        "cross_entropy_per_note": -res["recon_per_step"] / x_dim,
        "epochs": res["epochs"], "best_epoch": res["best_epoch"],
        "train_minutes": res["train_seconds"] / 60,
        **_particle_figures(res),
    })
    return row




def write_report(out: Path, experiment: str, rows: Rows,
                 curves: dict[str, list[dict[str, Any]]], command: str | None = None) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in COLUMNS})
    data = buf.getvalue().encode()
    atomic_write(out / "results.csv", lambda f: f.write(data))
    write_json(out / "results.json", {"experiment": experiment, "command": command,
                                      "rows": rows})
    md = tables(experiment, rows, command).encode()
    atomic_write(out / "tables.md", lambda f: f.write(md))
    plots(out, experiment, rows, curves)


# -- aggregation ---------------------------------------------------------------------------


def aggregate(rows: Rows, value: str) -> dict[tuple[str, str, str], tuple[float, float, int]]:
    """(protocol, set, variant) -> (mean, std over seeds, number of seeds) of ``value``."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in rows:
        if not r.get("error") and r.get(value) not in (None, ""):
            groups[(r["protocol"], r["set"], r["variant"])].append(float(r[value]))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan,
                len(v)) for k, v in groups.items()}


def cell(stats: tuple[float, float, int] | None, digits: int = 3) -> str:
    if stats is None:
        return "—"
    mean, std, n = stats
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
            *["| " + " | ".join(r) + " |" for r in body], ""]


def _present(rows: Rows, key: str, order: tuple[str, ...]) -> list[str]:
    seen = {r[key] for r in rows}
    return [k for k in order if k in seen]


def _variants(rows: Rows) -> list[str]:
    out: list[str] = []
    for r in rows:
        if r["variant"] not in out:
            out.append(r["variant"])
    return out


def tables(experiment: str, rows: Rows, command: str | None = None) -> str:
    if experiment == "reexamine":
        return _reexamine_tables(rows, command)
    seeds = max((r["seed"] for r in rows), default=0) + 1
    lines = [f"# srnn reproduce {experiment}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        "Test bounds in nats per time step over the whole test split (ELBO; exact for the "
        "RNN), best validation epoch. *Paper convention*: the mean over test sequences of each "
        "one's ELBO per step (the SRNN paper's code)."
        + (f" Mean ± standard deviation over {seeds} seeds." if seeds > 1 else ""), ""]
    failed = [r for r in rows if r.get("error")]
    for proto in _present(rows, "protocol", ("canonical", "fraccaro")):
        pr = [r for r in rows if r["protocol"] == proto]
        sets = _present(pr, "set", SETS)
        lines += [f"## Protocol: {proto}", ""]
        if experiment == "poster":
            lines += _poster_tables(pr, proto, sets)
        else:
            lines += _by_variant_tables(experiment, pr, proto, sets)
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{r['job_id']}`: {r['error']}" for r in failed] + [""]
    return "\n".join(lines)


def _poster_tables(rows: Rows, proto: str, sets: list[str]) -> list[str]:
    elbo = aggregate(rows, "test_per_step")
    xent = aggregate(rows, "cross_entropy_per_note")
    titles = [SET_TITLES[s] for s in sets]
    zs = [z for z in POSTER_Z if any(r["z"] == z and r["d"] == 300 for r in rows)]
    ds = [d for d in POSTER_D if any(r["d"] == d and r["z"] == 100 for r in rows)]
    out = ["Test ELBO per step against the latent size z (d = 300):", ""]
    out += _table(["z", *titles], [[str(z), *(cell(elbo.get((proto, s, f"z{z}-d300")))
                                              for s in sets)] for z in zs])
    out += ["Test ELBO per step against the GRU width d (d_t and a_t; z = 100):", ""]
    out += _table(["d", *titles], [[str(d), *(cell(elbo.get((proto, s, f"z100-d{d}")))
                                              for s in sets)] for d in ds])
    out += ["Test cross-entropy per note (the negative reconstruction term −E_q log p(x_t | "
            "z_t, d_t), per step and note) against z (d = 300):", ""]
    out += _table(["z", *titles], [[str(z), *(cell(xent.get((proto, s, f"z{z}-d300")), 4)
                                              for s in sets)] for z in zs])
    return out


def _by_variant_tables(experiment: str, rows: Rows, proto: str, sets: list[str]) -> list[str]:
    variants = _variants(rows)
    elbo = aggregate(rows, "test_per_step")
    paper_conv = aggregate(rows, "test_mean_of_sequences")
    params = aggregate(rows, "parameters")
    out = ["Test ELBO per step:", ""]
    out += _table(["data set", *variants],
                  [[SET_TITLES[s], *(cell(elbo.get((proto, s, v))) for v in variants)]
                   for s in sets])
    header = ["data set", *variants]
    with_paper = experiment == "table2" or "srnn" in variants
    if with_paper:
        header.append("paper: SRNN smooth + Res_q")
    body = []
    for s in sets:
        r = [SET_TITLES[s], *(cell(paper_conv.get((proto, s, v))) for v in variants)]
        if with_paper:
            r.append(f"{PAPER_TABLE2[s]:.2f}")
        body.append(r)
    out += ["Test ELBO, paper convention, with the published SRNN figure (Fraccaro et al. "
            "2016, Table 2: smooth + Res_q on the paper's own files, the `fraccaro` protocol" +
            ("; the paper reports no other variant on music" if experiment == "table2" else "") +
            ("" if proto == "fraccaro" else "; the canonical files differ, so this column is "
             "for orientation only") + "):", ""]
    out += _table(header, body)
    out += _particle_table(rows, proto, sets, variants, with_paper)
    out += ["Parameters:", ""]
    out += _table(["data set", *variants],
                  [[SET_TITLES[s], *(f"{params[(proto, s, v)][0]:,.0f}"
                                     if (proto, s, v) in params else "—" for v in variants)]
                   for s in sets])
    return out


def _particle_table(rows: Rows, proto: str, sets: list[str], variants: list[str],
                    with_paper: bool) -> list[str]:
    """ELBO, IWAE and FIVO of each (set, variant) that was tested with particles, per step and
    in the paper's convention; nothing when no job was."""
    tested = [r for r in rows if not r.get("error") and r.get("particles") not in (None, "")]
    if not tested:
        return []
    ks = sorted({str(r["particles"]) for r in tested})
    keys = ("test_per_step", "iwae_per_step", "fivo_per_step", "test_mean_of_sequences",
            "iwae_mean_of_sequences", "fivo_mean_of_sequences")
    stats = {k: aggregate(tested, k) for k in keys}
    header = ["data set", "variant", "ELBO", "IWAE", "FIVO", "ELBO, paper conv.",
              "IWAE, paper conv.", "FIVO, paper conv."]
    if with_paper:
        header.append("paper (ELBO, paper conv.)")
    body = []
    for s in sets:
        for v in variants:
            if (proto, s, v) not in stats["test_per_step"]:
                continue
            r = [SET_TITLES[s], v, *(cell(stats[k].get((proto, s, v))) for k in keys)]
            if with_paper:
                r.append(f"{PAPER_TABLE2[s]:.2f}")
            body.append(r)
    return [f"Test bounds of the jobs tested with particles (K = {', '.join(ks)}): the ELBO, "
            "IWAE and FIVO (multinomial resampling when the effective sample size falls below "
            "K/2) per step, and each in the paper's convention (the `fraccaro` test files are "
            "tested as whole streams under IWAE and FIVO):", "", *_table(header, body)]


# The two halves of the re-examination: (modality, heading, plot title, what a step is).
REEXAMINE_GROUPS = (
    ("music", "Music: canonical piano rolls", "Music", "time step"),
    ("speech", "Speech: FSDD and FSDD-perm, stand-ins for TIMIT and Perm-TIMIT", "Speech",
     "frame"),
)


def _bound_name(rows: Rows, variant: str) -> str:
    """What the figures of ``variant`` are: exact (the RNNs) or an ELBO (the SRNNs)."""
    kinds = {r["bound"] for r in rows if r["variant"] == variant and not r.get("error")}
    return "/".join("exact" if k == "exact" else "ELBO" for k in sorted(kinds)) or "—"


def _reexamine_tables(rows: Rows, command: str | None = None) -> str:
    """``tables.md`` of ``reexamine``: per group of sets (music, speech), the test figures of
    each model per set (per step; on speech per frame and per recording) and the parameter
    counts."""
    seeds = max((r["seed"] for r in rows), default=0) + 1
    lines = ["# srnn reproduce reexamine", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        "Test log-likelihood of the best validation epoch over the whole test split, in nats: "
        "exact for the RNNs, the ELBO (a lower bound) for the SRNNs (the *bound* row). Music: "
        "per time step of 88 notes; speech: per 200-sample frame, and per recording (the mean "
        "over test recordings of each one's total). On music every RNN has at most the "
        "parameters of its SRNN (F-RNN ≤ F-SRNN, RNN-hier ≤ SRNN-hier, RNN-flat ≤ SRNN-flat), "
        "as in Lai, Dai, Yang and Yoo (2019)."
        + (f" Mean ± standard deviation over {seeds} seeds." if seeds > 1 else ""), ""]
    for modality, heading, _, unit in REEXAMINE_GROUPS:
        mr = [r for r in rows if r.get("modality") == modality]
        if not mr:
            continue
        sets = _present(mr, "set", REEXAMINE_SETS)
        variants = _variants(mr)
        header = ["data set", *variants]
        bounds = ["*bound*", *(_bound_name(mr, v) for v in variants)]

        def body(key: str, digits: int = 3, mr: Rows = mr, sets: list[str] = sets,
                 variants: list[str] = variants) -> list[list[str]]:
            stats = {(k[1], k[2]): v for k, v in aggregate(mr, key).items()}
            return [[SET_TITLES[s], *(cell(stats.get((s, v)), digits) for v in variants)]
                    for s in sets]

        lines += [f"## {heading}", "", f"Test log-likelihood per {unit}:", ""]
        lines += _table(header, [bounds, *body("test_per_step")])
        if modality == "speech":
            lines += ["Test log-likelihood per recording:", ""]
            lines += _table(header, [bounds, *body("test_per_sequence", 1)])
        params = {(k[1], k[2]): v for k, v in aggregate(mr, "parameters").items()}
        lines += ["Parameters:", ""]
        lines += _table(header, [[SET_TITLES[s], *(f"{params[(s, v)][0]:,.0f}"
                                                   if (s, v) in params else "—"
                                                   for v in variants)] for s in sets])
    failed = [r for r in rows if r.get("error")]
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{r['job_id']}`: {r['error']}" for r in failed] + [""]
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------


def _reexamine_plots(out: Path, rows: Rows, curves: dict[str, list[dict[str, Any]]]
                     ) -> list[Path]:
    """``reexamine-<modality>-test.png`` (test figure per model, a panel per set) and
    ``reexamine-<modality>-curves.png`` (validation figure per epoch)."""
    written = []
    for modality, _, title, unit in REEXAMINE_GROUPS:
        mr = [r for r in rows if r.get("modality") == modality]
        if not mr:
            continue
        sets = _present(mr, "set", REEXAMINE_SETS)
        proto = mr[0]["protocol"]  # one per group: canonical (music), fsdd (speech)
        written.append(_curve_panels(out / f"reexamine-{modality}-curves.png", mr, sets,
                                     curves, proto, ylabel=f"validation figure per {unit}",
                                     title=f"{title}: training curves"))
        written.append(_variant_plot(out / f"reexamine-{modality}-test.png", mr, sets, proto,
                                     paper=False, ylabel=f"test log-likelihood per {unit}",
                                     title=f"{title}: test"))
    return written


def plots(out: Path, experiment: str, rows: Rows,
          curves: dict[str, list[dict[str, Any]]]) -> list[Path]:
    if experiment == "reexamine":
        return _reexamine_plots(out, rows, curves)
    written = []
    for proto in _present(rows, "protocol", ("canonical", "fraccaro")):
        pr = [r for r in rows if r["protocol"] == proto]
        sets = _present(pr, "set", SETS)
        if experiment == "poster":
            elbo = aggregate(pr, "test_per_step")
            xent = aggregate(pr, "cross_entropy_per_note")
            zs = [z for z in POSTER_Z if any(r["z"] == z and r["d"] == 300 for r in pr)]
            ds = [d for d in POSTER_D if any(r["d"] == d and r["z"] == 100 for r in pr)]
            written.append(_sweep_plot(
                out / f"poster-{proto}-elbo-vs-z.png", sets, zs,
                lambda s, z, a=elbo, p=proto: a.get((p, s, f"z{z}-d300")),
                "latent size z (d = 300)", "test ELBO per step", proto))
            written.append(_sweep_plot(
                out / f"poster-{proto}-elbo-vs-d.png", sets, ds,
                lambda s, d, a=elbo, p=proto: a.get((p, s, f"z100-d{d}")),
                "GRU width d (z = 100)", "test ELBO per step", proto))
            written.append(_sweep_plot(
                out / f"poster-{proto}-cross-entropy-vs-z.png", sets, zs,
                lambda s, z, a=xent, p=proto: a.get((p, s, f"z{z}-d300")),
                "latent size z (d = 300)", "test cross-entropy per note", proto))
            for s in sets:
                written.append(_curve_plot(out / f"poster-{proto}-{s}-curves.png",
                                           [r for r in pr if r["set"] == s], curves,
                                           f"SRNN on {SET_TITLES[s]} ({proto})"))
        else:
            written.append(_curve_panels(out / f"{experiment}-{proto}-curves.png", pr, sets,
                                         curves, proto))
            written.append(_variant_plot(out / f"{experiment}-{proto}-test.png", pr, sets,
                                         proto, paper=experiment == "table2"))
    return written


def _variant_plot(path: Path, rows: Rows, sets: list[str], proto: str, paper: bool,
                  ylabel: str | None = None, title: str | None = None) -> Path:
    """Test ELBO per variant, one panel per set (the paper's SRNN figure dashed, in the
    paper's convention, on its own files); ``ylabel`` and ``title`` replace the defaults."""
    variants = _variants(rows)
    key = "test_mean_of_sequences" if paper and proto == "fraccaro" else "test_per_step"
    stats = aggregate(rows, key)
    fig = _figure((3.4 * len(sets), 3.4))
    axes = fig.subplots(1, len(sets), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        vals = [stats.get((proto, s, v)) for v in variants]
        x = [i for i, v in enumerate(vals) if v is not None]
        m = [vals[i][0] for i in x]
        e = [0 if math.isnan(vals[i][1]) else vals[i][1] for i in x]
        ax.errorbar(x, m, yerr=e, fmt="o", capsize=3)
        if paper and proto == "fraccaro":
            ax.axhline(PAPER_TABLE2[s], ls="--", color="grey", label="paper, smooth + Res_q")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(variants) - 0.5)
        ax.set_title(SET_TITLES[s])
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel(ylabel or "test ELBO" + (", paper convention"
                                                   if key != "test_per_step" else " per step"))
    fig.suptitle(title or f"{proto} protocol")
    fig.tight_layout()
    return _save(fig, path)


def _sweep_plot(path: Path, sets: list[str], xs: list[int], get: Any, xlabel: str,
                ylabel: str, proto: str) -> Path:
    fig = _figure((3.2 * len(sets), 3.0))
    axes = fig.subplots(1, len(sets), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        pts = [(x, get(s, x)) for x in xs if get(s, x) is not None]
        if pts:
            x = [p[0] for p in pts]
            m = [p[1][0] for p in pts]
            e = [0 if math.isnan(p[1][1]) else p[1][1] for p in pts]
            ax.errorbar(x, m, yerr=e, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        ax.set_title(SET_TITLES[s])
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(f"SRNN, {proto} protocol")
    fig.tight_layout()
    return _save(fig, path)


def _draw_curves(ax: Any, rows: Rows, curves: dict[str, list[dict[str, Any]]]) -> None:
    colours: dict[str, Any] = {}
    for r in rows:
        c = curves.get(r["job_id"]) or []
        pts = [(ln["epoch"], ln["valid_elbo"]) for ln in c if ln.get("valid_elbo") is not None]
        if not pts:
            continue
        v = r["variant"]
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colours.get(v),
                       label=v if v not in colours else None, lw=1.2)
        colours.setdefault(v, line[0].get_color())
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if colours:
        ax.legend(fontsize=7)


def _curve_plot(path: Path, rows: Rows, curves: dict[str, list[dict[str, Any]]],
                title: str) -> Path:
    fig = _figure((5.5, 3.6))
    ax = fig.subplots()
    _draw_curves(ax, rows, curves)
    _zoom(ax, rows, curves)
    ax.set_ylabel("validation ELBO per step")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _curve_panels(path: Path, rows: Rows, sets: list[str],
                  curves: dict[str, list[dict[str, Any]]], proto: str,
                  ylabel: str = "validation ELBO per step", title: str | None = None) -> Path:
    fig = _figure((3.6 * len(sets), 3.2))
    axes = fig.subplots(1, len(sets), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        sr = [r for r in rows if r["set"] == s]
        _draw_curves(ax, sr, curves)
        _zoom(ax, sr, curves)
        ax.set_title(SET_TITLES[s])
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title or f"Training curves, {proto} protocol")
    fig.tight_layout()
    return _save(fig, path)


def _zoom(ax: Any, rows: Rows, curves: dict[str, list[dict[str, Any]]]) -> None:
    """Leave out the first epochs' far lower values so the differences that matter show."""
    vals = [ln["valid_elbo"] for r in rows for ln in curves.get(r["job_id"]) or []
            if ln.get("valid_elbo") is not None]
    if len(vals) > 4:
        hi = max(vals)
        lo = float(np.percentile(vals, 10))
        if hi > lo:
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))


def _figure(size: tuple[float, float]) -> Figure:
    """A figure of ``size`` inches on the Agg canvas (what pyplot's Agg backend gives, without
    pyplot's global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    from srnn.plots import save_figure

    return save_figure(fig, path, dpi=DPI)
