"""The tuner's music-theory rewards: hand-made rolls with answers worked out by hand."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from srnn.data.pianoroll import LOWEST_MIDI, PITCHES
from srnn.errors import ConfigError
from srnn.tuning.rewards import (
    DEFAULT_REWARDS,
    MELODY_TERMS,
    REWARDS,
    RewardContext,
    RewardTerm,
    consonance,
    estimate_key,
    key,
    leaps,
    melody,
    melody_terms,
    parse_reward,
    repetition,
    resolve_rewards,
    score_rolls,
    voices,
)

C4, D4, E4, F4, G4, A4, B4, C5 = 60, 62, 64, 65, 67, 69, 71, 72
NO_KEY = RewardContext()
C_MAJOR = RewardContext(tonic=0, mode="major")


def roll(*steps: int | list[int]) -> np.ndarray:
    """A (T, 88) roll from the MIDI pitches sounding at each step (an int: one note)."""
    r = np.zeros((len(steps), PITCHES))
    for t, pitches in enumerate(steps):
        for p in [pitches] if isinstance(pitches, int) else pitches:
            r[t, p - LOWEST_MIDI] = 1.0
    return r


def random_rolls(n: int, steps: int, density: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, steps, PITCHES)) < density).astype(float)


TRIAD = [C4, E4, G4]


# ------------------------------------------------------------------------------- key


def test_a_held_c_major_triad_is_all_in_key_with_or_without_a_key_given():
    r = roll(TRIAD, TRIAD, TRIAD, TRIAD)
    assert key(r, C_MAJOR) == 1.0
    assert key(r, NO_KEY) == 1.0
    # In D major (D E F# G A B C#) only E and G are in the scale: 8 of 12 cells.
    assert key(r, RewardContext(tonic=2, mode="major")) == pytest.approx(8 / 12)


def test_an_f_sharp_cell_lowers_the_key_score_by_its_share_of_the_cells():
    r = roll(TRIAD, TRIAD, [*TRIAD, 66], TRIAD)  # 13 cells, F#4 out of C major and C minor
    assert key(r, C_MAJOR) == pytest.approx(12 / 13)
    assert key(r, NO_KEY) == pytest.approx(12 / 13)
    assert key(r, RewardContext(tonic=7, mode="major")) == 1.0  # G major holds C, E, G, F#
    assert key(r, RewardContext(tonic=2, mode="major")) == pytest.approx(9 / 13)  # E, G, F#


def test_without_a_key_each_roll_takes_the_better_of_c_major_and_c_minor():
    r = roll([C4, 63, G4], [C4, 63, G4])  # C minor triad: E flat is out of C major
    assert key(r, NO_KEY) == 1.0
    assert key(r, C_MAJOR) == pytest.approx(4 / 6)
    assert key(r, RewardContext(tonic=0, mode="minor")) == 1.0
    # The raised seventh (B) belongs to minor, the natural seventh (B flat) too.
    assert key(roll([C4, B4], [C4, 70]), RewardContext(tonic=0, mode="minor")) == 1.0


def test_values_up_to_one_half_are_silence():
    r = roll(TRIAD)
    r[0, 66 - LOWEST_MIDI] = 0.5
    assert key(r, C_MAJOR) == 1.0
    r[0, 66 - LOWEST_MIDI] = 0.51
    assert key(r, C_MAJOR) == pytest.approx(3 / 4)


# ---------------------------------------------------------------------------- voices


def test_voices_counts_the_steps_with_exactly_the_target_number_of_notes():
    r = roll(TRIAD, TRIAD, TRIAD, TRIAD)
    assert voices(r, RewardContext(voices=3)) == 1.0
    assert voices(r, RewardContext(voices=4)) == 0.0
    mixed = roll(TRIAD, [C4, G4], [], [C4, E4, G4, C5])
    assert voices(mixed, RewardContext(voices=3)) == 0.25
    assert voices(mixed, RewardContext(voices=2)) == 0.25
    assert voices(mixed, RewardContext(voices=4)) == 0.25


# ------------------------------------------------------------------------ consonance


@pytest.mark.parametrize(("steps", "expected"), [
    ([TRIAD] * 4, 1.0),  # C-E third, C-G fifth, E-G third
    ([[C4, F4]], 0.0),  # a fourth above the bass
    ([[C4, F4, A4]], 2 / 3),  # F-A third, C-A sixth, C-F fourth over the bass
    ([[G4, C5, 77]], 1 / 3),  # G-C fourth over the bass, G-F seventh, C-F fourth between uppers
    ([[C4, D4]], 0.0),  # a second
    ([[C4, 66]], 0.0),  # a tritone
    ([[C4, C5]], 1.0),  # an octave
    ([[C4, 79]], 1.0),  # a twelfth (a fifth and an octave)
    ([[C4, 77]], 0.0),  # an eleventh over the bass is a fourth over it
    ([[C4, D4], TRIAD], 3 / 4),  # pairs are pooled over the steps
    ([[C4], [E4], []], 0.0),  # no pairs at all
])
def test_consonance_of_hand_made_chords(steps, expected):
    assert consonance(roll(*steps), NO_KEY) == pytest.approx(expected)


def _consonance_by_hand(r: np.ndarray) -> float:
    good = pairs = 0
    for row in r > 0.5:
        notes = list(np.flatnonzero(row))
        for i, j in itertools.combinations(range(len(notes)), 2):
            interval = (notes[j] - notes[i]) % 12
            pairs += 1
            good += interval in (0, 3, 4, 7, 8, 9) or (interval == 5 and i > 0)
    return good / pairs if pairs else 0.0


def test_consonance_agrees_with_counting_every_pair_by_hand():
    for seed, density in enumerate((0.02, 0.05, 0.1, 0.3)):
        for r in random_rolls(3, 20, density, seed):
            assert consonance(r, NO_KEY) == pytest.approx(_consonance_by_hand(r), abs=1e-12)


# ------------------------------------------------------------------------ repetition


def test_repetition_penalises_the_steps_beyond_max_repeat_of_a_run():
    r = roll(TRIAD, TRIAD, TRIAD, TRIAD)
    assert repetition(r, RewardContext(max_repeat=2)) == 0.5
    assert repetition(r, RewardContext(max_repeat=4)) == 1.0
    a_b = roll(C4, C4, C4, C4, D4)
    assert repetition(a_b, RewardContext(max_repeat=2)) == pytest.approx(0.6)
    assert repetition(a_b, RewardContext(max_repeat=1)) == pytest.approx(0.4)
    # Empty rows repeat too; runs restart after a change.
    assert repetition(roll([], [], [], [], []), RewardContext(max_repeat=4)) == pytest.approx(0.8)
    assert repetition(roll(C4, C4, D4, C4, C4), RewardContext(max_repeat=1)) == pytest.approx(0.6)
    assert repetition(np.zeros((0, PITCHES)), NO_KEY) == 0.0


# ----------------------------------------------------------------------------- leaps


@pytest.mark.parametrize(("steps", "expected"), [
    ([C4, A4, G4], 1.0),  # up 9, down 2: resolved
    ([C4, A4, B4], 0.0),  # up 9, up 2: same direction
    ([C4, A4, 66], 0.0),  # up 9, down 3: not a step
    ([C4, A4], 0.0),  # a leap at the very end
    ([C4, D4, E4, G4], 1.0),  # no leaps
    ([C4, G4, C4], 1.0),  # a fifth (7) is no leap
    ([C4, A4, A4, G4], 1.0),  # repeated pitches collapse into one note
    ([C4, [], A4, [], G4], 1.0),  # steps without notes are dropped
    ([C4, A4, G4, 84], 0.5),  # two leaps, the last unresolved
    ([[48, C5], [57, C5], [48, C5]], 1.0),  # the bass leaps, the top voice does not
    ([[48, C4], [50, A4], [59, G4]], 1.0),  # only the top voice counts
    ([[], []], 0.0),  # no notes
])
def test_leaps_of_the_top_voice(steps, expected):
    assert leaps(roll(*steps), NO_KEY) == pytest.approx(expected)


# ---------------------------------------------------------------------------- melody


def test_in_key_counts_melody_notes_once_each():
    assert melody_terms(roll(C4, D4, 66, E4), C_MAJOR)["in_key"] == pytest.approx(3 / 4)
    # Held notes collapse: F#4 held for five steps is still one note of four.
    held = roll(C4, D4, 66, 66, 66, 66, 66, E4)
    assert melody_terms(held, C_MAJOR)["in_key"] == pytest.approx(3 / 4)
    minor = roll(C4, D4, 63, F4)
    assert melody_terms(minor, C_MAJOR)["in_key"] == pytest.approx(3 / 4)
    assert melody_terms(minor, NO_KEY)["in_key"] == 1.0  # C minor
    # Only the top voice: an out-of-key bass does not count.
    assert melody_terms(roll([61, C5], [66, D4 + 12]), C_MAJOR)["in_key"] == 1.0


def test_starts_on_tonic_looks_at_the_first_melody_note():
    assert melody_terms(roll(C4, D4), NO_KEY)["starts_on_tonic"] == 1.0
    assert melody_terms(roll([], 48, D4), NO_KEY)["starts_on_tonic"] == 1.0  # C3
    assert melody_terms(roll(D4, C4), NO_KEY)["starts_on_tonic"] == 0.0
    g_major = RewardContext(tonic=7, mode="major")
    assert melody_terms(roll(55, A4), g_major)["starts_on_tonic"] == 1.0
    assert melody_terms(roll(C4, G4), g_major)["starts_on_tonic"] == 0.0


def test_no_excess_repeat_allows_twice_max_repeat_steps_of_one_pitch():
    ten = roll(*[C4] * 10)
    assert melody_terms(ten, RewardContext(max_repeat=2))["no_excess_repeat"] == pytest.approx(0.4)
    assert melody_terms(ten, RewardContext(max_repeat=5))["no_excess_repeat"] == 1.0
    # Empty steps are dropped, so the two halves make one run of six.
    gap = roll(C4, C4, C4, [], C4, C4, C4)
    assert melody_terms(gap, RewardContext(max_repeat=1))["no_excess_repeat"] == pytest.approx(
        1 / 3)
    changes = roll(C4, C4, C4, D4, D4, D4)
    assert melody_terms(changes, RewardContext(max_repeat=1))["no_excess_repeat"] == pytest.approx(
        2 / 3)


def test_low_autocorrelation_of_the_collapsed_melody():
    # Lag 1 of [60, 62, 60, 64]: [60, 62, 60] against [62, 60, 64], correlation -sqrt(3)/2;
    # lag 2 has only 2 pairs and is skipped.
    r = roll(C4, D4, D4, C4, E4)
    assert melody_terms(r, NO_KEY)["low_autocorrelation"] == pytest.approx(1 - math.sqrt(3) / 2)
    # One more note: lag 1 gives -9/11, but lag 2 ([60, 62, 60] and [60, 64, 60]) gives 1.
    assert melody_terms(roll(C4, D4, C4, E4, C4), NO_KEY)["low_autocorrelation"] == (
        pytest.approx(0.0, abs=1e-12))
    assert melody_terms(roll(60, 62, 64, 66, 68, 70), NO_KEY)["low_autocorrelation"] == (
        pytest.approx(0.0))  # a scale climbs: correlation 1 at every lag
    assert melody_terms(roll(C4, E4, D4), NO_KEY)["low_autocorrelation"] == 0.5  # no usable lag
    m = [60, 64, 62, 67, 65, 60, 71]
    expected = 1 - max(abs(np.corrcoef(m[:-k], m[k:])[0, 1]) for k in (1, 2, 3))
    assert melody_terms(roll(*m), NO_KEY)["low_autocorrelation"] == pytest.approx(expected)


def test_preferred_intervals_are_steps_thirds_fourths_fifths_and_octaves():
    # Intervals 2, 4, 6 (a tritone) and -12.
    r = roll(C4, D4, 66, C5, C4)
    assert melody_terms(r, NO_KEY)["preferred_intervals"] == pytest.approx(3 / 4)
    assert melody_terms(roll(C4, 70, 81), NO_KEY)["preferred_intervals"] == 0.0  # 10 and 11
    assert melody_terms(roll(C4, C4), NO_KEY)["preferred_intervals"] == 0.0  # no interval


@pytest.mark.parametrize(("pitches", "expected"), [
    ([60, 62, 64, 66, 68, 70], 0.0),  # five whole steps: the windows overlap
    ([60, 62, 64, 66, 68, 70, 72], 1.0),  # six: intervals 1-3 and 4-6
    ([60, 62, 64, 60, 62, 64], 0.0),  # (2, 2, -4), (2, -4, 2), (-4, 2, 2)
    ([60, 62, 64, 65, 60, 62, 64, 65], 1.0),  # (2, 2, 1) again after -5
    ([60, 62, 64, 65, 62, 64, 66, 67], 1.0),  # a transposed motif is the same intervals
    ([60, 62, 64, 65, 60, 61, 63, 64], 0.0),  # other intervals
])
def test_repeated_motif_of_three_intervals(pitches, expected):
    assert melody_terms(roll(*pitches), NO_KEY)["repeated_motif"] == expected


def test_unique_extremes_rewards_a_single_highest_and_lowest_note():
    assert melody_terms(roll(C4, D4, E4, D4, C4), NO_KEY)["unique_extremes"] == 0.5
    assert melody_terms(roll(C4, E4, D4), NO_KEY)["unique_extremes"] == 1.0
    assert melody_terms(roll(C4, D4, C4, D4), NO_KEY)["unique_extremes"] == 0.0
    # Held notes collapse before counting.
    assert melody_terms(roll(C4, C4, E4, D4), NO_KEY)["unique_extremes"] == 1.0


def test_leaps_resolved_is_the_leaps_score():
    for steps in ([C4, A4, G4], [C4, A4, B4], [C4, A4, G4, 84]):
        r = roll(*steps)
        assert melody_terms(r, NO_KEY)["leaps_resolved"] == leaps(r, NO_KEY)


def test_melody_is_the_mean_of_the_eight_rules_worked_out_by_hand():
    r = roll(C4, E4, G4, C5)
    corr = 249 / math.sqrt(222 * 294)  # lag 1 of [60, 64, 67] and [64, 67, 72]
    expected = {"in_key": 1.0, "starts_on_tonic": 1.0, "no_excess_repeat": 1.0,
                "low_autocorrelation": 1 - corr, "preferred_intervals": 1.0,
                "repeated_motif": 0.0, "unique_extremes": 1.0, "leaps_resolved": 1.0}
    terms = melody_terms(r, NO_KEY)
    assert list(terms) == list(MELODY_TERMS) == list(expected)
    assert terms == pytest.approx(expected)
    assert melody(r, NO_KEY) == pytest.approx((7 - corr) / 8)


def test_a_roll_without_notes_scores_zero_everywhere():
    for r in (np.zeros((5, PITCHES)), np.zeros((0, PITCHES))):
        assert melody_terms(r, NO_KEY) == dict.fromkeys(MELODY_TERMS, 0.0)
        for name, spec in REWARDS.items():
            fn = spec.fn("60") if spec.takes_arg else spec.fn
            if name != "repetition":  # silence repeats like any other row
                assert fn(r, NO_KEY) == 0.0, name
    assert repetition(np.zeros((5, PITCHES)), NO_KEY) == pytest.approx(0.8)


# ------------------------------------------------------------------------------ note


def test_note_counts_the_steps_in_which_its_pitch_sounds():
    r = roll([C4, E4], C4, D4, [48, C4])
    assert parse_reward("note:60").fn(r, NO_KEY) == 0.75
    assert parse_reward("note:62").fn(r, NO_KEY) == 0.25
    assert parse_reward("note:61").fn(r, NO_KEY) == 0.0
    assert parse_reward("note:21").fn(roll(21, 21), NO_KEY) == 1.0
    assert parse_reward("note:108").fn(roll(108, C4), NO_KEY) == 0.5


# ------------------------------------------------------------------------- estimate_key


def test_estimate_key_is_the_librarys_key_finding():
    # I-IV-V-I cadences: G major (G B D, C E G, D F# A, G B D) and A minor with its raised
    # seventh (A C E, D F A, E G# B, A C E).
    g_major = roll([55, 59, 62], [60, 64, 67], [62, 66, 69], [55, 59, 62])
    a_minor = roll([57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64])
    assert estimate_key(g_major) == (7, "major")
    assert estimate_key(a_minor) == (9, "minor")
    from srnn.data.pianoroll import find_key

    hist = np.bincount((np.nonzero(a_minor)[1] + 21) % 12, minlength=12)
    assert estimate_key(a_minor) == find_key(hist)
    assert estimate_key(roll([], [])) == (0, "major")


# --------------------------------------------------------------------- parsing specs


def test_specs_give_names_and_weights():
    t = parse_reward("key")
    assert (t.name, t.weight, t.fn) == ("key", 1.0, REWARDS["key"].fn)
    t = parse_reward(" consonance = 0.25 ")
    assert (t.name, t.weight) == ("consonance", 0.25)
    assert parse_reward("repetition=-2").weight == -2.0
    t = parse_reward("note:060=3")
    assert (t.name, t.weight) == ("note:60", 3.0)


@pytest.mark.parametrize(("spec", "message"), [
    ("foo=1", "unknown reward 'foo'; choose from key, voices, consonance"),
    ("foo", "FILE.py:FUNCTION or MODULE:FUNCTION"),
    ("key=x", "weight 'x' is not a finite number"),
    ("key=inf", "weight 'inf'"),
    ("key=nan", "weight 'nan'"),
    ("key=", "weight ''"),
    ("=1", "no reward named"),
    ("note", "needs an argument"),
    ("note:=1", "needs an argument"),
    ("note:200", "off the keyboard (21..108)"),
    ("note:20", "off the keyboard"),
    ("note:C4", "not an integer"),
    ("voices:3", "'voices' takes no argument"),
    ("melody:2=1", "'melody' takes no argument"),
])
def test_bad_specs_are_config_errors_naming_the_spec(spec, message):
    with pytest.raises(ConfigError) as e:
        parse_reward(spec)
    assert f"--reward {spec}:" in str(e.value)
    assert message in str(e.value)


def test_default_rewards_resolve_to_the_built_ins():
    terms = resolve_rewards(None)
    assert [(t.name, t.weight) for t in terms] == [
        ("key", 1.0), ("voices", 1.0), ("consonance", 1.0), ("repetition", 0.5),
        ("leaps", 0.5), ("melody", 0.5)]
    assert [t.fn for t in terms] == [REWARDS[t.name].fn for t in terms]
    assert resolve_rewards([]) == terms
    assert [t.name for t in resolve_rewards(list(DEFAULT_REWARDS))] == [t.name for t in terms]
    assert [t.name for t in resolve_rewards(["note:60=1", "voices=0.5"])] == ["note:60", "voices"]


def test_a_reward_given_twice_is_an_error():
    for specs in (["key=1", "voices", "key=2"], ["note:60", "note:060=2"]):
        with pytest.raises(ConfigError, match="given twice"):
            resolve_rewards(specs)


# ------------------------------------------------------------------ user functions


RULES = """
import numpy as np

