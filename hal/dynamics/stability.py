"""MD stability test of a molecular model (SPEC §7, HAL paper Fig. 6): plain Langevin MD of many seeds
at once, as copies of the molecule in one ``Atoms`` far enough apart never to interact, each copy run
until one of its bonds leaves its window (``hal.bonds``) or to the end."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from tqdm import tqdm

from hal.bonds import BrokenBond, Topology
from hal.dynamics.hal import thermalize


@dataclasses.dataclass
class StabilityResult:
    """Per seed: the first step (of ``steps``) at which a bond left its window, or ``steps`` if none,
    and the first broken bond. ``min_stable`` is the paper's figure (the minimum over seeds)."""

    first_broken: np.ndarray
    steps: int
    bonds: list[BrokenBond | None]

    @property
    def min_stable(self) -> int:
        return int(self.first_broken.min())

    @property
    def all_stable(self) -> bool:
        return bool(np.all(self.first_broken >= self.steps))


def copies(molecule: Atoms, n: int, spacing: float = 30.0, gap: float = 20.0) -> Atoms:
    """n copies of ``molecule`` on a line, ``spacing`` Å apart, or further for a long molecule: at least
    ``gap`` Å between the copies' extents along the line (beyond any model's cutoff)."""
    extent = np.ptp(molecule.positions[:, 0]) if len(molecule) else 0.0
    step = max(spacing, extent + gap)
    out = Atoms(pbc=False)
    for k in range(n):
        m = molecule.copy()
        m.positions += [k * step, 0.0, 0.0]
        out += m
    return out


def stability_test(
    calculator: Callable[[], Calculator] | Calculator,
    molecule: Atoms,
    seeds: int = 16,
    steps: int = 10000,
    temperature_K: float = 500.0,
    timestep_fs: float = 0.5,
    friction_fs: float = 100.0,
    check_every: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> StabilityResult:
    """Run ``seeds`` copies of ``molecule`` (bond windows from its own geometry) for ``steps`` steps of
    Langevin MD at ``temperature_K`` and record when each breaks (checked every ``check_every`` steps).
    A broken copy is taken out of the box, so it cannot disturb the others."""
    topo = Topology(molecule)
    n = len(molecule)
    alive = list(range(seeds))
    first = np.full(seeds, steps)
    bonds: list[BrokenBond | None] = [None] * seeds
    atoms = copies(molecule, seeds)
    rng = np.random.default_rng(seed)
    thermalize(atoms, temperature_K, rng)

    def start(a: Atoms) -> Langevin:
        a.calc = calculator() if callable(calculator) and not isinstance(calculator, Calculator) else calculator
        return Langevin(a, timestep_fs * units.fs, temperature_K=temperature_K, friction=1 / (friction_fs * units.fs),
                        fixcm=False, rng=rng)  # fmt: skip

    dyn = start(atoms)
    done = 0
    with tqdm(total=steps, desc="stability", unit="step", disable=not progress) as bar:
        while done < steps and alive:
            k = min(check_every, steps - done)
            dyn.run(k)
            done += k
            bar.update(k)
            broken_now = list(np.flatnonzero(~topo.intact_copies(atoms.positions.reshape(len(alive), n, 3))))
            if not broken_now:
                continue
            for c in broken_now:
                first[alive[c]] = done
                frame = atoms[c * n : (c + 1) * n]
                bad = topo.broken(frame) if np.all(np.isfinite(frame.positions)) else []
                bonds[alive[c]] = bad[0] if bad else None
            keep = [c for c in range(len(alive)) if c not in broken_now]
            alive = [alive[c] for c in keep]
            if alive:
                idx = np.concatenate([np.arange(c * n, (c + 1) * n) for c in keep])
                atoms = atoms[idx]
                dyn = start(atoms)
    return StabilityResult(first, steps, bonds)
