"""``--tensorboard``: a training's and a tuning's figures read back with TensorBoard's own
reader (the tags, their steps and values), a sample's image and audio, resumed logs that show
nothing twice, training unchanged by logging, and a one-line error without TensorBoard."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from srnn.cli import main
from srnn.data.card import DataCard, SpeechInfo
from srnn.data.grid import Grid
from srnn.data.sequences import Modality
from srnn.data.speech import Normaliser
from srnn.models import build_model
from srnn.sampling import sample_media
from srnn.train.checkpoint import LAST, load_checkpoint
from srnn.train.run_dir import RunDirectory
from srnn.train.tensorboard import Board

TINY = ["--dataset", "jsb", "--subset", "3", "--z-dim", "4", "--d-dim", "8", "--a-dim", "8",
        "--hidden", "8", "--feature-dim", "8", "--feature-layers", "1", "--no-progress"]
FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"
UPDATE_TAGS = {"loss", "elbo", "recon", "kl", "kl_weight", "lr", "grad_norm", "skipped_batches",
               "updates_per_second"}
EPOCH_TAGS = {"epoch", "train_elbo", "train_recon", "train_kl", "valid_elbo", "valid_recon",
              "valid_kl", "kl_weight", "lr", "skipped_batches", "seconds"}


def events(log_dir: Path) -> EventAccumulator:
    """Every event under ``log_dir``, read as TensorBoard reads it (nothing sampled away)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "audio": 0,
                                                         "tensors": 0})
    acc.Reload()
    return acc


