"""MIDI files to piano rolls: exact round trips, transposition, bad files, MIDI-folder data sets."""

from __future__ import annotations

import mido
import numpy as np
import pretty_midi
import pytest

from srnn.data import dataset_path, load_dataset, time_step
from srnn.data.midi_folder import load_midi_folder
from srnn.data.pianoroll import find_key
from srnn.errors import DataError
from srnn.music.midi import read_midi, roll_to_midi, write_midi

C_MAJOR = [0, 2, 4, 5, 7, 9, 11]


def random_roll(seed: int, steps: int = 40, density: float = 0.1, lo: int = 20,
                hi: int = 70) -> np.ndarray:
    """A binary roll with notes at the first and last step and a long held note."""
    rng = np.random.default_rng(seed)
    roll = np.zeros((steps, 88), np.float32)
    roll[:, lo:hi] = rng.random((steps, hi - lo)) < density
    roll[0, lo] = roll[-1, hi - 1] = 1.0
    roll[2:steps - 1, (lo + hi) // 2] = 1.0  # held for almost the whole roll
    return roll


def write_with_tempo(roll: np.ndarray, path, tempo: float, steps_per_beat: int) -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.instruments = roll_to_midi(roll, 60.0 / tempo / steps_per_beat).instruments
    pm.write(str(path))


@pytest.mark.parametrize("step", [0.1, 0.25, 0.3, 0.5, 1 / 3, 0.123])
@pytest.mark.parametrize("density", [0.02, 0.15, 0.5])
def test_roll_midi_roll_round_trip_in_seconds(tmp_path, step: float, density: float) -> None:
    roll = random_roll(int(step * 1000) + int(density * 100), steps=60, density=density)
    write_midi(roll, tmp_path / "r.mid", step)
    back = read_midi(tmp_path / "r.mid", step_seconds=step)
    assert back.dtype == np.float32 and back.shape == roll.shape
    assert np.array_equal(back, roll)


@pytest.mark.parametrize("tempo,spb", [(120, 4), (97, 4), (60, 2), (143.5, 3), (200, 1)])
def test_roll_midi_roll_round_trip_in_beats(tmp_path, tempo: float, spb: int) -> None:
    roll = random_roll(int(tempo), steps=50, density=0.2)
    write_with_tempo(roll, tmp_path / "b.mid", tempo, spb)
    assert np.array_equal(read_midi(tmp_path / "b.mid", steps_per_beat=spb), roll)
    # the same file on a grid twice as fine: every step becomes two
    fine = read_midi(tmp_path / "b.mid", steps_per_beat=2 * spb)
    assert np.array_equal(fine, np.repeat(roll, 2, axis=0))


def test_beat_grid_follows_tempo_changes(tmp_path) -> None:
    """Notes on a 1/4-beat grid in ticks land on their cells whatever the tempo changes."""
    roll = random_roll(7, steps=48, density=0.15)
    res, spb = 480, 4
    tick = res // spb
    events = []  # (absolute tick, order, message)
    for step, tempo in [(0, 120), (10, 75), (23, 180), (37, 100)]:
        events.append((step * tick, 0, mido.MetaMessage("set_tempo",
                                                        tempo=mido.bpm2tempo(tempo))))
    padded = np.pad(roll > 0, ((1, 1), (0, 0)))
    change = np.diff(padded.astype(np.int8), axis=0)
    for p in range(88):
        for s in np.flatnonzero(change[:, p] == 1):
            events.append((s * tick, 2, mido.Message("note_on", note=p + 21, velocity=80)))
        for e in np.flatnonzero(change[:, p] == -1):
            events.append((e * tick, 1, mido.Message("note_off", note=p + 21)))
    track, now = mido.MidiTrack(), 0
    for t, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=t - now))
        now = t
    mid = mido.MidiFile(ticks_per_beat=res)
    mid.tracks.append(track)
    mid.save(tmp_path / "tempi.mid")
    assert np.array_equal(read_midi(tmp_path / "tempi.mid", steps_per_beat=spb), roll)


