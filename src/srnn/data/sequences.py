"""Containers for a data set: splits of sequences with targets ``x`` and inputs ``u``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from srnn.data.grid import NO_GRID, Grid


class Modality(str, Enum):
    """What a data set's values are: piano rolls (read from and written to MIDI files), audio
    frames (written as WAV files), pen trajectories (drawn as handwriting), or anything else
    (no conversion known). A ``str``: it equals and serialises as its value ("music",
    "speech", "handwriting", "other")."""

    MUSIC = "music"
    SPEECH = "speech"
    OTHER = "other"
    HANDWRITING = "handwriting"


MODALITIES = tuple(m.value for m in Modality)  # ("music", "speech", "other", "handwriting")


def shift_inputs(x: np.ndarray) -> np.ndarray:
    """The paper's input ``u_t = x_{t-1}`` (eq. 1), with ``u_1 = 0``."""
    u = np.zeros_like(x)
    u[1:] = x[:-1]
    return u


@dataclass
class Split:
    """One split: a list of sequences, each a target ``x`` (T_i, D) and an input ``u`` (T_i, D).

    ``streams`` > 0 marks stream-ordered windows (the Fraccaro training files): window
    ``r + streams`` continues window ``r``, so batches must hold ``streams`` consecutive rows
    in order and the recurrent state may be carried from one batch to the next.

    ``steps_per_step`` is how many of the split's (model) steps make one reported time step:
    1, except in the flat view (:mod:`srnn.data.flat`), where each original step of D values
    is D scalar steps. Every figure per time step divides by :attr:`reported_steps`, and
    training windows are counted in reported steps (:mod:`srnn.data.batching`).
    """

    x: list[np.ndarray]
    u: list[np.ndarray]
    streams: int = 0
    steps_per_step: int = 1

    def __post_init__(self) -> None:
        if len(self.x) != len(self.u):
            raise ValueError("x and u must hold the same number of sequences")
        if self.steps_per_step < 1:
            raise ValueError(f"steps_per_step must be at least 1, not {self.steps_per_step}")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def steps(self) -> int:
        """Number of (unpadded) model steps in the split (scalar steps in the flat view)."""
        return int(sum(len(s) for s in self.x))

    @property
    def reported_steps(self) -> int:
        """Number of (unpadded) reported time steps: :attr:`steps` / ``steps_per_step``."""
        return self.steps // self.steps_per_step

    @classmethod
    def from_targets(cls, sequences: list[np.ndarray]) -> Split:
        """Build a split whose inputs are the targets shifted by one step."""
        xs = [np.ascontiguousarray(s, dtype=np.float32) for s in sequences]
        return cls(x=xs, u=[shift_inputs(s) for s in xs])

    def joined_streams(self) -> Split:
        """Stream-ordered windows joined back into one sequence per stream (a split of whole
        sequences; other splits are returned as they are)."""
        if not self.streams:
            return self
        s = self.streams
        xs = [np.concatenate(self.x[i::s]) for i in range(s) if self.x[i::s]]
        us = [np.concatenate(self.u[i::s]) for i in range(s) if self.u[i::s]]
        return Split(x=xs, u=us, steps_per_step=self.steps_per_step)

    def subset(self, n: int) -> Split:
        """The first ``n`` sequences (stream order kept)."""
        return Split(x=self.x[:n], u=self.u[:n], streams=self.streams,
                     steps_per_step=self.steps_per_step)


@dataclass
class SequenceDataset:
    """A data set with train/valid/test splits and what its time step and values mean.

    ``grid`` is what one time step is (:class:`~srnn.data.grid.Grid`; ``time_step`` is its
    display text) and ``modality`` what the values are (:data:`MODALITIES`); every loader sets
    both, and :mod:`srnn.data.registry` knows them for each named set without loading it.
    ``flat`` marks the flat view of a set (:func:`srnn.data.flat.flatten_dataset`): one scalar
    per model step, ``steps_per_step`` of them per original step (grid, modality and figures
    per step stay those of the original steps).

    A real-valued set (``binary`` False) may still hold columns of 0/1 values:
    ``binary_columns`` lists them (IAM-OnDB's pen lift; the binary columns of your own
    arrays), and ``emission`` names the emission its steps call for when none is chosen
    (``"pen"`` for handwriting, ``"mixed"`` for arrays that record their columns; ``""``:
    bernoulli for binary sets, gauss for the others).
    """

    name: str
    train: Split
    valid: Split
    test: Split
    protocol: str  # "canonical", "fraccaro", "bach", ...
    time_step: str  # e.g. "quarter note", "0.3 s frame": the display text of `grid`
    binary: bool = True
    info: dict = field(default_factory=dict)
    grid: Grid = NO_GRID
    modality: Modality = Modality.OTHER
    flat: bool = False
    binary_columns: tuple[int, ...] = ()
    emission: str = ""

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got "
                             f"{self.modality!r}")
        self.modality = Modality(self.modality)

    @property
    def dim(self) -> int:
        """Values per model step (1 in the flat view)."""
        return int(self.train.x[0].shape[-1])

    @property
    def steps_per_step(self) -> int:
        """Model steps per reported time step (the original dim in the flat view, else 1)."""
        return self.train.steps_per_step

    def split(self, name: str) -> Split:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, valid or test")
        return getattr(self, name)
