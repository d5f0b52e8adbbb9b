"""Is :class:`srnn.nn.fused_gru.FusedGRU` faster than ``nn.GRU`` on this CPU?

Times forward + backward (training) and forward under ``no_grad`` (evaluation) of both on the same
input with the same weights, the input's gradient included as in the models, at the paper's sizes
(I = 500 inputs, H = 300 units, 100 steps, batch 16 and 64). The two alternate round by round in
one process, so both see the same machine load; only the ratios (fused / nn.GRU, below 1 is
faster) mean anything on a shared machine: the ratio of the medians, and the median of the
rounds' own ratios.

    python -m benchmarks.gru_speed [--rounds 7] [--iters 3] [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from srnn.nn.fused_gru import FusedGRU

SHAPES = [(16, 100, 500, 300), (64, 100, 500, 300)]  # (B, T, I, H)


def gflop(B: int, T: int, I: int, H: int, train: bool) -> float:  # noqa: E741
    """Matmul work: the input and recurrent products, and three times that with the backward."""
    forward = 2 * B * T * 3 * H * (I + H)
    return (3 if train else 1) * forward / 1e9


def timer(gru: nn.Module, x: torch.Tensor, train: bool) -> Callable[[int], float]:
    def run(iters: int) -> float:
        t = time.perf_counter()
        for _ in range(iters):
            if train:
                out, h = gru(x)
                (out.sum() + h.sum()).backward()
            else:
                with torch.no_grad():
                    gru(x)
        return (time.perf_counter() - t) / iters
    return run


def compare(B: int, T: int, I: int, H: int, rounds: int, iters: int) -> dict:  # noqa: E741
    torch.manual_seed(0)
    ref = nn.GRU(I, H, batch_first=True)
    fused = FusedGRU(I, H)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I, requires_grad=True)  # as in the models: the output of a layer
    row: dict = {"B": B, "T": T, "I": I, "H": H}
    for mode, train in (("train", True), ("eval", False)):
        runs = {"nn_gru": timer(ref, x, train), "fused": timer(fused, x, train)}
        for run in runs.values():  # warm-up
            run(1)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(rounds):
            for k, run in runs.items():
                times[k].append(run(iters))
        med = {k: statistics.median(v) for k, v in times.items()}
        paired = statistics.median(f / g for f, g in zip(times["fused"], times["nn_gru"],
                                                           strict=True))
        work = gflop(B, T, I, H, train)
        row[mode] = {"seconds_nn_gru": med["nn_gru"], "seconds_fused": med["fused"],
                     "ratio_fused_to_nn_gru": med["fused"] / med["nn_gru"],
                     "ratio_median_of_rounds": paired,
                     "gflops_nn_gru": work / med["nn_gru"], "gflops_fused": work / med["fused"]}
        print(f"B={B:3d} {mode:5s}: nn.GRU {1e3 * med['nn_gru']:7.1f} ms "
              f"({work / med['nn_gru']:5.1f} GFLOP/s), fused {1e3 * med['fused']:7.1f} ms "
              f"({work / med['fused']:5.1f} GFLOP/s), ratio {med['fused'] / med['nn_gru']:.3f} "
              f"(of rounds {paired:.3f})",
              flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=3, help="calls per timed round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/gru_speed.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [compare(*shape, a.rounds, a.iters) for shape in SHAPES]
    result = {"threads": torch.get_num_threads(), "rounds": a.rounds, "iters": a.iters,
              "torch": torch.__version__, "shapes": rows}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
