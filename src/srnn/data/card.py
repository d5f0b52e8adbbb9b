"""The data card: what a run keeps of its data set (``data.json`` in the run directory).

Enough to turn model outputs back into music or audio without the data files. As JSON::

    {"name": "jsb", "protocol": "canonical", "time_step": "quarter note", "binary": true,
     "dim": 88, "grid": {"kind": "beats", "steps_per_beat": 1, "label": "quarter note"},
     "modality": "music", "flat": false, "steps_per_step": 1}

``grid`` is :meth:`srnn.data.grid.Grid.to_dict`, ``modality`` one of "music", "speech",
"other". ``flat`` says whether the run models the flat view of the set (:mod:`srnn.data.flat`)
and ``steps_per_step`` how many model steps make one of the set's steps (in the flat view D
scalar steps, with ``dim`` 1; else 1); cards without them are of the plain view. A speech set
adds ``rate`` (Hz), ``frame_size`` (samples per frame), ``normaliser`` (``{"mean", "std"}`` of
the training samples) and ``permute_seed`` (the frame permutation's seed, or null):
:class:`SpeechInfo` (``DataCard.speech``; ``None`` where the card has none). A handwriting set
(IAM-OnDB) adds ``normaliser`` (``{"mean": [dx, dy], "std": [dx, dy]}`` of the training
offsets): :class:`HandwritingInfo` (``DataCard.handwriting``), what draws its steps as strokes.
A set built with options records them as ``options`` (a folder of MIDI files:
``{"steps_per_beat": 2, "step_seconds": null, "transpose_to_c": true, "splits": [0.6, 0.2,
0.2], "split_seed": 3}``, :data:`srnn.data.midi_folder.FOLDER_OPTIONS`; what the set's loader
puts in its ``info["options"]``, see :func:`data_options`); cards without them are of a set
that takes none.

:func:`data_card` builds the card of a :class:`~srnn.data.sequences.SequenceDataset`;
:func:`read_card` turns a card back into a typed :class:`DataCard`. Cards written before grids
and modalities were recorded lack ``grid`` and ``modality``: they are then taken from the
registry entry of the run's data set name (``config.json``'s ``dataset``), as the samplers did
then; the ``time_step`` text is never parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from srnn.data.grid import Grid
from srnn.data.iamondb import OffsetNormaliser
from srnn.data.iamondb import decode as decode_strokes
from srnn.data.sequences import MODALITIES, Modality, SequenceDataset
from srnn.data.speech import Normaliser, decode
from srnn.errors import ConfigError, DataError

SPEECH_KEYS = ("rate", "frame_size", "normaliser", "permute_seed")


@dataclass(frozen=True)
class SpeechInfo:
    """What turns a speech model's frames back into a waveform (see :func:`decode`)."""

    rate: int
    frame_size: int
    normaliser: Normaliser
    permute_seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "frame_size": self.frame_size,
                "normaliser": self.normaliser.to_dict(), "permute_seed": self.permute_seed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "data card") -> SpeechInfo:
        """The speech fields of a card or of a speech set's ``info``; a missing or bad one is a
        :class:`ConfigError` naming ``where``."""
        missing = [k for k in ("rate", "frame_size", "normaliser") if k not in d]
        if missing:
            raise ConfigError(f"{where}: a speech set's card needs {', '.join(missing)}")
        rate, size, seed = d["rate"], d["frame_size"], d.get("permute_seed")
        for key, value in (("rate", rate), ("frame_size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(f"{where}: permute_seed must be an integer or null, got {seed!r}")
        try:
            normaliser = Normaliser.from_dict(d["normaliser"])
        except DataError as e:
            raise ConfigError(f"{where}: {e}") from e
        return cls(rate=rate, frame_size=size, normaliser=normaliser, permute_seed=seed)

    def decode(self, frames: np.ndarray) -> np.ndarray:
        """The waveform of model frames ``(T, frame_size)``: permutation undone, normalisation
        inverted, unframed."""
        return decode(frames, self.to_dict())


@dataclass(frozen=True)
class HandwritingInfo:
    """What turns a handwriting model's steps (pen lift, dx, dy) back into strokes (see
    :func:`srnn.data.iamondb.decode`): the training offsets' normaliser."""

    normaliser: OffsetNormaliser

    def to_dict(self) -> dict[str, Any]:
        return {"normaliser": self.normaliser.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "data card") -> HandwritingInfo:
        """The handwriting fields of a card or of a handwriting set's ``info``; a missing or
        bad one is a :class:`ConfigError` naming ``where``."""
        if "normaliser" not in d:
            raise ConfigError(f"{where}: a handwriting set's card needs normaliser")
        try:
            return cls(OffsetNormaliser.from_dict(d["normaliser"]))
        except DataError as e:
            raise ConfigError(f"{where}: {e}") from e

    def decode(self, steps: np.ndarray) -> list[np.ndarray]:
        """The strokes (points (n, 2) each) that model steps (T, 3) draw."""
        return decode_strokes(steps, self.normaliser)


@dataclass(frozen=True)
class DataCard:
    """A run's data card, typed (see the module docstring). ``binary`` and ``dim`` are
    ``None`` for a run written before cards existed (no ``data.json``)."""

    name: str
    protocol: str
    time_step: str
    grid: Grid
    modality: Modality
    binary: bool | None = None
    dim: int | None = None
    speech: SpeechInfo | None = None
    flat: bool = False
    steps_per_step: int = 1  # model steps per time step of the set (flat view: D)
    handwriting: HandwritingInfo | None = None
    options: Mapping[str, Any] | None = None  # what the set was built with (a MIDI folder's)

    @classmethod
    def of(cls, data: SequenceDataset) -> DataCard:
        """The card of a loaded data set."""
        speech = handwriting = None
        if data.modality == Modality.SPEECH and all(k in data.info for k in SPEECH_KEYS[:3]):
            speech = SpeechInfo.from_dict(data.info, f"data set {data.name!r}")
        if data.modality == Modality.HANDWRITING and "normaliser" in data.info:
            handwriting = HandwritingInfo.from_dict(data.info, f"data set {data.name!r}")
        return cls(name=data.name, protocol=data.protocol, time_step=data.time_step,
                   grid=data.grid, modality=data.modality, binary=data.binary, dim=data.dim,
                   speech=speech, flat=data.flat, steps_per_step=data.steps_per_step,
                   handwriting=handwriting, options=data_options(data) or None)

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON (the keys of the module docstring)."""
        out: dict[str, Any] = {"name": self.name, "protocol": self.protocol,
                               "time_step": self.time_step, "binary": self.binary,
                               "dim": self.dim, "grid": self.grid.to_dict(),
                               "modality": self.modality.value, "flat": self.flat,
                               "steps_per_step": self.steps_per_step}
        if self.speech is not None:
            out.update(self.speech.to_dict())
        if self.handwriting is not None:
            out.update(self.handwriting.to_dict())
        if self.options is not None:
            out["options"] = dict(self.options)
        return out


def data_options(data: SequenceDataset) -> dict[str, Any]:
    """The options ``data`` was built with (its loader's ``info["options"]``: a MIDI folder's
    grid, transposition, split fractions and seed); ``{}`` for a set that takes none."""
    return dict(data.info.get("options") or {})


def data_card(data: SequenceDataset) -> dict[str, Any]:
    """The card of ``data`` as JSON, for ``data.json``."""
    return DataCard.of(data).to_dict()


def read_card(card: Mapping[str, Any] | None, dataset: str,
              where: str = "data.json") -> DataCard:
    """The typed card of a ``data.json`` (``card``, ``{}`` or ``None`` when the run has none)
    of a run trained on ``dataset`` (its config's data set name).

    A card without ``grid`` or ``modality`` (written by an older version) takes them from the
    registry entry of ``dataset``, as do the ``name``, ``protocol`` and ``time_step`` of a run
    with no card at all; a name the registry does not know is then a :class:`DataError`. A card
    that is not a JSON object, or has a bad field, is a :class:`ConfigError` naming ``where``.
    """
    card = {} if card is None else card
    if not isinstance(card, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(card).__name__}")
    known = {k: card[k] for k in ("protocol", "time_step", "grid", "modality") if k in card}
    if len(known) < 4:  # an older card, or none: what the registry knows of the name
        from srnn.data.registry import lookup

        entry = lookup(dataset)
        known = {"protocol": entry.protocol, "time_step": entry.time_step, "grid": entry.grid,
               "modality": entry.modality, **known}
    grid = known["grid"]
    if not isinstance(grid, Grid):
        grid = Grid.from_dict(grid, f"{where}: grid")
    if known["modality"] not in MODALITIES:
        raise ConfigError(f"{where}: modality must be one of {', '.join(MODALITIES)}, got "
                          f"{known['modality']!r}")
    modality = Modality(known["modality"])
    speech = None
    if modality == Modality.SPEECH and any(k in card for k in SPEECH_KEYS):
        speech = SpeechInfo.from_dict(card, where)
    handwriting = None
    if modality == Modality.HANDWRITING and "normaliser" in card:
        handwriting = HandwritingInfo.from_dict(card, where)
    options = card.get("options")
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"{where}: options must be a JSON object, got {options!r}")
    binary, dim = card.get("binary"), card.get("dim")
    if binary is not None and not isinstance(binary, bool):
        raise ConfigError(f"{where}: binary must be true or false, got {binary!r}")
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
        raise ConfigError(f"{where}: dim must be a positive integer, got {dim!r}")
    flat, per_step = card.get("flat", False), card.get("steps_per_step", 1)
    if not isinstance(flat, bool):
        raise ConfigError(f"{where}: flat must be true or false, got {flat!r}")
    if not isinstance(per_step, int) or isinstance(per_step, bool) or per_step < 1:
        raise ConfigError(f"{where}: steps_per_step must be a positive integer, got "
                          f"{per_step!r}")
    return DataCard(name=str(card.get("name", dataset)), protocol=str(known["protocol"]),
                    time_step=str(known["time_step"]), grid=grid, modality=modality,
                    binary=binary, dim=dim, speech=speech, flat=flat, steps_per_step=per_step,
                    handwriting=handwriting, options=options)
