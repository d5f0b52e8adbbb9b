"""Making music with a trained run: samples, continuations of a primer, reconstructions.

All of them need only the run directory (``config.json``, ``data.json`` and ``best.pt``); MIDI
files are read and written on the grid of the run's data set, from its data card (see
:meth:`srnn.train.run_dir.RunDirectory.card` and :class:`srnn.data.grid.Grid`), and a speech
model's samples are written as WAV files. A model of the flat view (:mod:`srnn.data.flat`;
the card's ``steps_per_step`` = D) reads and draws D scalar steps per time step: pieces are
flattened on the way in and everything it gives back is folded into (T, D) steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from srnn.data.card import DataCard
from srnn.data.flat import flatten_steps, fold_steps, step_sums
from srnn.data.grid import Grid
from srnn.data.pianoroll import PITCHES
from srnn.data.sequences import Modality, shift_inputs
from srnn.errors import ConfigError, DataError
from srnn.io import atomic_write
from srnn.models import Batch, SequenceModel

if TYPE_CHECKING:
    from srnn.train.tensorboard import SampleMedia


def run_grid(run_dir: str | os.PathLike[str]) -> Grid:
    """The grid MIDI files of a run are read and written on (from its data card)."""
    from srnn.train.run_dir import RunDirectory

    return RunDirectory(run_dir).card().grid


def one_batch(rolls: list[np.ndarray]) -> Batch:
    from srnn.data.batching import pad_batch

    return pad_batch(rolls, [shift_inputs(r) for r in rolls])


def model_steps(piece: np.ndarray, steps_per_step: int = 1) -> np.ndarray:
    """A piece (T, D) as the model reads it: itself, or in the flat view (``steps_per_step`` =
    D > 1) its T·D scalar steps (T·D, 1); one batch of it then has the flat view's inputs."""
    piece = np.asarray(piece, dtype=np.float32)
    if steps_per_step == 1:
        return piece
    if piece.ndim != 2 or piece.shape[1] != steps_per_step:
        raise DataError(f"the model reads steps of {steps_per_step} values (the flat view), "
                        f"got a piece of shape {piece.shape}")
    return flatten_steps(piece)


@torch.no_grad()
def generate_steps(model: SequenceModel, num: int, steps: int,
                   steps_per_step: int = 1) -> np.ndarray:
    """``num`` ancestral samples of ``steps`` time steps, (num, steps, D); a model of the flat
    view (``steps_per_step`` = D) draws steps·D scalars, folded into (steps, D)."""
    x = model.generate(num, steps * steps_per_step).cpu().numpy()
    return fold_steps(x, steps_per_step)


@torch.no_grad()
def primer_state(model: SequenceModel, primer: np.ndarray, num: int,
                 generator: torch.Generator | None = None) -> tuple[object, torch.Tensor]:
    """(carry, x_last) of ``model`` after the primer (P, D) for ``num`` sequences: the
    posterior q run over it (one draw of z_1:P per sequence) and its last step, from which
    :meth:`~srnn.models.SequenceModel.generate` continues."""
    from srnn.bounds.elbo import elbo_terms

    batch = one_batch([primer] * num)
    terms = elbo_terms(model, batch, generator=generator)
    return terms.carry, batch.x[:, -1]


