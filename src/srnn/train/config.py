"""The settings of a run: the data set, the model and its options, and the optimisation.

A :class:`RunConfig` is what ``config.json`` holds (see :mod:`srnn.train.run_dir`); it is
enough to rebuild the run.

Every option says which values it allows (an :class:`Allowed`): the training options in their
:class:`TrainConfig` field, the model options in :data:`MODEL_OPTIONS`. ``validate()`` checks
them all before any work, with one message per bad value, ``--OPTION VALUE: must be ...``;
the command line checks its own options with the same rules, and reads option files
(:func:`read_options_file`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from srnn.columns import check_columns
from srnn.data.registry import takes_options
from srnn.errors import ConfigError
from srnn.models import MODELS, model_fields
from srnn.nn.emissions import EMISSIONS
from srnn.train.objectives import OBJECTIVES
from srnn.train.schedules import LR_SCHEDULES


def flag(name: str) -> str:
    """The command-line flag of an option: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def show_value(value: Any) -> str:
    """A value as a user types it: ``-1`` for -1.0, ``nan``, ``true``."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


class OptionError(ConfigError):
    """An option's value is not one it allows: ``--OPTION VALUE: must be ...``."""

    def __init__(self, option: str, value: Any, allowed: str) -> None:
        self.option, self.value, self.allowed = option, value, allowed
        super().__init__(f"{flag(option)} {show_value(value)}: must be {allowed}")


@dataclass(frozen=True)
class Allowed:
    """The values an option allows: ``test`` says whether a value is one, ``text`` describes
    them in error messages (``a positive integer``); ``choices`` for an option that takes one
    of a few names (the parser offers them)."""

    text: str
    test: Callable[[Any], bool]
    choices: tuple[str, ...] = ()

    def check(self, option: str, value: Any) -> None:
        """Raise :class:`OptionError` unless ``value`` is allowed; None (unset) always is."""
        if value is not None and not self.test(value):
            raise OptionError(option, value, self.text)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def one_of(choices: Iterable[str]) -> Allowed:
    """One of the names ``choices``."""
    names = tuple(choices)
    return Allowed(f"one of {', '.join(names)}", lambda v: v in names, names)


def _torch_device(v: Any) -> bool:
    import torch

    try:
        torch.device(v)
    except (RuntimeError, TypeError):
        return False
    return True


