"""Shared fixtures: the data directory (tests that need it skip where it is absent), tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from srnn.data import SequenceDataset, Split
from srnn.models import SRNN, Batch, SRNNConfig

torch.set_flush_denormal(True)
torch.set_num_threads(1)  # tiny models: one thread is fastest and immune to oversubscription


def shared_data_dir() -> Path | None:
    env = os.environ.get("SRNN_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if (c / "jsb.npz").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data sets not found: set SRNN_DATA_DIR to a directory with jsb.npz")
    return d


def tiny_config(**kw) -> SRNNConfig:
    base = dict(x_dim=6, d_dim=8, z_dim=3, a_dim=7, hidden=10, feature_layers=1, feature_dim=9)
    base.update(kw)
    return SRNNConfig(**base)


def tiny_model(seed: int = 0, **kw) -> SRNN:
    torch.manual_seed(seed)
    return SRNN(tiny_config(**kw))


def random_rolls(n: int, lengths: tuple[int, int], dim: int = 6, seed: int = 0,
                 p: float = 0.3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((int(rng.integers(*lengths)), dim)) < p).astype(np.float32)
            for _ in range(n)]


def synthetic_dataset(dim: int = 6, seed: int = 0) -> SequenceDataset:
    """A learnable binary set: each pitch repeats with period 2 or 3, plus a little noise."""
    rng = np.random.default_rng(seed)

    def piece() -> np.ndarray:
        T = int(rng.integers(12, 30))
        period = rng.integers(2, 4, size=dim)
        phase = rng.integers(0, 3, size=dim)
        t = np.arange(T)[:, None]
        roll = ((t + phase) % period == 0).astype(np.float32)
        flip = rng.random(roll.shape) < 0.02
        return np.where(flip, 1 - roll, roll).astype(np.float32)

    splits = {s: Split.from_targets([piece() for _ in range(n)])
              for s, n in (("train", 48), ("valid", 12), ("test", 12))}
    return SequenceDataset(name="synthetic", protocol="synthetic", time_step="step", **splits)


def batch_from(rolls: list[np.ndarray]) -> Batch:
    from srnn.data.batching import pad_batch
    return pad_batch(rolls, [Split.from_targets([r]).u[0] for r in rolls])