@torch.no_grad()
def continuation(model: SequenceModel, primer: np.ndarray, num: int, steps: int,
                 generator: torch.Generator | None = None,
                 steps_per_step: int = 1) -> np.ndarray:
    """``num`` continuations of ``primer`` (P, D) by ``steps`` steps, each (P + steps, D).

    The posterior q is run over the primer (one draw of z_1:P per continuation), then the
    generative model continues from the state the primer ends in (in the flat view, from its
    last scalar, for steps·D scalars).
    """
    model.eval()
    primer = model_steps(primer, steps_per_step)
    carry, x_last = primer_state(model, primer, num, generator)
    cont = model.generate(num, steps * steps_per_step, carry=carry, x_last=x_last)
    return fold_steps(np.concatenate([np.repeat(primer[None], num, 0), cont.cpu().numpy()],
                                     axis=1), steps_per_step)


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
                generator: torch.Generator | None = None,
                steps_per_step: int = 1) -> Reconstruction:
    """Reconstruct ``roll`` (T, D) through the posterior, averaging ``draws`` draws of z_1:T;
    for a model without latents, its one-step-ahead predictions given the true past. One pass:
    the same draws give the probabilities and the ELBO terms. In the flat view
    (``steps_per_step`` = D) the piece is read as T·D scalars (each value predicted from the
    values before it) and the result is folded back: (T, D) values, terms summed per step."""
    from torch.distributions import Normal, kl_divergence

    from srnn.bounds.elbo import sample_posterior
    from srnn.models import StateSpaceModel

    model.eval()
    seq = model_steps(roll, steps_per_step)
    k = steps_per_step
    batch = one_batch([seq] * draws)
    if model.z_dim == 0:
        dist, _ = model.predictive(batch)
        kl = torch.zeros_like(batch.mask)
    else:
        assert isinstance(model, StateSpaceModel)
        pre = model.precompute(batch)
        run = sample_posterior(model, pre, model.init_state(pre), len(seq), generator)
        dist = model.observation(run.z, pre, run.context)
        kl = kl_divergence(Normal(run.q_loc, run.q_scale),
                           Normal(run.p_loc, run.p_scale)).sum(-1)
    return Reconstruction(probabilities=fold_steps(dist.mean.mean(0).cpu().numpy(), k),
                          recon=step_sums(dist.log_prob(batch.x).mean(0).cpu().numpy(), k),
                          kl=step_sums(kl.mean(0).cpu().numpy(), k),
                          variance=fold_steps(dist.variance.mean(0).cpu().numpy(), k))


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


def write_speech(model: SequenceModel, card: DataCard, out: str | os.PathLike[str],
                 length: int, num: int, seed: int) -> list[Path]:
    """Sample ``num`` sequences of ``length`` frames and write each as a WAV at the data set's
    rate (normalisation and any frame permutation undone); or all frames as one ``.npy``."""
    from srnn.data.wav import write_wav

    out = Path(out)
    if out.suffix not in (".wav", ".npy"):
        raise ConfigError(f"{out}: a speech model writes .wav (or .npy frames)")
    speech = card.speech
    if speech is None:
        raise ConfigError(f"the data card of {card.name!r} holds no sample rate and normaliser "
                          "(rate, frame_size, normaliser): the frames cannot be turned into audio")
    torch.manual_seed(seed)
    frames = generate_steps(model, num, length, card.steps_per_step)
    if out.suffix == ".npy":
        atomic_write(out, lambda f: np.save(f, frames.astype(np.float32)))
        return [out]
    paths = _paths(out, num)
    for fr, p in zip(frames, paths, strict=True):
        write_wav(speech.decode(fr), p, speech.rate)
    return paths


# What a sample in a TensorBoard log is (srnn.train.tensorboard): time steps of a music run,
# seconds of a speech run, pen points of a handwriting run (a text line has about 700), and
# the rate a piano roll's sound is synthesised at.
MEDIA_STEPS = 32
MEDIA_SECONDS = 2.0
MEDIA_POINTS = 300
MEDIA_RATE = 16_000