def test_grid_rounding_short_notes_and_length(tmp_path) -> None:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(80, 60, 0.26, 0.49),  # 1.04..1.96 cells -> [1, 2)
                   pretty_midi.Note(80, 62, 1.0, 1.01),  # shorter than a step -> one step
                   pretty_midi.Note(80, 10, 0.0, 3.0),  # below A0: dropped
                   pretty_midi.Note(80, 64, 0.5, 1.0), pretty_midi.Note(80, 64, 1.0, 1.5)]
    pm.instruments.append(inst)
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(80, 40, 0.0, 5.0))  # ignored
    pm.instruments.append(drums)
    pm.write(str(tmp_path / "n.mid"))
    roll = read_midi(tmp_path / "n.mid", step_seconds=0.25)
    assert roll.shape == (6, 88)
    assert np.flatnonzero(roll[:, 60 - 21]).tolist() == [1]
    assert np.flatnonzero(roll[:, 62 - 21]).tolist() == [4]
    assert np.flatnonzero(roll[:, 64 - 21]).tolist() == [2, 3, 4, 5]  # re-struck: one run
    assert roll.sum() == 6
    assert read_midi(tmp_path / "n.mid", step_seconds=0.25, length=9)[6:].sum() == 0
    assert np.array_equal(read_midi(tmp_path / "n.mid", step_seconds=0.25, length=3), roll[:3])
    with pytest.raises(ValueError, match="exactly one"):
        read_midi(tmp_path / "n.mid")
    with pytest.raises(ValueError, match="exactly one"):
        read_midi(tmp_path / "n.mid", steps_per_beat=4, step_seconds=0.1)


def tonal_roll(tonic: int, minor: bool = False) -> np.ndarray:
    """A scale up and a I-IV-V7-I cadence in the key of MIDI note ``tonic``."""
    third = 3 if minor else 4
    scale = [0, 2, 3, 5, 7, 8, 11] if minor else C_MAJOR  # harmonic minor
    chords = [[0, third, 7], [5, 5 + third, 12], [7, 11, 14, 17], [0, third, 7, 12]]
    roll = np.zeros((len(scale) + 1 + 2 * len(chords), 88), np.float32)
    for k, d in enumerate([*scale, 12]):
        roll[k, tonic + d - 21] = 1.0
    for k, chord in enumerate(chords):
        for d in [-12, *chord]:
            roll[len(scale) + 1 + 2 * k:len(scale) + 3 + 2 * k, tonic + d - 21] = 1.0
    return roll


def test_transpose_to_c_is_a_pure_shift(tmp_path) -> None:
    c = tonal_roll(60)
    write_midi(c, tmp_path / "c.mid", 0.25)
    assert np.array_equal(read_midi(tmp_path / "c.mid", step_seconds=0.25, transpose_to_c=True), c)
    for tonic, minor, shift in [(67, False, 5), (62, False, -2), (66, False, -6), (65, False, -5),
                                (57, True, 3), (64, True, -4), (60, True, 0)]:
        roll = tonal_roll(tonic, minor)
        write_midi(roll, tmp_path / "k.mid", 0.25)
        moved = read_midi(tmp_path / "k.mid", step_seconds=0.25, transpose_to_c=True)
        assert np.array_equal(moved, np.roll(roll, shift, axis=1)), (tonic, minor)
        pcs = np.bincount((np.arange(88) + 21) % 12, weights=moved.sum(0), minlength=12)
        assert find_key(pcs) == (0, "minor" if minor else "major")
    # a random roll: the whole roll moves by one interval, nothing else changes
    roll = random_roll(3, steps=50, density=0.2)
    write_midi(roll, tmp_path / "r.mid", 0.5)
    moved = read_midi(tmp_path / "r.mid", step_seconds=0.5, transpose_to_c=True)
    shifts = [s for s in range(-6, 6) if np.array_equal(moved, np.roll(roll, s, axis=1))]
    assert len(shifts) == 1


def test_transpose_drops_notes_leaving_the_range(tmp_path) -> None:
    roll = tonal_roll(67)  # G major: up 5 semitones
    high = roll.copy()
    high[len(high) - 1, 107 - 21] = 1.0  # B7 would become E8, above the piano
    write_midi(high, tmp_path / "g.mid", 0.25)
    moved = read_midi(tmp_path / "g.mid", step_seconds=0.25, transpose_to_c=True)
    assert np.array_equal(moved, np.roll(roll, 5, axis=1))


