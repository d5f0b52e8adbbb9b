"""TensorBoard logs of training and tuning (``--tensorboard``): the one module that writes them.

TensorBoard is an optional extra, ``pip install 'srnn[tensorboard]'``; :func:`require` turns its
absence into a one-line :class:`~srnn.errors.ConfigError` saying so. The event files are
written by :class:`torch.utils.tensorboard.SummaryWriter` into ``RUN_DIR/tensorboard/``
(:data:`srnn.train.run_dir.TENSORBOARD`), so ``tensorboard --logdir runs`` (or a sweep folder of
``srnn reproduce`` / ``srnn compare``) shows the runs side by side, each named by its folder.

**Steps.** Every event's step is the number of updates made (the trainer's ``Progress.step``,
tune's update), the per-epoch figures included (at the update that ended the epoch): one x
axis for all tags. TensorBoard drops the earlier points of a tag that is logged at a smaller
step than the newest event, so mixing epochs and updates as steps would lose points. A
resumed run opens its log with ``purge_step`` just after its checkpoint, so the events written
after that checkpoint by the killed process are not shown twice.

**Tags.**

=====================  =====================================================================
when                   tags
=====================  =====================================================================
training, per update   ``update/loss`` (minimised), ``update/elbo`` (or ``update/iwae``,
                       ``update/fivo``: the batch's bound per step), ``update/recon``,
                       ``update/kl`` (ELBO only), ``update/kl_weight``, ``update/lr``,
                       ``update/grad_norm`` (before clipping), ``update/skipped_batches`` (so
                       far), ``update/updates_per_second``
training, per epoch    ``epoch/<key>`` for every number of the epoch's ``metrics.jsonl`` line
                       (``train_elbo``, ``valid_elbo``, their ``recon`` / ``kl`` parts,
                       ``kl_weight``, ``lr``, ``skipped_batches``, ``seconds``) and
                       ``epoch/epoch``
every N epochs         ``sample/piano_roll``, ``sample/waveform`` or ``sample/handwriting``
                       (an image; ``sample/values`` for other data) and ``sample/audio``
                       (music and speech) (``tensorboard_every``; drawn with the run's seed,
                       so the same noise shows what the model makes of it as it learns)
tuning, per update     ``tune/reward/<term>``, and ``tune/<key>`` for every other number of
                       the update's ``tuning.jsonl`` line: ``tune/reward`` (total,
                       weighted), ``tune/kl_per_step``, ``tune/objective``,
                       ``tune/baseline``, ``tune/grad_norm``, ``tune/seconds`` and, with
                       the data anchor, ``tune/data_elbo_per_step``
=====================  =====================================================================

What a sample looks and sounds like is drawn above this layer (:func:`srnn.sampling.sample_media`
renders piano rolls, waveforms and audio): the trainer is handed it as a :data:`MediaRenderer`
and logs what it returns, a :class:`SampleMedia`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnn.data.card import DataCard
from srnn.errors import ConfigError
from srnn.models import SequenceModel
from srnn.train.objectives import BatchResult

__all__ = ["INSTALL", "Board", "MediaRenderer", "NullBoard", "SampleMedia", "TrainingBoard",
           "require"]

INSTALL = "pip install 'srnn[tensorboard]'"


def require() -> type:
    """:class:`torch.utils.tensorboard.SummaryWriter`; a :class:`ConfigError` naming the extra
    to install where TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        raise ConfigError(f"--tensorboard needs TensorBoard, which is not installed: "
                          f"{INSTALL}") from None
    return SummaryWriter


@dataclass(frozen=True)
class SampleMedia:
    """A model's sample as TensorBoard shows it: ``image`` (H, W, 3) uint8, a piano roll, a
    waveform plot, a drawing or the values (``kind``: ``piano_roll``, ``waveform``,
    ``handwriting``, ``values``), and its sound, mono
    samples in [-1, 1] at ``rate`` Hz (None where the data have none)."""

    kind: str
    image: np.ndarray
    audio: np.ndarray | None = None
    rate: int = 16_000
    caption: str = ""


# (model, its data card) -> its sample; the caller seeds the draw.
MediaRenderer = Callable[[SequenceModel, DataCard], SampleMedia]


def _as_finite_float(value: Any) -> float | None:
    """``value`` as a finite float (tensors included), or None for anything else."""
    if isinstance(value, torch.Tensor):
        value = value.detach().float().item() if value.numel() == 1 else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class NullBoard:
    """The board of a run without ``--tensorboard`` (and of the processes that do not write):
    every call does nothing, so the loops that log never ask whether they should."""

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        """Log nothing."""

    def update(self, step: int, result: BatchResult | None, kl_weight: float, lr: float,
               grad_norm: Any, skipped: int, seconds: float) -> None:
        """Log nothing."""

    def epoch(self, step: int, line: Mapping[str, Any], model: SequenceModel) -> None:
        """Log nothing."""

    def tuning(self, step: int, line: Mapping[str, Any]) -> None:
        """Log nothing."""

    def close(self) -> None:
        """Nothing to close."""


