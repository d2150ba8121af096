"""Selection rules of the paper's AL loop on crafted trajectories; augmentation bounds; splits."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from hal.loop.select import KCAL_PER_MOL, Splits, augment, best_member, screen, uq_threshold


def test_threshold_is_mean_plus_three_std_of_the_first_steps():
    sigma = np.concatenate([np.tile([1.0, 3.0], 500), np.full(100, 50.0)])
    assert uq_threshold(sigma, n_first=1000) == pytest.approx(2.0 + 3 * 1.0)
    with pytest.raises(ValueError):
        uq_threshold(np.array([]))


def test_screen_applies_distance_energy_and_post_break_rules():
    kc = KCAL_PER_MOL
    sigma = np.array([0, 9, 9, 9, 9, 0, 9, 9, 9, 9, 9], dtype=float)
    distance = np.array([6.4, 6.5, 6.505, 6.6, 6.7, 6.8, 6.9, 7.0, 7.1, 7.2, 7.3])
    energy = np.array([0, 0, 5, 0.5 * kc, 2 * kc, 0, 4 * kc, 6 * kc, 8 * kc, 10 * kc, 12 * kc])
    # 1: first candidate; 2: too close in distance to 1; 3: too close in energy to 1; 4: differs in both
    got = screen(sigma, distance, energy, threshold=1.0)
    assert got.tolist() == [1, 4, 6, 7, 8, 9, 10]
    # at most two accepted at or after the break (step 7)
    got = screen(sigma, distance, energy, threshold=1.0, break_step=7, max_after_break=2)
    assert got.tolist() == [1, 4, 6, 7, 8]
    # a candidate must differ from EVERY accepted one: 10 is close in energy to 9 → rejected
    energy[10] = energy[9] + 0.5 * kc
    assert 10 not in screen(sigma, distance, energy, threshold=1.0)


def test_augmentation_stays_within_bounds_and_moves_every_coordinate():
    atoms = molecule("C2H6")
    copies = augment(atoms, copies=50, amplitude=0.05, rng=np.random.default_rng(0))
    shifts = np.stack([c.positions - atoms.positions for c in copies])
    assert len(copies) == 50 and np.abs(shifts).max() <= 0.05
    assert np.abs(shifts).max() > 0.045 and np.all(np.abs(shifts).mean(axis=0) > 0.015)  # uniform, not tiny
    assert np.abs(shifts.mean()) < 0.005


def test_inherited_split_keeps_earlier_assignments_and_random_does_not():
    splits = Splits(n_members=5, seed=3).inherit(100, iteration=0)
    before = [t.copy() for t in splits.train]
    assert all((~t).sum() == 20 for t in before)
    splits.inherit(250, iteration=1)
    for old, new in zip(before, splits.train):
        assert len(new) == 250 and np.array_equal(new[:100], old)
        assert (~new[100:]).sum() == 30
    assert len({tuple(np.flatnonzero(~t)) for t in splits.train}) == 5  # members differ
    fresh = Splits(n_members=5, seed=3).random(250, iteration=1)
    assert not all(np.array_equal(a[:100], b) for a, b in zip(fresh.train, before))
    train, val = splits.indices(0)
    assert len(train) + len(val) == 250 and not set(train) & set(val)
    with pytest.raises(ValueError):
        splits.inherit(10, iteration=2)
    assert best_member([0.3, 0.1, 0.2]) == 1


def test_inherited_split_carries_the_best_members_assignment_to_all():
    splits = Splits(n_members=3, seed=1).inherit(50, iteration=0)
    best = [t.copy() for t in splits.train][2]
    splits.inherit(80, iteration=1, best=2)
    for t in splits.train:
        assert np.array_equal(t[:50], best) and (~t[50:]).sum() == 6
    assert len({tuple(np.flatnonzero(~t[50:])) for t in splits.train}) == 3  # new data split per member
