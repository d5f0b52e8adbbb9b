"""Models by name: SRNN and its peers, all built from the same blocks."""

from __future__ import annotations

from typing import Any, NamedTuple

from srnn.models.base import (
    Batch,
    GeneratedPath,
    GenerativeStep,
    ModelConfig,
    SequenceModel,
    StateSpaceModel,
    StepParams,
)
from srnn.models.dai_srnn import DaiSRNN, DaiSRNNConfig
from srnn.models.dmm import DMM, DMMConfig
from srnn.models.rnn import RNN, RNNConfig
from srnn.models.srnn import SRNN, SRNNConfig
from srnn.models.storn import STORN, STORNConfig
from srnn.models.vrnn import VRNN, VRNNConfig
from srnn.models.zforcing import ZForcing, ZForcingConfig


class ModelSpec(NamedTuple):
    """A model of the registry: its class, its config class, and the defaults of the config's
    options that differ for this name (VRNN-I is the VRNN with ``independent_prior``)."""

    model: type[SequenceModel]
    config: type[ModelConfig]
    defaults: dict[str, Any]


MODELS: dict[str, ModelSpec] = {
    "srnn": ModelSpec(SRNN, SRNNConfig, {}),
    "vrnn": ModelSpec(VRNN, VRNNConfig, {}),
    "vrnn-i": ModelSpec(VRNN, VRNNConfig, {"independent_prior": True}),
    "storn": ModelSpec(STORN, STORNConfig, {}),
    "rnn": ModelSpec(RNN, RNNConfig, {}),
    "zforcing": ModelSpec(ZForcing, ZForcingConfig, {}),
    "dmm": ModelSpec(DMM, DMMConfig, {}),
    "srnn-dai": ModelSpec(DaiSRNN, DaiSRNNConfig, {}),
}

__all__ = ["DMM", "MODELS", "RNN", "SRNN", "STORN", "VRNN", "Batch", "DMMConfig", "DaiSRNN",
           "DaiSRNNConfig",
           "GeneratedPath", "GenerativeStep", "ModelSpec", "RNNConfig", "SRNNConfig",
           "STORNConfig", "SequenceModel", "StateSpaceModel", "StepParams", "VRNNConfig",
           "ZForcing", "ZForcingConfig", "build_model", "model_config", "model_fields"]


def model_fields(name: str) -> list[str]:
    """The option names of model ``name``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return list(MODELS[name].config.__dataclass_fields__)


def model_config(name: str, **options: Any) -> Any:
    """The config dataclass of model ``name`` with ``options`` set (unknown keys raise)."""
    fields = model_fields(name)
    bad = sorted(set(options) - set(fields))
    if bad:
        raise ValueError(f"model {name!r} has no option(s) {', '.join(bad)}")
    spec = MODELS[name]
    return spec.config(**{**spec.defaults, **options})


def build_model(name: str, **options: Any) -> SequenceModel:
    """Build model ``name`` from keyword options of its config."""
    return MODELS[name].model(model_config(name, **options))
