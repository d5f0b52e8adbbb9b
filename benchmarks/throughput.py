"""Training and evaluation throughput of every model, as a fraction of this machine's matmul peak.

For each model (its default, paper-size configuration: 88 notes), emission (``--emissions``:
bernoulli by default; made, nade: the autoregressive emissions at their default sizes; gauss,
gmm, ar-rnn, delta-random: real-valued frames of ``--frame`` values, 200 as FSDD's), batch
size and thread count, a fresh process measures: the fp32 matmul rate (the peak, median of several
shapes' best), the model's FLOPs per time step (counted by ``torch.utils.flop_counter`` for one
training update and one evaluation), the median time of training updates (forward, backward,
gradient clipping, Adam) and of evaluations (forward, no gradient) after warm-up, time steps
per second, model FLOP/s and their fraction of the peak, and the process's peak memory. The
peak is measured before and after the model and the larger value is used, so the fraction
compares like with like on a machine whose load changes.

    python -m benchmarks.throughput [--models srnn,vrnn,storn,rnn] [--emissions bernoulli]
        [--batch 16,64] [--threads 1,2] [--steps 100] [--repeats 7] [--device cpu|cuda]
        [--epoch jsb] [--out FILE.json]

Each row's ``train_time_ratio`` is its update time over the factorised emission's of the same
model, batch and threads: bernoulli for the binary emissions, gmm (else gauss) for the
real-valued ones.

``--interleave ROUNDS`` also times each model's training updates with all the emissions in one
process, alternating them, and gives the ratios of those medians (``interleaved`` in the JSON).

``--epoch jsb`` also times training epochs of the paper-size SRNN on canonical JSB (the trainer's
loop, best of two after a warm-up epoch) against the time the epoch's FLOPs (each batch at its
padded size) need at the matmul peak.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import tempfile
import time
from typing import Any

import torch

MATMUL_SHAPES = ((1024, 1024, 1024), (1600, 500, 1500), (6400, 500, 1500))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of fp32 matrix products: per shape the best of ``repeats`` timings (the
    machine's capability under its current load), and the maximum over shapes."""
    rates = {}
    for m, k, n in MATMUL_SHAPES:
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        reps = max(1, int(2e9 / (2 * m * k * n)))
        a @ b
        best = 0.0
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            _sync(device)
            best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9)
        rates[f"{m}x{k}x{n}"] = best
    rates["peak"] = max(rates.values())
    return rates


def _batch(b: int, steps: int, x_dim: int, device: str, binary: bool = True):
    from srnn.models import Batch

    g = torch.Generator().manual_seed(0)
    if binary:  # a piano roll with about four notes a step
        x = (torch.rand(b, steps, x_dim, generator=g) < 0.045).float()
    else:  # standardised frames
        x = torch.randn(b, steps, x_dim, generator=g)
    u = torch.zeros_like(x)
    u[:, 1:] = x[:, :-1]
    return Batch(x, u, torch.ones(b, steps)).to(device)


def workload(model_name: str, batch_size: int, steps: int, device: str,
             emission: str = "bernoulli", frame: int = 200):
    """The paper-size model with ``emission``, a random batch (a piano roll of 88 notes for a
    binary emission, frames of ``frame`` values otherwise), and the two timed passes: a
    training update (forward, backward, clipping, Adam) and an evaluation (forward, no
    gradient)."""
    from srnn.bounds import elbo_terms
    from srnn.models import build_model
    from srnn.nn.emissions import EMISSIONS

    binary = EMISSIONS[emission].binary
    x_dim = 88 if binary else frame
    model = build_model(model_name, x_dim=x_dim, emission=emission).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    batch = _batch(batch_size, steps, x_dim, device, binary)
    n = batch_size * steps

    def update() -> None:
        opt.zero_grad(set_to_none=True)
        loss = -elbo_terms(model, batch).objective(1.0) / n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()

    def evaluate() -> None:
        with torch.no_grad():
            elbo_terms(model, batch).elbo()

    return model, update, evaluate


