"""Monte Carlo moves accepted by Metropolis on the energy of the attached calculator.

With a ``HALCalculator`` that energy is E_HAL = E − τσ, so the moves explore what the committee
is unsure about, like the biased MD. Moves (units eV, Å, K, GPa):

* ``swap_move``: exchange the species of two atoms of different species; accept with
  min(1, exp(−ΔE / k_B T)).
* ``volume_move``: isotropic scaling with ln V' = ln V + δ, δ ~ U(−Δ, Δ) (a symmetric proposal),
  accepted on ΔH = ΔE + P ΔV − (N + 1) k_B T ln(V'/V): this samples the isobaric ensemble
  p(V) ∝ V^N exp(−β(E + PV)).
* ``shape_move``: volume-preserving shear/stretch, cell ← exp(ε) cell with ε symmetric and
  traceless (ε and −ε are equally likely, det exp(ε) = 1), accepted on ΔE.
Each returns whether the move was accepted; a rejected move restores the structure.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from scipy.linalg import expm

GPA = units.GPa  # eV/Å³ per GPa


def _metropolis(delta: float, temperature_K: float, rng: np.random.Generator) -> bool:
    return delta <= 0 or rng.random() < np.exp(-delta / (units.kB * temperature_K))


def swap_move(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> bool:
    """Swap the species of two random atoms of different species (no-op for one species)."""
    numbers = atoms.numbers.copy()  # atoms.numbers is the live array: assignment writes into it
    if len(set(numbers)) < 2:
        return False
    i = int(rng.integers(len(atoms)))
    others = np.flatnonzero(numbers != numbers[i])
    j = int(others[rng.integers(len(others))])
    e0 = atoms.get_potential_energy()
    new = numbers.copy()
    new[i], new[j] = numbers[j], numbers[i]
    atoms.numbers = new
    if _metropolis(atoms.get_potential_energy() - e0, temperature_K, rng):
        return True
    atoms.numbers = numbers
    return False


def volume_move(
    atoms: Atoms, temperature_K: float, pressure_GPa: float, rng: np.random.Generator, max_log_step: float = 0.02
) -> bool:
    """Isotropic volume move in ln V (see the module docstring)."""
    e0, v0 = atoms.get_potential_energy(), atoms.get_volume()
    cell, pos = atoms.cell.array.copy(), atoms.positions.copy()
    delta = rng.uniform(-max_log_step, max_log_step)
    atoms.set_cell(cell * np.exp(delta / 3.0), scale_atoms=True)
    v1 = atoms.get_volume()
    kT = units.kB * temperature_K
    dH = atoms.get_potential_energy() - e0 + pressure_GPa * GPA * (v1 - v0) - (len(atoms) + 1) * kT * np.log(v1 / v0)
    if _metropolis(dH, temperature_K, rng):
        return True
    atoms.set_cell(cell, scale_atoms=False)
    atoms.positions = pos
    return False


def shape_move(atoms: Atoms, temperature_K: float, rng: np.random.Generator, step: float = 0.02) -> bool:
    """Volume-preserving cell deformation exp(ε), ε symmetric traceless with entries of size ~step."""
    e0 = atoms.get_potential_energy()
    cell, pos = atoms.cell.array.copy(), atoms.positions.copy()
    a = rng.normal(scale=step, size=(3, 3))
    eps = 0.5 * (a + a.T)
    eps -= np.trace(eps) / 3.0 * np.eye(3)
    atoms.set_cell(cell @ expm(eps).T, scale_atoms=True)
    if _metropolis(atoms.get_potential_energy() - e0, temperature_K, rng):
        return True
    atoms.set_cell(cell, scale_atoms=False)
    atoms.positions = pos
    return False
