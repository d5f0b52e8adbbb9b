"""Loaders of the real music sets and batching with masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_rolls

from srnn.data import Split, available, load_dataset
from srnn.data.batching import (
    evaluation_batches,
    pad_batch,
    random_transpositions,
    stream_batches,
    training_batches,
)
from srnn.data.music import notes_from_rolls, rolls_from_notes
from srnn.errors import DataError

CANONICAL_SIZES = {  # sequences and steps per split, from the data set README
    "jsb": ((229, 13807), (76, 4602), (77, 4725)),
    "nottingham": ((694, 176561), (173, 45513), (170, 44463)),
}


@pytest.mark.parametrize("name", sorted(CANONICAL_SIZES))
def test_canonical_sets_match_published_statistics(data_dir, name: str) -> None:
    data = load_dataset(name, data_dir)
    for split, (n, steps) in zip(("train", "valid", "test"), CANONICAL_SIZES[name], strict=True):
        s = data.split(split)
        assert (len(s), s.steps) == (n, steps)
        assert all(x.shape[1] == 88 and set(np.unique(x)) <= {0.0, 1.0} for x in s.x)
        # u_t = x_{t-1}, u_1 = 0
        pairs = zip(s.x, s.u, strict=True)
        assert all((u[1:] == x[:-1]).all() and (u[0] == 0).all() for x, u in pairs)


def test_fraccaro_file_streams_and_test_mask(data_dir) -> None:
    data = load_dataset("jsb-fraccaro", data_dir)
    assert data.train.streams == 16 and len(data.train) == 272
    # Row r + 16 continues row r: its first input is the last target of row r.
    assert all((data.train.u[r + 16][0] == data.train.x[r][-1]).all() for r in range(0, 256))
    assert len(data.test) == 77 and data.test.steps == 9396  # mask_test.sum()
    assert all(np.isfinite(u).all() for u in data.test.u)  # NaN padding of u_test removed


def test_notes_round_trip() -> None:
    rolls = random_rolls(5, (3, 20), dim=88, seed=4, p=0.05)
    enc = notes_from_rolls(rolls)
    back = rolls_from_notes(enc["notes"], enc["step_sizes"], enc["seq_lengths"])
    assert all((a == b).all() for a, b in zip(rolls, back, strict=True))


def test_bad_files_give_clear_errors(tmp_path) -> None:
    bad = tmp_path / "jsb.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="jsb.npz"):
        load_dataset("jsb", tmp_path)
    np.savez(bad, train_notes=np.array([200], np.uint8))
    with pytest.raises(DataError, match="missing array"):
        load_dataset("jsb", tmp_path)
    with pytest.raises(DataError, match="SRNN_DATA_DIR"):
        load_dataset("nottingham", tmp_path)
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("nope", tmp_path)
    with pytest.raises(DataError, match="outside 21..108"):
        rolls_from_notes(np.array([5], np.uint8), np.array([1], np.uint8), np.array([1]))
    with pytest.raises(DataError, match="empty sequence"):
        rolls_from_notes(np.array([], np.uint8), np.array([], np.uint8), np.array([0]))


def test_available_lists_local_sets(data_dir, tmp_path) -> None:
    found = available(data_dir)
    assert found["jsb"] is not None and found["jsb-fraccaro"] is not None
    assert available(tmp_path)["jsb"] is None


def test_pad_batch_masks() -> None:
    rolls = random_rolls(3, (2, 9), seed=1)
    b = pad_batch(rolls, [Split.from_targets([r]).u[0] for r in rolls])
    assert b.x.shape == (3, max(map(len, rolls)), 6)
    assert b.lengths.tolist() == [len(r) for r in rolls]
    for i, r in enumerate(rolls):
        assert (b.x[i, len(r):] == 0).all()
        assert torch.equal(b.x[i, : len(r)], torch.from_numpy(r))


def test_training_windows_cover_every_step_once() -> None:
    split = Split.from_targets(random_rolls(10, (5, 40), seed=2))
    rng = np.random.default_rng(0)
    batches = list(training_batches(split, batch_size=4, window=8, rng=rng))
    assert all(b.x.shape[1] <= 8 for b in batches)
    assert sum(int(b.mask.sum()) for b in batches) == split.steps
    notes = sum(float(b.x.sum()) for b in batches)
    assert notes == pytest.approx(sum(float(x.sum()) for x in split.x))


def test_transpositions_keep_notes_on_the_keyboard_and_inputs_with_targets() -> None:
    rng = np.random.default_rng(4)
    rolls = random_rolls(40, (3, 12), dim=88, seed=6)
    for i, r in enumerate(rolls):  # half in the middle; half at the bottom, which only go up
        r[:, 60:] = 0
        r[:, : 30 if i % 2 else 0] = 0
        r[:, 3 if i % 2 == 0 else 60:] = 0
    us = [np.concatenate([np.zeros((1, 88), np.float32), r[:-1]]) for r in rolls]
    xs2, us2 = random_transpositions(rolls, us, 12, rng)
    shifts = set()
    for x, u, x2, u2 in zip(rolls, us, xs2, us2, strict=True):
        assert x2.sum() == x.sum() and u2.sum() == u.sum()  # no note lost
        assert (u2[1:] == x2[:-1]).all()  # the inputs moved with the targets
        k = int(np.flatnonzero(x2.any(0))[0] - np.flatnonzero(x.any(0))[0])
        assert np.array_equal(np.roll(x, k, axis=-1), x2) and abs(k) <= 12
        shifts.add(k)
    assert len(shifts) > 10  # the shifts vary, both ways
    assert min(shifts) < 0 < max(shifts)


def test_evaluation_batches_keep_whole_sequences() -> None:
    split = Split.from_targets(random_rolls(9, (3, 30), seed=3))
    batches = list(evaluation_batches(split, batch_size=4, max_steps=60))
    lengths = sorted(int(v) for b in batches for v in b.lengths)
    assert lengths == sorted(len(x) for x in split.x)
    assert all(b.x.shape[0] * b.x.shape[1] <= 60 or b.x.shape[0] == 1 for b in batches)


def test_stream_batches_keep_order() -> None:
    rolls = random_rolls(8, (5, 6), seed=5)
    split = Split(x=rolls, u=rolls, streams=4)
    batches = list(stream_batches(split))
    assert len(batches) == 2
    assert torch.equal(batches[1].x[2], torch.from_numpy(rolls[6]))
