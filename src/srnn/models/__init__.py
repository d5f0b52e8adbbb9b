"""Models by name: SRNN and its peers, all built from the same blocks."""

from __future__ import annotations

from typing import Any

from srnn.models.base import Batch, SequenceModel, StateSpaceModel, StepParams
from srnn.models.dmm import DMM, DMMConfig
from srnn.models.rnn import RNN, RNNConfig
from srnn.models.srnn import SRNN, SRNNConfig
from srnn.models.storn import STORN, STORNConfig
from srnn.models.vrnn import VRNN, VRNNConfig
from srnn.models.zforcing import ZForcing, ZForcingConfig

# name -> (model class, config class, defaults that differ from the config's own)
MODELS: dict[str, tuple[type, type, dict[str, Any]]] = {
    "srnn": (SRNN, SRNNConfig, {}),
    "vrnn": (VRNN, VRNNConfig, {}),
    "vrnn-i": (VRNN, VRNNConfig, {"independent_prior": True}),
    "storn": (STORN, STORNConfig, {}),
    "rnn": (RNN, RNNConfig, {}),
    "zforcing": (ZForcing, ZForcingConfig, {}),
    "dmm": (DMM, DMMConfig, {}),
}

__all__ = ["DMM", "MODELS", "RNN", "SRNN", "STORN", "VRNN", "Batch", "DMMConfig", "RNNConfig",
           "SRNNConfig", "STORNConfig", "SequenceModel", "StateSpaceModel", "StepParams",
           "VRNNConfig", "ZForcing", "ZForcingConfig", "build_model", "model_config",
           "model_fields"]


def model_fields(name: str) -> list[str]:
    """The option names of model ``name``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return list(MODELS[name][1].__dataclass_fields__)


def model_config(name: str, **options: Any) -> Any:
    """The config dataclass of model ``name`` with ``options`` set (unknown keys raise)."""
    fields = model_fields(name)
    bad = sorted(set(options) - set(fields))
    if bad:
        raise ValueError(f"model {name!r} has no option(s) {', '.join(bad)}")
    return MODELS[name][1](**{**MODELS[name][2], **options})


def build_model(name: str, **options: Any) -> SequenceModel:
    """Build model ``name`` from keyword options of its config."""
    return MODELS[name][0](model_config(name, **options))
