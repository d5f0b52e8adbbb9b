"""The disk space of a paper-size SRNN run's checkpoints, whole and shrunk.

Builds the SRNN of the paper's music setup (88 notes, z 100, d 300, a 300, 500 hidden units)
and its Adam optimiser with its moments filled (one update of zero gradients, so no
training), writes the checkpoint a running trainer writes (:class:`TrainingState`) and the
one a finished run keeps (:func:`shrink_state`), and reports their sizes: a run that is
still training keeps three of the first (``best.pt``, ``last.pt``, ``last.prev.pt``), a
finished one ``best.pt`` shrunk.

    python -m benchmarks.checkpoint_sizes [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from srnn.models import SRNN, SRNNConfig
from srnn.train.checkpoint import Progress, TrainingState, save_checkpoint, shrink_state
from srnn.train.config import RunConfig, TrainConfig
from srnn.train.trainer import make_optimiser


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/checkpoint_sizes.json")
    a = ap.parse_args()
    torch.manual_seed(0)
    model = SRNN(SRNNConfig(x_dim=88))
    tc = TrainConfig()
    opt = make_optimiser(model, tc)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # Adam's two moments per weight now exist; a zero gradient moves no weight
    cfg = RunConfig(dataset="jsb", model_options=model.config.to_dict(), train=tc)
    state = TrainingState(
        model=model.state_dict(), optimizer=opt.state_dict(), progress=Progress(epoch=1, step=1),
        kl_weight=tc.kl_start, torch_rng=torch.get_rng_state(), cuda_rng=None,
        numpy_rng=json.dumps(np.random.default_rng(0).bit_generator.state),
        config=json.dumps(cfg.to_dict())).to_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        whole, shrunk = Path(tmp) / "whole.pt", Path(tmp) / "shrunk.pt"
        save_checkpoint(whole, state)
        save_checkpoint(shrunk, shrink_state(state))
        sizes = {"whole": whole.stat().st_size, "shrunk": shrunk.stat().st_size}
    params = model.num_parameters()
    out = {"model": "srnn", "model_options": model.config.to_dict(), "parameters": params,
           "weights_mb": round(4 * params / 1e6, 2),
           "checkpoint_mb": round(sizes["whole"] / 1e6, 2),
           "shrunk_checkpoint_mb": round(sizes["shrunk"] / 1e6, 2),
           "running_run_mb": round(3 * sizes["whole"] / 1e6, 1),
           "finished_run_mb": round(sizes["shrunk"] / 1e6, 1),
           "finished_run_kept_mb": round(3 * sizes["whole"] / 1e6, 1),
           "torch": torch.__version__}
    print(json.dumps(out, indent=2))
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
