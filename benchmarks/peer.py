"""Training and evaluation speed of our models against a public PyTorch peer, DVAE's SRNN and VRNN.

The peer is XiaoyuBIE1994/DVAE (GPL-3.0) at commit d94d2133a85f55184c39569ccea3970fa6856f40. It
is never copied into this project: its three files that timing needs (``dvae/model/srnn.py``,
``dvae/model/vrnn.py``, ``dvae/utils/loss.py``) are loaded at run time, one file at a time with
importlib (not through the package ``__init__`` files, which import every model and the speech
metrics), from the checkout named by ``--peer-src`` or the ``PEER_SRC`` environment variable
(the folder that holds ``dvae/``). Without it the peer is skipped and only our side is timed.

Both sides get the very same batch: ``numpy.random.default_rng(0).random((T, B, 88)) < 0.5`` as
float32, time-major (T, B, 88) for the peer, transposed to batch-first for us with the inputs
u_t = x_{t-1} (u_1 = 0) and a mask of ones. Sizes are the SRNN paper's polyphonic-music ones:
88 notes, z 100, recurrent states 300, MLP layers 500, no dropout; the peer uses ReLU and LSTMs,
ours the paper's clipped leaky ReLU and GRUs. The peer's constructor
arguments are those of the speed harness (``time_peer_srnn.py``): its "srnn" configuration
(u through a 2x500 MLP before the forward RNN, a 2x500 MLP on [h_t, x_t] before the backward
RNN, one hidden layer of 500 in the prior, posterior and emission) and its "vrnn". Our
``srnn-no-res-q`` row (the SRNN without eq. 12's residual posterior mean) is compared with the
same peer SRNN, which has no Res_q.

    python -m benchmarks.peer [--models srnn,srnn-no-res-q,vrnn] [--threads 1,2] [--rounds 3]
        [--batch 16] [--steps 100] [--warmup 3] [--timed 20] [--interleave] [--peer-src DIR]
        [--out benchmarks/peer.json]

A training step is zero_grad, forward, loss, backward and an Adam(lr 1e-3) step, without
gradient clipping on either side. The peer's loss is the Bernoulli NLL of its output taken as
logits (``binary_cross_entropy_with_logits``, summed) plus its own analytic Gaussian KL
(``loss_KLD``), divided by T*B; ours is minus the one-sample ELBO
(``elbo_terms(model, batch).objective_sum(1.0)``, summed over the steps) over B*T: both are
nats per time step. An evaluation is the forward pass and
the loss under ``torch.no_grad()`` in eval mode. Each figure is the median time of ``--timed``
steps after ``--warmup`` steps, reported as time steps (B*T) per second. Our worker also sets
``torch.set_flush_denormal(True)`` (as ``benchmarks.throughput`` does; the peer's worker, like
the harness, leaves the default), measures this machine's fp32 matmul peak in the same process
(before and after timing, the larger kept) and counts the model's FLOPs per time step with
``torch.utils.flop_counter``, so that the JSON also has our fraction of the peak.

For each model and thread count, ``--rounds`` rounds each run the peer worker and then our worker,
each in a fresh process, one after the other and never side by side, so that the machine's
drift falls on both alike. Per round the ratios ours / peer of train and eval steps per second;
per (model, threads) the median of each side over the rounds, the median of the per-round ratios
and the ratio of the medians. With ``--interleave`` each round is one fresh process holding both
models, whose updates alternate step by step (a peer update, one of ours, ...; then the
evaluations likewise): on a machine whose load drifts within seconds this compares like with
like far better than two processes one after the other (denormals are then flushed for both).
A Markdown table is printed and the raw per-round figures are
written to ``--out`` (atomically).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

PEER_REPO = "XiaoyuBIE1994/DVAE"
PEER_COMMIT = "d94d2133a85f55184c39569ccea3970fa6856f40"
PEER_FILES = ("dvae/model/srnn.py", "dvae/model/vrnn.py", "dvae/utils/loss.py")
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT = "RESULT "

X_DIM, Z_DIM, RNN_DIM, MLP_DIM = 88, 100, 300, 500
LR = 1e-3

# The peer's constructor arguments: the speed harness's "srnn" and "vrnn" configurations.
PEER_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "srnn": ("SRNN", dict(
        x_dim=X_DIM, z_dim=Z_DIM, activation="relu",
        dense_x_h=[MLP_DIM, MLP_DIM], dim_RNN_h=RNN_DIM, num_RNN_h=1,
        dense_hx_g=[MLP_DIM, MLP_DIM], dim_RNN_g=RNN_DIM, num_RNN_g=1,
        dense_gz_z=[MLP_DIM], dense_hz_z=[MLP_DIM], dense_hz_x=[MLP_DIM],
        dropout_p=0.0, beta=1.0, device="cpu")),
    "vrnn": ("VRNN", dict(
        x_dim=X_DIM, z_dim=Z_DIM, activation="relu",
        dense_x=[MLP_DIM], dense_z=[MLP_DIM],
        dense_hx_z=[MLP_DIM], dense_hz_x=[MLP_DIM], dense_h_z=[MLP_DIM],
        dim_RNN=RNN_DIM, num_RNN=1,
        dropout_p=0.0, beta=1.0, device="cpu")),
}

# Our rows: (registry name, build options) and the peer configuration each is compared with.
OURS: dict[str, tuple[str, dict[str, Any]]] = {
    "srnn": ("srnn", {}),
    "srnn-no-res-q": ("srnn", {"res_q": False}),
    "vrnn": ("vrnn", {}),
}
PEER_OF = {"srnn": "srnn", "srnn-no-res-q": "srnn", "vrnn": "vrnn"}


# ---------------------------------------------------------------------------- the peer's source

def find_peer(src: str | None) -> str | None:
    """The peer checkout to use: ``src``, else ``$PEER_SRC``; None when neither names a folder
    holding the peer's files."""
    src = src or os.environ.get("PEER_SRC")
    if not src:
        return None
    if not all(os.path.isfile(os.path.join(src, *rel.split("/"))) for rel in PEER_FILES):
        return None
    return os.path.abspath(src)


