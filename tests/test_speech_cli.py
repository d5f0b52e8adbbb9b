"""A speech model through the command line: train on FSDD frames, sample WAV files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from srnn.cli import main

FSDD = Path(os.environ.get("SRNN_DATA_DIR", "")) / "speech" / "fsdd" / "files.csv"


@pytest.mark.skipif(not FSDD.is_file(), reason="FSDD not found under $SRNN_DATA_DIR/speech/fsdd")
@pytest.mark.parametrize("model,emission", [("srnn", "gauss"), ("rnn", "gmm")])
def test_train_and_sample_speech(tmp_path, capsys, model: str, emission: str) -> None:
    from scipy.io import wavfile

    run = tmp_path / model
    opts = ["--d-dim", "16", "--hidden", "16", "--feature-dim", "16"]
    if model == "srnn":
        opts += ["--z-dim", "4", "--a-dim", "16"]
    assert main(["train", "--dataset", "fsdd", "--model", model, "--emission", emission,
                 "--out", str(run), "--subset", "12", "--epochs", "1", "--no-progress",
                 *opts]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["model_options"]["emission"] == emission and np.isfinite(res["elbo_per_step"])
    card = json.loads((run / "data.json").read_text())
    assert card["rate"] == 8000 and card["dim"] == 200 and "normaliser" in card
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.wav"), "--length", "10"]) == 0
    rate, wav = wavfile.read(tmp_path / "s.wav")
    assert rate == 8000 and wav.shape == (2000,) and wav.dtype == np.int16
    assert main(["sample", str(run), "--out", str(tmp_path / "s.mid")]) == 2
    assert "speech model writes .wav" in capsys.readouterr().err
    assert main(["plot", str(run), "--out", str(tmp_path / "plots"), "--num", "1"]) == 0
    png = (tmp_path / "plots" / "speech.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 1000
    assert wavfile.read(tmp_path / "plots" / "sample-0.wav")[0] == 8000
