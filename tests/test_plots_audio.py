"""WAV rendering, piano-roll statistics and the PNG plots, on small synthetic inputs."""

from __future__ import annotations

import json
import sys
import wave

import numpy as np
import pytest

from srnn.errors import ConfigError, DataError
from srnn.music import audio
from srnn.music.midi import write_midi
from srnn.music.stats import compare_statistics, roll_statistics, total_variation
from srnn.plots import note_name, plot_kl_over_roll, plot_piano_rolls, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _roll(T: int = 16, seed: int = 0) -> np.ndarray:
    """A C major triad arpeggio-ish roll around middle C, plus a bass note."""
    rng = np.random.default_rng(seed)
    r = np.zeros((T, 88), np.float32)
    for t in range(T):
        for m in (60, 64, 67):
            if rng.random() < 0.6:
                r[t, m - 21] = 1
    r[: T // 2, 48 - 21] = 1
    return r


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1024


# -- audio ----------------------------------------------------------------------------------
def test_render_wav_python(tmp_path):
    step, T = 0.125, 16
    mid = tmp_path / "piece.mid"
    write_midi(_roll(T), mid, step_seconds=step)
    wav_path = tmp_path / "out" / "piece.wav"
    sr = 8000
    assert audio.render_wav(mid, wav_path, sample_rate=sr, renderer="python") == "python"
    with wave.open(str(wav_path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, sr)
        n = w.getnframes()
        pcm = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.int64)
    end = T * step
    assert end * sr <= n <= (end + audio.RELEASE) * sr + 2
    peak = np.abs(pcm).max()
    assert 0.5 * 32767 < peak < 32767  # loud, not clipped
    assert np.abs(pcm).mean() > 500  # sounds throughout, not a blip
    # The envelope starts and ends at zero: no click at either end.
    assert abs(pcm[0]) < 200 and abs(pcm[-1]) < 200
    assert not list(wav_path.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_render_wav_silence_and_auto(tmp_path, monkeypatch):
    mid = tmp_path / "empty.mid"
    write_midi(np.zeros((4, 88)), mid, step_seconds=0.5)
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: None)
    assert audio.available_renderer() == "python"
    assert audio.render_wav(mid, tmp_path / "e.wav", sample_rate=8000) == "python"
    with wave.open(str(tmp_path / "e.wav"), "rb") as w:
        assert not np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").any()
    with pytest.raises(ConfigError, match="fluidsynth"):
        audio.render_wav(mid, tmp_path / "f.wav", renderer="fluidsynth")


def test_fluidsynth_failure_falls_back(tmp_path, monkeypatch, caplog):
    mid = tmp_path / "p.mid"
    write_midi(_roll(8), mid, step_seconds=0.1)
    font = tmp_path / "font.sf2"
    font.write_bytes(b"not a sound font")
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: "/bin/false")
    monkeypatch.setenv("SRNN_SOUNDFONT", str(font))
    assert audio.available_renderer() == "fluidsynth"
    with caplog.at_level("WARNING", logger="srnn.music.audio"):
        used = audio.render_wav(mid, tmp_path / "p.wav", sample_rate=8000)
    assert used == "python"
    assert "falling back" in caplog.text and "p.mid" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["font.sf2", "p.mid", "p.wav"]


def test_fluidsynth_command(tmp_path, monkeypatch):
    """A stand-in executable checks the arguments and writes a WAV where -F says."""
    mid = tmp_path / "p.mid"
    write_midi(_roll(8), mid, step_seconds=0.1)
    font = tmp_path / "font.sf2"
    font.write_bytes(b"RIFF")
    fake = tmp_path / "fluidsynth"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, wave\n"
        "a = sys.argv[1:]\n"
        "assert a[0] == '-ni' and a[a.index('-g') + 1] == '1.5', a\n"
        "assert a[a.index('-r') + 1] == '8000' and a[-2].endswith('.sf2'), a\n"
        "assert a[-1].endswith('p.mid') and a[a.index('-T') + 1] == 'wav', a\n"
        "with wave.open(a[a.index('-F') + 1], 'wb') as w:\n"
        "    w.setnchannels(2); w.setsampwidth(2); w.setframerate(8000)\n"
        "    w.writeframes(bytes(4000))\n")
    fake.chmod(0o755)
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: str(fake))
    monkeypatch.setenv("SRNN_SOUNDFONT", str(font))
    out = tmp_path / "o" / "p.wav"
    assert audio.render_wav(mid, out, sample_rate=8000, gain=1.5) == "fluidsynth"
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getnframes()) == (2, 1000)
    assert [p.name for p in out.parent.iterdir()] == ["p.wav"]


