"""Making music with a trained run: samples, continuations of a primer, reconstructions.

All of them need only the run directory (``config.json`` and ``best.pt``); MIDI files are read
and written on the grid of the run's data set (see :func:`grid`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srnn.data.sequences import shift_inputs
from srnn.errors import ConfigError, DataError
from srnn.io import atomic_write
from srnn.models import Batch, SequenceModel

# Seconds per step in written MIDI files, for time steps measured in beats: 120 beats/minute.
SECONDS_PER_BEAT = 0.5


@dataclass
class Grid:
    """How a data set's time steps map to music: ``steps_per_beat`` or ``step_seconds`` for
    reading MIDI, and the seconds per step of written MIDI."""

    steps_per_beat: int | None
    step_seconds: float | None
    write_seconds: float

    def read_options(self) -> dict:
        return ({"steps_per_beat": self.steps_per_beat} if self.steps_per_beat
                else {"step_seconds": self.step_seconds})


def grid(time_step: str) -> Grid:
    """The grid of a data set from its time step ("quarter note", "0.3 s frame", "1/4 beat")."""
    beats = {"quarter note": 1, "eighth note": 2}
    if time_step in beats:
        n = beats[time_step]
        return Grid(n, None, SECONDS_PER_BEAT / n)
    if m := re.fullmatch(r"1/(\d+) beat", time_step):
        n = int(m.group(1))
        return Grid(n, None, SECONDS_PER_BEAT / n)
    if m := re.fullmatch(r"([0-9.]+) s frame", time_step):
        sec = float(m.group(1))
        return Grid(None, sec, sec)
    raise ConfigError(f"no musical grid known for time step {time_step!r}")


def run_grid(run_dir: str | os.PathLike[str]) -> Grid:
    from srnn.data import time_step
    from srnn.train.trainer import load_run_config

    return grid(time_step(load_run_config(run_dir).dataset))


def one_batch(rolls: list[np.ndarray]) -> Batch:
    from srnn.data.batching import pad_batch

    return pad_batch(rolls, [shift_inputs(r) for r in rolls])


@torch.no_grad()
def continuation(model: SequenceModel, primer: np.ndarray, num: int, steps: int,
                 generator: torch.Generator | None = None) -> np.ndarray:
    """``num`` continuations of ``primer`` (P, D) by ``steps`` steps, each (P + steps, D).

    The posterior q is run over the primer (one draw of z_1:P per continuation), then the
    generative model continues from the state the primer ends in.
    """
    from srnn.bounds.elbo import elbo_terms

    model.eval()
    primer = np.asarray(primer, dtype=np.float32)
    batch = one_batch([primer] * num)
    terms = elbo_terms(model, batch, generator=generator)
    cont = model.generate(num, steps, carry=terms.carry, x_last=batch.x[:, -1])
    return np.concatenate([np.repeat(primer[None], num, 0), cont.cpu().numpy()], axis=1)


@dataclass
class Reconstruction:
    """Posterior reconstruction of one piece: note probabilities E_q E[x_t | z_t, ...] (T, D),
    and per-step log p(x_t | ...) and KL terms of the ELBO (T,)."""

    probabilities: np.ndarray
    recon: np.ndarray
    kl: np.ndarray
    variance: np.ndarray  # Var[x_t | z_t, ...] averaged over the draws (T, D)


@torch.no_grad()
def reconstruct(model: SequenceModel, roll: np.ndarray, draws: int = 16,
                generator: torch.Generator | None = None) -> Reconstruction:
    """Reconstruct ``roll`` (T, D) through the posterior, averaging ``draws`` draws of z_1:T;
    for a model without latents, its one-step-ahead predictions given the true past. One pass:
    the same draws give the probabilities and the ELBO terms."""
    from torch.distributions import Normal, kl_divergence

    from srnn.bounds.elbo import sample_posterior
    from srnn.models import StateSpaceModel

    model.eval()
    roll = np.asarray(roll, dtype=np.float32)
    batch = one_batch([roll] * draws)
    if model.z_dim == 0:
        dist, _ = model.predictive(batch)
        kl = torch.zeros_like(batch.mask)
    else:
        assert isinstance(model, StateSpaceModel)
        pre = model.precompute(batch)
        z, q_loc, q_scale, p_loc, p_scale, context, _ = sample_posterior(
            model, pre, model.init_state(pre), len(roll), generator)
        dist = model.observation(z, pre, context)
        kl = kl_divergence(Normal(q_loc, q_scale), Normal(p_loc, p_scale)).sum(-1)
    return Reconstruction(probabilities=dist.mean.mean(0).cpu().numpy(),
                          recon=dist.log_prob(batch.x).mean(0).cpu().numpy(),
                          kl=kl.mean(0).cpu().numpy(),
                          variance=dist.variance.mean(0).cpu().numpy())


def _paths(out: Path, num: int) -> list[Path]:
    return [out] if num == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}")
                                   for i in range(num)]


def write_rolls(rolls: np.ndarray, out: str | os.PathLike[str], step_seconds: float,
                wav: bool = False) -> list[Path]:
    """Write rolls (N, T, 88) as MIDI files (FILE.mid, or FILE-0.mid, ... for N > 1) or one
    ``.npy``; with ``wav``, a WAV next to each MIDI file."""
    from srnn.music.midi import write_midi

    out = Path(out)
    if out.suffix not in (".mid", ".midi", ".npy"):
        raise ConfigError(f"{out}: the output must end in .mid or .npy")
    if out.suffix == ".npy":
        atomic_write(out, lambda f: np.save(f, rolls.astype(np.float32)))
        return [out]
    written: list[Path] = []
    for roll, p in zip(rolls, _paths(out, len(rolls)), strict=True):
        write_midi(roll, p, step_seconds)
        written.append(p)
        if wav:
            from srnn.music.audio import render_wav

            render_wav(p, p.with_suffix(".wav"))
            written.append(p.with_suffix(".wav"))
    return written


def write_speech(model: SequenceModel, card: dict, out: str | os.PathLike[str], length: int,
                 num: int, seed: int) -> list[Path]:
    """Sample ``num`` sequences of ``length`` frames and write each as a WAV at the data set's
    rate (normalisation and any frame permutation undone); or all frames as one ``.npy``."""
    from srnn.data.speech import decode, write_wav

    out = Path(out)
    if out.suffix not in (".wav", ".npy"):
        raise ConfigError(f"{out}: a speech model writes .wav (or .npy frames)")
    torch.manual_seed(seed)
    frames = model.generate(num, length).cpu().numpy()
    if out.suffix == ".npy":
        atomic_write(out, lambda f: np.save(f, frames.astype(np.float32)))
        return [out]
    paths = _paths(out, num)
    for fr, p in zip(frames, paths, strict=True):
        write_wav(p, decode(fr, card), int(card["rate"]))
    return paths


def read_primer(path: str | os.PathLike[str], g: Grid) -> np.ndarray:
    from srnn.music.midi import read_midi

    roll = read_midi(path, **g.read_options())
    if len(roll) == 0:
        raise DataError(f"{path}: the primer has no time steps")
    return roll


def write_samples(run_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                  length: int = 64, num: int = 1, seed: int = 0,
                  step_seconds: float | None = None, primer: str | None = None,
                  wav: bool = False, png: str | None = None) -> list[Path]:
    """Draw ``num`` samples of ``length`` steps from the best checkpoint of ``run_dir`` (after
    the ``primer`` MIDI file, if given) and write them as MIDI or ``.npy``. Needs no data
    files."""
    from srnn.train.trainer import load_model

    if length < 1 or num < 1:
        raise ConfigError("--length and --num must be at least 1")
    model, _ = load_model(run_dir)
    model.eval()
    card_path = Path(run_dir) / "data.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    if "normaliser" in card:  # a speech model: frames back to a waveform
        return write_speech(model, card, out, length, num, seed)
    g = run_grid(run_dir)
    torch.manual_seed(seed)
    first = read_primer(primer, g) if primer else None
    if first is not None:
        rolls = continuation(model, first, num, length, torch.Generator().manual_seed(seed))
    else:
        rolls = model.generate(num, length).cpu().numpy()
    sec = step_seconds or g.write_seconds
    written = write_rolls(rolls.astype(np.float32), out, sec, wav)
    if png:
        from srnn.plots import plot_piano_rolls

        label = "primer + continuation" if first is not None else "sample"
        title = (f"{label}s (the first {len(first)} steps are the primer)"
                 if first is not None else None)
        written.append(plot_piano_rolls({f"{label} {i}": r for i, r in enumerate(rolls)}, png,
                                        step_seconds=sec, title=title))
    return written


def reconstruct_file(run_dir: str | os.PathLike[str], midi_in: str | os.PathLike[str],
                     out: str | os.PathLike[str], probabilities: str | None = None,
                     draws: int = 16, seed: int = 0, wav: bool = False,
                     png: str | None = None) -> dict:
    """Reconstruct the MIDI file ``midi_in`` with the run's model; write MIDI (notes with
    probability > 0.5) and optionally the probabilities (.npy) and a WAV."""
    from srnn.music.midi import read_midi
    from srnn.train.trainer import load_model

    if draws < 1:
        raise ConfigError("--draws must be at least 1")
    model, _ = load_model(run_dir)
    g = run_grid(run_dir)
    roll = read_midi(midi_in, **g.read_options())
    if len(roll) == 0:
        raise DataError(f"{midi_in}: the piece has no time steps")
    rec = reconstruct(model, roll, draws, torch.Generator().manual_seed(seed))
    written = write_rolls((rec.probabilities > 0.5)[None].astype(np.float32), out,
                          g.write_seconds, wav)
    if probabilities:
        atomic_write(probabilities, lambda f: np.save(f, rec.probabilities.astype(np.float32)))
        written.append(Path(probabilities))
    if png:
        from srnn.plots import plot_piano_rolls

        written.append(plot_piano_rolls(
            {"piece": roll, "reconstruction (probabilities)": rec.probabilities}, png,
            step_seconds=g.write_seconds, title=f"{Path(midi_in).name} through the posterior"))
    steps = len(roll)
    return {"written": [str(p) for p in written], "steps": steps,
            "elbo_per_step": float((rec.recon.sum() - rec.kl.sum()) / steps),
            "recon_per_step": float(rec.recon.sum() / steps),
            "kl_per_step": float(rec.kl.sum() / steps),
            "note_accuracy": float(((rec.probabilities > 0.5) == (roll > 0.5)).mean())}
