"""Parameter matching: scale a model's widths until its parameter count meets a target.

Dai et al. (2019) compare sequence models at equal parameter counts; here every width listed in
a config's ``SIZE_FIELDS`` is multiplied by one factor, found by bisection, while the latent
size and any option set by hand stay as they are.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from srnn.models import MODELS, build_model, model_config


def count_parameters(name: str, options: dict[str, Any]) -> int:
    """Parameters of model ``name`` with ``options`` (built on the meta device: no memory, no
    initialisation)."""
    with torch.device("meta"):
        return build_model(name, **{**options, "init": "torch"}).num_parameters()


def match_parameters(name: str, target: int, options: dict[str, Any] | None = None,
                     tolerance: float = 0.02, at_most: bool = False) -> dict[str, Any]:
    """``options`` plus widths scaled so that model ``name`` has about ``target`` parameters.

    Options given in ``options`` are kept; the remaining ``SIZE_FIELDS`` are scaled from the
    model's defaults by a common factor. Returns the options of the closest count found (within
    ``tolerance`` whenever the widths allow it); with ``at_most``, of the closest count that is
    not above ``target`` (Dai et al. 2019 keep the RNN no larger than the SRNN it is compared
    with), or of the smallest widths if even they are above it.
    """
    options = dict(options or {})
    base = model_config(name, **options)
    free = [f for f in MODELS[name].config.SIZE_FIELDS if f not in options]
    if not free:
        return options

    def scaled(log_s: float) -> tuple[int, dict[str, Any]]:
        s = math.exp(log_s)
        opts = {**options, **{f: max(1, round(getattr(base, f) * s)) for f in free}}
        return count_parameters(name, opts), opts

    def better(n: int, than: tuple[int, dict[str, Any]] | None) -> bool:
        if at_most and n > target:
            return False
        return than is None or abs(n / target - 1) < abs(than[0] / target - 1)

    lo, hi = math.log(1 / 64), math.log(64)
    first = scaled(0.0)
    best = first if better(first[0], None) else None
    for _ in range(40):
        mid = (lo + hi) / 2
        n, opts = scaled(mid)
        if better(n, best):
            best = (n, opts)
        if better(n, None) and abs(n / target - 1) <= tolerance / 4:
            break
        if n < target:
            lo = mid
        else:
            hi = mid
    return best[1] if best is not None else scaled(lo)[1]