def test_available_renderer_names():
    assert audio.available_renderer() in audio.RENDERERS


def test_render_wav_errors(tmp_path):
    with pytest.raises(DataError, match="missing.mid"):
        audio.render_wav(tmp_path / "missing.mid", tmp_path / "x.wav")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"this is not MIDI")
    with pytest.raises(DataError, match="bad.mid"):
        audio.render_wav(bad, tmp_path / "x.wav", renderer="python")
    with pytest.raises(ConfigError, match="renderer"):
        audio.render_wav(bad, tmp_path / "x.wav", renderer="timidity")
    assert not (tmp_path / "x.wav").exists()


# -- statistics -----------------------------------------------------------------------------
def test_roll_statistics_known_values():
    # Steps 0-3 hold 0, 1, 2 and 9 notes; steps 4-5 are empty.
    r = np.zeros((6, 88))
    r[1, 60 - 21] = 1  # C4
    r[2, [60 - 21, 64 - 21]] = 1  # C4 E4
    r[3, 30:39] = 1  # MIDI 51..59
    s = roll_statistics([r])
    assert s["steps"] == 6 and s["sequences"] == 1
    assert s["notes_per_step"] == pytest.approx(12 / 6)
    assert s["empty_fraction"] == pytest.approx(3 / 6)
    assert s["polyphony_histogram"] == pytest.approx([3 / 6, 1 / 6, 1 / 6, 0, 0, 0, 0, 0, 1 / 6])
    pc = np.zeros(12)
    pc[0] += 2  # two steps of C4
    pc[4] += 1  # E4
    pc[np.arange(51, 60) % 12] += 1
    assert s["pitch_class_histogram"] == pytest.approx(list(pc / 12))
    assert (s["lowest_pitch"], s["highest_pitch"], s["pitch_range"]) == (51, 64, 13)
    assert s["mean_pitch"] == pytest.approx((60 * 2 + 64 + sum(range(51, 60))) / 12)
    # C4 is one note of 2 steps; E4 and the 9 others are notes of 1 step.
    assert s["notes"] == 11
    assert s["mean_note_length"] == pytest.approx(12 / 11)
    json.dumps(s)


def test_note_lengths_pooled_over_rolls():
    a = np.zeros((5, 88))
    a[0:3, 0] = 1  # 3 steps
    a[4, 0] = 1  # 1 step
    b = np.zeros((2, 88))
    b[:, 87] = 1  # 2 steps, at the top of the keyboard
    s = roll_statistics([a, b])
    assert s["notes"] == 3 and s["mean_note_length"] == pytest.approx(2.0)
    assert (s["lowest_pitch"], s["highest_pitch"]) == (21, 108)
    assert roll_statistics(np.stack([a, a]))["steps"] == 10  # a (N, T, 88) array works too


def test_empty_rolls_statistics():
    s = roll_statistics([np.zeros((4, 88))])
    assert s["empty_fraction"] == 1.0 and s["notes"] == 0
    assert s["mean_pitch"] is None and s["mean_note_length"] is None
    assert s["pitch_class_histogram"] == [0.0] * 12
    json.dumps(s)


def test_compare_statistics():
    ref = [_roll(20, seed=i) for i in range(3)]
    same = compare_statistics(ref, ref)
    assert all(v == 0 for v in same["distances"].values())
    json.dumps(same)
    other = [np.zeros((10, 88))]
    other[0][:, 61 - 21] = 1  # C#4 held throughout
    c = compare_statistics(other, ref)
    d = c["distances"]
    assert d["pitch_class_tv"] > 0.5 and 0 < d["polyphony_tv"] <= 1
    assert d["empty_fraction_abs_diff"] == pytest.approx(c["reference"]["empty_fraction"])
    assert d["notes_per_step_abs_diff"] == pytest.approx(c["reference"]["notes_per_step"] - 1)
    assert total_variation([1, 0], [0, 1]) == 1.0


@pytest.mark.parametrize("bad, match", [
    ([], "no piano rolls"),
    ([np.zeros((4, 87))], r"shape \(4, 87\)"),
    ([np.zeros(88)], "expected"),
    ([np.zeros((0, 88))], "no time steps"),
    ([np.full((2, 88), np.nan)], "NaN"),
])
def test_statistics_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        roll_statistics(bad)
    with pytest.raises(ValueError, match="reference"):
        compare_statistics([np.zeros((2, 88))], bad)


