"""``srnn tune RUN_DIR --out TUNED_DIR``: fine-tune a trained music model with KL control.

Starts from the best checkpoint of any run of the family on piano rolls and writes an ordinary
run directory (``config.json``, ``data.json``, ``best.pt``, ``results.json``: ``srnn sample``,
``evaluate``, ``plot`` and ``reconstruct`` work on it) plus the tuning's own files:

- ``tuning.json``: the settings (source run, rewards and weights, KL weight c, updates, ...);
- ``tuning.jsonl``: one line per update: each reward term, the total reward, the KL estimate
  per step, the objective, the baseline, the gradient norm (and with ``data_weight`` > 0 the
  data anchor's ELBO per step of training windows, :class:`DataAnchor`);
- ``tune.pt``: the resumable state (policy, optimiser, update count), every
  ``checkpoint_every`` updates; a killed tuning resumes from it when run again;
- ``before_after.json`` / ``before_after.md``: each reward term, the tuned model's test ELBO
  and IWAE under the data against the pretrained model's, and sample statistics of both against
  the test set;
- ``samples/``: MIDI (and WAV) of tuned and pretrained samples; ``tuning.png``: the rewards and
  the KL against updates;
- ``tensorboard/``: with ``tensorboard``, each line of ``tuning.jsonl`` as TensorBoard scalars
  (:mod:`srnn.train.tensorboard`).

The estimator and its assumptions: :mod:`srnn.tuning.policy` and ``docs/tuning.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnn.data.sequences import Modality, Split
from srnn.errors import ConfigError
from srnn.io import atomic_write, write_json
from srnn.models import SequenceModel
from srnn.progress import progress_bar
from srnn.train.checkpoint import BEST, load_checkpoint, save_checkpoint
from srnn.train.config import COUNT, NON_NEGATIVE, POSITIVE, POSITIVE_INT, SEED, Allowed
from srnn.train.run_dir import TENSORBOARD, RunDirectory
from srnn.train.tensorboard import Board, NullBoard, require
from srnn.tuning.policy import PathSample, sample_paths, surrogate
from srnn.tuning.rewards import (
    RewardContext,
    RewardTerm,
    estimate_key,
    resolve_rewards,
    score_rolls,
)

log = logging.getLogger("srnn.tune")

SETTINGS = "tuning.json"
CURVES = "tuning.jsonl"
STATE = "tune.pt"


# The values each option of tune() allows (the command line checks its flags with these too).
TUNE_OPTIONS: dict[str, Allowed] = {
    "kl_weight": NON_NEGATIVE, "updates": POSITIVE_INT, "batch": POSITIVE_INT,
    "length": POSITIVE_INT, "voices": POSITIVE_INT, "lr": POSITIVE, "clip": POSITIVE,
    "seed": SEED, "eval_num": POSITIVE_INT, "iwae_samples": COUNT, "write": COUNT,
    "checkpoint_every": POSITIVE_INT, "data_weight": NON_NEGATIVE, "data_batch": POSITIVE_INT}


def draw(policy: SequenceModel, prior: SequenceModel, num: int, steps: int,
         primer: np.ndarray | None, grad: bool = True) -> PathSample:
    """Paths of the policy after the primer, scored by both models."""
    start = None
    if primer is not None:  # each model's state after its own posterior draw over the primer
        from srnn.sampling import primer_state

        (carry, x_last), (carry0, _) = (primer_state(m, primer, num) for m in (policy, prior))
        start = (carry, carry0, x_last)
    with torch.set_grad_enabled(grad):
        return sample_paths(policy, prior, num, steps, start)


def _means(scores: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in scores.items()}


def tune(run_dir: str | os.PathLike[str], out: str | os.PathLike[str],
         rewards: Sequence[str] | None = None, kl_weight: float = 0.1, updates: int = 300,
         batch: int = 32, length: int = 64, primer: str | None = None, lr: float = 3e-5,
         voices: int = 4, clip: float = 1.0, seed: int = 0, eval_num: int = 64,
         iwae_samples: int = 100, write_num: int = 4, wav: bool = False,
         data_dir: str | None = None, checkpoint_every: int = 50,
         progress: bool | None = None, tensorboard: bool = False, data_weight: float = 0.0,
         data_batch: int = 32) -> dict[str, Any]:
    """Tune the best model of ``run_dir`` into ``out`` (see the module docstring); returns
    the before/after summary. ``progress``: the bar of updates
    (:func:`srnn.progress.progress_bar`); ``tensorboard``: log every update to TensorBoard in
    ``out/tensorboard/``."""
    if tensorboard:
        require()  # before any work: a missing TensorBoard is one line
    from srnn.sampling import read_primer

    given = {"kl_weight": kl_weight, "updates": updates, "batch": batch, "length": length,
             "voices": voices, "lr": lr, "clip": clip, "seed": seed, "eval_num": eval_num,
             "iwae_samples": iwae_samples, "write": write_num,
             "checkpoint_every": checkpoint_every, "data_weight": data_weight,
             "data_batch": data_batch}
    for name, allowed in TUNE_OPTIONS.items():
        allowed.check(name, given[name])
    src = RunDirectory(run_dir)
    if not src.holds_config():
        raise ConfigError(f"{run_dir}: not a run directory (no config.json)")
    card = src.card()
    if card.modality != Modality.MUSIC or card.steps_per_step != 1:
        raise ConfigError(f"{run_dir}: tune works on piano-roll runs of whole time steps; this "
                          f"run's data are {card.modality.value}"
                          + (" in the flat view" if card.steps_per_step != 1 else ""))
    from srnn.train.trainer import load_model

    policy, cfg = load_model(run_dir)
    prior = copy.deepcopy(policy)
    for p in prior.parameters():
        p.requires_grad_(False)
    policy.eval()  # the sampler is the model without dropout, the one that makes music
    prior.eval()
    terms = resolve_rewards(rewards)
    roll = read_primer(primer, card.grid) if primer else None
    if roll is not None:
        tonic, mode = estimate_key(roll)
        ctx = RewardContext(tonic=tonic, mode=mode, voices=voices)
    else:
        ctx = RewardContext(voices=voices)
    settings = {"source": str(run_dir), "model": cfg.model, "dataset": cfg.dataset,
                "rewards": [f"{t.name}={t.weight:g}" for t in terms], "kl_weight": kl_weight,
                "updates": updates, "batch": batch, "length": length, "primer": primer,
                "lr": lr, "voices": voices, "clip": clip, "seed": seed,
                "key": None if ctx.tonic is None else [ctx.tonic, ctx.mode],
                "objective": "E[R(x)] - kl_weight * KL(pi || p0) per time step"}
    if data_weight > 0:  # the data anchor (only then in the settings: older tunings resume)
        settings.update(data_weight=data_weight, data_batch=data_batch,
                        objective="E[R(x)] - kl_weight * KL(pi || p0) per time step "
                                  "+ data_weight * ELBO of training windows per time step")

    dst = RunDirectory(out)
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=lr)
    done = 0
    state_path = dst.file(STATE)
    with dst.lock():
        if state_path.is_file():
            saved = json.loads(dst.file(SETTINGS).read_text(encoding="utf-8"))
            differ = sorted(k for k in settings if k != "updates" and saved.get(k) != settings[k])
            if differ:
                raise ConfigError(f"{out} holds a tuning with other settings ({', '.join(differ)}"
                                  "); choose another --out")
            state = load_checkpoint(state_path)
            policy.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            done = int(state["update"])
            _keep_curves_through(dst.file(CURVES), done)
            log.info("%s: resumed after update %d", out, done)
        else:
            dst.claim()
            dst.path.mkdir(parents=True, exist_ok=True)
            dst.write_config(cfg)
            dst.write_data_card(src.data_card())
            dst.file(CURVES).unlink(missing_ok=True)
        write_json(dst.file(SETTINGS), settings)
    from srnn.train.trainer import prepare_data

    # The run's data, read once (the data anchor's training windows, the before/after test
    # figures); --data-dir says where they are now, not part of the tuned run's settings.
    data = prepare_data(dataclasses.replace(cfg, data_dir=data_dir) if data_dir else cfg)
    anchor = DataAnchor(data.split("train"), cfg.train.window, data_batch, seed) \
        if data_weight > 0 else None

    bar = progress_bar(total=updates, initial=done, desc="tune", unit="update",
                       enabled=progress)
    # A resumed tuning hides the events its stopped process logged after the saved state.
    board = (Board(dst.file(TENSORBOARD), purge_step=done + 1 if done else None)
             if tensorboard else NullBoard())
    params = [p for p in policy.parameters() if p.requires_grad]
    for u in range(done, updates):
        t0 = time.perf_counter()
        torch.manual_seed(seed * 1_000_003 + u)  # each update's draws: a resumed run repeats them
        paths = draw(policy, prior, batch, length, roll)
        scores = score_rolls(paths.x.detach().cpu().numpy(), terms, ctx)
        obj = surrogate(paths, torch.as_tensor(scores["total"]), kl_weight)
        opt.zero_grad(set_to_none=True)
        loss = obj.loss
        data_elbo = None
        if anchor is not None:
            data_elbo = anchor.elbo_per_step(policy, u)
            loss = loss - data_weight * data_elbo
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        opt.step()
        line = {"update": u + 1, "rewards": _means({k: v for k, v in scores.items()
                                                     if k != "total"}),
                "reward": float(scores["total"].mean()),
                "kl_per_step": float(obj.kl_per_step.mean()),
                "objective": float(obj.objective.mean()),
                "baseline": float(obj.baseline.mean()), "grad_norm": grad_norm,
                **({} if data_elbo is None else {"data_elbo_per_step": float(data_elbo.detach())}),
                "seconds": time.perf_counter() - t0}
        with open(dst.file(CURVES), "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        board.tuning(u + 1, line)
        bar.update(1)
        bar.set_postfix(reward=f"{line['reward']:.3f}", kl=f"{line['kl_per_step']:.3f}")
        if (u + 1) % checkpoint_every == 0 or u + 1 == updates:
            save_checkpoint(state_path, {"model": policy.state_dict(),
                                         "optimizer": opt.state_dict(), "update": u + 1})
    bar.close()
    board.close()
    dst.save_checkpoint(BEST, {"model": policy.state_dict(), "tuned_from": str(run_dir),
                               "update": updates})
    summary, drawn = before_after(prior, policy, cfg, card, terms, ctx, roll, seed, eval_num,
                                  length, iwae_samples, data, dst)
    write_samples(drawn, roll, write_num, card, dst, wav)
    plot_curves(dst)
    return summary


class DataAnchor:
    """The data term of the anchored objective: the one-sample ELBO per step of the policy
    (its generative model and its inference network together) on windows of the run's own
    training split, ``batch`` windows an update, in the run's window length. It keeps the tuned
    model a model of the music it learned, measured the way the test ELBO measures it (the KL
    term to p_0 only keeps its samples near p_0's). Update ``u``'s windows are fixed by the seed
    and ``u``, so a resumed tuning repeats them."""

    def __init__(self, train: Split, window: int, batch: int, seed: int) -> None:
        from srnn.data.batching import windows

        # The split cut into windows once (the first cut, fixed by the seed); each update draws
        # its batch from them.
        self.xs, self.us = windows(train, window, np.random.default_rng([seed, 0]))
        self.batch, self.seed = min(batch, len(self.xs)), seed

    def elbo_per_step(self, model: SequenceModel, update: int) -> torch.Tensor:
        """The ELBO per unpadded step of update ``update``'s windows (differentiable)."""
        from srnn.bounds.elbo import elbo_terms
        from srnn.data.batching import pad_batch

        rng = np.random.default_rng([self.seed, update + 1])
        idx = rng.choice(len(self.xs), size=self.batch, replace=False)
        b = pad_batch([self.xs[i] for i in idx], [self.us[i] for i in idx])
        b = b.to(next(model.parameters()).device)
        return elbo_terms(model, b).objective()  # (+ the model's auxiliary term, Z-forcing)


def _keep_curves_through(path: Path, update: int) -> None:
    """Drop the lines of updates after ``update`` (written after the last saved state)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and json.loads(ln)["update"] <= update]
    text = "".join(ln + "\n" for ln in lines).encode()
    atomic_write(path, lambda f: f.write(text))


def curves(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(out) / CURVES
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _samples(model: SequenceModel, prior: SequenceModel, roll: np.ndarray | None, seed: int,
             num: int, length: int) -> tuple[np.ndarray, float]:
    """``num`` samples of ``model`` (after the primer) with a fixed seed, and its KL per step
    from ``prior`` estimated on them."""
    torch.manual_seed(seed)
    paths = draw(model, prior, num, length, roll, grad=False)
    return paths.x.numpy(), float(paths.kl.sum(1).mean() / length)


def before_after(prior: SequenceModel, policy: SequenceModel, cfg: Any, card: Any,
                 terms: list[RewardTerm], ctx: RewardContext, roll: np.ndarray | None,
                 seed: int, num: int, length: int, iwae_samples: int, data: Any,
                 dst: RunDirectory) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The pretrained and the tuned model side by side: rewards of ``num`` samples each, the
    KL estimate, test ELBO and IWAE, and sample statistics against the test set; written as
    ``before_after.json`` / ``.md`` and the tuned run's ``results.json``. Returns them and the
    samples of each model, (num, length, 88) by label."""
    from srnn.evaluate import evaluate_elbo, evaluate_particle_bound
    from srnn.music.stats import compare_statistics
    test = data.split("test")
    out: dict[str, Any] = {"settings": json.loads(dst.file(SETTINGS).read_text()),
                           "samples": num, "length": length}
    drawn: dict[str, np.ndarray] = {}
    for label, model in (("pretrained", prior), ("tuned", policy)):
        rolls, kl = _samples(model, prior, roll, seed + 1, num, length)
        drawn[label] = rolls
        scores = _means(score_rolls(rolls, terms, ctx))
        elbo = evaluate_elbo(model, test, cfg.train.eval_batch_size, seed=0)
        res = {"rewards": {k: v for k, v in scores.items() if k != "total"},
               "reward": scores["total"], "kl_per_step_from_pretrained": kl,
               "test_elbo_per_step": elbo["elbo_per_step"],
               "test_elbo_mean_of_sequences": elbo["elbo_mean_of_sequences"]}
        results = {"elbo_per_step": elbo["elbo_per_step"],
                   "elbo_mean_of_sequences": elbo["elbo_mean_of_sequences"]}
        if iwae_samples:
            iw = evaluate_particle_bound(model, test, "iwae", iwae_samples, seed=0)
            key = f"iwae_k{iwae_samples}"
            res["test_iwae_per_step"] = iw[f"{key}_per_step"]
            results.update({k: v for k, v in iw.items() if not k.endswith("_seconds")})
        stats = compare_statistics(rolls, test.x)
        poly = stats["samples"]["polyphony_histogram"]
        res["exactly_target_voices"] = poly[min(ctx.voices, len(poly) - 1)]
        res["statistics"] = stats["samples"]
        res["distances_to_test"] = stats["distances"]
        out[label] = res
        out["test_statistics"] = stats["reference"]
        if label == "tuned":
            dst.write_results({**results, "tuned_from": out["settings"]["source"],
                               "parameters": policy.num_parameters(),
                               "model_options": cfg.model_options})
    write_json(dst.file("before_after.json"), out)
    md = before_after_markdown(out).encode()
    atomic_write(dst.file("before_after.md"), lambda f: f.write(md))
    return out, drawn


def before_after_markdown(s: dict[str, Any]) -> str:
    b, a = s["pretrained"], s["tuned"]
    st = s["settings"]
    rows = [("reward (total, weighted)", b["reward"], a["reward"])]
    rows += [(f"reward: {k}", b["rewards"][k], a["rewards"][k]) for k in b["rewards"]]
    rows += [(f"steps with exactly {st['voices']} notes", b["exactly_target_voices"],
              a["exactly_target_voices"]),
             ("KL from the pretrained model, per step (estimate)",
              b["kl_per_step_from_pretrained"], a["kl_per_step_from_pretrained"]),
             ("test ELBO per step", b["test_elbo_per_step"], a["test_elbo_per_step"])]
    if "test_iwae_per_step" in b:
        rows.append(("test IWAE per step", b["test_iwae_per_step"], a["test_iwae_per_step"]))
    rows += [("polyphony TV distance to the test set", b["distances_to_test"]["polyphony_tv"],
              a["distances_to_test"]["polyphony_tv"]),
             ("pitch-class TV distance to the test set",
              b["distances_to_test"]["pitch_class_tv"], a["distances_to_test"]["pitch_class_tv"]),
             ("notes per step (test set: "
              f"{s['test_statistics']['notes_per_step']:.2f})",
              b["statistics"]["notes_per_step"], a["statistics"]["notes_per_step"])]
    lines = [f"# Tuning of `{st['source']}` ({st['model']} on {st['dataset']})", "",
             f"Rewards {', '.join(st['rewards'])}; KL weight c = {st['kl_weight']:g}; "
             f"{st['updates']} updates of {st['batch']} paths of {st['length']} steps; "
             f"figures of {s['samples']} samples of {s['length']} steps from each model.", "",
             "| | pretrained | tuned |", "|---|---:|---:|"]
    lines += [f"| {name} | {x:.4f} | {y:.4f} |" for name, x, y in rows]
    return "\n".join(lines) + "\n"


def write_samples(drawn: dict[str, np.ndarray], roll: np.ndarray | None, num: int, card: Any,
                  dst: RunDirectory, wav: bool) -> list[Path]:
    """The first ``num`` samples of each model (of the before/after table, ``drawn``) as MIDI
    (and WAV) under ``samples/``, after the primer if there is one."""
    from srnn.sampling import write_rolls

    written: list[Path] = []
    for label, rolls in drawn.items():
        rolls = rolls[:num]
        if len(rolls) == 0:
            continue
        if roll is not None:
            rolls = np.concatenate([np.repeat(roll[None], len(rolls), 0), rolls], axis=1)
        path = dst.path / "samples" / f"{label}.mid"
        path.parent.mkdir(parents=True, exist_ok=True)
        written += write_rolls(rolls.astype(np.float32), path, card.grid.write_seconds, wav)
    return written


def plot_curves(dst: RunDirectory) -> Path | None:
    """``tuning.png``: each reward term and the total, and the KL per step, against updates."""
    from matplotlib.figure import Figure

    from srnn.plots import save_figure

    rows = curves(dst.path)
    if not rows:
        return None
    u = [r["update"] for r in rows]
    fig = Figure(figsize=(9, 4.5))
    ax, kx = fig.subplots(1, 2)
    for name in rows[0]["rewards"]:
        ax.plot(u, [r["rewards"][name] for r in rows], lw=1, label=name)
    ax.plot(u, [r["reward"] for r in rows], color="black", lw=1.8, label="total (weighted)")
    ax.set_xlabel("update")
    ax.set_ylabel("mean reward of the batch")
    ax.legend(fontsize=7)
    kx.plot(u, [r["kl_per_step"] for r in rows], color="tab:red")
    kx.set_xlabel("update")
    kx.set_ylabel("KL(π ‖ p₀) per step, estimate")
    fig.tight_layout()
    return save_figure(fig, dst.file("tuning.png"))