class Board(NullBoard):
    """An open TensorBoard log in ``log_dir``; ``purge_step``: a resumed run's first step
    (events at or after it, left by the process that was stopped, are hidden)."""

    def __init__(self, log_dir: str | os.PathLike[str], purge_step: int | None = None) -> None:
        writer = require()
        self.log_dir = Path(log_dir)
        self.writer = writer(str(self.log_dir), purge_step=purge_step)

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        """``prefix/key`` for each finite number of ``values`` (None, NaN and text skipped)."""
        for key, value in values.items():
            number = _as_finite_float(value)
            if number is not None:
                self.writer.add_scalar(f"{prefix}/{key}", number, step)

    def media(self, step: int, media: SampleMedia) -> None:
        """A sample's image (``sample/<kind>``) and sound (``sample/audio``)."""
        self.writer.add_image(f"sample/{media.kind}", media.image, step, dataformats="HWC")
        if media.audio is not None and len(media.audio):
            sound = torch.as_tensor(np.clip(media.audio, -1.0, 1.0), dtype=torch.float32)
            self.writer.add_audio("sample/audio", sound.reshape(1, -1), step,
                                  sample_rate=media.rate)
        if media.caption:
            self.writer.add_text("sample/caption", media.caption, step)

    def tuning(self, step: int, line: Mapping[str, Any]) -> None:
        """A line of ``tuning.jsonl``, written to disk at once: each reward term of its
        ``rewards`` as ``tune/reward/<term>``, and ``tune/<key>`` for every other number of
        the line (the total ``reward``, ``kl_per_step``, ``objective``, ``baseline``,
        ``grad_norm``, ``seconds``, and ``data_elbo_per_step`` where the data anchor is on)
        but ``update``, the step."""
        self.scalars("tune/reward", line.get("rewards", {}), step)
        self.scalars("tune", {k: v for k, v in line.items() if k not in ("rewards", "update")},
                     step)
        self.writer.flush()  # an update takes seconds: a stopped tuning loses none

    def close(self) -> None:
        self.writer.close()


class TrainingBoard(Board):
    """The log of a training run: per update, per epoch and, every ``every`` epochs, a sample
    drawn by ``render`` (none without one) with ``seed`` from the model, on ``card``'s data.
    ``bound``: the objective's name (``elbo``, ``iwae``, ``fivo``) and ``has_parts`` whether
    it splits into recon and KL; ``steps_per_step``: model steps per reported time step (the
    flat view's D), so the per-update figures are per time step as the epoch's are."""

    def __init__(self, log_dir: str | os.PathLike[str], *, bound: str, has_parts: bool,
                 steps_per_step: int, every: int, card: DataCard, seed: int,
                 render: MediaRenderer | None = None, purge_step: int | None = None) -> None:
        super().__init__(log_dir, purge_step)
        self.bound, self.has_parts, self.steps_per_step = bound, has_parts, steps_per_step
        self.every, self.card, self.seed, self.render = every, card, seed, render

    def update(self, step: int, result: BatchResult | None, kl_weight: float, lr: float,
               grad_norm: Any, skipped: int, seconds: float) -> None:
        """One update: ``result`` of its batch (None: the batch was skipped, no update made),
        the KL weight and learning rate it used, its gradient norm, the batches skipped so
        far and the seconds it took."""
        values: dict[str, Any] = {"kl_weight": kl_weight, "lr": lr, "skipped_batches": skipped}
        if result is not None:
            recon, kl, steps = (float(t.detach()) for t in (result.recon, result.kl,
                                                             result.steps))
            steps /= self.steps_per_step
            values["loss"] = result.loss
            if steps:
                values[self.bound] = (recon - kl) / steps
                if self.has_parts:
                    values["recon"], values["kl"] = recon / steps, kl / steps
            values["grad_norm"] = grad_norm
            values["updates_per_second"] = 1.0 / seconds if seconds > 0 else None
        self.scalars("update", values, step)

    def epoch(self, step: int, line: Mapping[str, Any], model: SequenceModel) -> None:
        """The epoch's ``metrics.jsonl`` line, and every ``every`` epochs a sample of
        ``model``."""
        self.scalars("epoch", {k: v for k, v in line.items() if k not in ("step", "elapsed")},
                     step)
        epoch = int(line["epoch"])
        if self.render is not None and epoch % self.every == 0:
            self.media(step, self.draw(model))
        self.writer.flush()

    def draw(self, model: SequenceModel) -> SampleMedia:
        """A sample of ``model`` drawn in evaluation mode with the run's seed, leaving the
        random states of training as they were (a run with and without TensorBoard, or
        resumed, trains alike)."""
        assert self.render is not None
        device = next(model.parameters()).device
        was_training = model.training
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            model.eval()
            try:
                return self.render(model, self.card)
            finally:
                model.train(was_training)
