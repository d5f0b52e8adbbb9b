"""Checkpoints that load with ``torch.load(..., weights_only=True)``, written atomically, and
:class:`TrainingState`, what one holds.

While a run trains, its checkpoints hold everything that resumes it exactly. Once it has
finished, evaluation and sampling read only the weights and the settings: :func:`shrink_state`
drops the entries that only resumption reads (:data:`RESUME_ONLY`: the optimiser's moments,
twice the weights' size with Adam, and the random-number states), which is what
:meth:`srnn.train.run_dir.RunDirectory.shrink_checkpoints` keeps of ``best.pt``.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from srnn.errors import CheckpointError
from srnn.io import atomic_write
from srnn.train.objectives import EpochSums

BEST = "best.pt"
LAST = "last.pt"
# The entries of a checkpoint that only resuming training reads; a shrunk checkpoint lacks them.
RESUME_ONLY = ("optimizer", "torch_rng", "cuda_rng", "numpy_rng", "partial")


def previous_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any],
                    keep_previous: bool = False) -> None:
    """Serialise ``state`` (tensors, numbers, strings, lists, dicts) and move it into place.

    With ``keep_previous`` the file it replaces stays as ``<name>.prev.pt``; at every moment
    ``path`` holds either the old or the new checkpoint, complete.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    if keep_previous and path.is_file():
        prev = previous_path(path)
        tmp = prev.with_name(f".{prev.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)  # a second name for the old file: no copy
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, prev)
    atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing or corrupt file raises clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError,
            IndexError, TypeError, AttributeError, UnicodeDecodeError,
            pickle.UnpicklingError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an srnn checkpoint (no 'model' entry)")
    return state


def shrink_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the entries that only resume training (:data:`RESUME_ONLY`): the
    weights, the settings (``config``) and the progress figures stay, so evaluation, sampling
    and tuning read it as before."""
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


def is_resumable(state: dict[str, Any]) -> bool:
    """Whether training can resume from checkpoint ``state`` (it holds the optimiser)."""
    return "optimizer" in state


@dataclass
class EpochProgress:
    """Where an interrupted epoch stopped: the batches done, the batch RNG at the epoch's start
    (to draw the same batches again), the running sums so far and the carried stream state."""

    batch: int
    epoch_rng: str
    sums: EpochSums
    carry: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "epoch_rng": self.epoch_rng, "total": self.sums.to_dict(),
                "carry": self.carry}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochProgress:
        return cls(int(d["batch"]), d["epoch_rng"], EpochSums.from_dict(d["total"]),
                   d.get("carry"))


@dataclass
class Progress:
    """Where training stands: finished epochs and updates, early stopping, time, skipped
    batches, and (between epochs: None) where an interrupted epoch stopped."""

    epoch: int = 0
    step: int = 0
    best_valid: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed: float = 0.0
    skipped: int = 0  # batches skipped for a non-finite loss or gradient, in all
    bad_in_row: int = 0
    partial: EpochProgress | None = None


@dataclass
class TrainingState:
    """Exactly what a checkpoint holds: the model and optimiser, the progress, the KL weight
    reached, the random-number states (torch, CUDA, NumPy's batch generator as JSON) and the
    run's config as JSON. :meth:`to_checkpoint` gives the flat dict that is saved (the format
    earlier versions wrote, which :meth:`from_checkpoint` reads)."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    progress: Progress
    kl_weight: float
    torch_rng: Tensor
    cuda_rng: Tensor | None
    numpy_rng: str
    config: str

    def to_checkpoint(self) -> dict[str, Any]:
        p = self.progress
        return {"model": self.model, "optimizer": self.optimizer,
                "epoch": p.epoch, "step": p.step, "kl_weight": self.kl_weight,
                "best_valid": p.best_valid, "best_epoch": p.best_epoch,
                "bad_epochs": p.bad_epochs, "elapsed": p.elapsed,
                "skipped": p.skipped, "bad_in_row": p.bad_in_row,
                "torch_rng": self.torch_rng, "cuda_rng": self.cuda_rng,
                "numpy_rng": self.numpy_rng,
                "partial": None if p.partial is None else p.partial.to_dict(),
                "config": self.config}

    @classmethod
    def from_checkpoint(cls, s: dict[str, Any]) -> TrainingState:
        if not is_resumable(s):
            raise CheckpointError("the checkpoint holds the weights only (shrunk when its run "
                                  "finished), not the optimiser state that resumes training")
        partial = s.get("partial")
        progress = Progress(
            epoch=int(s["epoch"]), step=int(s["step"]), best_valid=float(s["best_valid"]),
            best_epoch=int(s["best_epoch"]), bad_epochs=int(s["bad_epochs"]),
            elapsed=float(s["elapsed"]), skipped=int(s.get("skipped", 0)),
            bad_in_row=int(s.get("bad_in_row", 0)),
            partial=None if partial is None else EpochProgress.from_dict(partial))
        return cls(model=s["model"], optimizer=s["optimizer"], progress=progress,
                   kl_weight=float(s.get("kl_weight", 1.0)), torch_rng=s["torch_rng"],
                   cuda_rng=s.get("cuda_rng"), numpy_rng=s["numpy_rng"],
                   config=s.get("config", "{}"))
