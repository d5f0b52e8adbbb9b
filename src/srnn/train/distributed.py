"""Data-parallel training across processes with PyTorch's DistributedDataParallel.

The training loop talks to its processes through one interface: a process alone is a
:class:`Solo`, whose collective steps are the identity. Started by ``torchrun`` (which sets
``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...), a process is one of a :class:`Group`: every
process builds the same batches from the same seed and trains on its share of the rows of
each one (:class:`DataParallelObjective`): process r of W takes rows r, r + W, r + 2W, ...
DDP averages the gradients, and each process scales its loss so that the average is the
gradient of the whole batch's per-step ELBO. The posterior noise is drawn for the whole batch
on every process and each keeps its rows, so W processes follow the single-process run with
the same batch size (up to floating-point summation order; dropout masks are drawn per
process). Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from srnn.data.batching import Batch
from srnn.errors import ConfigError
from srnn.models.base import SequenceModel
from srnn.train.objectives import BatchResult, EpochSums, Objective, RowShare

log = logging.getLogger("srnn.distributed")


def requested() -> bool:
    """Whether this process was started as one of several (e.g. by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Solo:
    """A process that trains alone: every collective step is the identity, and it writes the
    run's files. The training loop is written against this interface (see :class:`Group`)."""

    main = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds in any process (all must agree before a step)."""
        return flag

    def stop_now(self, requested: bool, carrying: bool) -> bool:
        """Whether to stop after this batch, when a stop was ``requested`` (a signal)."""
        return requested

    def summed(self, sums: EpochSums) -> EpochSums:
        """The epoch's running sums over all processes."""
        return sums

    def resumed(self, sums: EpochSums) -> EpochSums:
        """This process's part of the sums an interrupted epoch saved (all of them)."""
        return sums

    def barrier(self) -> None:
        """Wait until every process is here."""

    def wrap(self, objective: Objective, model: nn.Module) -> Objective:
        """The objective as this process computes it: on the whole batch."""
        return objective


@dataclass
class Group:
    """This process's place in a group of ``world`` processes."""

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

    def stop_now(self, requested: bool, carrying: bool) -> bool:
        """Every process stops after the same batch; with stream states carried (they differ
        per process and are not saved) the stop waits for the end of the epoch."""
        return self.any(requested) and not carrying

    def summed(self, sums: EpochSums) -> EpochSums:
        """Running sums over all processes (skipped batches are the same on each)."""
        t = torch.tensor([sums.recon, sums.kl, sums.steps], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t)
        recon, kl, steps = t.tolist()
        return EpochSums(recon, kl, steps, sums.skipped)

    def resumed(self, sums: EpochSums) -> EpochSums:
        """The saved sums are those of all processes: rank 0 carries them on, the others
        start from zero."""
        return sums if self.main else EpochSums()

    def barrier(self) -> None:
        dist.barrier()

    def wrap(self, objective: Objective, model: nn.Module) -> Objective:
        return DataParallelObjective(objective, model, self)


class _Forward(nn.Module):
    """The objective as a module, so that DistributedDataParallel sees a forward call."""

    def __init__(self, objective: Objective, model: nn.Module) -> None:
        super().__init__()
        self.objective = objective
        self.model = model

    def forward(self, batch: Batch, carry: Any, kl_weight: float,
                share: RowShare) -> BatchResult:
        return self.objective(self.model, batch, carry, kl_weight, share)


class DataParallelObjective(Objective):
    """An objective computed on this process's rows of every batch through
    DistributedDataParallel, whose gradient mean over processes is the whole batch's."""

    def __init__(self, objective: Objective, model: nn.Module, group: Group) -> None:
        self.name, self.has_parts = objective.name, objective.has_parts
        self.carries = objective.carries
        self.group = group
        ids = [group.device.index] if group.device.type == "cuda" else None
        self.module = nn.parallel.DistributedDataParallel(_Forward(objective, model),
                                                          device_ids=ids)

    def __call__(self, model: SequenceModel, batch: Batch, carry: Any, kl_weight: float,
                 share: RowShare | None = None) -> BatchResult:
        n = batch.x.shape[0]
        rows = self.group.rows(n)
        local = Batch(batch.x[rows], batch.u[rows], batch.mask[rows])
        share = RowShare(rows, n, self.group.world / batch.mask.sum())
        return self.module(local, carry, kl_weight, share)


def setup(device: str = "cpu") -> Group | Solo:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPU); a :class:`Solo`
    when this process runs alone."""
    if not requested():
        return Solo(torch.device(device))
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
