"""The cost of the flat view: a training update of RNN-flat and SRNN-flat against the RNN and the
SRNN on the same data, per original time step.

One process, one batch of ``--batch`` training windows of ``--window`` original steps cut from
canonical JSB (88 notes), the same windows for every model: as they are (x_dim 88) and in the
flat view (:mod:`srnn.data.flat`: 88 scalar steps per step, x_dim 1). Each model is the
paper-size configuration; an update is what the trainer does (the annealed ELBO's loss,
backward, gradient clipping, Adam). The updates of the four models are interleaved, ``--repeats``
rounds after one warm-up round, so each ratio is measured under the same machine load; the
figures are medians.

    OMP_NUM_THREADS=1 python -m benchmarks.flat_cost [--models rnn,srnn] [--batch 16]
        [--window 25] [--repeats 5] [--threads 1] [--data-dir DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch


def jsb_windows(batch: int, window: int, data_dir: str | None) -> list[np.ndarray]:
    """The first ``batch`` training windows of exactly ``window`` steps of canonical JSB."""
    from srnn.data import load_dataset
    from srnn.data.batching import windows

    xs, _ = windows(load_dataset("jsb", data_dir).train, window)
    full = [x for x in xs if len(x) == window][:batch]
    if len(full) < batch:
        raise SystemExit(f"JSB has only {len(full)} windows of {window} steps")
    return full


def main() -> None:
    from srnn.data.batching import pad_batch
    from srnn.data.flat import flatten_split
    from srnn.data.sequences import Split
    from srnn.models import build_model
    from srnn.train.objectives import make_objective

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="rnn,srnn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--window", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="benchmarks/flat_cost.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)

    plain = Split.from_targets(jsb_windows(a.batch, a.window, a.data_dir))
    flat = flatten_split(plain)
    batches = {False: pad_batch(plain.x, plain.u), True: pad_batch(flat.x, flat.u)}
    objective = make_objective("elbo")
    runs: dict[tuple[str, bool], Any] = {}
    for name in a.models.split(","):
        for is_flat in (False, True):
            torch.manual_seed(0)
            model = build_model(name, x_dim=1 if is_flat else 88)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
            runs[(name, is_flat)] = (model, opt)

    def update(key: tuple[str, bool]) -> float:
        model, opt = runs[key]
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = objective(model, batches[key[1]], None, 0.2)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        return time.perf_counter() - t

    times: dict[tuple[str, bool], list[float]] = {k: [] for k in runs}
    for r in range(a.repeats + 1):  # round 0 is the warm-up
        for key in runs:
            dt = update(key)
            if r:
                times[key].append(dt)
        print(f"round {r}: " + ", ".join(f"{n}{'-flat' if f else ''} {times[(n, f)][-1]:.3f} s"
                                         for n, f in runs if r), flush=True)
    steps = a.batch * a.window  # original steps per update
    rows = []
    for name, is_flat in runs:
        med = statistics.median(times[(name, is_flat)])
        base = statistics.median(times[(name, False)])
        rows.append({"model": f"{name}-flat" if is_flat else name, "x_dim": 1 if is_flat else 88,
                     "model_steps_per_update": steps * (88 if is_flat else 1),
                     "update_seconds_median": med,
                     "ms_per_original_step": 1e3 * med / steps,
                     "time_ratio_to_unflat": med / base,
                     "update_seconds": times[(name, is_flat)],
                     "parameters": runs[(name, is_flat)][0].num_parameters()})
    print("\n| model | update (median) | ms per original step | time / same model unflat |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['update_seconds_median']:.3f} s | "
              f"{r['ms_per_original_step']:.3f} | {r['time_ratio_to_unflat']:.1f}x |")
    info = {"torch": torch.__version__, "machine": platform.machine(), "threads": a.threads,
            "batch": a.batch, "window": a.window, "repeats": a.repeats,
            "command": "OMP_NUM_THREADS=1 python -m benchmarks.flat_cost " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()
                if k not in ("out", "data_dir") and v is not None)}
    with open(a.out, "w") as f:
        json.dump({"info": info, "rows": rows}, f, indent=2)
    print(f"\nwritten {a.out}")


if __name__ == "__main__":
    main()
