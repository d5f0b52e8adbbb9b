"""Where the time of a training update (or an evaluation) goes, and the best it could reach.

Profiles a few updates of a model at its default (paper) size with ``torch.profiler`` and splits
their time into

* **batched products**: matrix products over all B x T steps at once (z-independent work, the
  emission, their gradients, and the weight gradients of the time loops' layers),
* **per-step products**: products with B rows (or B as the inner dimension, weight gradients)
  inside the time loops (the GRU recurrences, the z-recursion),
* **other operators**: element-wise work, concatenations, copies, reductions, Adam,
* **outside operators**: what the profiler's operators do not cover (Python, autograd engine),

and measures each distinct product shape alone, in a tight loop, at the same thread count. The
**ceiling** is the fraction of the matmul peak an update would reach if it were nothing but its
matrix products, each at the rate that shape reaches alone: no implementation of the same
computation with these products can beat it.

    python -m benchmarks.profile_update [--model srnn] [--batch 16] [--threads 2] [--steps 100]
        [--mode train|eval] [--repeats 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.throughput import matmul_peak, workload

MATMUL_OPS = {"aten::mm": 0, "aten::addmm": 1, "aten::addmm_": 1}  # index of the (m, k) operand


def product_shape(name: str, shapes: list) -> tuple[int, int, int] | None:
    """(m, k, n) of a matrix product event, from its recorded input shapes."""
    if name not in MATMUL_OPS:
        return None
    i = MATMUL_OPS[name]
    a, b = shapes[i], shapes[i + 1]
    if len(a) != 2 or len(b) != 2:
        return None
    return a[0], a[1], b[1]


def isolated_rate(m: int, k: int, n: int, seconds: float = 0.2) -> float:
    """GFLOP/s of ``[m, k] @ [k, n]`` alone in a loop: the best of 5 timed runs."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    flop = 2 * m * k * n
    reps = max(3, int(seconds * 5e10 / flop))
    a @ b
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, flop * reps / (time.perf_counter() - t) / 1e9)
    return best


def profile_update(model_name: str, batch_size: int, threads: int, steps: int, mode: str,
                   repeats: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    peak = matmul_peak("cpu")["peak"]
    _, update, evaluate = workload(model_name, batch_size, steps, "cpu")
    n = batch_size * steps

    fn = update if mode == "train" else evaluate
    for _ in range(2):
        fn()
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        profiled_wall = (time.perf_counter() - t) / repeats
    events = [e for e in prof.events() if e.device_type.name == "CPU"]
    batched_rows = n
    time_us: dict[str, float] = defaultdict(float)
    products: dict[tuple[int, int, int], dict[str, float]] = {}
    flops = {"batched": 0.0, "per_step": 0.0}
    others: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        shape = product_shape(e.name, e.input_shapes)
        if shape is None:
            time_us["other"] += e.self_cpu_time_total
            others[e.name] += e.self_cpu_time_total
            counts[e.name] += 1
            continue
        kind = "batched" if max(shape[:2]) >= batched_rows else "per_step"
        time_us[kind] += e.self_cpu_time_total
        p = products.setdefault(shape, {"calls": 0, "us": 0.0, "kind": kind})
        p["calls"] += 1
        p["us"] += e.self_cpu_time_total
        flops[kind] += 2 * shape[0] * shape[1] * shape[2]
    total_us = profiled_wall * 1e6 * repeats
    time_us["outside"] = max(0.0, total_us - sum(time_us.values()))
    # The ceiling: every product at the rate its shape reaches alone.
    rows = []
    ceiling_s = 0.0
    for (m, k, nn), p in sorted(products.items(), key=lambda kv: -kv[1]["us"]):
        rate = isolated_rate(m, k, nn)
        f = 2 * m * k * nn * p["calls"]
        ceiling_s += f / rate / 1e9
        rows.append({"m": m, "k": k, "n": nn, "kind": p["kind"], "calls": p["calls"] / repeats,
                     "in_update_gflops": f / p["us"] / 1e3, "alone_gflops": rate,
                     "ms_per_update": p["us"] / 1e3 / repeats})
    peak = max(peak, matmul_peak("cpu")["peak"])
    model_flops = (flops["batched"] + flops["per_step"]) / repeats
    wall = statistics.median(walls)
    ceiling_s /= repeats
    return {
        "model": model_name, "batch": batch_size, "threads": threads, "steps": steps,
        "mode": mode, "peak_gflops": peak, "seconds_median": wall,
        "profiled_seconds": profiled_wall, "matmul_gflop": model_flops / 1e9,
        "fraction_of_peak": model_flops / wall / 1e9 / peak,
        "share": {k: v / total_us for k, v in time_us.items()},
        "other_calls_per_update": sum(counts.values()) / repeats,
        "other_mean_us": time_us["other"] / max(1, sum(counts.values())),
        "matmul_rate_gflops": {k: flops[k] / time_us[k] / 1e3 for k in flops if time_us[k]},
        "flop_share_per_step": flops["per_step"] / (flops["batched"] + flops["per_step"]),
        "ceiling_seconds": ceiling_s,
        "ceiling_fraction_of_peak": model_flops / ceiling_s / 1e9 / peak,
        "products": rows,
        "other_operators": [
            {"name": k, "calls": counts[k] / repeats, "ms_per_update": v / 1e3 / repeats}
            for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:15]],
    }


def report(r: dict[str, Any]) -> str:
    s = r["share"]
    lines = [
        f"{r['model']} {r['mode']}, batch {r['batch']}, {r['threads']} thread(s): "
        f"{r['seconds_median'] * 1e3:.0f} ms per {r['mode'] == 'train' and 'update' or 'pass'}"
        f" = {100 * r['fraction_of_peak']:.0f} % of the {r['peak_gflops']:.0f} GFLOP/s peak",
        f"  time: batched products {100 * s.get('batched', 0):.0f} %, per-step products "
        f"{100 * s.get('per_step', 0):.0f} %, other operators {100 * s.get('other', 0):.0f} % "
        f"({r['other_calls_per_update']:,.0f} calls, {r['other_mean_us']:.1f} us each), "
        f"outside operators {100 * s.get('outside', 0):.0f} %",
        "  product rates in the update: " + ", ".join(
            f"{k} {v:.0f} GFLOP/s" for k, v in r["matmul_rate_gflops"].items())
        + f"; per-step products hold {100 * r['flop_share_per_step']:.0f} % of the FLOPs",
        f"  ceiling (only the products, each at its rate alone): "
        f"{100 * r['ceiling_fraction_of_peak']:.0f} % of the peak",
        "  | m | k | n | kind | calls | ms/update | GFLOP/s in update | alone |",
        "  |---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for p in r["products"][:12]:
        lines.append(f"  | {p['m']} | {p['k']} | {p['n']} | {p['kind']} | {p['calls']:.0f} | "
                     f"{p['ms_per_update']:.1f} | {p['in_update_gflops']:.0f} | "
                     f"{p['alone_gflops']:.0f} |")
    lines.append("  other operators (ms per update, calls): " + ", ".join(
        f"{o['name']} {o['ms_per_update']:.1f} ({o['calls']:.0f})"
        for o in r["other_operators"][:10]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srnn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--mode", choices=("train", "eval"), default="train")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the figures as JSON")
    a = ap.parse_args()
    r = profile_update(a.model, a.batch, a.threads, a.steps, a.mode, a.repeats)
    print(report(r))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(r, f, indent=2)
        print(f"written {a.out}")


if __name__ == "__main__":
    main()