def measure(model_name: str, batch_size: int, steps: int, threads: int, repeats: int,
            device: str, emission: str = "bernoulli", frame: int = 200) -> dict[str, Any]:
    """One configuration, in the calling process."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    peak_before = matmul_peak(device)
    model, update, evaluate = workload(model_name, batch_size, steps, device, emission, frame)
    n = batch_size * steps

    with FlopCounterMode(display=False) as fc:
        update()
    train_flops = fc.get_total_flops() / n
    with FlopCounterMode(display=False) as fc:
        evaluate()
    eval_flops = fc.get_total_flops() / n

    def timed(fn) -> float:
        for _ in range(2):  # warm-up
            fn()
        times = []
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    t_train = timed(update)
    t_eval = timed(evaluate)
    peak_after = matmul_peak(device)
    peak = max(peak_before["peak"], peak_after["peak"])
    out = {
        "model": model_name, "emission": emission, "batch": batch_size, "steps": steps,
        "x_dim": model.config.x_dim,
        "threads": threads, "device": device, "parameters": model.num_parameters(),
        "train_mflop_per_step": train_flops / 1e6, "eval_mflop_per_step": eval_flops / 1e6,
        "train_seconds_median": t_train, "eval_seconds_median": t_eval,
        "train_steps_per_s": n / t_train, "eval_steps_per_s": n / t_eval,
        "train_gflops": train_flops * n / t_train / 1e9,
        "eval_gflops": eval_flops * n / t_eval / 1e9,
        "peak_gflops": peak, "peak_before": peak_before, "peak_after": peak_after,
    }
    out["train_fraction_of_peak"] = out["train_gflops"] / peak
    out["eval_fraction_of_peak"] = out["eval_gflops"] / peak
    if device == "cuda":
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:  # the process's peak resident set (a fresh process per configuration)
        out["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def interleaved(model_name: str, emissions: list[str], batch_size: int, steps: int,
                rounds: int, device: str, frame: int = 200) -> list[dict[str, Any]]:
    """Training updates of one model with each of ``emissions``, in one process and
    alternating (one update of each per round, ``rounds`` rounds after two of warm-up), so
    that the machine's drift falls on all alike: the median update time of each, and its
    ratio to the factorised emission's (as :func:`add_ratios`)."""
    torch.manual_seed(0)
    built = {e: workload(model_name, batch_size, steps, device, e, frame) for e in emissions}
    updates = {e: update for e, (_, update, _) in built.items()}
    times: dict[str, list[float]] = {e: [] for e in emissions}
    for r in range(rounds + 2):
        for e, update in updates.items():
            _sync(device)
            t = time.perf_counter()
            update()
            _sync(device)
            if r >= 2:
                times[e].append(time.perf_counter() - t)
    rows = [{"model": model_name, "emission": e, "batch": batch_size, "steps": steps,
             "threads": torch.get_num_threads(), "device": device,
             "x_dim": built[e][0].config.x_dim, "rounds": rounds,
             "train_seconds_median": statistics.median(v)} for e, v in times.items()]
    add_ratios(rows, train_only=True)
    return rows


def _interleaved_star(args: tuple) -> list[dict[str, Any]]:
    torch.set_num_threads(args[-1])
    torch.set_flush_denormal(True)
    return interleaved(*args[:-1])


def _measure_star(args: tuple) -> dict[str, Any]:
    return measure(*args)


def epoch_time(dataset: str, threads: int, device: str,
               data_dir: str | None = None) -> dict[str, Any]:
    """One training epoch of the paper-size SRNN on ``dataset`` (the trainer's own loop) against
    the time its FLOPs need at the matmul peak measured before and after it."""
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from srnn.bounds import elbo_terms
    from srnn.data.batching import training_batches
    from srnn.train.trainer import RunConfig, TrainConfig, Trainer

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    peak_before = matmul_peak(device)
    cfg = RunConfig(dataset=dataset, train=TrainConfig(device=device), data_dir=data_dir)
    # Only _train_epoch runs: nothing is written into the run directory.
    trainer = Trainer(cfg, tempfile.gettempdir(), progress=False)
    # FLOPs of the epoch: each batch counted at its padded size (what the loop computes).
    flops = 0.0
    rng = np.random.default_rng(trainer.tc.seed)
    for batch in training_batches(trainer.data.train, trainer.tc.batch_size,
                                  trainer.tc.window, rng):
        batch = batch.to(trainer.device)
        with FlopCounterMode(display=False) as fc:
            loss = -elbo_terms(trainer.model, batch).objective(1.0)
            loss.backward()
        flops += fc.get_total_flops()
        trainer.model.zero_grad(set_to_none=True)
    trainer._train_epoch()  # warm-up epoch
    times = []
    for _ in range(2):
        _sync(device)
        t = time.perf_counter()
        trainer._train_epoch()
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = max(peak_before["peak"], matmul_peak(device)["peak"])
    seconds = min(times)
    return {"dataset": dataset, "threads": threads, "device": device,
            "epoch_seconds": seconds, "epoch_gflop": flops / 1e9, "peak_gflops": peak,
            "seconds_at_peak": flops / peak / 1e9, "ratio_to_peak_time": seconds * peak * 1e9
            / flops}


FACTORISED = ("bernoulli", "gmm", "gauss")  # the baselines of the ratios, in this preference