# -- plots ----------------------------------------------------------------------------------
def _run_dir(tmp_path, epochs: int = 8):
    run = tmp_path / "run"
    run.mkdir()
    lines = []
    for e in range(1, epochs + 1):
        lines.append({"epoch": e, "train_elbo": -20 / e - 5, "valid_elbo": -18 / e - 5.5,
                      "train_kl": 2 / e, "valid_kl": 1.5 / e})
    lines[2]["valid_elbo"] = None  # a non-finite valid ELBO is recorded as null
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "results.json").write_text(json.dumps({"elbo_per_step": -8.0}))
    return run


def test_plot_training_curves(tmp_path):
    out = plot_training_curves(_run_dir(tmp_path), tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    _assert_png(out)


def test_plot_training_curves_errors(tmp_path):
    with pytest.raises(DataError, match="metrics.jsonl"):
        plot_training_curves(tmp_path, tmp_path / "c.png")
    (tmp_path / "metrics.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no epochs"):
        plot_training_curves(tmp_path, tmp_path / "c.png")
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        plot_training_curves(tmp_path, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_plot_piano_rolls(tmp_path):
    x = _roll(24)
    probs = np.clip(x * 0.7 + 0.1 * np.random.default_rng(1).random(x.shape), 0, 1)
    rolls = {"test piece": x, "reconstruction": probs, "sample": _roll(30, seed=3)}
    out = plot_piano_rolls(rolls, tmp_path / "rolls.png", step_seconds=0.5, title="demo")
    _assert_png(out)
    _assert_png(plot_piano_rolls({"a": x}, tmp_path / "side.png", stacked=False))
    _assert_png(plot_piano_rolls({"empty": np.zeros((5, 88))}, tmp_path / "empty.png"))
    assert (note_name(60), note_name(21), note_name(108)) == ("C4", "A0", "C8")


def test_plot_piano_rolls_errors(tmp_path):
    with pytest.raises(ValueError, match="no piano rolls"):
        plot_piano_rolls({}, tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"sample.*\(T, 88\)"):
        plot_piano_rolls({"sample": np.zeros((5, 12))}, tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_piano_rolls({"x": np.full((5, 88), 2.0)}, tmp_path / "r.png")
    with pytest.raises(ValueError, match="step_seconds"):
        plot_piano_rolls({"x": np.zeros((5, 88))}, tmp_path / "r.png", step_seconds=0)
    assert not (tmp_path / "r.png").exists()


def test_plot_kl_over_roll(tmp_path):
    x = _roll(20)
    kl = np.abs(np.sin(np.arange(20))) * 3
    _assert_png(plot_kl_over_roll(x, kl, tmp_path / "kl.png", step_seconds=0.25, title="KL"))
    _assert_png(plot_kl_over_roll(x, kl[None, :], tmp_path / "kl2.png"))  # (1, T) is fine
    with pytest.raises(ValueError, match="one value per time step"):
        plot_kl_over_roll(x, kl[:-1], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="NaN"):
        plot_kl_over_roll(x, np.full(20, np.nan), tmp_path / "bad.png")


def test_real_fluidsynth_renders_a_sample(tmp_path):
    """The real program (Debian's fluidsynth and fluid-soundfont-gm, which .ci/run installs and
    then requires through SRNN_REQUIRE_FLUIDSYNTH=1) renders a short roll: the WAV has the
    asked rate, the roll's length (plus at most the release tail) and sound in it."""
    import os

    if not (audio.find_fluidsynth() and audio.find_soundfont()):
        if os.environ.get("SRNN_REQUIRE_FLUIDSYNTH") == "1":
            pytest.fail("fluidsynth or a General MIDI sound font is missing")
        pytest.skip("fluidsynth and a General MIDI sound font are not installed")
    roll = np.zeros((8, 88), dtype=np.float32)
    roll[:, [60 - 21, 64 - 21, 67 - 21]] = 1  # a C major chord, 8 steps of 0.25 s
    mid = tmp_path / "chord.mid"
    write_midi(roll, mid, 0.25)
    out = tmp_path / "chord.wav"
    assert audio.render_wav(mid, out, sample_rate=22050) == "fluidsynth"
    with wave.open(str(out)) as w:
        rate, frames, width, channels = (w.getframerate(), w.getnframes(), w.getsampwidth(),
                                         w.getnchannels())
        data = np.frombuffer(w.readframes(frames), dtype=np.int16 if width == 2 else np.int32)
    assert rate == 22050
    seconds = frames / rate
    assert 2.0 <= seconds <= 2.0 + 3.0, seconds  # the chord, then at most the release tail
    x = data.reshape(-1, channels).astype(np.float64) / np.iinfo(data.dtype).max
    sounding = x[: int(1.5 * rate)]
    assert np.sqrt(np.mean(sounding ** 2)) > 1e-3  # not silent while the chord sounds