def test_bad_files_raise_data_error_naming_the_file(tmp_path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "noise.mid").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (tmp_path / "text.mid").write_text("this is not a MIDI file\n")
    pretty_midi.PrettyMIDI().write(str(tmp_path / "empty.mid"))
    for name, what in [("noise.mid", "not a valid MIDI file"),
                       ("text.mid", "not a valid MIDI file"),
                       ("empty.mid", "contains no notes"), ("missing.mid", "file not found")]:
        with pytest.raises(DataError, match=f"{name}: {what}"):
            read_midi(tmp_path / name, steps_per_beat=4)


def make_folder(root, n: int, bad: bool = True) -> None:
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        suffix = ".MID" if i == 3 else ".midi" if i == 5 else ".mid"
        write_midi(random_roll(100 + i, steps=8 + i, density=0.1), sub / f"song{i:02d}{suffix}",
                   0.125)  # 1/4 beat at 120 bpm
    (root / "notes.txt").write_text("not a MIDI file, and not named like one")
    if bad:
        (root / "b" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")


def test_midi_folder_splits(tmp_path) -> None:
    folder = tmp_path / "tunes"
    make_folder(folder, 12)
    data = load_midi_folder(folder)
    again = load_midi_folder(folder)
    assert data.info["files"] == again.info["files"]
    assert (data.name, data.protocol, data.time_step, data.binary, data.dim) == \
        ("tunes", "midi-folder", "1/4 beat", True, 88)
    files = data.info["files"]
    assert [len(files[s]) for s in ("train", "valid", "test")] == [10, 1, 1]
    everything = sorted(sum(files.values(), []))
    assert len(everything) == 12 and len(set(everything)) == 12
    assert "b/broken.mid" not in everything and list(data.info["skipped"]) == ["b/broken.mid"]
    assert "b/broken.mid" in data.info["skipped"]["b/broken.mid"]
    for s in ("train", "valid", "test"):
        split = data.split(s)
        assert len(split) == len(files[s])
        for rel, x, u in zip(files[s], split.x, split.u, strict=True):
            i = int(rel.split("song")[1][:2])
            assert np.array_equal(x, random_roll(100 + i, steps=8 + i, density=0.1))
            assert (u[0] == 0).all() and np.array_equal(u[1:], x[:-1])
    other = load_midi_folder(folder, seed=1)
    assert sorted(sum(other.info["files"].values(), [])) == everything
    frames = load_midi_folder(folder, step_seconds=0.25)
    assert frames.time_step == "0.25 s frame"
    assert frames.train.steps * 2 == pytest.approx(data.train.steps, abs=len(data.train))
    with pytest.raises(DataError, match="broken.mid: not a valid MIDI file"):
        load_midi_folder(folder, skip_bad=False)


def test_midi_folder_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no MIDI files"):
        load_midi_folder(tmp_path / "empty")
    make_folder(tmp_path / "two", 2)
    with pytest.raises(DataError, match="two: 2 readable MIDI files cannot fill"):
        load_midi_folder(tmp_path / "two")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mid").write_text("nope")
    with pytest.raises(DataError, match="bad: none of its 1 MIDI files could be read"):
        load_midi_folder(tmp_path / "bad")
    with pytest.raises(DataError, match="not a folder"):
        load_midi_folder(tmp_path / "nowhere")
    make_folder(tmp_path / "three", 3, bad=False)
    assert [len(load_midi_folder(tmp_path / "three").split(s)) for s in
            ("train", "valid", "test")] == [1, 1, 1]
    with pytest.raises(ValueError, match="splits"):
        load_midi_folder(tmp_path / "three", splits=(0.5, 0.5, 0.0))


def test_load_dataset_accepts_a_midi_folder(tmp_path) -> None:
    folder = tmp_path / "mine"
    make_folder(folder, 6, bad=False)
    data = load_dataset(str(folder))
    assert data.protocol == "midi-folder" and data.name == "mine"
    assert data.info["files"] == load_midi_folder(folder).info["files"]
    assert time_step(str(folder)) == data.time_step == "1/4 beat"
    assert dataset_path(str(folder)) == folder
    with pytest.raises(DataError, match="unknown data set.*folder of MIDI files"):
        load_dataset(str(tmp_path / "absent"))
    with pytest.raises(DataError, match="unknown data set"):
        time_step(str(tmp_path / "absent"))