def add_ratios(rows: list[dict[str, Any]], train_only: bool = False) -> None:
    """``train_time_ratio`` / ``eval_time_ratio``: each row's median update / evaluation time
    over that of the factorised emission's row of the same model, batch, threads and frame
    size (bernoulli for piano rolls; gmm, else gauss, for real frames), when measured;
    ``baseline`` names it."""
    base: dict[tuple, dict[str, Any]] = {}
    for name in reversed(FACTORISED):  # the preferred baseline written last
        for r in rows:
            if r["emission"] == name:
                base[(r["model"], r["batch"], r["threads"], r["x_dim"])] = r
    for r in rows:
        b = base.get((r["model"], r["batch"], r["threads"], r["x_dim"]))
        if b is not None:
            r["baseline"] = b["emission"]
            r["train_time_ratio"] = r["train_seconds_median"] / b["train_seconds_median"]
            if not train_only:
                r["eval_time_ratio"] = r["eval_seconds_median"] / b["eval_seconds_median"]


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | emission | batch | threads | train steps/s | MFLOP/step | train GFLOP/s | "
            "of peak | train time / factorised | eval steps/s | eval of peak | peak GFLOP/s | "
            "memory MiB |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = r.get("train_time_ratio")
        vs = "–" if ratio is None else f"{ratio:.2f}x ({r['baseline']})"
        lines.append(
            f"| {r['model']} | {r['emission']} | {r['batch']} | "
            f"{r['threads']} | {r['train_steps_per_s']:,.0f} | "
            f"{r['train_mflop_per_step']:.1f} | {r['train_gflops']:.1f} | "
            f"{100 * r['train_fraction_of_peak']:.0f} % | "
            f"{vs} | {r['eval_steps_per_s']:,.0f} | "
            f"{100 * r['eval_fraction_of_peak']:.0f} % | {r['peak_gflops']:.1f} | "
            f"{r['peak_memory_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="srnn,vrnn,storn,rnn")
    ap.add_argument("--emissions", default="bernoulli",
                    help="comma-separated emissions, each measured for every model")
    ap.add_argument("--batch", default="16,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--frame", type=int, default=200,
                    help="values per frame for the real-valued emissions (200)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="also time each model's updates with all --emissions alternating in "
                         "one process, this many rounds (0: not)")
    ap.add_argument("--epoch", default="jsb",
                    help="also time a training epoch of this data set ('' to skip)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="benchmarks/throughput.json")
    a = ap.parse_args()
    configs = [(m, int(b), a.steps, int(t), a.repeats, a.device, e, a.frame)
               for m in a.models.split(",") for e in a.emissions.split(",")
               for b in a.batch.split(",") for t in a.threads.split(",")]
    rows = []
    ctx = mp.get_context("spawn")
    for cfg in configs:  # one fresh process each: clean peak memory, no warm caches between
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(_measure_star, (cfg,)))
        r = rows[-1]
        print(f"{r['model']:6s} {r['emission']:9s} batch {r['batch']:3d} threads "
              f"{r['threads']}: train "
              f"{r['train_steps_per_s']:8.0f} steps/s ({100 * r['train_fraction_of_peak']:.0f} "
              f"% of {r['peak_gflops']:.0f} GFLOP/s), eval {r['eval_steps_per_s']:8.0f} steps/s "
              f"({100 * r['eval_fraction_of_peak']:.0f} %)", flush=True)
    mixed: list[dict[str, Any]] = []
    for m in (a.models.split(",") if a.interleave else []):
        for b in a.batch.split(","):
            for t in a.threads.split(","):
                with ctx.Pool(1) as pool:
                    part = pool.apply(_interleaved_star, ((
                        m, a.emissions.split(","), int(b), a.steps, a.interleave, a.device,
                        a.frame, int(t)),))
                mixed += part
                print(f"{m} batch {b} threads {t}, interleaved: " + ", ".join(
                    f"{r['emission']} {1e3 * r['train_seconds_median']:.0f} ms"
                    + (f" ({r['train_time_ratio']:.2f}x {r['baseline']})"
                       if "train_time_ratio" in r else "") for r in part), flush=True)
    epochs = []
    for t in (a.threads.split(",") if a.epoch else []):
        with ctx.Pool(1) as pool:
            e = pool.apply(epoch_time, (a.epoch, int(t), a.device, a.data_dir))
        epochs.append(e)
        print(f"{a.epoch} epoch, {t} threads: {e['epoch_seconds']:.1f} s, "
              f"{e['ratio_to_peak_time']:.2f}x the {e['seconds_at_peak']:.1f} s its "
              f"{e['epoch_gflop']:.0f} GFLOP need at {e['peak_gflops']:.0f} GFLOP/s", flush=True)
    add_ratios(rows)
    print()
    print(table(rows))
    info = {"torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "cpus": mp.cpu_count(), "device": a.device,
            "command": "python -m benchmarks.throughput " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()
                if k != "out" and v not in (None, ""))}
    with open(a.out, "w") as f:
        json.dump({"info": info, "rows": rows, "interleaved": mixed, "epochs": epochs}, f,
                  indent=2)
    print(f"\nwritten {a.out}")


if __name__ == "__main__":
    main()
