"""Data-parallel training across processes with PyTorch's DistributedDataParallel.

Started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...), every
process builds the same batches from the same seed and trains on its share of the rows of each
one: process r of W takes rows r, r + W, r + 2W, ... DDP averages the gradients, and each
process scales its loss so that the average is the gradient of the whole batch's per-step
ELBO. The posterior noise is drawn for the whole batch on every process and each keeps its
rows, so W processes follow the single-process run with the same batch size (up to
floating-point summation order; dropout masks are drawn per process). Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from srnn.errors import ConfigError

log = logging.getLogger("srnn.distributed")


def requested() -> bool:
    """Whether this process was started as one of several (e.g. by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class Group:
    """This process's place in the group."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int) -> Tensor:
        """The rows of an n-row batch this process trains on."""
        return torch.arange(self.rank, n, self.world, device=self.device)

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any (all must agree before a step)."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def wrap(self, module: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def setup(device: str = "cpu") -> Group | None:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPU); None when this
    process runs alone."""
    if not requested():
        return None
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        try:
            dist.init_process_group(backend=backend)
        except (ValueError, RuntimeError) as e:
            raise ConfigError(f"could not join the process group ({backend}): {e}; start "
                              "several processes with torchrun") from e
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if rank != 0:  # one process reports
        logging.getLogger("srnn").setLevel(logging.WARNING)
    log.info("data-parallel training: %d processes (%s)", world, dist.get_backend())
    return Group(rank, world, dev)


def teardown() -> None:
    """Leave the group. The barrier first: without it gloo processes exiting at different
    moments sometimes abort ('terminate called without an active exception')."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class ElboObjective(nn.Module):
    """The model's training objective as a module, so that DistributedDataParallel sees a
    forward call: returns the ELBO terms of a batch (and the model for everything else)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self.model, *args, **kwargs)
