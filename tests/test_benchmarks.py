"""The throughput benchmark's interleaved timing: every emission timed, ratios to the
factorised emission of the same kind of data."""

from __future__ import annotations

from benchmarks.throughput import interleaved


def test_interleaved_updates_give_ratios_to_the_factorised_emission() -> None:
    rows = interleaved("rnn", ["bernoulli", "nade", "gmm", "ar-rnn"], 2, 3, 1, "cpu", frame=8)
    by = {r["emission"]: r for r in rows}
    assert by["nade"]["baseline"] == "bernoulli" and by["ar-rnn"]["baseline"] == "gmm"
    assert by["bernoulli"]["train_time_ratio"] == by["gmm"]["train_time_ratio"] == 1.0
    assert by["nade"]["x_dim"] == 88 and by["ar-rnn"]["x_dim"] == 8
    assert all(r["train_seconds_median"] > 0 for r in rows)
