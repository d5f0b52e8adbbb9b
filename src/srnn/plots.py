"""PNG figures: training curves, piano rolls, per-step KL over a piano roll, waveforms.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas, never pyplot: no window
opens, no global figure list grows, and the backend of the caller's session is untouched.
Files are written atomically by :func:`save_figure`, which the reproduction's plots
(:mod:`srnn.experiments.report`) use too; :func:`figure_pixels` renders a figure to an RGB
array instead (the images of a TensorBoard log, :func:`srnn.sampling.sample_media`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from srnn.data.pianoroll import HIGHEST_MIDI, LOWEST_MIDI, PITCHES
from srnn.errors import ConfigError, DataError
from srnn.io import atomic_write
from srnn.train.run_dir import METRICS, RunDirectory

DPI = 110


def save_figure(fig: Figure, out_png: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Render ``fig`` (a :class:`matplotlib.figure.Figure`, never a pyplot figure) to PNG bytes
    with the Agg canvas, then write them atomically to ``out_png``; the figure is released.
    Every PNG of the library is written here."""
    out = Path(out_png)
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi)
    fig.clear()
    data = buf.getvalue()
    atomic_write(out, lambda f: f.write(data))
    return out


def figure_pixels(fig: Figure, dpi: int = DPI) -> np.ndarray:
    """Render ``fig`` with the Agg canvas to an RGB image, (H, W, 3) uint8; the figure is
    released."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    fig.clear()
    return pixels


# -- training curves ------------------------------------------------------------------------
def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["epoch"], float(r[key])) for r in rows
           if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    if not pts:
        return np.zeros(0), np.zeros(0)
    e, v = zip(*pts, strict=True)
    return np.array(e, dtype=float), np.array(v)


def plot_training_curves(run_dir: str | os.PathLike[str],
                         out_png: str | os.PathLike[str]) -> Path:
    """Train and valid ELBO per epoch from ``run_dir/metrics.jsonl`` (best valid epoch marked,
    test ELBO from ``results.json`` as a dashed line if present); KL per epoch below when
    recorded. The ELBO axis ignores the first two epochs (often far lower) when scaling, once
    there are six or more. Raises :class:`~srnn.errors.DataError` if there are no metrics."""
    run = RunDirectory(run_dir)
    run_dir = run.path
    rows = run.metrics()
    if not rows:
        where = run.file(METRICS)
        raise DataError(f"{where}: no epochs recorded yet" if where.is_file() else
                        f"{where}: metrics file not found (is this a run directory?)")
    curves = {k: _series(rows, k) for k in ("train_elbo", "valid_elbo", "train_kl", "valid_kl")}
    if not len(curves["train_elbo"][0]) and not len(curves["valid_elbo"][0]):
        raise DataError(f"{run.file(METRICS)}: no finite ELBO values to plot")
    has_kl = bool(len(curves["train_kl"][0]) or len(curves["valid_kl"][0]))
    fig = Figure(figsize=(8, 6.5 if has_kl else 4.5))
    axes = fig.subplots(2 if has_kl else 1, 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [2, 1]} if has_kl else None)[:, 0]
    ax = axes[0]
    colours = {"train": "tab:blue", "valid": "tab:orange"}
    for split in ("train", "valid"):
        e, v = curves[f"{split}_elbo"]
        if len(e):
            ax.plot(e, v, marker="." if len(e) < 60 else None, color=colours[split],
                    label=f"{split} ELBO")
    e, v = curves["valid_elbo"]
    if len(e):
        b = int(np.argmax(v))
        ax.plot(e[b], v[b], marker="*", markersize=14, color="tab:red", linestyle="none",
                label=f"best valid: {v[b]:.3f} (epoch {int(e[b])})", zorder=5)
    try:
        test = run.results().get("elbo_per_step")
    except ConfigError:  # a damaged results file: the curves alone
        test = None
    if isinstance(test, int | float) and math.isfinite(test):
        ax.axhline(test, color="tab:green", linestyle="--", linewidth=1,
                   label=f"test ELBO (best model): {test:.3f}")
    all_e = np.concatenate([curves["train_elbo"][0], curves["valid_elbo"][0]])
    all_v = np.concatenate([curves["train_elbo"][1], curves["valid_elbo"][1]])
    if len(np.unique(all_e)) >= 6:  # don't let the first epochs squash the rest
        later = all_v[all_e > np.unique(all_e)[1]]
        top = max(all_v.max(), test if isinstance(test, int | float) else -np.inf)
        lo = min(later.min(), test if isinstance(test, int | float) else np.inf)
        pad = 0.05 * max(top - lo, 1e-6)
        ax.set_ylim(lo - pad, top + pad)
    ax.set_ylabel("ELBO per step (nats)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{run_dir.name}: training curves")
    if has_kl:
        for split in ("train", "valid"):
            e, v = curves[f"{split}_kl"]
            if len(e):
                axes[1].plot(e, v, color=colours[split], label=f"{split} KL")
        axes[1].set_ylabel("KL per step (nats)")
        axes[1].grid(alpha=0.3)
        axes[1].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return save_figure(fig, out_png)


# -- piano rolls ----------------------------------------------------------------------------
def _check_roll(roll: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(roll, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != PITCHES or a.shape[0] == 0:
        raise ValueError(f"{name}: a piano roll must be (T, {PITCHES}) with T >= 1, "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise ValueError(f"{name}: piano roll values must be in [0, 1] (notes or probabilities)")
    return a


def _pitch_limits(rolls: list[np.ndarray], margin: int = 2) -> tuple[int, int]:
    """The MIDI pitch span with visible activity in any roll, widened by ``margin``."""
    cols = np.flatnonzero(np.any([(r > 0.05).any(axis=0) for r in rolls], axis=0))
    if not len(cols):
        return LOWEST_MIDI, HIGHEST_MIDI
    lo = max(LOWEST_MIDI, int(cols.min()) + LOWEST_MIDI - margin)
    hi = min(HIGHEST_MIDI, int(cols.max()) + LOWEST_MIDI + margin)
    if hi - lo < 12:  # at least an octave, so a C tick shows
        mid = (lo + hi) // 2
        lo, hi = max(LOWEST_MIDI, mid - 6), min(HIGHEST_MIDI, mid + 6)
    return lo, hi


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI note number: 60 -> C4, 21 -> A0."""
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[midi % 12]}{midi // 12 - 1}"


def _draw_roll(ax: Axes, roll: np.ndarray, lo: int, hi: int,
               step_seconds: float | None) -> None:
    dt = step_seconds or 1.0
    ax.imshow(roll[:, lo - LOWEST_MIDI:hi - LOWEST_MIDI + 1].T, origin="lower", aspect="auto",
              cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest",
              extent=(0.0, len(roll) * dt, lo - 0.5, hi + 0.5))
    cs = [m for m in range(lo, hi + 1) if m % 12 == 0]
    ax.set_yticks(cs, [note_name(m) for m in cs])
    ax.set_ylim(lo - 0.5, hi + 0.5)
    ax.set_ylabel("pitch")


def _check_step(step_seconds: float | None) -> None:
    if step_seconds is not None and not (math.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"step_seconds must be a positive number, got {step_seconds}")


def plot_piano_rolls(rolls: Mapping[str, np.ndarray], out_png: str | os.PathLike[str],
                     step_seconds: float | None = None, title: str | None = None,
                     stacked: bool = True) -> Path:
    """Piano rolls (T, 88) stacked (or side by side), one panel per entry of ``rolls``
    (e.g. ``{"test piece": x, "reconstruction": p, "sample": s}``), pitch on y labelled C2,
    C3, ..., time in steps or seconds on x. Values in [0, 1] are shown as grey levels, so a
    reconstruction's note probabilities can be drawn as they are. All panels share the pitch
    span in which any of them is active."""
    return save_figure(piano_rolls_figure(rolls, step_seconds, title, stacked), out_png)


def piano_rolls_figure(rolls: Mapping[str, np.ndarray], step_seconds: float | None = None,
                       title: str | None = None, stacked: bool = True) -> Figure:
    """The figure of :func:`plot_piano_rolls`."""
    if not rolls:
        raise ValueError("plot_piano_rolls: no piano rolls given")
    _check_step(step_seconds)
    named = {str(k): _check_roll(v, str(k)) for k, v in rolls.items()}
    lo, hi = _pitch_limits(list(named.values()))
    n = len(named)
    shape = (n, 1) if stacked else (1, n)
    size = (10, 1.2 + 2.2 * n) if stacked else (1.0 + 4.0 * n, 4.0)
    fig = Figure(figsize=size)
    axes = fig.subplots(*shape, sharex=stacked, sharey=True, squeeze=False).ravel()
    for ax, (name, roll) in zip(axes, named.items(), strict=True):
        _draw_roll(ax, roll, lo, hi, step_seconds)
        ax.set_title(name, fontsize=10)
        if not stacked:
            ax.set_xlabel("time (s)" if step_seconds else "time step")
    if stacked:
        axes[-1].set_xlabel("time (s)" if step_seconds else "time step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_kl_over_roll(roll: np.ndarray, kl_per_step: np.ndarray,
                      out_png: str | os.PathLike[str], step_seconds: float | None = None,
                      title: str | None = None) -> Path:
    """Per-step KL (nats) above the piano roll of the same piece on a shared time axis, as in
    Figure 3 of Fraccaro et al. (2016): the KL is large where the music surprises the model."""
    _check_step(step_seconds)
    r = _check_roll(roll, "roll")
    kl = np.asarray(kl_per_step, dtype=np.float64).squeeze()
    if kl.ndim != 1 or len(kl) != len(r):
        raise ValueError(f"kl_per_step must hold one value per time step ({len(r)}), "
                         f"got shape {np.shape(kl_per_step)}")
    if not np.isfinite(kl).all():
        raise ValueError("kl_per_step holds NaN or inf values")
    dt = step_seconds or 1.0
    fig = Figure(figsize=(10, 5))
    ax_kl, ax_roll = fig.subplots(2, 1, sharex=True,
                                  gridspec_kw={"height_ratios": [1, 2]})
    ax_kl.stairs(kl, np.arange(len(kl) + 1) * dt, fill=True, color="tab:blue", alpha=0.8)
    ax_kl.set_ylabel("KL (nats)")
    ax_kl.set_ylim(bottom=min(0.0, float(kl.min())))
    ax_kl.grid(alpha=0.3)
    lo, hi = _pitch_limits([r])
    _draw_roll(ax_roll, r, lo, hi, step_seconds)
    ax_roll.set_xlim(0, len(r) * dt)
    ax_roll.set_xlabel("time (s)" if step_seconds else "time step")
    if title:
        ax_kl.set_title(title)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_speech(wave: np.ndarray, kl_per_frame: np.ndarray, mean_wave: np.ndarray,
                log_var: np.ndarray, out_png: str | os.PathLike[str], rate: int,
                title: str | None = None) -> Path:
    """A test waveform, the KL per frame, and the reconstruction's mean and log-variance per
    sample on a shared time axis (Figure 3 of Fraccaro et al., 2016, for speech)."""
    w = np.asarray(wave, dtype=np.float64).ravel()
    m = np.asarray(mean_wave, dtype=np.float64).ravel()
    v = np.asarray(log_var, dtype=np.float64).ravel()
    kl = np.asarray(kl_per_frame, dtype=np.float64).ravel()
    if not (len(w) == len(m) == len(v)) or len(w) == 0:
        raise ValueError("wave, mean_wave and log_var must be non-empty and of one length, got "
                         f"{len(w)}, {len(m)}, {len(v)}")
    if len(kl) == 0 or len(w) % len(kl):
        raise ValueError(f"{len(kl)} KL values do not divide {len(w)} samples into frames")
    if not all(np.isfinite(a).all() for a in (w, m, v, kl)):
        raise ValueError("the inputs hold NaN or inf values")
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    t = np.arange(len(w)) / rate
    frame = len(w) // len(kl)
    fig = Figure(figsize=(10, 7))
    ax = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1, 2, 1]})
    ax[0].plot(t, w, lw=0.6, color="black")
    ax[0].set_ylabel("waveform")
    ax[1].stairs(kl, np.arange(len(kl) + 1) * frame / rate, fill=True, color="tab:blue",
                 alpha=0.8)
    ax[1].set_ylabel("KL (nats)")
    ax[2].plot(t, w, lw=0.5, color="0.7", label="data")
    ax[2].plot(t, m, lw=0.6, color="tab:red", label="reconstruction mean")
    ax[2].legend(loc="upper right", fontsize="small")
    ax[2].set_ylabel("mean")
    ax[3].plot(t, v, lw=0.6, color="tab:green")
    ax[3].set_ylabel("log-variance")
    ax[3].set_xlabel("time (s)")
    for a in ax:
        a.grid(alpha=0.3)
    if title:
        ax[0].set_title(title)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_waveform(wave: np.ndarray, out_png: str | os.PathLike[str], rate: int,
                  title: str | None = None) -> Path:
    """A waveform (e.g. a speech model's sample, as it plays) against time in seconds."""
    return save_figure(waveform_figure(wave, rate, title), out_png)


def waveform_figure(wave: np.ndarray, rate: int, title: str | None = None) -> Figure:
    """The figure of :func:`plot_waveform`."""
    w = np.asarray(wave, dtype=np.float64).ravel()
    if len(w) == 0 or not np.isfinite(w).all():
        raise ValueError("wave must be non-empty and finite")
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    fig = Figure(figsize=(10, 2.4))
    ax = fig.subplots()
    ax.plot(np.arange(len(w)) / rate, w, lw=0.6, color="black")
    ax.set_xlim(0, len(w) / rate)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("waveform")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
