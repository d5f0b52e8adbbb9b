"""Handwriting out of a model of pen trajectories (IAM-OnDB, :mod:`srnn.data.iamondb`): steps
(pen lift, dx, dy) drawn as strokes, for samples (``srnn sample``) and for a run's figure
(``srnn plot``: a test line, its reconstruction, samples, KL per step).

A drawing is the list of strokes that :meth:`srnn.data.card.HandwritingInfo.decode` gives:
offsets un-normalised with the run's training statistics (its ``data.json``), summed from the
origin, split after every step whose pen value is >= 0.5 (a sample's pen lifts are 0/1, a
reconstruction's are probabilities). The y axis points down, as the whiteboard's coordinates
do (the sensor sits in the top left corner). Figures are :class:`matplotlib.figure.Figure`
objects (never pyplot), written atomically as PNG (:func:`srnn.plots.save_figure`) and SVG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from srnn.data.card import DataCard, HandwritingInfo
from srnn.errors import ConfigError
from srnn.io import atomic_write
from srnn.models import SequenceModel
from srnn.plots import save_figure

Drawing = Sequence[np.ndarray]  # strokes, each (n, 2) points


def handwriting_info(card: DataCard) -> HandwritingInfo:
    """The card's normaliser, or a :class:`ConfigError` saying the steps cannot be drawn."""
    if card.handwriting is None:
        raise ConfigError(f"the data card of {card.name!r} holds no offset normaliser "
                          "(normaliser): the steps cannot be drawn as handwriting")
    return card.handwriting


def _draw(ax: Any, strokes: Drawing) -> None:
    for s in strokes:
        if len(s) == 1:
            ax.plot(s[:, 0], s[:, 1], ".", color="black", ms=2)
        else:
            ax.plot(s[:, 0], s[:, 1], color="black", lw=1.0, solid_capstyle="round")
    ax.set_aspect("equal", adjustable="datalim")
    ax.invert_yaxis()  # whiteboard coordinates grow downwards
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def handwriting_figure(drawings: Mapping[str, Drawing], title: str | None = None,
                       kl: np.ndarray | None = None) -> Figure:
    """One panel per drawing (``{"test line": strokes, "sample 0": ...}``), stacked; with
    ``kl`` (T,) a last panel of the KL per step (of the first drawing)."""
    if not drawings:
        raise ValueError("handwriting_figure: no drawings given")
    for name, strokes in drawings.items():
        if not len(strokes) or not all(np.isfinite(s).all() for s in strokes):
            raise ValueError(f"{name}: a drawing needs at least one stroke of finite points")
    n = len(drawings) + (kl is not None)
    fig = Figure(figsize=(10, 1.0 + 1.8 * n))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, (name, strokes) in zip(axes, drawings.items(), strict=False):
        _draw(ax, strokes)
        ax.set_title(name, fontsize=9, loc="left")
    if kl is not None:
        ax = axes[-1]
        ax.plot(np.arange(1, len(kl) + 1), kl, lw=0.8, color="tab:red")
        ax.set_xlabel("pen point")
        ax.set_ylabel("KL (nats)")
        ax.set_xlim(1, max(2, len(kl)))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_svg(fig: Figure, out_svg: str | os.PathLike[str]) -> Path:
    """Render ``fig`` as SVG and write it atomically (the figure is kept)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    data = buf.getvalue()
    out = Path(out_svg)
    atomic_write(out, lambda f: f.write(data))
    return out


def plot_handwriting(drawings: Mapping[str, Drawing], out: str | os.PathLike[str],
                     title: str | None = None, kl: np.ndarray | None = None) -> list[Path]:
    """Write the drawings (:func:`handwriting_figure`) as ``out`` with suffix ``.png`` and as
    the same name with ``.svg``; returns both paths."""
    out = Path(out)
    fig = handwriting_figure(drawings, title, kl)
    svg = save_svg(fig, out.with_suffix(".svg"))
    return [save_figure(fig, out.with_suffix(".png")), svg]


def write_handwriting(model: SequenceModel, card: DataCard, out: str | os.PathLike[str],
                      length: int, num: int, seed: int) -> list[Path]:
    """Sample ``num`` pen trajectories of ``length`` points and draw them, a panel each, as
    FILE.png and FILE.svg (``out`` ending in either); or write their steps, offsets in the
    corpus's units, as one ``.npy`` (num, length, 3)."""
    from srnn.sampling import generate_steps

    out = Path(out)
    if out.suffix not in (".png", ".svg", ".npy"):
        raise ConfigError(f"{out}: a handwriting model writes .png and .svg drawings (or .npy "
                          "steps)")
    info = handwriting_info(card)
    torch.manual_seed(seed)
    steps = generate_steps(model, num, length, card.steps_per_step)
    if out.suffix == ".npy":
        raw = info.normaliser.invert(steps)
        atomic_write(out, lambda f: np.save(f, raw.astype(np.float32)))
        return [out]
    return plot_handwriting({f"sample {i}": info.decode(s) for i, s in enumerate(steps)}, out,
                            title=f"{num} sample{'s' if num > 1 else ''} of {length} pen points")


def plot_handwriting_run(run_dir: str | os.PathLike[str], out: Path, model: SequenceModel,
                         card: DataCard, pieces: list[np.ndarray], piece: int, num: int,
                         length: int | None, seed: int) -> dict[str, Any]:
    """``srnn plot`` of a handwriting run: curves.png, handwriting.png and .svg (test line
    ``piece`` of ``pieces``, its reconstruction from the posterior means, up to three samples,
    the KL per pen point); sampled steps of ``num`` lines as samples.npy (corpus units)."""
    from srnn.plots import plot_training_curves
    from srnn.sampling import generate_steps, reconstruct

    info = handwriting_info(card)
    k = card.steps_per_step
    steps = pieces[piece]
    rec = reconstruct(model, steps, generator=torch.Generator().manual_seed(seed),
                      steps_per_step=k)
    torch.manual_seed(seed)
    T = length or len(steps)
    samples = generate_steps(model, num, T, k)
    drawings = {f"test line {piece}": info.decode(steps),
                "reconstruction (posterior means)": info.decode(rec.probabilities)}
    drawings.update({f"sample {i}": info.decode(s) for i, s in enumerate(samples[:3])})
    written = [plot_training_curves(run_dir, out / "curves.png")]
    written += plot_handwriting(drawings, out / "handwriting.png", kl=rec.kl,
                                title=f"{card.name}: a test line, its reconstruction, samples "
                                      "(KL per pen point below)")
    raw = info.normaliser.invert(samples)
    atomic_write(out / "samples.npy", lambda f: np.save(f, raw.astype(np.float32)))
    written.append(out / "samples.npy")
    return {"written": [str(p) for p in written],
            "piece_elbo_per_step": float((rec.recon.sum() - rec.kl.sum()) / len(steps)),
            "piece_steps": len(steps)}
