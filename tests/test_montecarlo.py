"""Monte Carlo moves sample the right distributions (detailed balance checked exactly)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from hal.dynamics.montecarlo import GPA, shape_move, swap_move, volume_move


class ToyPairs(Calculator):
    """E = Σ_{i<j} ε[z_i, z_j] / r_ij: a cheap species-dependent toy model."""

    implemented_properties = ["energy"]
    EPS = {(13, 13): 0.4, (13, 29): 0.1, (29, 29): 0.25}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        z, pos = self.atoms.numbers, self.atoms.positions
        e = 0.0
        for i, j in itertools.combinations(range(len(z)), 2):
            e += self.EPS[tuple(sorted((int(z[i]), int(z[j]))))] / np.linalg.norm(pos[i] - pos[j])
        self.results = {"energy": e}


class Zero(Calculator):
    """Ideal gas: no interactions."""

    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3)), "stress": np.zeros(6)}


def test_swap_moves_sample_boltzmann_weights():
    """4 fixed sites, 2 Cu + 2 Al: the chain's visit frequencies of the 6 arrangements match exp(−E/kT)/Z."""
    base = Atoms("Cu4", positions=[[0, 0, 0], [2.3, 0.3, 0], [0.2, 2.4, 0.1], [1.9, 2.1, 1.7]])
    T = 300.0
    energies = {}
    for sites in itertools.combinations(range(4), 2):
        a = base.copy()
        a.numbers = [13 if k in sites else 29 for k in range(4)]
        a.calc = ToyPairs()
        energies[sites] = a.get_potential_energy()
    assert max(energies.values()) - min(energies.values()) > units.kB * T  # the weights differ
    w = {k: np.exp(-(e - min(energies.values())) / (units.kB * T)) for k, e in energies.items()}
    Z = sum(w.values())
    atoms = base.copy()
    atoms.numbers = [13, 13, 29, 29]
    atoms.calc = ToyPairs()
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(energies, 0)
    n = 20000
    for _ in range(n):
        swap_move(atoms, T, rng)
        counts[tuple(np.flatnonzero(atoms.numbers == 13))] += 1
    for k in energies:
        p = w[k] / Z
        assert counts[k] / n == pytest.approx(p, abs=8 * np.sqrt(p * (1 - p) / n))


def test_volume_moves_sample_the_isobaric_ideal_gas():
    """p(V) ∝ V^N exp(−βPV) for an ideal gas: ⟨V⟩ = (N + 1) k_B T / P."""
    N, T, P = 4, 300.0, 0.5  # K, GPa
    atoms = Atoms("Ar4", positions=np.random.default_rng(1).uniform(0, 5, (4, 3)), cell=[5, 5, 5], pbc=True)
    atoms.calc = Zero()
    rng = np.random.default_rng(2)
    vols = []
    for step in range(12000):
        volume_move(atoms, T, P, rng, max_log_step=0.5)
        if step > 1000:
            vols.append(atoms.get_volume())
    expect = (N + 1) * units.kB * T / (P * GPA)
    assert np.mean(vols) == pytest.approx(expect, rel=0.06)


def test_shape_moves_preserve_volume_and_restore_on_rejection():
    atoms = Atoms("Cu4", positions=[[0, 0, 0], [1.8, 1.8, 0], [1.8, 0, 1.8], [0, 1.8, 1.8]], cell=[3.6] * 3, pbc=True)
    atoms.calc = EMT()
    v0 = atoms.get_volume()
    rng = np.random.default_rng(2)
    accepted = [shape_move(atoms, 300.0, rng, step=0.004) for _ in range(50)]
    assert abs(atoms.get_volume() - v0) < 1e-8 * v0
    assert 0 < sum(accepted) < 50  # some accepted, some rejected at 300 K
    before = atoms.copy()
    cold = [shape_move(atoms, 1e-6, rng, step=0.3) for _ in range(5)]  # large moves at ~0 K: rejected
    if not any(cold):
        assert np.allclose(atoms.positions, before.positions) and np.allclose(atoms.cell, before.cell)
