"""The training loop: Adam, KL annealing, gradient clipping, LR decay, early stopping, resume.

The files it writes are those of :mod:`srnn.train.run_dir`; the objectives are in
:mod:`srnn.train.objectives`, data parallelism in :mod:`srnn.train.distributed`, and what a
checkpoint holds in :mod:`srnn.train.checkpoint`.
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from srnn.data import SequenceDataset, load_dataset
from srnn.data.batching import Batch, lane_streams, stream_batches, training_batches, windows
from srnn.data.card import DataCard, data_card, data_options
from srnn.data.flat import flatten_dataset
from srnn.data.sequences import Modality, Split
from srnn.errors import ConfigError, TrainingError
from srnn.evaluate import evaluate_elbo
from srnn.models import MODELS, SequenceModel, build_model
from srnn.nn.emissions import check_emission_fits, column_options
from srnn.progress import progress_bar
from srnn.train import distributed
from srnn.train.checkpoint import BEST, LAST, EpochProgress, Progress, TrainingState
from srnn.train.config import EXTENDABLE, RunConfig, TrainConfig
from srnn.train.objectives import EpochSums, make_objective
from srnn.train.run_dir import CONFIG, DONE, TENSORBOARD, RunDirectory
from srnn.train.schedules import KLAnnealing, LRSchedule
from srnn.train.tensorboard import MediaRenderer, NullBoard, TrainingBoard, require

log = logging.getLogger("srnn.train")

__all__ = ["RunConfig", "TrainConfig", "Trainer", "build_from_config", "load_model",
           "load_run_config", "load_trained", "prepare_data", "train", "updates_per_epoch"]


def load_run_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """The settings of the run in ``run_dir`` (its ``config.json``)."""
    return RunDirectory(run_dir).config()


def prepare_data(cfg: RunConfig) -> SequenceDataset:
    """The run's data: its data set, cut to ``train.subset`` sequences, in the flat view
    (:func:`srnn.data.flat.flatten_dataset`) when ``cfg.flat``."""
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.data_options)
    n = cfg.train.subset
    if n:
        for s in ("train", "valid", "test"):
            split = data.split(s)
            keep = n * split.streams if split.streams else n
            setattr(data, s, split.subset(keep))
    return flatten_dataset(data) if cfg.flat else data


def check_augmentation(tc: TrainConfig, data: SequenceDataset, name: str) -> None:
    """Refuse pitch-shift augmentation (``--transpose``) where it has no meaning: data that are
    not piano rolls, and stream-ordered training (whose windows must stay one piece)."""
    if not tc.transpose:
        return
    if tc.transpose < 0:
        raise ConfigError(f"--transpose {tc.transpose}: give a number of semitones >= 0")
    if data.modality != Modality.MUSIC or not data.binary:
        raise ConfigError(f"--transpose: data set {name!r} is not a piano roll "
                          f"({data.modality.value} data); pitch shifts apply to music only")
    if data.flat:
        raise ConfigError("--transpose shifts the pitches of a step, but in the flat view "
                          "(--flat) a model step is one value: give one of them")
    if data.train.streams or tc.tbptt:
        raise ConfigError("--transpose moves independent training windows; it cannot be "
                          "combined with stream-ordered training (--tbptt or a stream file)")


def updates_per_epoch(train: Split, tc: TrainConfig, draws: int = 8) -> float:
    """The mean number of updates of a training epoch on ``train``: the streams' windows, the
    lanes' windows (``tbptt``), or the batches of independent windows, whose number varies
    from epoch to epoch with the random offsets of the tiling (the mean of ``draws`` tilings
    of a fixed generator; sequences longer than a window give one more window under most
    offsets). KL annealing runs over ``kl_epochs`` times this many updates, the cosine learning
    rate over ``epochs`` times it."""
    if train.streams:
        return len(train) // train.streams
    if tc.tbptt:
        return math.ceil(train.reported_steps / (tc.batch_size * tc.tbptt))
    rng = np.random.default_rng(0)
    return float(np.mean([math.ceil(len(windows(train, tc.window, rng)[0]) / tc.batch_size)
                          for _ in range(draws)]))


def make_optimiser(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW (decoupled weight decay on every parameter) with ``tc.weight_decay`` > 0."""
    if tc.weight_decay < 0:
        raise ConfigError(f"--weight-decay must be >= 0, got {tc.weight_decay}")
    if tc.weight_decay:
        return torch.optim.AdamW(model.parameters(), lr=tc.lr, eps=tc.adam_eps,
                                 weight_decay=tc.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=tc.lr, eps=tc.adam_eps)


