"""Long MIDI files at a high resolution (past pretty_midi's 10^7-tick guard) are read; corrupt
and absurd ones (a tempo map that makes them last years, too many notes) are refused by name."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from input_seeds import midi_bytes

import srnn.data.midi as midi
from srnn.data import load_dataset
from srnn.data.grid import Grid
from srnn.data.midi_folder import load_midi_folder
from srnn.errors import DataError
from srnn.music.midi import read_midi

RESOLUTION = 10_080  # ticks per quarter note, as music21 writes
TEMPI = [(0, 120.0), (1200, 60.0)]  # (beat, bpm): 600 s at 120 bpm, then 120 s at 60 bpm
LAST_BEAT = 1320  # the piece ends after 12 minutes, at tick 13,305,600
NOTES = [(48 + k % 24, b, b + 1) for k, b in enumerate(range(0, 1313, 8))] + [(72, 1319, 1320)]


def write_long(path: Path) -> np.ndarray:
    """A valid 12-minute file at 10,080 ticks per beat with a tempo change past tick 10^7,
    one note every 8 beats and a last one ending the piece; returns its roll at 4 steps a beat."""
    events = [(b * RESOLUTION, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
              for b, bpm in TEMPI]
    roll = np.zeros((LAST_BEAT * 4, 88), np.float32)
    for pitch, a, b in NOTES:
        events.append((a * RESOLUTION, 2, mido.Message("note_on", note=pitch, velocity=80)))
        events.append((b * RESOLUTION, 1, mido.Message("note_off", note=pitch)))
        roll[4 * a:4 * b, pitch - 21] = 1.0
    track, now = mido.MidiTrack(), 0
    for tick, _order, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    f = mido.MidiFile(type=0, ticks_per_beat=RESOLUTION)
    f.tracks.append(track)
    f.save(str(path))
    return roll


def test_a_long_high_resolution_file_is_read_exactly(tmp_path) -> None:
    roll = write_long(tmp_path / "long.mid")
    assert LAST_BEAT * RESOLUTION > pretty_midi.pretty_midi.MAX_TICK  # pretty_midi refuses it
    assert np.array_equal(read_midi(tmp_path / "long.mid", steps_per_beat=4), roll)
    frames = read_midi(tmp_path / "long.mid", step_seconds=0.5)
    assert frames.shape == (1440, 88)  # 720 s
    pitch, beat, _ = NOTES[-2]  # at 600 s + (beat - 1200) s at 60 bpm, for 1 s
    cell = 1200 + 2 * (beat - 1200)
    assert frames[cell:cell + 2, pitch - 21].all() and frames[-2:, 72 - 21].all()
    assert frames.sum() == sum(1 if a < 1200 else 2 for _, a, _ in NOTES)  # a beat each
    assert pretty_midi.pretty_midi.MAX_TICK == 1e7  # the guard is lifted for the call only


def test_a_midi_folder_data_set_reads_long_files(tmp_path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    roll = write_long(folder / "a.mid")
    for name in ("b.mid", "c.mid"):
        (folder / name).write_bytes((folder / "a.mid").read_bytes())
    data = load_dataset(str(folder))  # what --dataset does with a folder
    assert data.info["skipped"] == {} and sum(len(data.split(s)) for s in
                                              ("train", "valid", "test")) == 3
    assert all(np.array_equal(x, roll) for s in ("train", "valid", "test")
               for x in data.split(s).x)


def test_huge_tick_counts_need_no_table_per_tick(tmp_path) -> None:
    """2^27 ticks at 60,000 bpm last 23 minutes; pretty_midi would allocate a float per tick
    (1 GB)."""
    path = tmp_path / "fast.mid"
    path.write_bytes(midi_bytes([(60, 0, 96), (62, 2**27, 2**27 + 96)], resolution=96,
                                tempo=1000))
    tracemalloc.start()
    try:
        roll = read_midi(path, step_seconds=1.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert roll.shape == (1399, 88) and roll[0, 60 - 21] == roll[1398, 62 - 21] == 1
    assert peak < 50e6


def corrupt_files(folder: Path) -> dict[str, str]:
    """File name -> the problem its DataError must state."""
    folder.mkdir(exist_ok=True)
    write_long(folder / "long.mid")
    data = (folder / "long.mid").read_bytes()
    (folder / "long.mid").unlink()
    (folder / "cut.mid").write_bytes(data[:len(data) // 2])
    (folder / "garbage.mid").write_bytes(np.random.default_rng(0).bytes(4000))
    (folder / "years.mid").write_bytes(  # 5 million beats of 16.8 s: 2.7 years
        midi_bytes([(60, 0, 1), (62, 5_000_000, 5_000_001)], resolution=1, tempo=2**24 - 1))
    return {"cut.mid": "not a valid MIDI file (", "garbage.mid": "not a valid MIDI file (",
            "years.mid": "lasts 8.38861e+07 s (2.33e+04 hours), expected at most 24 hours"}


def test_corrupt_and_absurd_files_are_refused_by_name(tmp_path) -> None:
    cases = corrupt_files(tmp_path / "bad")
    grid = Grid(steps_per_beat=1)  # srnn reconstruct reads with its run's grid
    for name, problem in cases.items():
        for read in (lambda p: read_midi(p, steps_per_beat=4),
                     lambda p: read_midi(p, **grid.read_options())):
            with pytest.raises(DataError) as err:
                read(tmp_path / "bad" / name)
            assert str(err.value).startswith(f"{tmp_path / 'bad' / name}: {problem}")
        assert pretty_midi.pretty_midi.MAX_TICK == 1e7  # restored after a failure too
    for i in range(3):
        write_long(tmp_path / "bad" / f"ok{i}.mid")
    data = load_midi_folder(tmp_path / "bad")
    assert sorted(data.info["skipped"]) == sorted(cases)
    for name, problem in cases.items():
        assert f"{name}: {problem}" in data.info["skipped"][name]
    with pytest.raises(DataError, match=r"\.mid: (not a valid MIDI file|lasts)"):
        load_midi_folder(tmp_path / "bad", skip_bad=False)


def test_too_many_notes_are_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(midi, "MAX_NOTES", 10)
    path = tmp_path / "dense.mid"
    path.write_bytes(midi_bytes([(60 + k, k, k + 1) for k in range(11)]))
    with pytest.raises(DataError, match=r"dense\.mid: 11 notes, expected at most 10 "):
        read_midi(path, steps_per_beat=4)
    path.write_bytes(midi_bytes([(60 + k, k, k + 1) for k in range(10)]))
    assert read_midi(path, steps_per_beat=4).sum() == 10