def skip_message(src: str | None) -> str:
    given = src or os.environ.get("PEER_SRC")
    why = ("no peer source given" if not given
           else f"{given!r} has no {' / '.join(PEER_FILES)}")
    return (f"peer skipped ({why}): only srnn's side is timed and the ratios are absent. To time "
            f"the peer, extract {PEER_REPO} at commit {PEER_COMMIT} and pass the folder holding "
            f"dvae/ as --peer-src DIR or in the PEER_SRC environment variable.")


def peer_commit(src: str | None) -> str | None:
    """The peer's commit when known: ``$PEER_COMMIT``, else read from the checkout's .git."""
    if os.environ.get("PEER_COMMIT"):
        return os.environ["PEER_COMMIT"]
    if src is None:
        return None
    head = Path(src, ".git", "HEAD")
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return Path(src, ".git", ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def load_peer_module(src: str, rel: str) -> ModuleType:
    """Load one peer file on its own, bypassing the package ``__init__`` files."""
    path = os.path.join(src, *rel.split("/"))
    name = "peer_" + rel.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------ workers

def batch_array(batch: int, steps: int) -> np.ndarray:
    """The timing batch, time-major (T, B, 88), binary float32: the same array for both sides."""
    rng = np.random.default_rng(0)
    return (rng.random((steps, batch, X_DIM)) < 0.5).astype(np.float32)


def _median_time(fn: Callable[[], float], warmup: int, timed: int) -> tuple[float, list[float],
                                                                           list[float]]:
    """Median seconds of ``timed`` calls after ``warmup``; all timed seconds; the losses."""
    times, losses = [], []
    for i in range(warmup + timed):
        t = time.perf_counter()
        losses.append(fn())
        dt = time.perf_counter() - t
        if i >= warmup:
            times.append(dt)
    return statistics.median(times), times, losses


def _flops_per_step(fn: Callable[[], float], n: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / n


def _finish(out: dict[str, Any], n: int, train: tuple[float, list[float], list[float]],
            evaluate: tuple[float, list[float], list[float]]) -> dict[str, Any]:
    t_train, train_times, losses = train
    t_eval, eval_times, eval_losses = evaluate
    out.update({
        "train_seconds_median": t_train, "eval_seconds_median": t_eval,
        "train_steps_per_s": n / t_train, "eval_steps_per_s": n / t_eval,
        "train_seconds": train_times, "eval_seconds": eval_times,
        "loss_first": losses[0], "loss_last": losses[-1], "eval_loss": eval_losses[-1],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__, "num_threads": torch.get_num_threads(),
        "flush_denormal": out.get("flush_denormal", False),
    })
    return out


class _Side:
    """One side's timed passes: a training update and an evaluation (each returning the loss),
    how to put its model in training or evaluation mode, and what is known about it."""

    def __init__(self, update: Callable[[], float], evaluate: Callable[[], float],
                 net: torch.nn.Module, info: dict[str, Any]) -> None:
        self.update, self.evaluate, self.net, self.info = update, evaluate, net, info


def _peer_side(model: str, batch: int, steps: int, src: str) -> _Side:
    """The peer model compared with our ``model``."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    cls, kwargs = PEER_CONFIGS[PEER_OF[model]]
    mod = load_peer_module(src, f"dvae/model/{cls.lower()}.py")
    peer_loss = load_peer_module(src, "dvae/utils/loss.py")
    net = getattr(mod, cls)(**kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    x = torch.from_numpy(batch_array(batch, steps))
    n = batch * steps

    def loss_fn() -> torch.Tensor:
        logits = net(x)  # (T, B, 88), a plain linear head
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = peer_loss.loss_KLD(net.z_mean, net.z_logvar, net.z_mean_p, net.z_logvar_p)
        return (recon + kl) / n

    def update() -> float:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss.item()

    def evaluate() -> float:
        with torch.no_grad():
            return loss_fn().item()

    info = {"side": "peer", "model": model, "peer_class": cls, "batch": batch, "steps": steps,
            "parameters": sum(p.numel() for p in net.parameters())}
    return _Side(update, evaluate, net, info)


def _srnn_side(model: str, batch: int, steps: int) -> _Side:
    """Our ``model`` (a row name of :data:`OURS`) with its FLOPs per time step."""
    from srnn.bounds import elbo_terms
    from srnn.models import Batch, build_model

    torch.manual_seed(0)
    name, options = OURS[model]
    net = build_model(name, x_dim=X_DIM, **options)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    x = torch.from_numpy(np.ascontiguousarray(batch_array(batch, steps).transpose(1, 0, 2)))
    u = torch.zeros_like(x)
    u[:, 1:] = x[:, :-1]
    data = Batch(x, u, torch.ones(batch, steps))
    n = batch * steps

    def update() -> float:
        opt.zero_grad(set_to_none=True)
        loss = -elbo_terms(net, data).objective_sum(1.0) / n  # the peer's normalisation
        loss.backward()
        opt.step()
        return loss.item()

    def evaluate() -> float:
        with torch.no_grad():
            return (-elbo_terms(net, data).objective_sum(1.0) / n).item()

    net.train()
    train_flops = _flops_per_step(update, n)
    net.eval()
    eval_flops = _flops_per_step(evaluate, n)
    net.train()
    info = {"side": "srnn", "model": model, "registry_name": name, "options": options,
            "batch": batch, "steps": steps, "parameters": net.num_parameters(),
            "flush_denormal": True, "train_mflop_per_step": train_flops / 1e6,
            "eval_mflop_per_step": eval_flops / 1e6}
    return _Side(update, evaluate, net, info)


def _add_peak(out: dict[str, Any], peak_before: dict[str, float] | None,
              peak_repeats: int) -> None:
    """Our fraction of the same-process matmul peak (measured before and after, the larger)."""
    from benchmarks.throughput import matmul_peak

    if peak_before is None:
        return
    peak_after = matmul_peak("cpu", peak_repeats)
    peak = max(peak_before["peak"], peak_after["peak"])
    out.update({
        "peak_gflops": peak, "peak_before": peak_before, "peak_after": peak_after,
        "train_gflops": out["train_mflop_per_step"] * out["train_steps_per_s"] / 1e3,
        "eval_gflops": out["eval_mflop_per_step"] * out["eval_steps_per_s"] / 1e3})
    out["train_fraction_of_peak"] = out["train_gflops"] / peak
    out["eval_fraction_of_peak"] = out["eval_gflops"] / peak


def peer_worker(model: str, threads: int, batch: int, steps: int, warmup: int, timed: int,
                src: str) -> dict[str, Any]:
    """The peer model compared with our ``model``, timed in the calling process."""
    torch.set_num_threads(threads)
    side = _peer_side(model, batch, steps, src)
    side.net.train()
    train = _median_time(side.update, warmup, timed)
    side.net.eval()
    out = {**side.info, "threads": threads}
    return _finish(out, batch * steps, train, _median_time(side.evaluate, warmup, timed))


def srnn_worker(model: str, threads: int, batch: int, steps: int, warmup: int, timed: int,
                peak_repeats: int = 5) -> dict[str, Any]:
    """Our ``model`` (a row name of :data:`OURS`), timed in the calling process, with the
    same-process matmul peak and the model's FLOPs per time step."""
    from benchmarks.throughput import matmul_peak

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    peak_before = matmul_peak("cpu", peak_repeats) if peak_repeats > 0 else None
    side = _srnn_side(model, batch, steps)
    train = _median_time(side.update, warmup, timed)
    side.net.eval()
    out = _finish({**side.info, "threads": threads}, batch * steps, train,
                  _median_time(side.evaluate, warmup, timed))
    _add_peak(out, peak_before, peak_repeats)
    return out


def pair_worker(model: str, threads: int, batch: int, steps: int, warmup: int, timed: int,
                src: str, peak_repeats: int = 5) -> dict[str, Any]:
    """The peer and our ``model`` in one process, their steps alternating (a peer update, one
    of ours, ...; then the evaluations likewise), so that the machine's drift within the round
    falls on both alike. Denormals are flushed for both sides here."""
    from benchmarks.throughput import matmul_peak

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    peak_before = matmul_peak("cpu", peak_repeats) if peak_repeats > 0 else None
    sides = {"peer": _peer_side(model, batch, steps, src), "srnn": _srnn_side(model, batch, steps)}
    timings: dict[str, dict[str, list[float]]] = {k: {"train": [], "eval": []} for k in sides}
    losses: dict[str, dict[str, list[float]]] = {k: {"train": [], "eval": []} for k in sides}
    for kind in ("train", "eval"):
        for side in sides.values():
            side.net.train(kind == "train")
        for i in range(warmup + timed):
            for key, side in sides.items():
                fn = side.update if kind == "train" else side.evaluate
                t = time.perf_counter()
                losses[key][kind].append(fn())
                dt = time.perf_counter() - t
                if i >= warmup:
                    timings[key][kind].append(dt)
    out: dict[str, Any] = {"side": "pair"}
    n = batch * steps
    for key, side in sides.items():
        res = {**side.info, "threads": threads, "flush_denormal": True, "interleaved": True}
        out[key] = _finish(res, n, *(
            (statistics.median(timings[key][k]), timings[key][k], losses[key][k])
            for k in ("train", "eval")))
    _add_peak(out["srnn"], peak_before, peak_repeats)
    return out


# ------------------------------------------------------------------------------ the alternation

Runner = Callable[..., dict[str, Any]]


def measure(side: str, model: str, threads: int, settings: dict[str, Any],
            peer_src: str | None) -> dict[str, Any]:
    """One worker's measurement in the calling process (what a fresh worker process runs);
    ``settings``: batch, steps, warmup, timed and (ours only) peak_repeats."""
    common = {k: settings[k] for k in ("batch", "steps", "warmup", "timed")}
    if side in ("peer", "pair"):
        src = find_peer(peer_src)
        if src is None:
            raise SystemExit(skip_message(peer_src))
        if side == "pair":
            return pair_worker(model, threads, **common, src=src,
                               peak_repeats=settings.get("peak_repeats", 5))
        return peer_worker(model, threads, **common, src=src)
    return srnn_worker(model, threads, **common, peak_repeats=settings.get("peak_repeats", 5))


def run_worker(side: str, model: str, threads: int, settings: dict[str, Any],
               peer_src: str | None) -> dict[str, Any]:
    """One worker in a fresh process (``python -m benchmarks.peer --worker SIDE ...`` from the
    repository root); its result is the JSON of the last line of its stdout starting with
    ``RESULT ``."""
    cmd = [sys.executable, "-m", "benchmarks.peer", "--worker", side, "--models", model,
           "--threads", str(threads)]
    for k, v in settings.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    if side in ("peer", "pair"):
        assert peer_src is not None
        cmd += ["--peer-src", peer_src]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{side} worker for {model}, {threads} thread(s) failed "
                           f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def _ratio(a: float, b: float) -> float:
    return a / b


def summarise(model: str, threads: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A (model, threads) row from its rounds: each side's median over the rounds, the median
    of the per-round ratios (ours / peer) and the ratio of the medians."""
    row: dict[str, Any] = {"model": model, "peer_model": PEER_OF[model], "threads": threads,
                           "rounds": len(rounds)}
    for kind in ("train", "eval"):
        ours = statistics.median(r["srnn"][f"{kind}_steps_per_s"] for r in rounds)
        row[f"srnn_{kind}_steps_per_s"] = ours
        if all(r.get("peer") for r in rounds):
            peer = statistics.median(r["peer"][f"{kind}_steps_per_s"] for r in rounds)
            row[f"peer_{kind}_steps_per_s"] = peer
            row[f"{kind}_ratio_median_of_rounds"] = statistics.median(
                r[f"{kind}_ratio"] for r in rounds)
            row[f"{kind}_ratio_of_medians"] = _ratio(ours, peer)
    fractions = [r["srnn"]["train_fraction_of_peak"] for r in rounds
                 if "train_fraction_of_peak" in r["srnn"]]
    if fractions:
        row["srnn_train_fraction_of_peak"] = statistics.median(fractions)
        row["srnn_eval_fraction_of_peak"] = statistics.median(
            r["srnn"]["eval_fraction_of_peak"] for r in rounds)
        row["peak_gflops"] = statistics.median(r["srnn"]["peak_gflops"] for r in rounds)
    row["srnn_train_mflop_per_step"] = rounds[0]["srnn"]["train_mflop_per_step"]
    return row


def run_rounds(models: list[str], threads: list[int], rounds: int, settings: dict[str, Any],
               peer_src: str | None, runner: Runner = run_worker,
               log: Callable[[str], None] = print, interleave: bool = False
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For each model and thread count, ``rounds`` rounds of the peer worker (when ``peer_src``)
    then ours, one after the other, or (``interleave``) one worker per round that alternates
    the two step by step; the summary rows and every round's raw figures."""
    rows, raw = [], []
    for model in models:
        for t in threads:
            done = []
            for i in range(rounds):
                r: dict[str, Any] = {"model": model, "threads": t, "round": i}
                if interleave and peer_src is not None:
                    both = runner("pair", model, t, settings, peer_src)
                    r["peer"], r["srnn"] = both["peer"], both["srnn"]
                else:
                    r["peer"] = (runner("peer", model, t, settings, peer_src)
                                 if peer_src is not None else None)
                    r["srnn"] = runner("srnn", model, t, settings, peer_src)
                msg = (f"{model} threads {t} round {i + 1}/{rounds}: srnn train "
                       f"{r['srnn']['train_steps_per_s']:,.0f}, eval "
                       f"{r['srnn']['eval_steps_per_s']:,.0f} steps/s")
                if r["peer"] is not None:
                    for kind in ("train", "eval"):
                        r[f"{kind}_ratio"] = _ratio(r["srnn"][f"{kind}_steps_per_s"],
                                                    r["peer"][f"{kind}_steps_per_s"])
                    msg += (f"; peer train {r['peer']['train_steps_per_s']:,.0f}, eval "
                            f"{r['peer']['eval_steps_per_s']:,.0f} steps/s; srnn/peer "
                            f"{r['train_ratio']:.2f}x train, {r['eval_ratio']:.2f}x eval")
                log(msg)
                done.append(r)
            raw += done
            rows.append(summarise(model, t, done))
    return rows, raw


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table: steps per second of each side; ours / peer as the ratio of the
    medians with the median of the per-round ratios in brackets."""

    def num(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:,.0f}" if key in r else "–"

    def ratio(r: dict[str, Any], kind: str) -> str:
        if f"{kind}_ratio_of_medians" not in r:
            return "–"
        return (f"{r[f'{kind}_ratio_of_medians']:.2f}x "
                f"({r[f'{kind}_ratio_median_of_rounds']:.2f}x)")

    lines = ["| model | threads | peer train steps/s | srnn train steps/s | srnn/peer | "
             "peer eval | srnn eval | srnn/peer | srnn train of peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        frac = r.get("srnn_train_fraction_of_peak")
        lines.append(
            f"| {r['model']} | {r['threads']} | {num(r, 'peer_train_steps_per_s')} | "
            f"{num(r, 'srnn_train_steps_per_s')} | {ratio(r, 'train')} | "
            f"{num(r, 'peer_eval_steps_per_s')} | {num(r, 'srnn_eval_steps_per_s')} | "
            f"{ratio(r, 'eval')} | {'–' if frac is None else f'{100 * frac:.1f} %'} |")
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file in the same folder, then
    ``os.replace``)."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".peer-", suffix=".json.tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peer",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="srnn,srnn-no-res-q,vrnn",
                    help=f"comma-separated, of {', '.join(OURS)}")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds (peer then srnn) per model and thread count")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100, help="time steps T of the batch")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    ap.add_argument("--timed", type=int, default=20, help="timed steps (their median is used)")
    ap.add_argument("--peak-repeats", type=int, default=5,
                    help="timings per matmul shape of the peak (0: no peak, no fraction)")
    ap.add_argument("--peer-src", default=None,
                    help="the peer checkout (the folder holding dvae/); default $PEER_SRC")
    ap.add_argument("--out", default="benchmarks/peer.json")
    ap.add_argument("--interleave", action="store_true",
                    help="one fresh process per round that alternates the peer and srnn step "
                         "by step (default: a process for each, one after the other)")
    ap.add_argument("--worker", choices=("peer", "srnn", "pair"), default=None,
                    help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    a = parser().parse_args(argv)
    models, threads = _csv(a.models), [int(t) for t in _csv(a.threads)]
    bad = sorted(set(models) - set(OURS))
    if bad:
        raise SystemExit(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(OURS)}")
    settings = {"batch": a.batch, "steps": a.steps, "warmup": a.warmup, "timed": a.timed,
                "peak_repeats": a.peak_repeats}
    if a.worker is not None:  # one measurement, in this (fresh) process
        res = measure(a.worker, models[0], threads[0], settings, a.peer_src)
        print(RESULT + json.dumps(res), flush=True)
        return

    src = find_peer(a.peer_src)
    if src is None:
        print(skip_message(a.peer_src), flush=True)
    rows, raw = run_rounds(models, threads, a.rounds, settings, src,
                           log=lambda s: print(s, flush=True), interleave=a.interleave)
    print()
    print(table(rows))
    info = {
        "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "command": shlex.join(["python", "-m", "benchmarks.peer", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "peer": PEER_REPO if src else None, "peer_src": src,
        "peer_commit": peer_commit(src) if src else None, "peer_commit_expected": PEER_COMMIT,
        "batch": a.batch, "steps": a.steps, "x_dim": X_DIM, "warmup": a.warmup,
        "timed": a.timed, "rounds": a.rounds, "interleave": a.interleave, "lr": LR,
        "data": "numpy default_rng(0).random((T, B, 88)) < 0.5, float32",
    }
    write_json(a.out, {"info": info, "rows": rows, "rounds": raw})
    print(f"\nwritten {a.out}")


if __name__ == "__main__":
    main()
