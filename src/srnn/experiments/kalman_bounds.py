"""The bounds against the exact log-likelihood of a linear-Gaussian state-space model.

    python -m srnn.experiments.kalman_bounds [--out DIR] [--reps N]

For the SRNN and the DMM holding the linear-Gaussian generative model (``srnn.linear_gaussian``)
with q trained by the ELBO on short sequences, it estimates the ELBO, IWAE_K and FIVO_K for
K = 1, 10, 100, 1000 on one short (T = 25) and one long (T = 300) sequence, each from ``reps``
independent repetitions, and compares them with the Kalman filter's log p(x). Writes
``kalman_bounds.json`` and ``kalman_bounds.md`` into DIR and prints the table.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from srnn.bounds import elbo_terms, fivo, iwae
from srnn.io import atomic_write, write_json
from srnn.linear_gaussian import (
    as_batch,
    fit_inference,
    kalman_log_likelihood,
    linear_gaussian_dmm,
    linear_gaussian_srnn,
    simulate,
)

BUILDERS = {"srnn": linear_gaussian_srnn, "dmm": linear_gaussian_dmm}


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    v = v.double()
    return float(v.mean()), float(v.std() / math.sqrt(len(v)))


@torch.no_grad()
def estimates(model, x, Ks: list[int], reps: int, seed: int) -> list[dict]:
    """Rows (bound, K, mean, se) for one sequence, ``reps`` repetitions of each estimate."""
    b = as_batch(x, reps)
    rows = []
    e = elbo_terms(model, b, generator=torch.Generator().manual_seed(seed)).elbo().sum(1)
    rows.append({"bound": "elbo", "K": 1, **dict(zip(("mean", "se"), _mean_se(e),
                                                     strict=True))})
    for K in Ks:
        for name, fn in (("iwae", iwae), ("fivo", fivo)):
            g = torch.Generator().manual_seed(seed + K + (0 if name == "iwae" else 1))
            v = fn(model, b, K, generator=g).log_likelihood
            rows.append({"bound": name, "K": K, **dict(zip(("mean", "se"), _mean_se(v),
                                                           strict=True))})
    return rows


def run(reps: int = 100, Ks: tuple[int, ...] = (1, 10, 100, 1000), lengths=(25, 300),
        seed: int = 0) -> list[dict]:
    out = []
    for name, build in BUILDERS.items():
        model = build(seed)
        fit_inference(model, [simulate(25, seed=1000 + s) for s in range(16)], seed=seed)
        model.eval()
        for T in lengths:
            x = simulate(T, seed=T)
            exact = kalman_log_likelihood(x)
            n = reps if T <= 100 else max(10, reps // 5)
            for r in estimates(model, x, list(Ks), n, seed):
                out.append({"model": name, "T": T, "exact": exact, "reps": n, **r,
                            "gap": exact - r["mean"]})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| model | T | bound | K | estimate (mean ± s.e.) | exact log p(x) | gap "
             "| gap per step |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['T']} | {r['bound'].upper()} | {r['K']} | "
                     f"{r['mean']:.3f} ± {r['se']:.3f} | {r['exact']:.3f} | {r['gap']:.3f} | "
                     f"{r['gap'] / r['T']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m srnn.experiments.kalman_bounds",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/kalman-bounds", help="directory to write")
    ap.add_argument("--reps", type=int, default=100,
                    help="repetitions per estimate on the short sequence (long: a fifth)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    t0 = time.perf_counter()
    rows = run(reps=a.reps, seed=a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows)
    write_json(out / "kalman_bounds.json", {"rows": rows, "reps": a.reps, "seed": a.seed,
                                            "seconds": time.perf_counter() - t0})
    atomic_write(out / "kalman_bounds.md", lambda f: f.write(md.encode()))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
