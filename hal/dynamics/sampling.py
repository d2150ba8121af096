"""Labelled frames of plain oracle MD: initial data, held-out sets and pools of the protocols."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin

from hal.dynamics.hal import thermalize


def labelled(atoms: Atoms, calc: Calculator, config_type: str | None = None) -> Atoms:
    """A copy of ``atoms`` without a calculator, with ``calc``'s energy, forces (and stress of a periodic
    cell) as plain labels in ``info`` / ``arrays``, and ``config_type`` if given."""
    a = atoms.copy()
    a.calc = calc
    out = atoms.copy()
    out.calc = None
    out.info["energy"] = a.get_potential_energy()
    out.arrays["forces"] = a.get_forces()
    if a.pbc.all():
        out.info["stress"] = a.get_stress()
    if config_type is not None:
        out.info["config_type"] = config_type
    return out


def md_frames(start: Atoms, calc: Calculator, n: int, temperature_K: float, rng: np.random.Generator, every: int = 20,
              burn_in: int = 300, timestep_fs: float = 1.0, friction: float = 0.02,
              config_type: str | None = None, label_calc: Calculator | None = None) -> list[Atoms]:  # fmt: skip
    """n labelled frames ``every`` steps apart of Langevin MD with ``calc`` (fixed cell, fixcm off, ASE
    friction units) from Maxwell–Boltzmann momenta at ``temperature_K``, after ``burn_in`` steps.
    ``label_calc``: label the frames with this calculator instead (e.g. DFT on frames of cheap MD, as the
    HAL paper labelled ANI-2x MD with ωB97X)."""
    atoms = start.copy()
    atoms.calc = calc
    thermalize(atoms, temperature_K, rng)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=friction, fixcm=False, rng=rng)
    dyn.run(burn_in)
    out = []
    for _ in range(n):
        dyn.run(every)
        out.append(labelled(atoms, label_calc or calc, config_type))
    return out