POSITIVE_INT = Allowed("a positive integer", lambda v: _integer(v) and v >= 1)
COUNT = Allowed("an integer >= 0", lambda v: _integer(v) and v >= 0)
# Seeds go to numpy's default_rng (no negative seeds) and torch.manual_seed; tune multiplies
# them by 10^6, so they stay within 32 bits.
SEED = Allowed("an integer in 0 .. 4294967295", lambda v: _integer(v) and 0 <= v < 2 ** 32)
POSITIVE = Allowed("a positive finite number", lambda v: _finite(v) and v > 0)
NON_NEGATIVE = Allowed("a finite number >= 0", lambda v: _finite(v) and v >= 0)
FRACTION = Allowed("a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1)
DROPOUT = Allowed("a probability in [0, 1)", lambda v: _finite(v) and 0 <= v < 1)
FLAG = Allowed("true or false", lambda v: isinstance(v, bool))
TEXT = Allowed("a string", lambda v: isinstance(v, str))
DEVICE = Allowed("a torch device: cpu, cuda or cuda:N",
                 lambda v: isinstance(v, str) and _torch_device(v))
AR_ORDER = Allowed(
    "ascending, descending or random:SEED",
    lambda v: isinstance(v, str) and (v in ("ascending", "descending") or (
        v.startswith("random:") and v[7:].strip().lstrip("-").isdigit())))
ACTIVATIONS = ("clipped_leaky_relu", "relu", "tanh", "identity")  # srnn.nn.layers.activation
COLUMNS = Allowed(  # the mixed emission's binary columns; which exist is checked with the data
    "a list of distinct column numbers (integers >= 0)",
    lambda v: isinstance(v, list | tuple) and _are_columns(v))


def _are_columns(v: list[Any] | tuple[Any, ...]) -> bool:
    """Whether ``v`` passes :func:`srnn.columns.check_columns` (no number of values known)."""
    try:
        check_columns(v)
    except ValueError:
        return False
    return True


def option(default: Any, allowed: Allowed) -> Any:
    """A config field with its default and the values it allows (``fields(...).metadata``)."""
    return field(default=default, metadata={"allowed": allowed})


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults follow the SRNN paper's code (see README). Each
    field says which values it allows; :meth:`validate` checks them."""

    epochs: int = option(50, POSITIVE_INT)
    batch_size: int = option(16, POSITIVE_INT)
    window: int = option(100, POSITIVE_INT)  # training windows of at most this many steps
    lr: float = option(1e-3, POSITIVE)
    adam_eps: float = option(1e-4, POSITIVE)  # 0 would divide by 0 where a gradient is 0
    clip_norm: float = option(10.0, POSITIVE)  # total gradient norm
    weight_decay: float = option(0.0, NON_NEGATIVE)  # > 0: decoupled weight decay (AdamW,
    # Loshchilov & Hutter 2019): every parameter shrinks by lr x weight_decay of itself per
    # update (0: plain Adam)
    kl_start: float = option(0.2, FRACTION)  # KL weight at the first update ...
    kl_epochs: float = option(20.0, NON_NEGATIVE)  # ... rising linearly to 1 over this many
    # epochs (0: off)
    lr_decay: float = option(1.2, POSITIVE)  # LR divided by this per epoch ...
    lr_decay_start: int = option(20, COUNT)  # ... after this epoch
    lr_schedule: str = option("exponential", one_of(LR_SCHEDULES))  # exponential (lr_decay,
    # lr_decay_start) or cosine: per update from lr down to lr_min over epochs x updates per
    # epoch (Lai et al. 2019)
    lr_min: float = option(1e-6, NON_NEGATIVE)  # the cosine schedule's last learning rate
    kl_rate: float = option(0.0, NON_NEGATIVE)  # > 0: the KL weight rises by this much per
    # update from kl_start (to 1) instead of over kl_epochs (Lai et al. 2019: 5e-5)
    patience: int = option(10, POSITIVE_INT)  # stop after this many epochs without a better
    # validation ELBO
    seed: int = option(0, SEED)
    eval_batch_size: int = option(32, POSITIVE_INT)
    max_minutes: float | None = option(None, POSITIVE)  # stop training (then evaluate) after
    # this long
    subset: int | None = option(None, POSITIVE_INT)  # use only the first N train/valid/test
    # sequences (smoke runs)
    objective: str = option("elbo", one_of(OBJECTIVES))  # elbo, iwae or fivo (the last two
    # with `samples` particles)
    samples: int = option(1, POSITIVE_INT)  # particles per sequence for iwae and fivo
    tbptt: int = option(0, COUNT)  # > 0: train on lanes of whole sequences in windows of this
    # many steps, carrying the recurrent state from window to window (0: independent windows
    # of `window`)
    device: str = option("cpu", DEVICE)  # or "cuda", "cuda:1", ...
    max_bad_batches: int = option(20, POSITIVE_INT)  # stop after this many batches in a row
    # with a non-finite loss or gradient (each one is skipped: no update)
    transpose: int = option(0, COUNT)  # > 0: each training window of a piano roll moved by a
    # random shift of at most this many semitones (pitch-shift augmentation; 0: off)
    keep_checkpoints: bool = option(False, FLAG)  # keep the resumable state when the run ends
    # (last.pt, last.prev.pt, best.pt's optimiser and RNG states); off: a finished run keeps
    # best.pt's weights and settings only (srnn.train.run_dir.RunDirectory.shrink_checkpoints)
    tensorboard: bool = option(False, FLAG)  # log to TensorBoard in RUN_DIR/tensorboard/
    # (srnn.train.tensorboard; pip install 'srnn[tensorboard]')
    tensorboard_every: int = option(10, POSITIVE_INT)  # with tensorboard: a sample's image and
    # audio every this many epochs

    @classmethod
    def rules(cls) -> dict[str, Allowed]:
        """What each field allows, by name."""
        return {f.name: f.metadata["allowed"] for f in fields(cls)}

    def validate(self) -> TrainConfig:
        """Raise :class:`OptionError` for the first field whose value it does not allow;
        return the config."""
        for name, allowed in self.rules().items():
            allowed.check(name, getattr(self, name))
        return self


# What each model option allows, by field of the models' configs (srnn.models; every field of
# every model has an entry, see tests/test_option_checks.py).
MODEL_OPTIONS: dict[str, Allowed] = {
    **dict.fromkeys(("x_dim", "z_dim", "d_dim", "a_dim", "h_dim", "hidden", "feature_dim",
                     "emission_hidden", "mixtures", "ar_layers"), POSITIVE_INT),
    "feature_layers": COUNT,  # 0: raw x and u
    "ar_hidden": COUNT,  # 0: the emission's default
    "ar_chunk": COUNT,  # 0: ceil(x_dim / 10)
    "emission": one_of(EMISSIONS),
    "activation": one_of(ACTIVATIONS),
    "init": one_of(("paper", "torch")),
    "ar_order": AR_ORDER,
    "dropout": DROPOUT,
    "aux_weight": NON_NEGATIVE,  # 0: no auxiliary cost
    "min_std": POSITIVE,
    "binary_columns": COLUMNS,
    **dict.fromkeys(("smoothing", "res_q", "two_networks", "prev_input", "independent_prior"),
                    FLAG),
}


def _are_fractions(v: Any) -> bool:
    """Whether ``v`` is three positive fractions that add up to 1 (``splits``)."""
    return isinstance(v, list | tuple) and len(v) == 3 and all(_finite(f) and f > 0 for f in v) \
        and math.isclose(sum(v), 1.0, abs_tol=1e-6)


# What each option of a data set built with options allows: a folder of MIDI files
# (srnn.data.midi_folder.FOLDER_OPTIONS, which lists the same names with their defaults).
DATA_OPTIONS: dict[str, Allowed] = {
    "steps_per_beat": POSITIVE_INT,
    "step_seconds": POSITIVE,
    "transpose_to_c": FLAG,
    "splits": Allowed("three positive fractions (train, valid, test) that add up to 1",
                      _are_fractions),
    "split_seed": SEED,
}


def check_data_options(dataset: str, options: dict[str, Any]) -> None:
    """Refuse a value that a data option does not allow, an unknown data option, and options
    for a data set that takes none (every set but a folder of MIDI files)."""
    for name, value in options.items():
        if name not in DATA_OPTIONS:
            raise ConfigError(f"unknown data option {name!r}; the options of a folder of MIDI "
                              f"files are {', '.join(DATA_OPTIONS)}")
        DATA_OPTIONS[name].check(name, value)
    if options and not takes_options(dataset):
        raise ConfigError(f"{', '.join(flag(k) for k in options)}: options of a folder of MIDI "
                          f"files, but data set {dataset!r} is not one")


def check_model_options(model: str, options: dict[str, Any]) -> None:
    """Refuse a value that an option does not allow, a model name that is not one, and an
    option that ``model`` lacks."""
    for name, value in options.items():
        if name in MODEL_OPTIONS:
            MODEL_OPTIONS[name].check(name, value)
    one_of(MODELS).check("model", model)
    bad = sorted(set(options) - set(model_fields(model)))
    if bad:
        raise ConfigError(f"model {model!r} has no option(s) {', '.join(bad)}")


# What is logged of a run, not what it computes: a resumed run, or a job of a sweep, may change
# them (they are not in a job's id, see srnn.experiments.jobs).
LOG_OPTIONS = ("tensorboard", "tensorboard_every")
# Stopping rules, the machine, what is kept on disk and what is logged rather than settings of
# the run: a resumed run may change them.
EXTENDABLE = ("epochs", "max_minutes", "device", "keep_checkpoints", *LOG_OPTIONS)


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
    data_options: dict[str, Any] = field(default_factory=dict)  # a MIDI folder's grid,
    # transposition, splits and seed (DATA_OPTIONS); {} for the other sets

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": self.model,
                "model_options": self.model_options, "train": asdict(self.train),
                "data_dir": self.data_dir, "flat": self.flat, "data_options": self.data_options}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(dataset=d["dataset"], model=d["model"], model_options=d["model_options"],
                   train=TrainConfig(**d["train"]), data_dir=d.get("data_dir"),
                   flat=bool(d.get("flat", False)),  # configs from before the flat view
                   data_options=dict(d.get("data_options") or {}))  # ... before data options

    def validate(self) -> RunConfig:
        """Check every setting before any work (:class:`OptionError` or :class:`ConfigError`
        for the first bad one); return the config."""
        TEXT.check("dataset", self.dataset)
        TEXT.check("data_dir", self.data_dir)
        FLAG.check("flat", self.flat)
        check_data_options(self.dataset, self.data_options)
        check_model_options(self.model, self.model_options)
        self.train.validate()
        return self


# The sections of config.json (RunConfig.to_dict) that hold options; an option file may use
# them too, or give every option at its top level.
SECTIONS = ("model_options", "train", "data_options")


def read_options_file(path: str | Path) -> dict[str, Any]:
    """The options a TOML (``.toml``) or JSON file sets, as one flat ``{key: value}`` dict
    with the keys as written; the :data:`SECTIONS` of a run's ``config.json`` are flattened
    into it. A missing or unreadable file, or a key given twice, is a :class:`ConfigError`
    naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the option file ({e.strerror or e})") from None
    data = _parse_options(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of options, not {type(data).__name__}")
    out = {k: v for k, v in data.items() if k not in SECTIONS}
    for section in SECTIONS:
        inner = data.get(section, {})
        if not isinstance(inner, dict):
            raise ConfigError(f"{path}: {section} must be a table of options")
        twice = sorted(set(inner) & set(out))
        if twice:
            raise ConfigError(f"{path}: {', '.join(twice)} given twice")
        out.update(inner)
    return out


def _parse_options(path: Path, text: str) -> Any:
    """The content of an option file: TOML for ``.toml`` (Python 3.11's tomllib), else JSON."""
    if path.suffix != ".toml":
        try:
            return json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{path}: not valid JSON (or name a TOML file .toml): {e}") from None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise ConfigError(f"{path}: reading TOML needs Python 3.11 or later; give the options "
                          "as JSON") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
