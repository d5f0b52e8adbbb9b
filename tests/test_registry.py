"""The data set registry, grids and data cards: every kind's protocol, modality and grid; cards
written and read back; old cards (no grid, no modality) read through the registry; a MIDI folder
on one step per beat sampled, reconstructed and exported on its own grid."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
from test_midi import random_roll

from srnn.cli import main
from srnn.data import DATASETS, load_dataset, lookup, time_step
from srnn.data.arrays import load_arrays
from srnn.data.card import DataCard, data_card, read_card
from srnn.data.grid import NO_GRID, Grid
from srnn.data.midi_folder import load_midi_folder
from srnn.data.speech import build_dataset, decode
from srnn.errors import ConfigError, DataError
from srnn.music.midi import read_midi, write_midi

# name -> (kind, protocol, modality, grid, time step)
EXPECTED = {
    "bach": ("bach", "bach", "music", Grid(steps_per_beat=1), "quarter note"),
    "jsb": ("canonical", "canonical", "music", Grid(steps_per_beat=1), "quarter note"),
    "nottingham": ("canonical", "canonical", "music", Grid(steps_per_beat=2), "eighth note"),
    "musedata": ("canonical", "canonical", "music", Grid(steps_per_beat=2), "eighth note"),
    "piano": ("canonical", "canonical", "music", Grid(steps_per_beat=2), "eighth note"),
    **{f"{s}-fraccaro": ("fraccaro", "fraccaro", "music", Grid(step_seconds=0.3), "0.3 s frame")
       for s in ("jsb", "nottingham", "musedata", "piano")},
    **{n: ("fsdd", "fsdd", "speech", Grid(frame_size=200, rate=8000),
           "200-sample frame at 8 kHz") for n in ("fsdd", "fsdd-perm")},
    **{f"{c}{p}:/somewhere": ("corpus", c, "speech", Grid(frame_size=200, rate=16000),
                              "200-sample frame at 16 kHz")
       for c in ("timit", "vctk", "blizzard") for p in ("", "-perm")},
    "mine.npz": ("arrays", "arrays", "other", NO_GRID, "step"),
}


def tone(n: int, rate: int, freq: float = 220.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def test_every_kind_has_its_protocol_modality_and_grid(tmp_path) -> None:
    folder = tmp_path / "tunes"
    folder.mkdir()
    expected = {**EXPECTED, str(folder): ("midi-folder", "midi-folder", "music",
                                          Grid(steps_per_beat=4), "1/4 beat")}
    assert set(DATASETS) <= set(expected)
    for name, (kind, protocol, modality, grid, step) in expected.items():
        entry = lookup(name)
        assert (entry.kind, entry.protocol, entry.modality, entry.grid) == \
            (kind, protocol, modality, grid), name
        assert entry.time_step == entry.grid.time_step == time_step(name) == step
    with pytest.raises(DataError, match="unknown data set 'nope'"):
        lookup("nope")


def test_grids_display_and_round_trip_through_json() -> None:
    texts = [(Grid(steps_per_beat=1, label="quarter note"), "quarter note"),
             (Grid(steps_per_beat=1), "beat"), (Grid(steps_per_beat=4), "1/4 beat"),
             (Grid(step_seconds=0.3), "0.3 s frame"), (Grid(step_seconds=0.25), "0.25 s frame"),
             (Grid(frame_size=200, rate=8000), "200-sample frame at 8 kHz"),
             (Grid(frame_size=200, rate=16000), "200-sample frame at 16 kHz"), (NO_GRID, "step")]
    for grid, text in texts:
        assert grid.time_step == text
        back = Grid.from_dict(json.loads(json.dumps(grid.to_dict())))
        assert back == grid and back.time_step == text
    assert Grid(steps_per_beat=2, label="eighth note") == Grid(steps_per_beat=2)
    for bad in ({"steps_per_beat": 0}, {"step_seconds": -1.0}, {"frame_size": 200},
                {"steps_per_beat": 2, "step_seconds": 0.5}, {"rate": True, "frame_size": 1}):
        with pytest.raises(ValueError):
            Grid(**bad)
        with pytest.raises(ConfigError, match="run/data.json"):
            Grid.from_dict(bad, "run/data.json")
    with pytest.raises(ConfigError, match="does not match"):
        Grid.from_dict({"kind": "seconds", "steps_per_beat": 2})
    with pytest.raises(ConfigError, match="unknown grid field 'bpm'"):
        Grid.from_dict({"bpm": 120})


def test_only_musical_grids_read_and_write_midi() -> None:
    assert Grid(steps_per_beat=2).read_options() == {"steps_per_beat": 2}
    assert Grid(steps_per_beat=2).write_seconds == 0.25  # 120 beats per minute
    assert Grid(step_seconds=0.3).read_options() == {"step_seconds": 0.3}
    assert Grid(step_seconds=0.3).write_seconds == 0.3
    for grid in (NO_GRID, Grid(frame_size=200, rate=8000)):
        assert not grid.is_musical
        with pytest.raises(ConfigError, match=f"no musical grid known for time step "
                                              f"'{grid.time_step}'"):
            grid.read_options()
        with pytest.raises(ConfigError, match="no musical grid"):
            _ = grid.write_seconds


def make_folder(root, n: int, step_seconds: float) -> list[np.ndarray]:
    root.mkdir(parents=True)
    rolls = [random_roll(200 + i, steps=10 + i, density=0.15) for i in range(n)]
    for i, roll in enumerate(rolls):
        write_midi(roll, root / f"song{i}.mid", step_seconds)
    return rolls


def test_loaders_set_the_registry_grid_and_modality(tmp_path) -> None:
    from srnn.data.wav import write_wav

    folder = tmp_path / "tunes"
    make_folder(folder, 4, 0.125)
    arrays = tmp_path / "mine.npz"
    np.savez(arrays, train=np.ones((2, 3, 2)), valid=np.ones((1, 3, 2)) / 2,
             test=np.zeros((1, 4, 2)))
    speech = tmp_path / "speech"
    for i in range(3):
        write_wav(tone(1000 + 300 * i, 16000), speech / f"r{i}.wav", 16000)
    for name in (str(folder), str(arrays), f"blizzard:{speech}"):
        entry, data = lookup(name), load_dataset(name)
        assert (data.protocol, data.modality, data.grid, data.time_step) == \
            (entry.protocol, entry.modality, entry.grid, entry.time_step), name
    assert load_arrays(arrays).modality == "other"
    assert load_midi_folder(folder, step_seconds=0.25).grid == Grid(step_seconds=0.25)


def test_named_sets_load_with_the_registry_grid_and_modality(data_dir) -> None:
    for name in ("jsb", "nottingham", "jsb-fraccaro"):
        entry, data = lookup(name), load_dataset(name, data_dir)
        assert (data.protocol, data.modality, data.grid, data.time_step) == \
            (entry.protocol, entry.modality, entry.grid, entry.time_step), name
        assert data.grid.label == entry.grid.label


def test_a_card_reads_back_as_it_was_written(tmp_path) -> None:
    folder = tmp_path / "tunes"
    make_folder(folder, 3, 0.5)
    music = load_midi_folder(folder, steps_per_beat=1)
    card = json.loads(json.dumps(data_card(music)))  # through JSON, as in data.json
    assert card["grid"] == {"kind": "beats", "steps_per_beat": 1}
    assert card["modality"] == "music" and card["time_step"] == "beat"
    typed = read_card(card, "a name the registry does not know")  # a full card needs none
    assert typed == DataCard.of(music) and typed.speech is None
    assert (typed.grid, typed.dim, typed.binary) == (Grid(steps_per_beat=1), 88, True)

    rec = {s: [(f"{s}.wav", tone(4000, 8000))] for s in ("train", "valid", "test")}
    speech = build_dataset("t", "t", 8000, rec, permute=True, permute_seed=3)
    card = json.loads(json.dumps(data_card(speech)))
    assert {k: card[k] for k in ("rate", "frame_size", "permute_seed")} == \
        {"rate": 8000, "frame_size": 200, "permute_seed": 3}
    typed = read_card(card, "t-perm")
    assert typed.modality == "speech" and typed.grid == Grid(frame_size=200, rate=8000)
    assert np.array_equal(typed.speech.decode(speech.test.x[0]),
                          decode(speech.test.x[0], speech.info))


def test_old_cards_take_grid_and_modality_from_the_registry() -> None:
    # data.json as the previous version wrote it: no grid, no modality.
    old = {"name": "nottingham", "protocol": "canonical", "time_step": "not parsed at all",
           "binary": True, "dim": 88}
    card = read_card(old, "nottingham")
    assert (card.grid, card.modality, card.time_step) == \
        (Grid(steps_per_beat=2), "music", "not parsed at all")
    speech = {"name": "fsdd", "protocol": "fsdd", "time_step": "200-sample frame at 8 kHz",
              "binary": False, "dim": 200, "rate": 8000, "frame_size": 200,
              "normaliser": {"mean": 0.01, "std": 0.2}, "permute_seed": None}
    card = read_card(speech, "fsdd")
    assert card.modality == "speech" and card.grid == Grid(frame_size=200, rate=8000)
    assert (card.speech.rate, card.speech.normaliser.std) == (8000, 0.2)
    none = read_card({}, "jsb-fraccaro")  # a run from before data cards
    assert (none.grid, none.modality, none.protocol, none.time_step, none.dim) == \
        (Grid(step_seconds=0.3), "music", "fraccaro", "0.3 s frame", None)
    with pytest.raises(DataError, match="unknown data set"):
        read_card(old, "gone/folder")


def test_bad_cards_are_errors_naming_the_file() -> None:
    good = {"name": "x", "protocol": "p", "time_step": "beat", "binary": True, "dim": 88,
            "grid": {"kind": "beats", "steps_per_beat": 1}, "modality": "music"}
    for change, message in ((("grid", {"kind": "beats", "steps_per_beat": 0}), "grid"),
                            (("modality", "video"), "modality"), (("dim", "88"), "dim"),
                            (("binary", 1), "binary")):
        with pytest.raises(ConfigError, match=f"run/data.json.*{message}"):
            read_card({**good, change[0]: change[1]}, "x", where="run/data.json")
    speech = {**good, "modality": "speech", "grid": {"kind": "none"}, "rate": 8000}
    with pytest.raises(ConfigError, match="needs frame_size, normaliser"):
        read_card(speech, "x", where="run/data.json")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        read_card([1, 2], "x")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def beat_run(tmp_path_factory):
    """A tiny SRNN trained on a MIDI folder read on one step per beat (quarter notes)."""
    from srnn.train.trainer import RunConfig, TrainConfig, Trainer

    root = tmp_path_factory.mktemp("beat")
    folder = root / "tunes"
    make_folder(folder, 5, 0.5)  # one step per beat at 120 beats per minute
    data = load_midi_folder(folder, steps_per_beat=1)
    sizes = {"z_dim": 3, "d_dim": 8, "a_dim": 8, "hidden": 8, "feature_dim": 8}
    cfg = RunConfig(dataset=str(folder), model="srnn", model_options=sizes,
                    train=TrainConfig(epochs=1, batch_size=4))
    run = root / "run"
    Trainer(cfg, run, data=data, progress=False).fit()
    # The card of the data the run was trained on (what the trainer writes as data.json).
    (run / "data.json").write_text(json.dumps(data_card(data)))
    return run, folder, data


def test_a_one_step_per_beat_folder_samples_on_its_grid(beat_run, tmp_path, capsys) -> None:
    run, _, _ = beat_run
    out = tmp_path / "s.mid"
    assert main(["sample", str(run), "--out", str(out), "--length", "12", "--seed", "1"]) == 0
    notes = [n for i in pretty_midi.PrettyMIDI(str(out)).instruments for n in i.notes]
    assert notes and all(round(n.start / 0.5, 6).is_integer() and
                         round(n.end / 0.5, 6).is_integer() for n in notes)  # 0.5 s a step
    piece = random_roll(7, steps=9, density=0.15)
    write_midi(piece, tmp_path / "piece.mid", 0.5)
    capsys.readouterr()
    assert main(["reconstruct", str(run), "--input", str(tmp_path / "piece.mid"),
                 "--out", str(tmp_path / "rec.mid")]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 9  # read on 1 step per beat


def test_an_old_card_of_a_folder_run_keeps_the_registry_grid(beat_run, tmp_path) -> None:
    run, _, data = beat_run
    card = json.loads((run / "data.json").read_text())
    old = {k: v for k, v in card.items() if k not in ("grid", "modality")}
    (run / "data.json").write_text(json.dumps(old))
    try:  # as before: the folder's registry grid, 4 steps per beat (0.125 s a step)
        assert main(["sample", str(run), "--out", str(tmp_path / "s.mid"), "--length", "8"]) == 0
        ends = [n.end for i in pretty_midi.PrettyMIDI(str(tmp_path / "s.mid")).instruments
                for n in i.notes]
        assert ends and max(ends) <= 8 * 0.125 + 1e-6
    finally:
        (run / "data.json").write_text(json.dumps(card))


def test_a_one_step_per_beat_folder_exports_on_its_grid(beat_run, tmp_path, monkeypatch,
                                                        capsys) -> None:
    import srnn.data

    _, folder, data = beat_run
    monkeypatch.setattr(srnn.data, "load_dataset", lambda name, root=None, options=None: data)
    out = tmp_path / "piece.mid"
    assert main(["data", "export", str(folder), "--piece", "0", "--out", str(out)]) == 0
    back = read_midi(out, **data.grid.read_options(), length=len(data.test.x[0]))
    assert np.array_equal(back, data.test.x[0])
    assert pretty_midi.PrettyMIDI(str(out)).get_end_time() == pytest.approx(
        0.5 * len(data.test.x[0]))
