"""KL annealing and learning-rate schedules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KLAnnealing:
    """KL weight (temperature) rising linearly per update from ``start`` to 1 over ``updates``."""

    start: float = 0.2
    updates: int = 0  # 0: no annealing (weight 1 throughout)

    def __call__(self, step: int) -> float:
        if self.updates <= 0:
            return 1.0
        return min(1.0, self.start + (1.0 - self.start) * step / self.updates)


def lr_at_epoch(lr: float, epoch: int, decay: float, decay_start: int) -> float:
    """Learning rate for 1-based ``epoch``: divided by ``decay`` per epoch after ``decay_start``."""
    return lr / decay ** max(0, epoch - decay_start)
