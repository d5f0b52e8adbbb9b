"""``srnn plot``: the figures and sample statistics of a trained run, in one directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnn.errors import ConfigError
from srnn.io import write_json


def plot_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], piece: int = 0,
             num: int = 20, length: int | None = None, seed: int = 0,
             data_dir: str | None = None) -> dict[str, Any]:
    """Write curves.png, rolls.png, kl.png and sample_stats.json for ``run_dir`` into ``out``
    (speech: curves.png, speech.png and sampled WAVs; handwriting: curves.png, handwriting.png
    and .svg, samples.npy, see :func:`srnn.handwriting.plot_handwriting_run`).

    The test piece is ``data.test.x[piece]`` (stream-ordered test files are joined back into
    whole streams first); samples are ``length`` steps long (default: the piece's length). A
    run on the flat view is shown in its original steps (pieces and samples folded into
    (T, D), KL summed per step; :mod:`srnn.data.flat`).
    """
    from srnn.data.flat import fold_steps
    from srnn.data.sequences import Modality
    from srnn.music.stats import compare_statistics
    from srnn.plots import plot_kl_over_roll, plot_piano_rolls, plot_training_curves
    from srnn.sampling import generate_steps, reconstruct, run_grid
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
    k = data.steps_per_step  # D in the flat view, else 1
    pieces = [fold_steps(x, k) for x in test.x]  # in original steps
    if data.modality == Modality.SPEECH:
        return _plot_speech_run(run_dir, out, model, data, pieces, piece, num, length, seed)
    if data.modality == Modality.HANDWRITING:
        from srnn.handwriting import plot_handwriting_run
        from srnn.train.run_dir import RunDirectory

        return plot_handwriting_run(run_dir, out, model, RunDirectory(run_dir).card(), pieces,
                                    piece, num, length, seed)
    step = run_grid(run_dir).write_seconds
    roll = pieces[piece]
    T = length or len(roll)
    torch.manual_seed(seed)
    rec = reconstruct(model, roll, generator=torch.Generator().manual_seed(seed),
                      steps_per_step=k)
    samples = generate_steps(model, num, T, k)
    written = [plot_training_curves(run_dir, out / "curves.png")]
    written.append(plot_piano_rolls(
        {f"test piece {piece}": roll, "reconstruction (probabilities)": rec.probabilities,
         "sample": samples[0]}, out / "rolls.png", step_seconds=step,
        title=f"{cfg.model} on {cfg.dataset}"))
    written.append(plot_kl_over_roll(roll, rec.kl, out / "kl.png", step_seconds=step,
                                     title=f"KL(q || p) per step, test piece {piece}"))
    stats = compare_statistics(list(samples), pieces)
    stats.update({"run": str(run_dir), "num_samples": num, "sample_length": T, "seed": seed})
    write_json(out / "sample_stats.json", stats)
    written.append(out / "sample_stats.json")
    return {"written": [str(p) for p in written],
            "piece_elbo_per_step": float((rec.recon.sum() - rec.kl.sum()) / len(roll)),
            "piece_steps": len(roll)}


def _plot_speech_run(run_dir, out: Path, model, data, pieces: list[np.ndarray], piece: int,
                     num: int, length: int | None, seed: int) -> dict[str, Any]:
    """Speech: curves.png, speech.png (a test utterance of ``pieces``, the test split's frames
    (T, frame size), KL per frame, reconstruction mean and log-variance), samples as WAV."""
    from srnn.data.speech import decode
    from srnn.data.wav import write_wav
    from srnn.plots import plot_speech, plot_training_curves
    from srnn.sampling import generate_steps, reconstruct

    info = data.info
    k = data.steps_per_step
    frames = pieces[piece]
    rec = reconstruct(model, frames, generator=torch.Generator().manual_seed(seed),
                      steps_per_step=k)
    std = info["normaliser"]["std"]
    # The emission's log-variance in the units of the waveform (the normaliser's scale).
    log_var = np.log(rec.variance) + 2 * np.log(std)
    if info.get("permute_seed") is not None:
        from srnn.data.speech import unpermute_frames

        log_var = unpermute_frames(log_var, int(info["permute_seed"]))
    written = [plot_training_curves(run_dir, out / "curves.png")]
    written.append(plot_speech(decode(frames, info), rec.kl, decode(rec.probabilities, info),
                               log_var.ravel(), out / "speech.png", int(info["rate"]),
                               title=f"test utterance {piece}: KL per frame, reconstruction"))
    torch.manual_seed(seed)
    T = length or len(frames)
    for i, fr in enumerate(generate_steps(model, num, T, k)):
        p = out / f"sample-{i}.wav"
        write_wav(decode(fr, info), p, int(info["rate"]))
        written.append(p)
    return {"written": [str(p) for p in written],
            "piece_elbo_per_step": float((rec.recon.sum() - rec.kl.sum()) / len(frames)),
            "piece_steps": len(frames)}
