"""``srnn plot``: the figures and sample statistics of a trained run, in one directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from srnn.errors import ConfigError
from srnn.io import write_json


def plot_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], piece: int = 0,
             num: int = 20, length: int | None = None, seed: int = 0,
             data_dir: str | None = None) -> dict[str, Any]:
    """Write curves.png, rolls.png, kl.png and sample_stats.json for ``run_dir`` into ``out``.

    The test piece is ``data.test.x[piece]`` (stream-ordered test files are joined back into
    whole streams first); samples are ``length`` steps long (default: the piece's length).
    """
    from srnn.music.stats import compare_statistics
    from srnn.plots import plot_kl_over_roll, plot_piano_rolls, plot_training_curves
    from srnn.sampling import reconstruct, run_grid
    from srnn.train.trainer import load_trained

    if num < 1:
        raise ConfigError("--num must be at least 1")
    model, cfg, data = load_trained(run_dir, data_dir=data_dir)
    model.eval()
    test = data.test.joined_streams()
    if not 0 <= piece < len(test):
        raise ConfigError(f"--piece must be in 0..{len(test) - 1}, not {piece}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    step = run_grid(run_dir).write_seconds
    roll = test.x[piece]
    T = length or len(roll)
    torch.manual_seed(seed)
    rec = reconstruct(model, roll, generator=torch.Generator().manual_seed(seed))
    samples = model.generate(num, T).cpu().numpy()
    written = [plot_training_curves(run_dir, out / "curves.png")]
    written.append(plot_piano_rolls(
        {f"test piece {piece}": roll, "reconstruction (probabilities)": rec.probabilities,
         "sample": samples[0]}, out / "rolls.png", step_seconds=step,
        title=f"{cfg.model} on {cfg.dataset}"))
    written.append(plot_kl_over_roll(roll, rec.kl, out / "kl.png", step_seconds=step,
                                     title=f"KL(q || p) per step, test piece {piece}"))
    stats = compare_statistics(list(samples), list(test.x))
    stats.update({"run": str(run_dir), "num_samples": num, "sample_length": T, "seed": seed})
    write_json(out / "sample_stats.json", stats)
    written.append(out / "sample_stats.json")
    return {"written": [str(p) for p in written],
            "piece_elbo_per_step": float((rec.recon.sum() - rec.kl.sum()) / len(roll)),
            "piece_steps": len(roll)}
