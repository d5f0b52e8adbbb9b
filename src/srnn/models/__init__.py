"""Models by name."""

from __future__ import annotations

from typing import Any

from srnn.models.base import Batch, StateSpaceModel, StepParams
from srnn.models.srnn import SRNN, SRNNConfig

MODELS: dict[str, tuple[type, type]] = {"srnn": (SRNN, SRNNConfig)}

__all__ = ["MODELS", "SRNN", "Batch", "SRNNConfig", "StateSpaceModel", "StepParams",
           "build_model", "model_config"]


def model_config(name: str, **options: Any) -> Any:
    """The config dataclass of model ``name`` with ``options`` set (unknown keys raise)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cfg_cls = MODELS[name][1]
    fields = cfg_cls.__dataclass_fields__
    bad = sorted(set(options) - set(fields))
    if bad:
        raise ValueError(f"model {name!r} has no option(s) {', '.join(bad)}")
    return cfg_cls(**options)


def build_model(name: str, **options: Any) -> StateSpaceModel:
    """Build model ``name`` from keyword options of its config."""
    return MODELS[name][0](model_config(name, **options))
