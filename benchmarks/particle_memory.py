"""Peak memory and time of IWAE / FIVO with K particles on the longest pieces of a data set.

    python -m benchmarks.particle_memory [--dataset musedata] [--pieces 16] [--bound iwae]
                                         [--samples 100] [--out benchmarks/particle_memory.json]

A paper-size SRNN (untrained: memory and time do not depend on the weights) evaluates the
``--pieces`` longest test pieces; prints and writes the bound, the seconds and the peak
resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from srnn.data import load_dataset
from srnn.data.sequences import Split
from srnn.evaluate import evaluate_particle_bound
from srnn.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="musedata")
    ap.add_argument("--pieces", type=int, default=16)
    ap.add_argument("--bound", default="iwae", choices=["iwae", "fivo"])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/particle_memory.json")
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    test = load_dataset(a.dataset).test.joined_streams()
    order = sorted(range(len(test)), key=lambda i: -len(test.x[i]))[: a.pieces]
    sub = Split(x=[test.x[i] for i in order], u=[test.u[i] for i in order])
    torch.manual_seed(0)
    model = build_model("srnn", x_dim=test.x[0].shape[1])
    t0 = time.perf_counter()
    res = evaluate_particle_bound(model, sub, a.bound, a.samples)
    out = {"dataset": a.dataset, "pieces": len(order), "lengths": [len(x) for x in sub.x],
           "steps": sub.steps, "bound": a.bound, "samples": a.samples, "threads": a.threads,
           "seconds": time.perf_counter() - t0,
           "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "result": res}
    print(json.dumps(out, indent=2))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