def series(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def metrics(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, data_dir) -> Path:
    """A tiny training of 2 epochs with --tensorboard and a sample every epoch."""
    run = tmp_path_factory.mktemp("tb") / "run"
    assert main(["train", *TINY, "--epochs", "2", "--data-dir", str(data_dir), "--tensorboard",
                 "--tensorboard-every", "1", "--out", str(run)]) == 0
    return run


def test_a_training_logs_every_update_and_every_epoch(logged_run):
    acc = events(logged_run / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    assert {f"update/{t}" for t in UPDATE_TAGS} <= tags
    assert {f"epoch/{t}" for t in EPOCH_TAGS} <= tags
    lines = metrics(logged_run)
    updates = lines[-1]["step"]
    # one point per update, at steps 1, 2, ...: the x axis of every tag is the updates made
    assert [s for s, _ in series(acc, "update/loss")] == list(range(1, updates + 1))
    # the epoch's figures at the update that ended it, with the values of metrics.jsonl
    for key in ("valid_elbo", "train_elbo", "valid_kl", "train_recon", "kl_weight"):
        got = series(acc, f"epoch/{key}")
        assert [s for s, _ in got] == [ln["step"] for ln in lines], key
        assert [v for _, v in got] == pytest.approx([ln[key] for ln in lines], rel=1e-6), key
    # the epoch's lr is that of its last update
    lr = dict(series(acc, "update/lr"))
    assert [lr[ln["step"]] for ln in lines] == pytest.approx([ln["lr"] for ln in lines])
    assert all(np.isfinite(v) and v > 0 for _, v in series(acc, "update/grad_norm"))
    assert all(v == 0 for _, v in series(acc, "update/skipped_batches"))


def test_a_training_logs_a_sample_as_a_piano_roll_and_its_sound(logged_run):
    acc = events(logged_run / "tensorboard")
    steps = [ln["step"] for ln in metrics(logged_run)]
    images = acc.Images("sample/piano_roll")
    assert [i.step for i in images] == steps  # every epoch (--tensorboard-every 1)
    assert images[0].encoded_image_string.startswith(b"\x89PNG")
    assert images[0].width > 100 and images[0].height > 100
    sounds = acc.Audio("sample/audio")
    assert [a.step for a in sounds] == steps
    assert sounds[0].sample_rate == 16_000 and sounds[0].length_frames > 16_000
    assert sounds[0].encoded_audio_string.startswith(b"RIFF")


def test_logging_to_tensorboard_leaves_the_training_as_it_was(logged_run, tmp_path, data_dir):
    """Drawing the samples must not move the training's random numbers."""
    plain = tmp_path / "plain"
    assert main(["train", *TINY, "--epochs", "2", "--data-dir", str(data_dir),
                 "--out", str(plain)]) == 0
    assert not (plain / "tensorboard").exists()
    drop = ("seconds", "elapsed")
    assert ([{k: v for k, v in ln.items() if k not in drop} for ln in metrics(plain)]
            == [{k: v for k, v in ln.items() if k not in drop} for ln in metrics(logged_run)])


def test_a_resumed_log_shows_what_was_logged_after_the_checkpoint_once(tmp_path):
    first = Board(tmp_path)
    for step in range(1, 6):
        first.scalars("update", {"loss": float(step), "skipped": None}, step)
    first.close()
    # stopped after step 5, resumed from a checkpoint at step 3: steps 4 and 5 are redone
    again = Board(tmp_path, purge_step=4)
    for step in range(4, 7):
        again.scalars("update", {"loss": 10.0 * step}, step)
    again.close()
    assert series(events(tmp_path), "update/loss") == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    assert "update/skipped" not in events(tmp_path).Tags()["scalars"]  # None is not a value


def test_a_resumed_training_continues_its_log_without_losing_or_doubling_a_point(tmp_path,
                                                                                 data_dir):
    run = tmp_path / "run"
    base = ["train", *TINY, "--data-dir", str(data_dir), "--tensorboard"]
    assert main([*base, "--epochs", "1", "--keep-checkpoints", "--out", str(run)]) == 0
    assert main([*base, "--epochs", "2", "--resume", str(run)]) == 0
    acc = events(run / "tensorboard")
    lines = metrics(run)
    assert [s for s, _ in series(acc, "epoch/valid_elbo")] == [ln["step"] for ln in lines]
    assert [s for s, _ in series(acc, "update/loss")] == list(range(1, lines[-1]["step"] + 1))
    assert json.loads((run / "config.json").read_text())["train"]["tensorboard"] is True


def test_a_resumed_training_purges_after_its_checkpoint_and_logs_before_it(tmp_path, data_dir,
                                                                         monkeypatch):
    trainer_mod = importlib.import_module("srnn.train.trainer")  # srnn.train: also a function

    purges, saves = [], []

    class Recording(trainer_mod.TrainingBoard):
        def __init__(self, *args, **kwargs):
            purges.append(kwargs.get("purge_step"))
            super().__init__(*args, **kwargs)

    save = RunDirectory.save_checkpoint

    def checking(self, which, state, keep_previous=False):
        if which == LAST:  # what TensorBoard has on disk when last.pt is written
            logged = [s for s, _ in series(events(self.file("tensorboard")), "epoch/valid_elbo")]
            saves.append((state["step"], logged))
        save(self, which, state, keep_previous)

    monkeypatch.setattr(trainer_mod, "TrainingBoard", Recording)
    monkeypatch.setattr(RunDirectory, "save_checkpoint", checking)
    run = tmp_path / "run"
    base = ["train", *TINY, "--data-dir", str(data_dir), "--tensorboard"]
    assert main([*base, "--epochs", "1", "--keep-checkpoints", "--out", str(run)]) == 0
    step = load_checkpoint(run / "last.pt")["step"]
    assert main([*base, "--epochs", "2", "--resume", str(run)]) == 0
    # a new run purges nothing; the resumed one, what was logged after its checkpoint's step
    assert purges == [None, step + 1]
    # every epoch's events are flushed before the last.pt that holds the epoch is written
    assert len(saves) == 2 and all(at in logged for at, logged in saves)


def test_a_speech_sample_is_a_waveform_plot_with_its_sound():
    model = build_model("srnn", x_dim=200, z_dim=2, d_dim=4, a_dim=4, hidden=4, feature_dim=4,
                        feature_layers=1, emission="gauss")
    card = DataCard(name="fsdd", protocol="fsdd", time_step="200-sample frame",
                    grid=Grid(frame_size=200, rate=8000), modality=Modality.SPEECH,
                    binary=False, dim=200,
                    speech=SpeechInfo(rate=8000, frame_size=200,
                                      normaliser=Normaliser(mean=0.0, std=0.05)))
    media = sample_media(model.eval(), card)
    assert media.kind == "waveform" and media.rate == 8000
    assert media.image.dtype == np.uint8 and media.image.ndim == 3 and media.image.shape[2] == 3
    assert media.audio is not None and len(media.audio) == 2 * 8000  # 2 s of 200-sample frames


def test_a_tuning_logs_each_reward_term_the_kl_and_the_baseline(tmp_path, data_dir):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    out = tmp_path / "tuned"
    assert main(["tune", str(run), "--out", str(out), "--reward", "key=1", "--reward",
                 "voices=0.5", "--updates", "3", "--batch", "4", "--length", "4",
                 "--eval-num", "2", "--iwae-samples", "0", "--write", "0", "--tensorboard",
                 "--no-progress", "--data-dir", str(data_dir)]) == 0
    acc = events(out / "tensorboard")
    lines = [json.loads(ln) for ln in (out / "tuning.jsonl").read_text().splitlines()]
    for tag, value in (("tune/reward/key", lambda r: r["rewards"]["key"]),
                       ("tune/reward/voices", lambda r: r["rewards"]["voices"]),
                       ("tune/reward", lambda r: r["reward"]),
                       ("tune/kl_per_step", lambda r: r["kl_per_step"]),
                       ("tune/baseline", lambda r: r["baseline"]),
                       ("tune/objective", lambda r: r["objective"])):
        got = series(acc, tag)
        assert [s for s, _ in got] == [1, 2, 3], tag
        assert [v for _, v in got] == pytest.approx([value(r) for r in lines], rel=1e-6,
                                                    abs=1e-7), tag


def test_a_tuning_line_logs_every_number_it_holds(tmp_path):
    board = Board(tmp_path)
    line = {"update": 1, "rewards": {"key": 0.5}, "reward": 0.25, "kl_per_step": 0.1,
            "objective": 0.2, "baseline": 0.0, "grad_norm": 1.5, "data_elbo_per_step": -3.0,
            "seconds": 2.0, "note": "text"}
    board.tuning(1, line)
    board.close()
    tags = set(events(tmp_path).Tags()["scalars"])
    assert tags == {"tune/reward/key", "tune/reward", "tune/kl_per_step", "tune/objective",
                    "tune/baseline", "tune/grad_norm", "tune/data_elbo_per_step",
                    "tune/seconds"}  # the step (update) and text are not logged
    assert series(events(tmp_path), "tune/data_elbo_per_step") == [(1, -3.0)]


@pytest.mark.parametrize("command", [
    ["train", "--out", "{tmp}/run", "--tensorboard"],
    ["tune", "{tmp}/run", "--out", "{tmp}/tuned", "--tensorboard"],
    ["compare", "--out", "{tmp}/cmp", "--tensorboard"],
    ["reproduce", "poster", "--out", "{tmp}/rep", "--dry-run", "--tensorboard"],
])
def test_without_tensorboard_installed_the_flag_is_a_one_line_error(command, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    assert main([a.format(tmp=tmp_path) for a in command]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("srnn: error: --tensorboard needs TensorBoard, which is not installed: "
                   "pip install 'srnn[tensorboard]'")
    assert not (tmp_path / "run").exists()


def test_a_comparison_logs_every_model_and_keeps_logging_out_of_its_plan(tmp_path, data_dir):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "jsb", "--models", "rnn", "--no-match", "--set",
                 "rnn.d_dim=8", "--set", "rnn.hidden=8", "--subset", "3", "--epochs", "1",
                 "--data-dir", str(data_dir), "--out", str(out), "--no-progress",
                 "--tensorboard", "--tensorboard-every", "1"]) == 0
    acc = events(out / "rnn" / "tensorboard")
    lines = metrics(out / "rnn")
    assert series(acc, "epoch/valid_elbo") == [
        (lines[0]["step"], pytest.approx(lines[0]["valid_elbo"], rel=1e-6))]
    assert [i.step for i in acc.Images("sample/piano_roll")] == [lines[0]["step"]]
    plan = json.loads((out / "plan.json").read_text())
    assert "tensorboard" not in plan["train_options"]  # what is logged is not what is run
    job = json.loads((out / "rnn" / "job.json").read_text())
    assert "tensorboard" not in job["train_options"]
