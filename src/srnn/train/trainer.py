"""Training loop: Adam, KL annealing, gradient clipping, LR decay, early stopping, resume.

A run directory holds ``config.json``, ``metrics.jsonl`` (one line per epoch), ``best.pt``
and ``last.pt`` checkpoints and, at the end, ``results.json`` with the test ELBO.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from srnn.bounds.elbo import elbo_terms
from srnn.bounds.particles import particle_bound
from srnn.data import SequenceDataset, load_dataset
from srnn.data.batching import lane_streams, stream_batches, training_batches, windows
from srnn.errors import CheckpointError, ConfigError, TrainingError
from srnn.evaluate import evaluate_elbo
from srnn.io import append_jsonl, atomic_write, write_json
from srnn.models import MODELS, Batch, SequenceModel, build_model
from srnn.train import distributed
from srnn.train.checkpoint import (
    BEST,
    LAST,
    load_checkpoint,
    previous_path,
    save_checkpoint,
)
from srnn.train.schedules import KLAnnealing, lr_at_epoch

log = logging.getLogger("srnn.train")


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults follow the SRNN paper's code (see README)."""

    epochs: int = 50
    batch_size: int = 16
    window: int = 100  # training windows of at most this many steps (paper: 100)
    lr: float = 1e-3
    adam_eps: float = 1e-4
    clip_norm: float = 10.0  # total gradient norm
    kl_start: float = 0.2  # KL weight at the first update ...
    kl_epochs: float = 20.0  # ... rising linearly to 1 over this many epochs (0: off)
    lr_decay: float = 1.2  # LR divided by this per epoch ...
    lr_decay_start: int = 20  # ... after this epoch
    patience: int = 10  # stop after this many epochs without a better validation ELBO
    seed: int = 0
    eval_batch_size: int = 32
    max_minutes: float | None = None  # stop training (then evaluate) after this long
    subset: int | None = None  # use only the first N train/valid/test sequences (smoke runs)
    objective: str = "elbo"  # elbo, iwae or fivo (the last two with `samples` particles)
    samples: int = 1  # particles per sequence for the iwae and fivo objectives
    tbptt: int = 0  # > 0: train on lanes of whole sequences in windows of this many steps,
    # carrying the recurrent state from window to window (0: independent windows of `window`)
    device: str = "cpu"  # or "cuda", "cuda:1", ...
    max_bad_batches: int = 20  # stop after this many batches in a row with a non-finite loss
    # or gradient (each one is skipped: no update)


@dataclass
class RunConfig:
    dataset: str
    model: str = "srnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    data_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": self.model,
                "model_options": self.model_options, "train": asdict(self.train),
                "data_dir": self.data_dir}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(dataset=d["dataset"], model=d["model"], model_options=d["model_options"],
                   train=TrainConfig(**d["train"]), data_dir=d.get("data_dir"))


SPEECH_INFO = ("rate", "frame_size", "normaliser", "permute_seed")


def data_card(data: SequenceDataset) -> dict[str, Any]:
    """What a run keeps of its data set: enough to turn model outputs back into music or
    audio without the data files (e.g. a speech set's normaliser and sample rate)."""
    card: dict[str, Any] = {"name": data.name, "protocol": data.protocol,
                            "time_step": data.time_step, "binary": data.binary, "dim": data.dim}
    card.update({k: data.info[k] for k in SPEECH_INFO if k in data.info})
    return card


def load_run_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no config.json (not a run directory)")
    return RunConfig.from_dict(json.loads(path.read_text()))


def prepare_data(cfg: RunConfig) -> SequenceDataset:
    data = load_dataset(cfg.dataset, cfg.data_dir)
    n = cfg.train.subset
    if n:
        for s in ("train", "valid", "test"):
            split = data.split(s)
            keep = n * split.streams if split.streams else n
            setattr(data, s, split.subset(keep))
    return data


