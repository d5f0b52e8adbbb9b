"""Sampling new sequences from a trained run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from srnn.errors import ConfigError
from srnn.io import atomic_write

STEP_SECONDS = {"quarter note": 0.5, "eighth note": 0.25, "0.3 s frame": 0.3}


def write_samples(run_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                  length: int = 64, num: int = 1, seed: int = 0,
                  step_seconds: float | None = None) -> list[Path]:
    """Draw ``num`` samples of ``length`` steps from the best checkpoint of ``run_dir`` and write
    them as MIDI (``.mid``) or as one ``.npy`` array (num, length, 88). Needs no data files."""
    from srnn.data import time_step
    from srnn.music.midi import write_midi
    from srnn.train.trainer import load_model

    if length < 1 or num < 1:
        raise ConfigError("--length and --num must be at least 1")
    out = Path(out)
    if out.suffix not in (".mid", ".midi", ".npy"):
        raise ConfigError(f"{out}: the output must end in .mid or .npy")
    model, cfg = load_model(run_dir)
    model.eval()
    torch.manual_seed(seed)
    rolls = model.generate(num, length).cpu().numpy().astype(np.float32)
    if out.suffix == ".npy":
        atomic_write(out, lambda f: np.save(f, rolls))
        return [out]
    sec = step_seconds or STEP_SECONDS[time_step(cfg.dataset)]
    paths = [out] if num == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}")
                                    for i in range(num)]
    for roll, p in zip(rolls, paths, strict=True):
        write_midi(roll, p, sec)
    return paths