@torch.no_grad()
def sample_media(model: SequenceModel, card: DataCard) -> SampleMedia:
    """One ancestral sample of ``model`` (trained on data with ``card``) as a TensorBoard log
    shows it, the trainer's :data:`~srnn.train.tensorboard.MediaRenderer` (the caller seeds
    the draw): a piano roll of :data:`MEDIA_STEPS` steps drawn as ``srnn sample --png`` draws
    it, with its sound from the built-in synthesiser of :mod:`srnn.music.audio` (FluidSynth
    would start a process per sample); a speech run's :data:`MEDIA_SECONDS` seconds as a
    waveform plot and its sound at the set's rate (as ``srnn sample`` writes it); a
    handwriting run's :data:`MEDIA_POINTS` pen points drawn as strokes
    (:func:`srnn.handwriting.handwriting_figure`, as ``srnn sample`` draws them), without
    sound; any other data, the sample's values as a grey image, without sound."""
    from srnn.plots import figure_pixels, piano_rolls_figure, waveform_figure
    from srnn.train.tensorboard import SampleMedia

    k = card.steps_per_step
    if card.modality == Modality.HANDWRITING and card.handwriting is not None:
        from srnn.handwriting import handwriting_figure

        strokes = card.handwriting.decode(generate_steps(model, 1, MEDIA_POINTS, k)[0])
        image = figure_pixels(handwriting_figure({f"sample of {card.name}": strokes}))
        return SampleMedia("handwriting", image, None, MEDIA_RATE,
                           f"{MEDIA_POINTS} pen points")
    if card.modality == Modality.SPEECH and card.speech is not None:
        speech = card.speech
        frames = max(1, round(MEDIA_SECONDS * speech.rate / speech.frame_size))
        wave = speech.decode(generate_steps(model, 1, frames, k)[0])
        image = figure_pixels(waveform_figure(wave, speech.rate, f"sample of {card.name}"))
        return SampleMedia("waveform", image, wave, speech.rate, f"{frames} frames")
    x = generate_steps(model, 1, MEDIA_STEPS, k)[0]
    if card.modality == Modality.MUSIC and x.shape[1] == PITCHES and card.grid.is_musical:
        from srnn.music.audio import synthesize
        from srnn.music.midi import roll_to_midi

        seconds = card.grid.write_seconds
        roll = (x > 0.5).astype(np.float32)
        image = figure_pixels(piano_rolls_figure({f"sample of {card.name}": roll}, seconds))
        sound = synthesize(roll_to_midi(roll, seconds), MEDIA_RATE)
        return SampleMedia("piano_roll", image, sound, MEDIA_RATE,
                           f"{MEDIA_STEPS} steps of {seconds:g} s")
    lo, hi = float(x.min()), float(x.max())
    grey = (x.T[::-1] - lo) / (hi - lo) if hi > lo else np.zeros_like(x.T)
    pixels = np.repeat(np.round(255 * (1 - grey)).astype(np.uint8)[..., None], 3, axis=2)
    return SampleMedia("values", pixels, None, MEDIA_RATE, f"{MEDIA_STEPS} steps")


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
    the ``primer`` MIDI file, if given) and write them as MIDI or ``.npy`` (a speech model's
    as WAV, a handwriting model's as PNG and SVG drawings). Needs no data files."""
    from srnn.train.run_dir import RunDirectory
    from srnn.train.trainer import load_model

    if length < 1 or num < 1:
        raise ConfigError("--length and --num must be at least 1")
    model, cfg = load_model(run_dir)
    model.eval()
    card = RunDirectory(run_dir).card()
    if card.modality == Modality.SPEECH:  # a speech model: frames back to a waveform
        return write_speech(model, card, out, length, num, seed)
    if card.modality == Modality.HANDWRITING:  # pen trajectories: drawn as strokes
        from srnn.handwriting import write_handwriting

        return write_handwriting(model, card, out, length, num, seed)
    g = card.grid
    write_seconds = g.write_seconds  # a grid that is not musical is an error before sampling
    torch.manual_seed(seed)
    first = read_primer(primer, g) if primer else None
    k = card.steps_per_step  # D in the flat view, else 1
    if first is not None:
        rolls = continuation(model, first, num, length, torch.Generator().manual_seed(seed), k)
    else:
        rolls = generate_steps(model, num, length, k)
    sec = step_seconds or write_seconds
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
    from srnn.train.run_dir import RunDirectory

    model, _ = load_model(run_dir)
    card = RunDirectory(run_dir).card()
    g = card.grid
    roll = read_midi(midi_in, **g.read_options())
    if len(roll) == 0:
        raise DataError(f"{midi_in}: the piece has no time steps")
    rec = reconstruct(model, roll, draws, torch.Generator().manual_seed(seed),
                      card.steps_per_step)
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