def bass_line(roll, ctx):
    return float(roll[:, 0].mean()) + ctx.voices

def not_a_number(roll, ctx):
    return float("nan")

def broken(roll, ctx):
    raise RuntimeError("the rule broke")

def words(roll, ctx):
    return "good"

NOT_CALLABLE = 3
"""


@pytest.fixture()
def rules(tmp_path):
    path = tmp_path / "my_rules.py"
    path.write_text(RULES)
    return path


def test_a_function_in_a_python_file_loads_and_scores(rules):
    t = parse_reward(f"{rules}:bass_line=2")
    assert (t.name, t.weight) == (f"{rules}:bass_line", 2.0)
    r = np.zeros((4, PITCHES))
    r[:3, 0] = 1.0
    out = score_rolls(r[None], [t], RewardContext(voices=1))
    assert out[t.name].tolist() == [1.75]
    assert out["total"].tolist() == [3.5]


def test_a_function_of_an_importable_module_loads(tmp_path, monkeypatch):
    (tmp_path / "srnn_test_rules_module.py").write_text(RULES)
    monkeypatch.syspath_prepend(str(tmp_path))
    t = parse_reward("srnn_test_rules_module:bass_line")
    assert t.name == "srnn_test_rules_module:bass_line"
    assert t.fn(np.zeros((2, PITCHES)), RewardContext(voices=2)) == 2.0


@pytest.mark.parametrize(("spec", "message"), [
    ("{rules}:missing", "has no function 'missing'"),
    ("{rules}:NOT_CALLABLE", "is not callable"),
    ("{tmp}/absent.py:f", "no such file"),
    ("srnn_no_such_module_anywhere:f", "cannot import module"),
    ("{rules}:", "expected FILE.py:FUNCTION"),
    ("{bad}:f", "importing"),
])
def test_user_functions_that_cannot_be_loaded_are_config_errors(spec, message, rules, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise ImportError('no numpy here')\n")
    spec = spec.format(rules=rules, tmp=tmp_path, bad=bad)
    with pytest.raises(ConfigError) as e:
        parse_reward(spec)
    assert f"--reward {spec}:" in str(e.value) and message in str(e.value)


@pytest.mark.parametrize(("func", "message"), [
    ("not_a_number", "returned nan"),
    ("words", "returned 'good'"),
    ("broken", "RuntimeError: the rule broke"),
])
def test_a_user_function_that_fails_or_returns_no_number_is_named(rules, func, message):
    t = parse_reward(f"{rules}:{func}")
    with pytest.raises(ConfigError) as e:
        score_rolls(np.zeros((2, 3, PITCHES)), [parse_reward("key"), t], NO_KEY)
    assert f"reward '{rules}:{func}'" in str(e.value) and message in str(e.value)
    if func == "broken":
        assert isinstance(e.value.__cause__, RuntimeError)


# --------------------------------------------------------------------------- scoring


def test_score_rolls_gives_each_term_per_roll_and_the_weighted_total():
    rolls = [roll(TRIAD, TRIAD, [C4, F4]), roll(C4, A4, G4, 84), roll([], [C4, 66, 70])]
    terms = resolve_rewards(["key=1", "voices=2", "consonance=-0.5", "note:60=0.25",
                             "melody=1"])
    ctx = RewardContext(voices=3)
    out = score_rolls(rolls, terms, ctx)
    assert set(out) == {t.name for t in terms} | {"total"}
    for t in terms:
        assert out[t.name].dtype == np.float64 and out[t.name].shape == (3,)
        assert out[t.name].tolist() == [t.fn(r, ctx) for r in rolls]
    total = sum(t.weight * out[t.name] for t in terms)
    np.testing.assert_allclose(out["total"], total, rtol=0, atol=1e-12)
    # The first roll by hand: key 1, voices 2/3, consonance (3 + 3 + 0) / 7, note 1, melody.
    first = 1 + 2 * 2 / 3 - 0.5 * 6 / 7 + 0.25 + melody(rolls[0], ctx)
    assert out["total"][0] == pytest.approx(first)
    stacked = score_rolls(np.stack([rolls[0], rolls[0]]), terms, ctx)
    assert stacked["total"].tolist() == [out["total"][0]] * 2


def test_every_built_in_stays_in_zero_to_one_on_random_rolls():
    terms = resolve_rewards([*DEFAULT_REWARDS, "note:60"])
    for seed, density in enumerate((0.01, 0.04, 0.2)):
        out = score_rolls(random_rolls(8, 30, density, seed), terms, RewardContext(voices=2))
        for t in terms:
            assert ((out[t.name] >= 0) & (out[t.name] <= 1)).all(), t.name
        assert (out["consonance"] > 0).any() and (out["key"] > 0).all()


def test_rolls_of_the_wrong_shape_are_value_errors_with_their_shape():
    for bad in (np.zeros((4, 87)), np.zeros(88), np.zeros((2, 4, 88))):
        for spec in REWARDS.values():
            fn = spec.fn("60") if spec.takes_arg else spec.fn
            with pytest.raises(ValueError, match=re_shape(bad.shape)):
                fn(bad, NO_KEY)
        with pytest.raises(ValueError, match=re_shape(bad.shape)):
            estimate_key(bad)
    with pytest.raises(ValueError, match="roll 0: .*" + re_shape((4, 87))):
        score_rolls(np.zeros((3, 4, 87)), resolve_rewards(None), NO_KEY)
    with pytest.raises(ValueError, match="roll 1: .*" + re_shape((4, 86))):
        score_rolls([np.zeros((3, 88)), np.zeros((4, 86))], resolve_rewards(None), NO_KEY)
    with pytest.raises(ValueError, match=re_shape((4, 88))):
        score_rolls(np.zeros((4, 88)), resolve_rewards(None), NO_KEY)


def re_shape(shape: tuple[int, ...]) -> str:
    return "got " + str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize(("kw", "message"), [
    ({"tonic": 12, "mode": "major"}, "tonic must be a pitch class 0..11"),
    ({"tonic": -1, "mode": "minor"}, "tonic must be"),
    ({"tonic": 2.0, "mode": "minor"}, "tonic must be"),
    ({"tonic": 0, "mode": "dorian"}, "mode must be 'major', 'minor' or None"),
    ({"tonic": 0}, "together"),
    ({"mode": "major"}, "together"),
    ({"voices": 0}, "voices must be an integer >= 1"),
    ({"max_repeat": 0}, "max_repeat must be an integer >= 1"),
    ({"max_repeat": 2.5}, "max_repeat must be"),
])
def test_a_bad_context_is_a_value_error(kw, message):
    with pytest.raises(ValueError, match=message):
        RewardContext(**kw)
    RewardContext(tonic=11, mode="minor", voices=1, max_repeat=1)  # the edges are accepted


def test_the_default_rewards_score_64_rolls_of_64_steps_quickly():
    rolls = random_rolls(64, 64, 0.05, 7)
    terms = resolve_rewards(None)
    score_rolls(rolls[:2], terms, NO_KEY)  # warm up
    start = time.perf_counter()
    out = score_rolls(rolls, terms, C_MAJOR)
    elapsed = time.perf_counter() - start
    assert out["total"].shape == (64,) and np.isfinite(out["total"]).all()
    assert elapsed < 1.0, f"{elapsed:.3f} s"


def test_the_registry_describes_each_built_in_in_one_line():
    assert list(REWARDS) == ["key", "voices", "consonance", "repetition", "leaps", "melody",
                             "note"]
    for name, spec in REWARDS.items():
        assert spec.name == name and spec.doc and "\n" not in spec.doc
        assert spec.takes_arg == (name == "note")
    assert isinstance(parse_reward("leaps=0.5"), RewardTerm)
