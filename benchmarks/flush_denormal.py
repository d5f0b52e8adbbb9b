"""Does ``torch.set_flush_denormal(True)`` speed up SRNN training on this CPU?

Times training updates (forward, backward, Adam) of the paper-size SRNN (batch 16, 100 steps,
88 notes) with denormals flushed and kept, alternating in one process so both see the same
machine load, and reports medians, their ratio and the fp32 matmul rate measured alongside.

    python -m benchmarks.flush_denormal [--checkpoint RUN_DIR/last.pt] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from srnn.bounds import elbo_terms
from srnn.models import SRNN, Batch, SRNNConfig


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--updates", type=int, default=5, help="updates per timed repeat")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--checkpoint", default=None,
                    help="start from a trained run's checkpoint (RUN_DIR/last.pt, kept by "
                         "srnn train --keep-checkpoints): model and Adam state, where "
                         "denormals actually occur")
    ap.add_argument("--out", default="benchmarks/flush_denormal.json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = SRNN(SRNNConfig())
    opt = torch.optim.Adam(model.parameters(), eps=1e-4)
    if a.checkpoint:
        from srnn.train.checkpoint import load_checkpoint

        state = load_checkpoint(a.checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    x = (torch.rand(16, 100, 88) < 0.045).float()
    u = torch.zeros_like(x)
    u[:, 1:] = x[:, :-1]
    batch = Batch(x, u, torch.ones(16, 100))

    def updates() -> float:
        t = time.perf_counter()
        for _ in range(a.updates):
            loss = -elbo_terms(model, batch).per_step()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return 16 * 100 * a.updates / (time.perf_counter() - t)

    for flag in (True, False):  # warm-up, and train a little so weights leave initialisation
        torch.set_flush_denormal(flag)
        updates()
    rates: dict[bool, list[float]] = {True: [], False: []}
    peaks = []
    for _ in range(a.repeats):
        for flag in (True, False):
            torch.set_flush_denormal(flag)
            rates[flag].append(updates())
        peaks.append(matmul_gflops())
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    result = {"steps_per_second_flush": on, "steps_per_second_no_flush": off,
              "speedup": on / off, "matmul_gflops_median": statistics.median(peaks),
              "threads": torch.get_num_threads(),
              "checkpoint": a.checkpoint, "repeats": a.repeats, "updates": a.updates}
    print(json.dumps(result, indent=2))
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
