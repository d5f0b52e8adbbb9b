"""The trade-off of several tunings of one model (e.g. over the KL weight c):
``python -m srnn.tuning.tradeoff TUNED_DIR ... --out DIR`` writes ``tradeoff.json``,
``tradeoff.md`` and ``tradeoff.png`` (the reward gained against the test ELBO lost) from each
tuning's ``before_after.json`` (:mod:`srnn.tuning.tune`)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srnn.errors import ConfigError
from srnn.io import atomic_write, write_json


def rows(dirs: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """One row per tuning: its settings and the before/after figures, sorted by c."""
    out = []
    for d in dirs:
        path = Path(d) / "before_after.json"
        if not path.is_file():
            raise ConfigError(f"{d}: no before_after.json (a finished `srnn tune` writes it)")
        s = json.loads(path.read_text(encoding="utf-8"))
        b, a = s["pretrained"], s["tuned"]
        out.append({
            "dir": str(d), "kl_weight": s["settings"]["kl_weight"],
            "updates": s["settings"]["updates"], "lr": s["settings"]["lr"],
            "reward_before": b["reward"], "reward_after": a["reward"],
            "reward_gain_relative": a["reward"] / b["reward"] - 1 if b["reward"] else None,
            "rewards_before": b["rewards"], "rewards_after": a["rewards"],
            "voices_before": b["exactly_target_voices"],
            "voices_after": a["exactly_target_voices"],
            "kl_per_step": a["kl_per_step_from_pretrained"],
            "elbo_before": b["test_elbo_per_step"], "elbo_after": a["test_elbo_per_step"],
            "elbo_drop": b["test_elbo_per_step"] - a["test_elbo_per_step"],
            "iwae_before": b.get("test_iwae_per_step"), "iwae_after": a.get("test_iwae_per_step"),
            "polyphony_tv_before": b["distances_to_test"]["polyphony_tv"],
            "polyphony_tv_after": a["distances_to_test"]["polyphony_tv"]})
    return sorted(out, key=lambda r: (-r["kl_weight"], r["lr"]))


def markdown(rs: list[dict[str, Any]]) -> str:
    def f(x: float | None, d: int = 3) -> str:
        return "—" if x is None else f"{x:.{d}f}"

    lines = ["| c | updates | lr | reward before → after | relative gain | "
             "exactly-k-voice steps | KL per step | test ELBO before → after (drop) | "
             "test IWAE before → after | polyphony TV to test |",
             "|---:|---:|---:|---|---:|---|---:|---|---|---|"]
    for r in rs:
        lines.append(
            f"| {r['kl_weight']:g} | {r['updates']} | {r['lr']:g} | {f(r['reward_before'])} → "
            f"{f(r['reward_after'])} | {100 * r['reward_gain_relative']:+.1f} % | "
            f"{100 * r['voices_before']:.1f} % → {100 * r['voices_after']:.1f} % | "
            f"{f(r['kl_per_step'])} | {f(r['elbo_before'])} → {f(r['elbo_after'])} "
            f"({f(r['elbo_drop'])}) | {f(r['iwae_before'])} → {f(r['iwae_after'])} | "
            f"{f(r['polyphony_tv_before'])} → {f(r['polyphony_tv_after'])} |")
    names = list(rs[0]["rewards_after"]) if rs else []
    lines += ["", "Each reward term after tuning (before: the first row's pretrained value):", "",
              "| c | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    if rs:
        lines.append("| pretrained | " + " | ".join(f(rs[0]["rewards_before"][n])
                                                     for n in names) + " |")
    for r in rs:
        lines.append(f"| {r['kl_weight']:g} (lr {r['lr']:g}) | "
                     + " | ".join(f(r["rewards_after"][n]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def plot(rs: list[dict[str, Any]], path: Path) -> Path:
    from matplotlib.figure import Figure

    from srnn.plots import save_figure

    fig = Figure(figsize=(9, 4))
    ax, vx = fig.subplots(1, 2)
    for r in rs:
        ax.scatter(r["elbo_drop"], r["reward_after"], color="tab:blue")
        ax.annotate(f"c = {r['kl_weight']:g}", (r["elbo_drop"], r["reward_after"]),
                    fontsize=8, xytext=(4, 2), textcoords="offset points")
        vx.scatter(r["kl_per_step"], 100 * r["voices_after"], color="tab:green")
        vx.annotate(f"c = {r['kl_weight']:g}", (r["kl_per_step"], 100 * r["voices_after"]),
                    fontsize=8, xytext=(4, 2), textcoords="offset points")
    if rs:
        ax.axhline(rs[0]["reward_before"], ls="--", color="grey", label="pretrained")
        vx.axhline(100 * rs[0]["voices_before"], ls="--", color="grey", label="pretrained")
        ax.legend(fontsize=8)
    ax.set_xlabel("test ELBO lost (nats per step)")
    ax.set_ylabel("music-theory reward (weighted total)")
    vx.set_xlabel("KL from the pretrained model per step (estimate)")
    vx.set_ylabel("steps with exactly the target voices (%)")
    fig.tight_layout()
    return save_figure(fig, path)


def write(dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rs = rows(dirs)
    write_json(out / "tradeoff.json", {"tunings": rs})
    md = markdown(rs).encode()
    atomic_write(out / "tradeoff.md", lambda f: f.write(md))
    return [out / "tradeoff.json", out / "tradeoff.md", plot(rs, out / "tradeoff.png")]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m srnn.tuning.tradeoff", description=__doc__)
    p.add_argument("dirs", nargs="+", metavar="TUNED_DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    a = p.parse_args(argv)
    try:
        for path in write(a.dirs, a.out):
            print(path)
    except ConfigError as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
