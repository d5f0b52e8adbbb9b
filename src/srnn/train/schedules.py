"""KL annealing and learning-rate schedules.

Both are functions of the progress counters a checkpoint holds (the 1-based epoch and the
number of updates made, ``step``), never of state of their own, so a resumed run continues the
same curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# "exponential": the SRNN paper's code, LR divided by `decay` per epoch after `decay_start`;
# "cosine": Lai, Dai, Yang and Yoo (2019), a half cosine per update from `lr` down to `lr_min`
# over the run's updates.
LR_SCHEDULES = ("exponential", "cosine")


@dataclass
class KLAnnealing:
    """KL weight (temperature) rising linearly per update from ``start`` to 1: over ``updates``
    updates, or, when ``rate`` > 0, by ``rate`` per update (Lai et al. 2019: 0.2 rising by 5e-5),
    ``updates`` then being ignored. ``step`` is the number of updates made before this one."""

    start: float = 0.2
    updates: int = 0  # 0: no annealing (weight 1 throughout), unless `rate` is set
    rate: float = 0.0  # > 0: the weight rises by this much per update (to at most 1)

    def __call__(self, step: int) -> float:
        if self.rate > 0:
            return min(1.0, self.start + self.rate * step)
        if self.updates <= 0:
            return 1.0
        return min(1.0, self.start + (1.0 - self.start) * step / self.updates)


def lr_at_epoch(lr: float, epoch: int, decay: float, decay_start: int) -> float:
    """Learning rate for 1-based ``epoch``: divided by ``decay`` per epoch after ``decay_start``."""
    return lr / decay ** max(0, epoch - decay_start)


def cosine_lr(lr: float, lr_min: float, step: int, total: int) -> float:
    """The learning rate of the update made after ``step`` of ``total`` updates on a half cosine
    from ``lr`` (step 0) down to ``lr_min`` (step ``total``, and after it):
    lr_min + (lr - lr_min) (1 + cos(pi step / total)) / 2 (Lai et al. 2019, their code's
    ``adjust_lr``)."""
    if total <= 0:
        return lr
    frac = min(1.0, max(0, step) / total)
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate of every update, from the 1-based ``epoch`` it belongs to and the
    number of updates made before it (``step``): ``exponential`` (:func:`lr_at_epoch`, constant
    within an epoch) or ``cosine`` (:func:`cosine_lr` over ``total_updates``, the run's epochs
    times its updates per epoch)."""

    kind: str = "exponential"
    lr: float = 1e-3
    decay: float = 1.2  # exponential
    decay_start: int = 20  # exponential
    lr_min: float = 1e-6  # cosine
    total_updates: int = 0  # cosine

    def __post_init__(self) -> None:
        if self.kind not in LR_SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.kind!r}; choose "
                             f"{' or '.join(LR_SCHEDULES)}")

    def __call__(self, epoch: int, step: int) -> float:
        if self.kind == "cosine":
            return cosine_lr(self.lr, self.lr_min, step, self.total_updates)
        return lr_at_epoch(self.lr, epoch, self.decay, self.decay_start)