def build_from_config(cfg: RunConfig, data: SequenceDataset) -> SequenceModel:
    options = dict(cfg.model_options)
    options.setdefault("x_dim", data.dim)
    if not data.binary:
        options.setdefault("emission", "gauss")
    if cfg.model not in MODELS:
        raise ConfigError(f"unknown model {cfg.model!r}; choose one of {', '.join(MODELS)}")
    try:
        return build_model(cfg.model, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


def load_model(run_dir: str | os.PathLike[str], which: str = BEST
               ) -> tuple[SequenceModel, RunConfig]:
    """The model of a run (best checkpoint by default) and its config; needs no data files
    (``config.json`` holds every model option, the data size included)."""
    cfg = load_run_config(run_dir)
    try:
        model = build_model(cfg.model, **cfg.model_options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{run_dir}/config.json: {e}") from e
    model.load_state_dict(load_checkpoint(Path(run_dir) / which)["model"])
    return model, cfg


def load_trained(run_dir: str | os.PathLike[str], which: str = BEST,
                 data_dir: str | None = None
                 ) -> tuple[SequenceModel, RunConfig, SequenceDataset]:
    """The model of a run (best checkpoint by default), its config and its data."""
    model, cfg = load_model(run_dir, which)
    if data_dir:
        cfg.data_dir = data_dir
    return model, cfg, prepare_data(cfg)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class Trainer:
    """Trains one model on one data set into ``run_dir``."""

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike[str],
                 data: SequenceDataset | None = None, progress: bool | None = None) -> None:
        self.cfg, self.tc = cfg, cfg.train
        self.run_dir = Path(run_dir)
        self.data = data if data is not None else prepare_data(cfg)
        torch.manual_seed(self.tc.seed)
        if self.tc.objective not in ("elbo", "iwae", "fivo"):
            raise ConfigError(f"unknown objective {self.tc.objective!r}; choose elbo, iwae or "
                              "fivo")
        if self.tc.samples < 1:
            raise ConfigError(f"--samples must be at least 1, not {self.tc.samples}")
        if self.tc.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {self.tc.device}: no CUDA device is available")
        # torchrun: several processes, each on its share of every batch (see distributed.py)
        self.group = distributed.setup(self.tc.device)
        self.device = self.group.device if self.group else torch.device(self.tc.device)
        self.model = build_from_config(cfg, self.data).to(self.device)
        cfg.model_options = self.model.config.to_dict()  # every option, defaults included
        self.objective = (self.group.wrap(distributed.ElboObjective(self.model))
                          if self.group else None)
        self.is_main = self.group is None or self.group.main  # the process that writes files
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.tc.lr, eps=self.tc.adam_eps)
        self.rng = np.random.default_rng(self.tc.seed)
        self.progress = progress
        train = self.data.train
        if train.streams:
            per_epoch = len(train) // train.streams
        elif self.tc.tbptt:
            per_epoch = math.ceil(train.steps / (self.tc.batch_size * self.tc.tbptt))
        else:
            per_epoch = math.ceil(len(windows(train, self.tc.window)[0]) / self.tc.batch_size)
        self.kl = KLAnnealing(self.tc.kl_start, round(self.tc.kl_epochs * per_epoch))
        self.epoch = 0
        self.step = 0
        self.best_valid = -math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.elapsed = 0.0
        self.skipped = 0  # batches skipped for a non-finite loss or gradient, in all
        self.bad_in_row = 0
        # Where an interrupted epoch stopped (None at epoch boundaries): the batches done, the
        # batch RNG at the epoch's start (to draw the same batches again), running sums, carry.
        self.partial: dict[str, Any] | None = None
        self.stop_requested = False

    # -- checkpoints ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch, "step": self.step, "kl_weight": self.kl(self.step),
            "best_valid": self.best_valid, "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs, "elapsed": self.elapsed,
            "skipped": self.skipped, "bad_in_row": self.bad_in_row,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device)
                         if self.device.type == "cuda" else None),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "partial": self.partial,
            "config": json.dumps(self.cfg.to_dict()),
        }

    def resume(self) -> bool:
        """Continue from ``last.pt`` if it exists; returns whether it did."""
        path = self.run_dir / LAST
        if not path.is_file():
            return False
        try:
            s = load_checkpoint(path)
        except CheckpointError as e:
            prev = previous_path(path)
            if prev.is_file():
                raise CheckpointError(f"{e}. The previous checkpoint {prev} is kept: move it to "
                                      f"{path} to resume from one epoch earlier") from e
            raise
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.epoch, self.step = int(s["epoch"]), int(s["step"])
        self.best_valid, self.best_epoch = float(s["best_valid"]), int(s["best_epoch"])
        self.bad_epochs, self.elapsed = int(s["bad_epochs"]), float(s["elapsed"])
        self.skipped, self.bad_in_row = int(s.get("skipped", 0)), int(s.get("bad_in_row", 0))
        self.partial = s.get("partial")
        torch.set_rng_state(s["torch_rng"])
        if self.device.type == "cuda" and s.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(s["cuda_rng"], self.device)
        self.rng.bit_generator.state = json.loads(s["numpy_rng"])
        # Keep only the metric lines of the epochs the checkpoint holds.
        mpath = self.run_dir / "metrics.jsonl"
        if mpath.is_file():
            lines = [ln for ln in mpath.read_text().splitlines()
                     if ln.strip() and json.loads(ln)["epoch"] <= self.epoch]
            kept = "".join(ln + "\n" for ln in lines).encode()
            if self.is_main:
                atomic_write(mpath, lambda f: f.write(kept))
        where = (f"epoch {self.epoch + 1}, batch {self.partial['batch']}" if self.partial
                 else f"the end of epoch {self.epoch}")
        log.info("resumed %s at %s (step %d)", self.run_dir, where, self.step)
        return True

    # -- one epoch ----------------------------------------------------------------------------
    def _train_epoch(self) -> dict[str, float | None]:
        self.model.train()
        partial, self.partial = self.partial, None
        if partial:  # draw the interrupted epoch's batches again and skip the finished ones
            self.rng.bit_generator.state = json.loads(partial["epoch_rng"])
        epoch_rng = json.dumps(self.rng.bit_generator.state)
        train = self.data.train
        if not train.streams and self.tc.tbptt:  # lanes of whole sequences, state carried
            train = lane_streams(train, self.tc.batch_size, self.tc.tbptt, self.rng)
        batches = (stream_batches(train) if train.streams else
                   training_batches(train, self.tc.batch_size, self.tc.window, self.rng))
        # Running sums over the epoch's batches (with several processes: over this process's
        # rows; an interrupted epoch's sums so far, summed over processes, sit with rank 0).
        total = (dict(partial["total"]) if partial and self.is_main
                 else {"recon": 0.0, "kl": 0.0, "steps": 0.0, "skipped": 0.0})
        carry = partial["carry"] if partial else None
        done = partial["batch"] if partial else 0
        bar = tqdm(batches, desc=f"epoch {self.epoch}", leave=False, unit="batch",
                   disable=None if self.progress is None else not self.progress)
        particles = self.tc.objective != "elbo"
        group = self.group
        for i, batch in enumerate(bar):
            if i < done:
                continue
            w = self.kl(self.step)
            loss, out = self._loss(batch.to(self.device), carry, w)
            self.opt.zero_grad(set_to_none=True)
            bad = None if torch.isfinite(loss) else "loss"
            if group is not None and group.any(bad is not None):  # all skip, or none
                bad = bad or "loss (in another process)"
            if bad is None:
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                      self.tc.clip_norm)
                bad = None if torch.isfinite(norm) else "gradient"
            self.step += 1
            if bad:
                total["skipped"] += 1
                self._skip_batch(bad)
                carry = None  # a stream's state after a bad window is not trusted
            else:
                self.bad_in_row = 0
                self.opt.step()
                with torch.no_grad():
                    if particles:
                        total["recon"] += float(out.log_likelihood.sum())  # the bound
                        total["steps"] += float(out.steps.sum())
                    else:
                        if train.streams:
                            carry = out.carry
                        total["recon"] += float(out.recon.sum())
                        total["kl"] += float(out.kl.sum())
                        total["steps"] += float(out.mask.sum())
                if total["steps"]:
                    bar.set_postfix(elbo=f"{(total['recon'] - total['kl']) / total['steps']:.3f}",
                                    kl_w=f"{w:.2f}")
            if group is not None:  # every process stops after the same batch
                stop = group.any(self.stop_requested)
                if stop and carry is not None:  # stream states differ per process: stop
                    self.stop_requested = True  # at the end of the epoch instead
                    stop = False
                self.stop_requested = stop or self.stop_requested
                if not stop:
                    continue
            if self.stop_requested:  # SIGINT / SIGTERM: keep this batch, save and stop
                self.partial = {"batch": i + 1, "epoch_rng": epoch_rng,
                                "total": self._summed(total), "carry": carry}
                self.epoch -= 1  # the checkpoint holds the finished epochs
                self.elapsed = time.perf_counter() - self._t_start
                if self.is_main:
                    save_checkpoint(self.run_dir / LAST, self._state(), keep_previous=True)
                log.info("interrupted in epoch %d after batch %d: saved %s; continue with "
                         "`srnn train --resume --out %s`", self.epoch + 1, i + 1,
                         self.run_dir / LAST, self.run_dir)
                raise KeyboardInterrupt
        total = self._summed(total)
        skipped = int(total["skipped"])
        if not total["steps"]:
            return {"elbo": None, "recon": None, "kl": None, "skipped": skipped}
        n = total["steps"]
        elbo = (total["recon"] - total["kl"]) / n
        if particles:  # the bound has no recon / KL parts
            return {"elbo": elbo, "recon": None, "kl": None, "skipped": skipped}
        return {"elbo": elbo, "recon": total["recon"] / n, "kl": total["kl"] / n,
                "skipped": skipped}

    def _loss(self, batch: Batch, carry: Any, kl_weight: float) -> tuple[Tensor, Any]:
        """The loss of one batch, and its ELBO terms (or particle bound) for the running sums.

        With several processes this process computes its rows only; the loss is scaled so that
        the mean DDP takes over processes is the gradient of the whole batch's loss.
        """
        particles = self.tc.objective != "elbo"  # IWAE / FIVO: no KL term to anneal
        resample = self.tc.objective == "fivo"
        if self.group is None:
            if particles:  # each window starts afresh
                res = particle_bound(self.model, batch, self.tc.samples, resample=resample)
                return -res.log_likelihood.sum() / res.steps.sum(), res
            terms = elbo_terms(self.model, batch, carry=carry)
            return -terms.objective(kl_weight), terms
        n = batch.x.shape[0]
        rows = self.group.rows(n)
        local = Batch(batch.x[rows], batch.u[rows], batch.mask[rows])
        scale = self.group.world / batch.mask.sum()
        if particles:
            res = self.objective(particle_bound, local, self.tc.samples, resample=resample)
            return -res.log_likelihood.sum() * scale, res
        terms = self.objective(elbo_terms, local, carry=carry, noise_rows=(rows, n))
        return -terms.objective_sum(kl_weight) * scale, terms

    def _summed(self, total: dict[str, float]) -> dict[str, float]:
        """Running sums over all processes (skipped batches are the same on each)."""
        if self.group is None:
            return total
        t = torch.tensor([total["recon"], total["kl"], total["steps"]], dtype=torch.float64,
                         device=self.device)
        torch.distributed.all_reduce(t)
        recon, kl, steps = t.tolist()
        return {"recon": recon, "kl": kl, "steps": steps, "skipped": total["skipped"]}

    def _skip_batch(self, what: str) -> None:
        """Count a batch whose loss or gradient was not finite (no update was made); stop
        after ``max_bad_batches`` of them in a row."""
        self.opt.zero_grad(set_to_none=True)
        self.skipped += 1
        self.bad_in_row += 1
        log.warning("epoch %d, step %d: non-finite %s, batch skipped (%d in a row, %d in all)",
                    self.epoch, self.step, what, self.bad_in_row, self.skipped)
        if self.bad_in_row >= self.tc.max_bad_batches:
            raise TrainingError(
                f"{self.run_dir}: training stopped at epoch {self.epoch}, step {self.step}: "
                f"{self.bad_in_row} batches in a row gave a non-finite {what}. Likely causes: "
                "a learning rate too high for this model or data (try a smaller --lr), "
                "exploding gradients (try a smaller --clip-norm), or non-finite or unscaled "
                f"values in the data. The last good checkpoint is {self.run_dir / LAST}.")

    def fit(self) -> dict[str, Any]:
        """Train until ``epochs``, early stopping or ``max_minutes``; then test the best model."""
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "config.json", self.cfg.to_dict())
            write_json(self.run_dir / "data.json", data_card(self.data))
        with _stop_on_signals(self):
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        t_start = self._t_start = time.perf_counter() - self.elapsed
        while self.epoch < self.tc.epochs and self.bad_epochs < self.tc.patience:
            stop = self.stop_requested
            if self.group is not None:
                stop = self.group.any(stop)
            if stop:
                log.info("interrupted after epoch %d: %s holds it; continue with "
                         "`srnn train --resume --out %s`", self.epoch, self.run_dir / LAST,
                         self.run_dir)
                raise KeyboardInterrupt
            if self.tc.max_minutes and self.elapsed > 60 * self.tc.max_minutes:
                log.info("time budget of %.1f min reached", self.tc.max_minutes)
                break
            self.epoch += 1
            lr = lr_at_epoch(self.tc.lr, self.epoch, self.tc.lr_decay, self.tc.lr_decay_start)
            for g in self.opt.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            tr = self._train_epoch()
            va = evaluate_elbo(self.model, self.data.valid, self.tc.eval_batch_size)
            self.elapsed = time.perf_counter() - t_start
            improved = va["elbo_per_step"] > self.best_valid
            if improved:
                self.best_valid, self.best_epoch, self.bad_epochs = (
                    va["elbo_per_step"], self.epoch, 0)
                if self.is_main:
                    save_checkpoint(self.run_dir / BEST, self._state())
            else:
                self.bad_epochs += 1
            line = {"epoch": self.epoch, "step": self.step,
                    "train_elbo": tr["elbo"], "train_recon": tr["recon"],
                    "train_kl": tr["kl"], "valid_elbo": _finite(va["elbo_per_step"]),
                    "valid_recon": va["recon_per_step"], "valid_kl": va["kl_per_step"],
                    "kl_weight": self.kl(self.step), "lr": lr,
                    "skipped_batches": tr["skipped"],
                    "seconds": time.perf_counter() - t0, "elapsed": self.elapsed}
            # The line first, then the checkpoint: a run killed in between resumes from the
            # previous checkpoint and drops the line (see resume), so no epoch is lost or doubled.
            if self.is_main:
                append_jsonl(self.run_dir / "metrics.jsonl", line)
                save_checkpoint(self.run_dir / LAST, self._state(), keep_previous=True)
            if self.group is not None:  # the others read best.pt at the end
                torch.distributed.barrier()
            log.info("epoch %3d  train %s  valid %.4f%s  kl_w %.2f  lr %.2e  %.1fs%s",
                     self.epoch, "—" if tr["elbo"] is None else f"{tr['elbo']:.4f}",
                     va["elbo_per_step"], " *" if improved else "", line["kl_weight"], lr,
                     line["seconds"],
                     f"  ({tr['skipped']} batches skipped)" if tr["skipped"] else "")
        return self.test()

    def test(self, split: str = "test") -> dict[str, Any]:
        """Evaluate the best checkpoint on ``split`` and write ``results.json``."""
        if not (self.run_dir / BEST).is_file() and self.epoch > 0:
            raise TrainingError(f"{self.run_dir}: no epoch gave a finite validation ELBO, so "
                                "there is no best model to test (see metrics.jsonl)")
        best = load_checkpoint(self.run_dir / BEST)
        self.model.load_state_dict(best["model"])
        res = evaluate_elbo(self.model, self.data.split(split), self.tc.eval_batch_size)
        out = {"dataset": self.cfg.dataset, "model": self.cfg.model, "split": split,
               "protocol": self.data.protocol, "time_step": self.data.time_step, **res,
               "best_epoch": int(best["best_epoch"]), "epochs": self.epoch,
               "valid_elbo_per_step": float(best["best_valid"]),
               "train_seconds": self.elapsed,
               "parameters": self.model.num_parameters(),
               "model_options": self.model.config.to_dict(), "train_options": asdict(self.tc)}
        if self.is_main:
            write_json(self.run_dir / "results.json", out)
        return out


@contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """While training, SIGINT and SIGTERM ask the trainer to stop after the current batch (it
    then saves an exactly resumable checkpoint); a second signal stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, frame: object) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        log.info("%s: stopping after the current batch (again to stop at once)",
                 signal.Signals(signum).name)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, request)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def train(dataset: str, out: str | os.PathLike[str], model: str = "srnn",
          data_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          progress: bool | None = None,
          model_options: dict[str, Any] | None = None, **train_options: Any) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` into run directory ``out``; return the test results.

    ``model_options`` set the model's config (e.g. ``{"z_dim": 50, "smoothing": False}``);
    other keywords set :class:`TrainConfig` fields (e.g. ``epochs=5``).
    """
    cfg = RunConfig(dataset=dataset, model=model, model_options=dict(model_options or {}),
                    train=TrainConfig(**train_options),
                    data_dir=str(data_dir) if data_dir else None)
    if resume and (Path(out) / "config.json").is_file():
        # The saved settings win; only the stopping rules may be extended on resume.
        saved = load_run_config(out)
        for key in ("epochs", "max_minutes", "device"):
            if key in train_options:
                setattr(saved.train, key, train_options[key])
        cfg = saved
    trainer = Trainer(cfg, out, progress=progress)
    if resume:
        trainer.resume()
    return trainer.fit()
