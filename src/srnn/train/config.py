"""The settings of a run: the data set, the model and its options, and the optimisation.

A :class:`RunConfig` is what ``config.json`` holds (see :mod:`srnn.train.run_dir`); it is
enough to rebuild the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults follow the SRNN paper's code (see README)."""

    epochs: int = 50
    batch_size: int = 16
    window: int = 100  # training windows of at most this many steps (paper: 100)
    lr: float = 1e-3
    adam_eps: float = 1e-4
    clip_norm: float = 10.0  # total gradient norm
    weight_decay: float = 0.0  # > 0: decoupled weight decay (AdamW, Loshchilov & Hutter 2019):
    # every parameter shrinks by lr x weight_decay of itself per update (0: plain Adam)
    kl_start: float = 0.2  # KL weight at the first update ...
    kl_epochs: float = 20.0  # ... rising linearly to 1 over this many epochs (0: off)
    lr_decay: float = 1.2  # LR divided by this per epoch ...
    lr_decay_start: int = 20  # ... after this epoch
    lr_schedule: str = "exponential"  # exponential (lr_decay, lr_decay_start) or cosine: per
    # update from lr down to lr_min over epochs x updates per epoch (Lai et al. 2019)
    lr_min: float = 1e-6  # the cosine schedule's last learning rate
    kl_rate: float = 0.0  # > 0: the KL weight rises by this much per update from kl_start (to
    # 1) instead of over kl_epochs (Lai et al. 2019: 5e-5)
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
    transpose: int = 0  # > 0: each training window of a piano roll moved by a random shift of
    # at most this many semitones (pitch-shift augmentation; 0: off)


# Stopping rules and the machine rather than settings of the run: a resumed run may change them.
EXTENDABLE = ("epochs", "max_minutes", "device")


@dataclass
class RunConfig:
    """A run: data set, model name, every model option, training options, data directory.

    ``flat``: train on the flat view of the data set (:mod:`srnn.data.flat`; RNN-flat,
    SRNN-flat of Lai, Dai et al. 2019): each step of D values as D scalar steps, x_dim 1, with
    every figure still per original step and ``train.window`` / ``train.tbptt`` in original
    steps.
    """

    dataset: str
    model: str = "srnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    data_dir: str | None = None
    flat: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": self.model,
                "model_options": self.model_options, "train": asdict(self.train),
                "data_dir": self.data_dir, "flat": self.flat}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(dataset=d["dataset"], model=d["model"], model_options=d["model_options"],
                   train=TrainConfig(**d["train"]), data_dir=d.get("data_dir"),
                   flat=bool(d.get("flat", False)))  # configs from before the flat view
