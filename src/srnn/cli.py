"""Command-line interface: a thin layer that parses options and calls the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from srnn.data.music import CANONICAL, FRACCARO
from srnn.errors import SRNNError

DATASET_HELP = ("data set: bach (embedded default, built from the music21 corpus), the canonical "
                f"{', '.join(CANONICAL)}, or the SRNN paper's files {', '.join(FRACCARO)}")


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="directory holding the data sets (default: $SRNN_DATA_DIR, else the "
                        "per-user cache directory)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice)")


def _parser() -> argparse.ArgumentParser:
    from srnn.models.srnn import SRNNConfig
    from srnn.train.trainer import TrainConfig

    m, t = SRNNConfig(), TrainConfig()
    ap = argparse.ArgumentParser(
        prog="srnn", description="Stochastic recurrent neural networks: train, evaluate, sample.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tr = sub.add_parser("train", help="train a model and evaluate it on the test split",
                        description="Train a model, keep the checkpoint with the best "
                        "validation ELBO, and write its test ELBO to RUN_DIR/results.json.")
    tr.add_argument("--dataset", default="bach", help=DATASET_HELP + " (default: bach)")
    tr.add_argument("--model", default="srnn", help="model name (default: srnn)")
    tr.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    _add_data_dir(tr)
    g = tr.add_argument_group("model (defaults: the paper's music setup)")
    g.add_argument("--z-dim", type=int, default=m.z_dim, help=f"size of z_t (default {m.z_dim})")
    g.add_argument("--d-dim", type=int, default=m.d_dim,
                   help=f"size of the forward GRU state d_t (default {m.d_dim})")
    g.add_argument("--a-dim", type=int, default=m.a_dim,
                   help=f"size of the inference state a_t (default {m.a_dim})")
    g.add_argument("--hidden", type=int, default=m.hidden,
                   help=f"hidden units of each MLP (default {m.hidden})")
    g.add_argument("--feature-layers", type=int, default=m.feature_layers,
                   help="layers of the shared feature network on x and u; 0 feeds raw x and u "
                        f"(default {m.feature_layers})")
    g.add_argument("--feature-dim", type=int, default=m.feature_dim,
                   help=f"units per feature layer (default {m.feature_dim})")
    g.add_argument("--filtering", action="store_true",
                   help="filtering posterior q(z_t|z_{t-1},d_t,x_t) instead of smoothing")
    g.add_argument("--no-res-q", action="store_true", help="disable the Res_q mean (eq. 12)")
    g.add_argument("--dropout", type=float, default=m.dropout,
                   help=f"dropout on features, d_t and a_t (default {m.dropout})")
    g.add_argument("--shared-heads", action="store_true",
                   help="mean and variance of p and q share one hidden layer (default: two "
                        "networks, eq. 3)")
    g.add_argument("--init", choices=["paper", "torch"], default=m.init,
                   help="weight initialisation: paper (Glorot-normal, orthogonal GRUs) or "
                        f"torch (PyTorch defaults) (default {m.init})")
    o = tr.add_argument_group("optimisation (defaults: the paper's code)")
    o.add_argument("--epochs", type=int, default=None,
                   help=f"maximum epochs ({t.epochs}; with --resume, extends the saved run)")
    o.add_argument("--batch-size", type=int, default=t.batch_size,
                   help=f"sequences per batch ({t.batch_size}; stream files use 16)")
    o.add_argument("--window", type=int, default=t.window,
                   help=f"training window in steps ({t.window})")
    o.add_argument("--lr", type=float, default=t.lr, help=f"Adam learning rate ({t.lr})")
    o.add_argument("--adam-eps", type=float, default=t.adam_eps, help=f"Adam eps ({t.adam_eps})")
    o.add_argument("--clip-norm", type=float, default=t.clip_norm,
                   help=f"total gradient-norm clip ({t.clip_norm})")
    o.add_argument("--kl-start", type=float, default=t.kl_start,
                   help=f"initial KL weight, annealed linearly to 1 ({t.kl_start})")
    o.add_argument("--kl-epochs", type=float, default=t.kl_epochs,
                   help=f"epochs of KL annealing, 0 = none ({t.kl_epochs})")
    o.add_argument("--lr-decay", type=float, default=t.lr_decay,
                   help=f"divide the LR by this per epoch ... ({t.lr_decay})")
    o.add_argument("--lr-decay-start", type=int, default=t.lr_decay_start,
                   help=f"... after this epoch ({t.lr_decay_start})")
    o.add_argument("--patience", type=int, default=t.patience,
                   help=f"early stopping: epochs without a better validation ELBO ({t.patience})")
    o.add_argument("--seed", type=int, default=t.seed, help=f"random seed ({t.seed})")
    o.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after this many minutes, then test (with --resume: "
                        "counted from the run's start)")
    o.add_argument("--subset", type=int, default=None,
                   help="use only the first N sequences of each split (quick checks)")
    tr.add_argument("--resume", action="store_true",
                    help="continue RUN_DIR from its last checkpoint (its saved settings win)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads(tr)

    ev = sub.add_parser("evaluate", help="recompute a run's ELBO from its best checkpoint",
                        description="Evaluate the best checkpoint of RUN_DIR on a split and "
                        "print the ELBO per step and its parts.")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--split", default="test", choices=["train", "valid", "test"],
                    help="split to evaluate (default test)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the posterior samples")
    _add_data_dir(ev)
    _add_threads(ev)

    sa = sub.add_parser("sample", help="draw piano rolls from a trained model",
                        description="Ancestral sampling from the generative model of RUN_DIR; "
                        "writes MIDI (.mid) or a NumPy array (.npy) of binary piano rolls; needs "
                    "only the run directory.")
    sa.add_argument("run_dir", metavar="RUN_DIR")
    sa.add_argument("--out", required=True, metavar="FILE",
                    help="FILE.mid (with --num N > 1: FILE-0.mid, ...) or FILE.npy")
    sa.add_argument("--length", type=int, default=64, help="time steps per sample (64)")
    sa.add_argument("--num", type=int, default=1, help="number of samples (1)")
    sa.add_argument("--seed", type=int, default=0, help="random seed (0)")
    sa.add_argument("--step-seconds", type=float, default=None,
                    help="seconds per time step in the MIDI file (default: 0.5 for quarter-note "
                         "sets, 0.25 for eighth-note sets, 0.3 for the Fraccaro files)")

    da = sub.add_parser("data", help="list or download data sets")
    dsub = da.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="show which data sets are available locally")
    _add_data_dir(dl)
    dd = dsub.add_parser("download", help="download a canonical set from its original page",
                         description="Fetch a canonical set (jsb, nottingham, musedata, piano) "
                         "from Boulanger-Lewandowski's ICML 2012 page, convert it without "
                         "executing code and check its SHA-256.")
    dd.add_argument("name", choices=list(CANONICAL))
    _add_data_dir(dd)
    return ap


def _setup_torch(threads: int | None) -> None:
    import torch

    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def _cmd_train(a: argparse.Namespace) -> dict:
    from srnn.train.trainer import train

    model_options = {"z_dim": a.z_dim, "d_dim": a.d_dim, "a_dim": a.a_dim, "hidden": a.hidden,
                     "feature_layers": a.feature_layers, "feature_dim": a.feature_dim,
                     "smoothing": not a.filtering, "res_q": not a.no_res_q,
                     "dropout": a.dropout, "two_networks": not a.shared_heads, "init": a.init}
    extra = {} if a.epochs is None else {"epochs": a.epochs}
    if a.max_minutes is not None:
        extra["max_minutes"] = a.max_minutes
    return train(a.dataset, a.out, model=a.model, data_dir=a.data_dir, resume=a.resume,
                 progress=False if a.no_progress else None, model_options=model_options,
                 **extra, batch_size=a.batch_size, window=a.window, lr=a.lr,
                 adam_eps=a.adam_eps, clip_norm=a.clip_norm, kl_start=a.kl_start,
                 kl_epochs=a.kl_epochs, lr_decay=a.lr_decay, lr_decay_start=a.lr_decay_start,
                 patience=a.patience, seed=a.seed, subset=a.subset)


def _cmd_evaluate(a: argparse.Namespace) -> dict:
    from srnn.evaluate import evaluate_elbo
    from srnn.train.trainer import load_trained

    model, cfg, data = load_trained(a.run_dir, data_dir=a.data_dir)
    res = evaluate_elbo(model, data.split(a.split), cfg.train.eval_batch_size, seed=a.seed)
    return {"dataset": cfg.dataset, "model": cfg.model, "split": a.split, **res}


def _cmd_sample(a: argparse.Namespace) -> dict:
    from srnn.sampling import write_samples

    paths = write_samples(a.run_dir, a.out, length=a.length, num=a.num, seed=a.seed,
                          step_seconds=a.step_seconds)
    return {"written": [str(p) for p in paths]}


def _cmd_data(a: argparse.Namespace) -> dict | None:
    from srnn.data import available
    from srnn.paths import data_dir

    if a.data_command == "list":
        found = available(a.data_dir)
        print(f"data directory: {data_dir(a.data_dir)}")
        for name, path in found.items():
            print(f"  {name:22s} {path if path else '-- not available'}")
        return None
    from srnn.data.download import download

    path = download(a.name, a.data_dir)
    return {"written": str(path)}


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    _setup_torch(getattr(a, "threads", None))
    commands = {"train": _cmd_train, "evaluate": _cmd_evaluate, "sample": _cmd_sample,
                "data": _cmd_data}
    try:
        out = commands[a.command](a)
    except SRNNError as e:
        print(f"srnn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srnn: interrupted", file=sys.stderr)
        return 130
    if out is not None:
        try:
            print(json.dumps(out, indent=2), flush=True)
        except BrokenPipeError:  # e.g. piped into `head`: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
