"""Sampling, continuation, reconstruction and plots from a trained run, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
import torch
from test_models import NAMES, tiny

from srnn.cli import main
from srnn.data import dataset_grid
from srnn.music.midi import read_midi, write_midi
from srnn.sampling import continuation, reconstruct


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """A tiny SRNN trained for one epoch on a few JSB chorales."""
    out = tmp_path_factory.mktemp("run") / "jsb"
    assert main(["train", "--dataset", "jsb", "--data-dir", str(data_dir), "--out", str(out),
                 "--subset", "4", "--epochs", "2", "--z-dim", "4", "--d-dim", "16",
                 "--a-dim", "16", "--hidden", "16", "--feature-dim", "16",
                 "--no-progress"]) == 0
    return out


def primer_file(path, steps: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    roll = np.zeros((steps, 88), np.float32)
    for t in range(steps):
        roll[t, rng.choice(np.arange(30, 60), 3, replace=False)] = 1
    write_midi(roll, path, 0.5)
    return roll


def test_grids_of_the_data_sets(tmp_path) -> None:
    folder = tmp_path / "tunes"
    folder.mkdir()
    assert dataset_grid("jsb").steps_per_beat == 1 and dataset_grid("jsb").write_seconds == 0.5
    assert dataset_grid("nottingham").write_seconds == 0.25
    assert dataset_grid(str(folder)).steps_per_beat == 4
    assert dataset_grid("jsb-fraccaro").step_seconds == 0.3


@pytest.mark.parametrize("name", NAMES)
def test_continuation_keeps_the_primer_for_every_model(name: str) -> None:
    m = tiny(name)
    primer = (np.random.default_rng(1).random((7, 6)) < 0.3).astype(np.float32)
    out = continuation(m, primer, num=3, steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 12, 6)
    assert (out[:, :7] == primer).all() and set(np.unique(out)) <= {0.0, 1.0}
    rec = reconstruct(m, primer, draws=4, generator=torch.Generator().manual_seed(0))
    assert rec.probabilities.shape == (7, 6)
    assert ((rec.probabilities >= 0) & (rec.probabilities <= 1)).all()
    assert rec.kl.shape == rec.recon.shape == (7,) and (rec.recon <= 0).all()


def test_sample_with_primer_and_wav(run, tmp_path, capsys) -> None:
    primer = primer_file(tmp_path / "primer.mid")
    out = tmp_path / "cont.mid"
    assert main(["sample", str(run), "--out", str(out), "--primer", str(tmp_path / "primer.mid"),
                 "--length", "10", "--num", "2", "--wav", "--png", str(tmp_path / "c.png")]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    assert sorted(written) == sorted(str(tmp_path / f) for f in (
        "cont-0.mid", "cont-0.wav", "cont-1.mid", "cont-1.wav", "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    for i in range(2):
        roll = read_midi(tmp_path / f"cont-{i}.mid", steps_per_beat=1)
        assert (roll[:12] == primer).all()  # the primer comes back as it went in
        assert 12 <= len(roll) <= 22
        assert pretty_midi.PrettyMIDI(str(tmp_path / f"cont-{i}.mid")).get_end_time() <= 11.0
        assert (tmp_path / f"cont-{i}.wav").stat().st_size > 1000


def test_reconstruct_writes_midi_and_probabilities(run, tmp_path, capsys) -> None:
    piece = primer_file(tmp_path / "piece.mid", steps=16)
    assert main(["reconstruct", str(run), "--input", str(tmp_path / "piece.mid"),
                 "--out", str(tmp_path / "rec.mid"), "--probabilities",
                 str(tmp_path / "rec.npy"), "--draws", "4"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 16 and res["elbo_per_step"] < 0 and 0 <= res["note_accuracy"] <= 1
    probs = np.load(tmp_path / "rec.npy")
    assert probs.shape == piece.shape
    rec = read_midi(tmp_path / "rec.mid", steps_per_beat=1, length=16)
    assert (rec == (probs > 0.5)).all()
    (tmp_path / "bad.mid").write_bytes(b"not a midi file at all")
    assert main(["reconstruct", str(run), "--input", str(tmp_path / "bad.mid"),
                 "--out", str(tmp_path / "x.mid")]) == 2
    assert "bad.mid" in capsys.readouterr().err


def test_reconstruct_reads_a_long_high_resolution_file(run, tmp_path, capsys) -> None:
    """12 minutes at 10,080 ticks per beat: past pretty_midi's tick guard, yet valid."""
    from test_midi_long import LAST_BEAT, write_long

    write_long(tmp_path / "long.mid")
    assert main(["reconstruct", str(run), "--input", str(tmp_path / "long.mid"),
                 "--out", str(tmp_path / "rec.mid"), "--draws", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == LAST_BEAT  # 1 step a beat (jsb)


def test_plot_writes_figures_and_statistics(run, data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "plots"
    assert main(["plot", str(run), "--out", str(out), "--num", "3", "--length", "16",
                 "--data-dir", str(data_dir)]) == 0
    for name in ("curves.png", "rolls.png", "kl.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    stats = json.loads((out / "sample_stats.json").read_text())
    assert stats["num_samples"] == 3 and stats["samples"]["sequences"] == 3
    assert 0 <= stats["distances"]["pitch_class_tv"] <= 1
    assert stats["reference"]["sequences"] == 4


def test_data_export_writes_a_piece(data_dir, tmp_path, capsys) -> None:
    from srnn.data import load_dataset

    out = tmp_path / "piece.mid"
    assert main(["data", "export", "jsb", "--data-dir", str(data_dir), "--piece", "2",
                 "--steps", "20", "--out", str(out)]) == 0
    roll = load_dataset("jsb", data_dir).test.x[2][:20]
    assert (read_midi(out, steps_per_beat=1, length=20) == roll).all()
    assert main(["data", "export", "jsb", "--data-dir", str(data_dir), "--piece", "999",
                 "--out", str(out)]) == 2
    assert "--piece must be in" in capsys.readouterr().err
