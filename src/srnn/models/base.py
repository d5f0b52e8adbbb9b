"""The state-space step interface that every latent model implements.

A model splits its computation into
  * ``precompute(batch, carry)``: all work that does not depend on z, for all steps at once;
  * ``init_state(pre, carry)``: the recurrent state before step 1 (z_0 and any cell state);
  * ``step(state, t, pre)``: the proposal q(z_t | ...) and prior p(z_t | ...) at step t;
  * ``next_state(state, z_t, t, pre)``: the state after z_t has been drawn;
  * ``emission_log_prob(z, pre)``: log p(x_t | z_t, ...) for all steps at once, shape (B, T).
The bounds (ELBO, and later IWAE, FIVO) and samplers are generic loops over this interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """A padded batch: targets ``x`` and inputs ``u`` (B, T, D), ``mask`` (B, T) of 0/1."""

    x: Tensor
    u: Tensor
    mask: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(1).long()

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.x.to(device), self.u.to(device), self.mask.to(device))


class StepParams(NamedTuple):
    """Diagonal-Gaussian parameters of the proposal q(z_t | ...) and the prior p(z_t | ...)."""

    q_loc: Tensor
    q_scale: Tensor
    p_loc: Tensor
    p_scale: Tensor


class StateSpaceModel(nn.Module):
    """Base class of latent sequence models with the step interface (see module docstring)."""

    z_dim: int

    def precompute(self, batch: Batch, carry: Any = None) -> Any:
        raise NotImplementedError

    def init_state(self, pre: Any, carry: Any = None) -> Any:
        raise NotImplementedError

    def step(self, state: Any, t: int, pre: Any) -> StepParams:
        raise NotImplementedError

    def next_state(self, state: Any, z: Tensor, t: int, pre: Any) -> Any:
        raise NotImplementedError

    def emission_log_prob(self, z: Tensor, pre: Any) -> Tensor:
        raise NotImplementedError

    def final_carry(self, state: Any, pre: Any) -> Any:
        """What a following window of the same streams starts from (truncated BPTT)."""
        return None