def build_from_config(cfg: RunConfig, data: SequenceDataset) -> SequenceModel:
    options = dict(cfg.model_options)
    options.setdefault("x_dim", data.dim)
    if not data.binary:
        options.setdefault("emission", data.emission or "gauss")
    try:
        check_emission_fits(options.get("emission", "bernoulli"), data.binary,
                            f"data set {cfg.dataset!r}")
        # pen, mixed: the data's 0/1 columns (every column of a binary set)
        options.update(column_options(
            options.get("emission", "bernoulli"), options, data.dim,
            range(data.dim) if data.binary else data.binary_columns, f"data set {cfg.dataset!r}"))
    except ValueError as e:
        raise ConfigError(str(e)) from e
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
    run = RunDirectory(run_dir)
    cfg = run.config()
    try:
        model = build_model(cfg.model, **cfg.model_options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{run.file(CONFIG)}: {e}") from e
    model.load_state_dict(run.load_checkpoint(which)["model"])
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
    """Trains one model on one data set into the run directory ``run_dir``.

    The loop is the same for every objective (:mod:`srnn.train.objectives`) and for one or
    several processes (:mod:`srnn.train.distributed`); ``self.progress`` and the model,
    optimiser and random states are the :class:`~srnn.train.checkpoint.TrainingState` a
    checkpoint holds.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike[str],
                 data: SequenceDataset | None = None, progress: bool | None = None,
                 overwrite: bool = False, media: MediaRenderer | None = None) -> None:
        if cfg.train.tensorboard:
            require()  # before any work: a missing TensorBoard is one line
        self.cfg, self.tc = cfg, cfg.train
        self.data = data if data is not None else prepare_data(cfg)
        if self.data.flat != cfg.flat:
            raise ConfigError(f"the run's config has flat={cfg.flat}, but the data given are "
                              f"{'' if self.data.flat else 'not '}a flat view")
        torch.manual_seed(self.tc.seed)
        objective = make_objective(self.tc.objective, self.tc.samples)
        if self.tc.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {self.tc.device}: no CUDA device is available")
        # torchrun: several processes, each on its share of every batch (see distributed.py)
        self.procs = distributed.setup(self.tc.device)
        self.device = self.procs.device
        self.run = RunDirectory(run_dir, writable=self.procs.main)  # one process writes
        check_augmentation(self.tc, self.data, cfg.dataset)
        self.model = build_from_config(cfg, self.data).to(self.device)
        cfg.model_options = self.model.config.to_dict()  # every option, defaults included
        cfg.data_options = data_options(self.data) or cfg.data_options  # likewise (a folder's)
        self.objective = self.procs.wrap(objective, self.model)
        self.opt = make_optimiser(self.model, self.tc)
        self.rng = np.random.default_rng(self.tc.seed)
        self.show_progress = progress
        self.overwrite = overwrite
        self.media = media  # what a sample looks and sounds like in TensorBoard
        self.board: NullBoard = NullBoard()  # the TensorBoard log while fit() trains
        self.grad_norm: Tensor | None = None  # of the last update, before clipping
        # KL annealing over kl_epochs and the cosine over the run's epochs, in updates: epochs
        # x the mean updates of an epoch.
        per_epoch = updates_per_epoch(self.data.train, self.tc)
        self.kl = KLAnnealing(self.tc.kl_start, round(self.tc.kl_epochs * per_epoch),
                              self.tc.kl_rate)
        cosine = self.tc.lr_schedule == "cosine"
        total = round(self.tc.epochs * per_epoch) if cosine else 0
        try:
            self.lr_at = LRSchedule(self.tc.lr_schedule, self.tc.lr, self.tc.lr_decay,
                                    self.tc.lr_decay_start, self.tc.lr_min, total)
        except ValueError as e:
            raise ConfigError(f"--lr-schedule: {e}") from e
        self.progress = Progress()
        self.resuming = False  # resume() was called: the folder's run is continued
        self.epochs_trained = 0  # epochs fit() has trained in this process
        self.stop_requested = False

    @property
    def run_dir(self) -> Path:
        return self.run.path

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> TrainingState:
        """What a checkpoint of the trainer as it is now holds."""
        return TrainingState(
            model=self.model.state_dict(), optimizer=self.opt.state_dict(),
            progress=self.progress, kl_weight=self.kl(self.progress.step),
            torch_rng=torch.get_rng_state(),
            cuda_rng=(torch.cuda.get_rng_state(self.device)
                      if self.device.type == "cuda" else None),
            numpy_rng=json.dumps(self.rng.bit_generator.state),
            config=json.dumps(self.cfg.to_dict()))

    def _save(self, which: str, keep_previous: bool = False) -> None:
        self.run.save_checkpoint(which, self.state().to_checkpoint(), keep_previous)

    def resume(self) -> bool:
        """Continue the run in ``run_dir`` from its ``last.pt``; returns whether there was one
        (without, the run starts afresh in that folder). A finished run without one (its
        checkpoints shrunk when it ended, see ``keep_checkpoints``) cannot be continued: a
        :class:`~srnn.errors.ConfigError` says so and how to train on."""
        self.resuming = True
        if not self.run.has_checkpoint(LAST):
            if self.run.status == DONE:
                raise ConfigError(
                    f"{self.run_dir} is a finished run without {LAST}: its checkpoints were "
                    "shrunk when it ended (best.pt keeps the weights, not the optimiser and "
                    "random states that resume training exactly), so it cannot be continued. "
                    "It still evaluates and samples; to train longer, start a new run, e.g. "
                    f"`srnn train --config {self.run_dir / CONFIG} --epochs N --out NEW_DIR`, "
                    "with --keep-checkpoints to keep that one resumable after it ends")
            return False
        s = TrainingState.from_checkpoint(self.run.load_checkpoint(LAST))
        self.model.load_state_dict(s.model)
        self.opt.load_state_dict(s.optimizer)
        self.progress = s.progress
        torch.set_rng_state(s.torch_rng)
        if self.device.type == "cuda" and s.cuda_rng is not None:
            torch.cuda.set_rng_state(s.cuda_rng, self.device)
        self.rng.bit_generator.state = json.loads(s.numpy_rng)
        p = self.progress
        where = (f"epoch {p.epoch + 1}, batch {p.partial.batch}" if p.partial
                 else f"the end of epoch {p.epoch}")
        log.info("resumed %s at %s (step %d)", self.run_dir, where, p.step)
        return True

    # -- one epoch ----------------------------------------------------------------------------
    def _batches(self) -> tuple[Iterator[Batch], bool]:
        """This epoch's training batches, and whether they are stream-ordered windows."""
        train = self.data.train
        if not train.streams and self.tc.tbptt:  # lanes of whole sequences, state carried
            train = lane_streams(train, self.tc.batch_size, self.tc.tbptt, self.rng)
        if train.streams:
            return stream_batches(train), True
        return training_batches(train, self.tc.batch_size, self.tc.window, self.rng,
                                self.tc.transpose), False

    def _train_epoch(self) -> dict[str, float | None]:
        self.model.train()
        p = self.progress
        partial, p.partial = p.partial, None
        if partial:  # draw the interrupted epoch's batches again and skip the finished ones
            self.rng.bit_generator.state = json.loads(partial.epoch_rng)
        epoch_rng = json.dumps(self.rng.bit_generator.state)
        batches, streams = self._batches()
        carries = streams and self.objective.carries
        sums = self.procs.resumed(partial.sums) if partial else EpochSums()
        per_step = self.data.train.steps_per_step  # model steps per reported step (flat: D)
        carry = partial.carry if partial else None
        done = partial.batch if partial else 0
        bar = progress_bar(batches, desc=f"epoch {p.epoch}", leave=False, unit="batch",
                           enabled=self.show_progress)
        for i, batch in enumerate(bar):
            if i < done:
                continue
            w = self.kl(p.step)
            lr = self._set_lr()
            t0 = time.perf_counter()
            out = self.objective(self.model, batch.to(self.device), carry, w)
            made = self._update(out.loss)
            self.board.update(p.step, out if made else None, w, lr, self.grad_norm, p.skipped,
                              time.perf_counter() - t0)
            if made:
                sums.add(out)
                carry = out.carry if carries else None
                if sums.steps:
                    bar.set_postfix(elbo=f"{(sums.recon - sums.kl) * per_step / sums.steps:.3f}",
                                    kl_w=f"{w:.2f}")
            else:
                sums.skipped += 1
                carry = None  # a stream's state after a bad window is not trusted
            if self.procs.stop_now(self.stop_requested, carrying=carry is not None):
                self._interrupt(EpochProgress(i + 1, epoch_rng, self.procs.summed(sums), carry))
        sums = self.procs.summed(sums)
        figures: dict[str, float | None] = {"elbo": None, "recon": None, "kl": None,
                                            "skipped": int(sums.skipped)}
        steps = sums.steps / per_step  # figures per reported (original) step
        if sums.steps:
            figures["elbo"] = (sums.recon - sums.kl) / steps
            if self.objective.has_parts:  # a particle bound has no recon / KL parts
                figures["recon"], figures["kl"] = sums.recon / steps, sums.kl / steps
        return figures

    def _set_lr(self) -> float:
        """Set the learning rate of the next update from the progress counters (the epoch and
        the updates made), so a resumed run continues the same schedule; return it."""
        lr = self.lr_at(self.progress.epoch, self.progress.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr

    def _update(self, loss: Tensor) -> bool:
        """One optimiser step on ``loss``; a non-finite loss or gradient (in any process)
        skips it (see :meth:`_skip_batch`). Returns whether the step was made."""
        self.opt.zero_grad(set_to_none=True)
        bad = None if torch.isfinite(loss) else "loss"
        if self.procs.any(bad is not None):  # all skip, or none
            bad = bad or "loss (in another process)"
        if bad is None:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.clip_norm)
            bad = None if torch.isfinite(norm) else "gradient"
            self.grad_norm = norm
        self.progress.step += 1
        if bad:
            self._skip_batch(bad)
            return False
        self.progress.bad_in_row = 0
        self.opt.step()
        return True

    def _interrupt(self, where: EpochProgress) -> None:
        """SIGINT / SIGTERM inside an epoch: keep the batches done, save and stop."""
        p = self.progress
        p.partial = where
        p.epoch -= 1  # the checkpoint holds the finished epochs
        p.elapsed = time.perf_counter() - self._t_start
        self._save(LAST, keep_previous=True)
        log.info("interrupted in epoch %d after batch %d: saved %s; continue with "
                 "`srnn train --resume --out %s`", p.epoch + 1, where.batch,
                 self.run_dir / LAST, self.run_dir)
        raise KeyboardInterrupt

    def _skip_batch(self, what: str) -> None:
        """Count a batch whose loss or gradient was not finite (no update was made); stop
        after ``max_bad_batches`` of them in a row."""
        p = self.progress
        self.opt.zero_grad(set_to_none=True)
        p.skipped += 1
        p.bad_in_row += 1
        log.warning("epoch %d, step %d: non-finite %s, batch skipped (%d in a row, %d in all)",
                    p.epoch, p.step, what, p.bad_in_row, p.skipped)
        if p.bad_in_row >= self.tc.max_bad_batches:
            raise TrainingError(
                f"{self.run_dir}: training stopped at epoch {p.epoch}, step {p.step}: "
                f"{p.bad_in_row} batches in a row gave a non-finite {what}. Likely causes: "
                "a learning rate too high for this model or data (try a smaller --lr), "
                "exploding gradients (try a smaller --clip-norm), or non-finite or unscaled "
                f"values in the data. The last good checkpoint is {self.run_dir / LAST}.")

    def fit(self) -> dict[str, Any]:
        """Train until ``epochs``, early stopping or ``max_minutes``; then test the best model.

        A new run refuses a folder that holds another (unless ``overwrite``); while it trains,
        the process holds the run's lock. Once tested, the run's checkpoints are shrunk to
        ``best.pt``'s weights and settings (see
        :meth:`~srnn.train.run_dir.RunDirectory.shrink_checkpoints`) unless
        ``keep_checkpoints``, or unless it is a finished run resumed with nothing more to
        train: that one is tested again and keeps its checkpoints (``srnn shrink`` shrinks
        it)."""
        with self.run.lock(), _stop_on_signals(self):
            finished_before = self.resuming and self.run.status == DONE
            if self.resuming:  # drop the lines of epochs the checkpoint does not hold
                self.run.keep_metrics_through(self.progress.epoch)
            else:
                self.run.claim(self.overwrite)
            self.procs.barrier()  # every process has checked the folder before it is written
            self.run.write_config(self.cfg)
            self.run.write_data_card(data_card(self.data))
            with self._tensorboard():
                results = self._fit()
            # finished: keep what evaluation reads, unless this process trained nothing of
            # a run that had finished already (a --resume asking for nothing more)
            if not self.tc.keep_checkpoints and (self.epochs_trained or not finished_before):
                self.run.shrink_checkpoints()
            return results

    @contextmanager
    def _tensorboard(self) -> Iterator[None]:
        """While :meth:`fit` trains, ``self.board`` is the run's TensorBoard log with
        ``tensorboard`` (:mod:`srnn.train.tensorboard`; written by the first process only, and
        a resumed run hides what was logged after its checkpoint), else a board that logs
        nothing."""
        if not (self.tc.tensorboard and self.procs.main):
            yield
            return
        step = self.progress.step
        self.board = TrainingBoard(
            self.run.file(TENSORBOARD), bound=self.tc.objective,
            has_parts=self.objective.has_parts, steps_per_step=self.data.train.steps_per_step,
            every=self.tc.tensorboard_every, card=DataCard.of(self.data), seed=self.tc.seed,
            render=self.media, purge_step=step + 1 if self.resuming and step else None)
        try:
            yield
        finally:
            self.board.close()
            self.board = NullBoard()

    def _fit(self) -> dict[str, Any]:
        p = self.progress
        t_start = self._t_start = time.perf_counter() - p.elapsed
        while p.epoch < self.tc.epochs and p.bad_epochs < self.tc.patience:
            if self.procs.any(self.stop_requested):
                log.info("interrupted after epoch %d: %s holds it; continue with "
                         "`srnn train --resume --out %s`", p.epoch, self.run_dir / LAST,
                         self.run_dir)
                raise KeyboardInterrupt
            # An epoch begun within the budget is finished, as by an uninterrupted run: a run
            # stopped inside it resumes to its end even if the budget is spent by then.
            if (self.tc.max_minutes and p.elapsed > 60 * self.tc.max_minutes
                    and p.partial is None):
                log.info("time budget of %.1f min reached", self.tc.max_minutes)
                break
            p.epoch += 1
            self.epochs_trained += 1
            self._set_lr()
            t0 = time.perf_counter()
            tr = self._train_epoch()
            lr = self.opt.param_groups[0]["lr"]  # that of the epoch's last update
            va = evaluate_elbo(self.model, self.data.valid, self.tc.eval_batch_size)
            p.elapsed = time.perf_counter() - t_start
            improved = va["elbo_per_step"] > p.best_valid
            if improved:
                p.best_valid, p.best_epoch, p.bad_epochs = va["elbo_per_step"], p.epoch, 0
                self._save(BEST)
            else:
                p.bad_epochs += 1
            line = {"epoch": p.epoch, "step": p.step,
                    "train_elbo": tr["elbo"], "train_recon": tr["recon"],
                    "train_kl": tr["kl"], "valid_elbo": _finite(va["elbo_per_step"]),
                    "valid_recon": va["recon_per_step"], "valid_kl": va["kl_per_step"],
                    "kl_weight": self.kl(p.step), "lr": lr,
                    "skipped_batches": tr["skipped"],
                    "seconds": time.perf_counter() - t0, "elapsed": p.elapsed}
            # The line and its TensorBoard events (flushed) first, then the checkpoint: a run
            # killed in between resumes from the previous checkpoint and drops the line (see
            # fit) and the events after it (purge_step), so no epoch is lost or doubled.
            self.run.append_metrics(line)
            self.board.epoch(p.step, line, self.model)
            self._save(LAST, keep_previous=True)
            self.procs.barrier()  # the others read best.pt at the end
            log.info("epoch %3d  train %s  valid %.4f%s  kl_w %.2f  lr %.2e  %.1fs%s",
                     p.epoch, "—" if tr["elbo"] is None else f"{tr['elbo']:.4f}",
                     va["elbo_per_step"], " *" if improved else "", line["kl_weight"], lr,
                     line["seconds"],
                     f"  ({tr['skipped']} batches skipped)" if tr["skipped"] else "")
        if p.partial is not None:
            # Resumed inside an epoch its stopping rules no longer reach (--epochs lowered
            # below it): the run ends at the epochs it finished, and last.pt says so, so the
            # finished run is not taken for a stopped resumption.
            log.info("%s: the interrupted epoch %d is past the run's --epochs %d; it ends "
                     "after epoch %d", self.run_dir, p.epoch + 1, self.tc.epochs, p.epoch)
            p.partial = None
            self._save(LAST, keep_previous=True)
        return self.test()

    def test(self, split: str = "test") -> dict[str, Any]:
        """Evaluate the best checkpoint on ``split`` and write ``results.json``."""
        p = self.progress
        if not self.run.has_checkpoint(BEST) and p.epoch > 0:
            raise TrainingError(f"{self.run_dir}: no epoch gave a finite validation ELBO, so "
                                "there is no best model to test (see metrics.jsonl)")
        best = self.run.load_checkpoint(BEST)
        self.model.load_state_dict(best["model"])
        res = evaluate_elbo(self.model, self.data.split(split), self.tc.eval_batch_size)
        out = {"dataset": self.cfg.dataset, "model": self.cfg.model, "split": split,
               "protocol": self.data.protocol, "time_step": self.data.time_step,
               "flat": self.cfg.flat, **res,
               "best_epoch": int(best["best_epoch"]), "epochs": p.epoch,
               "valid_elbo_per_step": float(best["best_valid"]),
               "train_seconds": p.elapsed,
               "parameters": self.model.num_parameters(),
               "model_options": self.model.config.to_dict(), "train_options": asdict(self.tc)}
        self.run.write_results(out)
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
          progress: bool | None = None, overwrite: bool = False,
          model_options: dict[str, Any] | None = None, flat: bool = False,
          media: MediaRenderer | None = None, data_options: dict[str, Any] | None = None,
          **train_options: Any) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` into run directory ``out``; return the test results.

    ``model_options`` set the model's config (e.g. ``{"z_dim": 50, "smoothing": False}``);
    ``flat`` trains on the flat view of the data (see :class:`RunConfig`); ``data_options``
    build the data set (a MIDI folder's grid, transposition, splits and seed: e.g.
    ``{"steps_per_beat": 2, "split_seed": 3}``, recorded in ``config.json`` and ``data.json``
    so that evaluating and resuming rebuild the same splits); other keywords set
    :class:`TrainConfig` fields (e.g. ``epochs=5``; ``keep_checkpoints=True`` keeps the run
    resumable after it ends). A folder that holds a run is refused unless ``resume`` (continue
    it from ``last.pt``) or ``overwrite`` (replace it). Resuming a finished run whose
    checkpoints were shrunk returns its results as they stand; asked to extend ``epochs`` or
    ``max_minutes``, it raises a :class:`~srnn.errors.ConfigError` (it has no state to resume
    from exactly). Resuming a finished run that kept its checkpoints, asking for nothing more,
    tests it again and leaves its checkpoints as they are. ``tensorboard=True`` logs the run
    to TensorBoard (:mod:`srnn.train.tensorboard`), with a sample every ``tensorboard_every``
    epochs drawn by ``media`` (e.g. :func:`srnn.sampling.sample_media`, what ``srnn train``
    passes; without it, the scalars only).
    """
    cfg = RunConfig(dataset=dataset, model=model, model_options=dict(model_options or {}),
                    train=TrainConfig(**train_options),
                    data_dir=str(data_dir) if data_dir else None, flat=flat,
                    data_options=dict(data_options or {}))
    run = RunDirectory(out)
    if resume and run.holds_config():
        # The saved settings win; only the stopping rules may be extended on resume.
        saved = run.config()
        extends = any(key in train_options and train_options[key] != getattr(saved.train, key)
                      for key in ("epochs", "max_minutes"))
        for key in EXTENDABLE:
            if key in train_options:
                setattr(saved.train, key, train_options[key])
        cfg = saved
        if run.status == DONE and not run.has_checkpoint(LAST) and not extends:
            # Finished and shrunk, and asked for nothing more: its results stand (asked to
            # train on, Trainer.resume says why it cannot).
            log.info("%s: the run has finished; its results stand", out)
            return run.results()
    trainer = Trainer(cfg, out, progress=progress, overwrite=overwrite, media=media)
    if resume:
        trainer.resume()
    return trainer.fit()
