"""Steered MD: pull two atoms (or groups) apart with a moving harmonic spring; work and E_a.

Spring energy U = ½ k (d − d0)², d the distance between the centres of mass of the two groups
(default: the two carbons farthest apart, i.e. a chain's terminal carbons), d0 the rest length,
moved at ``velocity`` (Å/ps) from ``d0_start`` to ``d0_end``. Work W(d0) = ∫ k (d0 − d) dd0,
accumulated exactly per step as U(d, d0 + Δ) − U(d, d0); activation energy E_a = max W.
Per step it records d0, d, the spring force k (d0 − d), the potential energy of the calculator, σ
when the calculator gives one, the kinetic and spring energies and (Berendsen) the heat exchanged
with the thermostat, so that W = ΔE_pot + ΔE_kin + ΔU + heat closes up to the integration error.
A bond (within 1.2 × the covalent radii sum at the start) counts as broken once longer than
``break_factor`` × that sum. ``quasi_static=True`` minimises at each d0 instead: a noise-free W.
Units: Å, eV, fs (time step), Å/ps (velocity), K.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.data import covalent_radii
from ase.io import write
from ase.md.langevinbaoab import LangevinBAOAB
from ase.md.nvtberendsen import NVTBerendsen
from ase.md.velocitydistribution import Stationary
from ase.neighborlist import natural_cutoffs, neighbor_list
from ase.optimize import BFGS, FIRE
from tqdm import tqdm

from hal.calculators import FastStateCalculator
from hal.dynamics.hal import thermalize


class Spring:
    """Harmonic spring (k in eV/Å²) between the centres of mass of two groups of atoms."""

    def __init__(self, group_a: Sequence[int], group_b: Sequence[int], k: float) -> None:
        self.a, self.b = np.atleast_1d(np.asarray(group_a, int)), np.atleast_1d(np.asarray(group_b, int))
        if not len(self.a) or not len(self.b) or set(self.a) & set(self.b):
            raise ValueError("the two spring groups must be non-empty and disjoint")
        if k <= 0:
            raise ValueError(f"spring constant must be positive, got {k}")
        self.k = float(k)

    def distance(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Centre-of-mass distance d (Å) and the unit vector from group a to group b."""
        m, r = atoms.get_masses(), atoms.positions
        ra = m[self.a] @ r[self.a] / m[self.a].sum()
        rb = m[self.b] @ r[self.b] / m[self.b].sum()
        v = rb - ra
        d = float(np.linalg.norm(v))
        return d, v / d

    def energy_forces(self, atoms: Atoms, d0: float) -> tuple[float, np.ndarray, float]:
        """U (eV), forces (N, 3) and d for rest length d0; each group's force is shared by mass."""
        d, u = self.distance(atoms)
        f = self.k * (d - d0) * u  # pulls b back toward a when stretched past d0
        m = atoms.get_masses()
        forces = np.zeros((len(atoms), 3))
        forces[self.a] += (m[self.a] / m[self.a].sum())[:, None] * f
        forces[self.b] -= (m[self.b] / m[self.b].sum())[:, None] * f
        return 0.5 * self.k * (d - d0) ** 2, forces, d


class SteeredCalculator(FastStateCalculator):
    """A calculator plus the spring. The wrapped calculator is called once per geometry (moving d0
    only recomputes the spring); its ``sigma`` (and other results) are passed on. Results:
    energy/forces (with the spring), ``model_energy``, ``spring_energy``, ``distance``."""

    implemented_properties = ["energy", "free_energy", "forces", "model_energy", "spring_energy", "distance", "sigma"]

    def __init__(self, calculator: Calculator, spring: Spring, d0: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base, self.spring, self._d0 = calculator, spring, float(d0)
        self._key: tuple | None = None
        self._base_results: dict = {}

    @property
    def base_forces(self) -> np.ndarray | None:
        """The wrapped calculator's forces at the last geometry (no spring), eV/Å."""
        return self._base_results.get("forces")

    @property
    def d0(self) -> float:
        return self._d0

    @d0.setter
    def d0(self, value: float) -> None:
        self._d0 = float(value)
        self.results = {}  # the spring part changes; the model part is kept (see calculate)

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        key = (self.atoms.positions.tobytes(), self.atoms.numbers.tobytes(), self.atoms.cell.array.tobytes())
        if key != self._key:
            work = self.atoms.copy()
            work.calc = self.base
            self._base_results = {"energy": work.get_potential_energy(), "forces": work.get_forces()}
            if "sigma" in getattr(self.base, "results", {}):
                self._base_results["sigma"] = self.base.results["sigma"]
            self._key = key
        u, f, d = self.spring.energy_forces(self.atoms, self._d0)
        e = self._base_results["energy"] + u
        self.results = {"energy": e, "free_energy": e, "forces": self.base_forces + f,
                        "model_energy": self._base_results["energy"], "spring_energy": u, "distance": d}  # fmt: skip
        if "sigma" in self._base_results:
            self.results["sigma"] = self._base_results["sigma"]


class _Berendsen(NVTBerendsen):
    """ASE's Berendsen NVT, counting the kinetic energy its velocity scaling adds (the heat, eV)."""

    heat = 0.0

    def scale_velocities(self) -> None:
        ke = self.atoms.get_kinetic_energy()
        super().scale_velocities()
        self.heat += self.atoms.get_kinetic_energy() - ke


@dataclasses.dataclass
class SMDResult:
    """Per-step records of a pull (arrays over steps, eV / Å) and what they add up to."""

    d0: np.ndarray
    distance: np.ndarray
    spring_force: np.ndarray  # k (d0 − d), eV/Å
    work: np.ndarray  # W(d0), eV
    energy: np.ndarray  # potential energy of the calculator (no spring)
    kinetic: np.ndarray
    spring_energy: np.ndarray
    heat: np.ndarray  # cumulative heat from the thermostat (NaN for Langevin and quasi-static)
    sigma: np.ndarray | None  # committee σ per step when the calculator gives it
    broken_bond: tuple[int, int] | None
    break_d0: float | None
    break_step: int | None
    atoms: Atoms  # the final configuration
    stopped_at: int | None = None  # the step at which ``stop`` ended the pull early
    error: str | None = None  # what the calculator raised, when ``on_error="stop"`` ended the pull there
    positions: np.ndarray | None = None  # (steps, N, 3) when ``record_positions``
    snap_step: int | None = None  # quasi-static: the last minimum before the chain snapped

    @property
    def activation_energy(self) -> float:
        """E_a = max W (eV); quasi-static: max W up to the snap (the barrier of the intact chain; the
        spring dragging the fragments apart afterwards is not part of it)."""
        return float(np.max(self.work[: None if self.snap_step is None else self.snap_step + 1]))


def terminal_carbons(atoms: Atoms) -> tuple[int, int]:
    """The two carbon atoms farthest apart (a linear chain's ends)."""
    c = np.flatnonzero(atoms.numbers == 6)
    if len(c) < 2:
        raise ValueError("no default pull atoms: give pull=(i, j) or two groups")
    d = atoms.get_all_distances()[np.ix_(c, c)]
    i, j = np.unravel_index(np.argmax(d), d.shape)
    return int(c[min(i, j)]), int(c[max(i, j)])


def bonds(atoms: Atoms, factor: float = 1.2) -> np.ndarray:
    """Pairs (i < j) closer than ``factor`` × the sum of covalent radii, shape (n, 2)."""
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=factor))
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1)


def prepare(atoms: Atoms, calculator: Calculator, temperature_K: float = 10.0, steps: int = 2000,
            timestep_fs: float = 0.5, fmax: float = 0.01, taut_fs: float = 100.0, seed: int = 0) -> Atoms:  # fmt: skip
    """Pre-relaxation of the paper: minimise (BFGS to ``fmax`` eV/Å), then ``steps`` of Berendsen
    NVT at ``temperature_K``; returns a new Atoms with momenta (no COM motion)."""
    work = atoms.copy()
    work.calc = calculator
    BFGS(work, logfile=None).run(fmax=fmax, steps=1000)
    rng = np.random.default_rng(seed)
    thermalize(work, temperature_K, rng)
    Stationary(work)  # no centre-of-mass drift
    dyn = NVTBerendsen(work, timestep_fs * units.fs, temperature_K=temperature_K, taut=taut_fs * units.fs, fixcm=False)
    dyn.run(steps)
    out = work.copy()
    out.calc = None
    return out


def bond_limits(atoms: Atoms, factor: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """The bonds of ``atoms`` (``bonds``) and the length (Å) beyond which each counts as broken:
    ``factor`` × the sum of covalent radii."""
    pairs = bonds(atoms)
    return pairs, factor * (covalent_radii[atoms.numbers[pairs[:, 0]]] + covalent_radii[atoms.numbers[pairs[:, 1]]])


def broken_bond(atoms: Atoms, pairs: np.ndarray, limit: np.ndarray) -> tuple[int, int] | None:
    """The bond stretched most beyond its break length, or None when every bond holds."""
    lengths = np.linalg.norm(atoms.positions[pairs[:, 1]] - atoms.positions[pairs[:, 0]], axis=1)
    over = np.flatnonzero(lengths > limit)
    if not len(over):
        return None
    b = pairs[over[np.argmax(lengths[over] / limit[over])]]
    return int(b[0]), int(b[1])


def _groups(atoms: Atoms, pull) -> tuple[list[int], list[int]]:
    a, b = terminal_carbons(atoms) if pull is None else pull
    return list(np.atleast_1d(a)), list(np.atleast_1d(b))


def run(
    atoms: Atoms,
    calculator: Calculator,
    pull: tuple | None = None,
    k: float = 10.0,
    velocity: float = 1.0,
    d0_start: float | None = None,
    d0_end: float | None = None,
    timestep_fs: float = 0.5,
    temperature_K: float = 10.0,
    thermostat: str = "berendsen",
    taut_fs: float = 100.0,
    friction_fs: float = 100.0,
    quasi_static: bool = False,
    d0_step: float = 0.02,
    fmax: float = 1e-3,
    refine: int = 10,
    optimizer: type = FIRE,
    break_factor: float = 1.5,
    seed: int = 0,
    stop: Callable[[int, Atoms, SteeredCalculator], bool] | None = None,
    trajectory: str | Path | None = None,
    trajectory_every: int = 20,
    record_positions: bool = False,
    progress: bool = False,
    on_error: str = "raise",
) -> SMDResult:
    """Pull ``atoms`` (used as given: relax/equilibrate first with ``prepare``; momenta are kept, or
    drawn at ``temperature_K`` when absent) from ``d0_start`` (default: the current distance) to
    ``d0_end`` (default: + 3.5 Å) at ``velocity`` Å/ps. ``pull``: (i, j) or two index groups.
    ``thermostat``: "berendsen" (τ_T = ``taut_fs``, as in Jung et al.) or "langevin" (``friction_fs``).
    Quasi-static: minimised (``optimizer``, an ASE optimizer class, to ``fmax``) every ``d0_step`` Å.
    On a stable branch the spring force only grows with d0, so a drop (by a quarter of its maximum) is
    the snap; that step is redone in ``refine`` finer steps from the last minimum before it, so that
    E_a (reached just before the snap, where W grows at the spring force, ≈ 4.5 eV/Å for hexane) is
    resolved to F·d0_step/refine.
    ``stop(step, atoms, calc)`` may end the pull early (HAL-SMD: an uncertainty trigger).
    Trajectory frames are labelled with the wrapped calculator's energy and forces (no spring), so a
    reference pull is a training set as it stands; ``record_positions`` keeps every step's positions.
    ``on_error="stop"`` ends the pull where the calculator raises (a model that lets atoms collapse,
    say) and returns what was pulled so far, with the message in ``error``."""
    if thermostat not in ("berendsen", "langevin"):
        raise ValueError(f"thermostat must be 'berendsen' or 'langevin', got {thermostat!r}")
    if on_error not in ("raise", "stop"):
        raise ValueError(f"on_error must be 'raise' or 'stop', got {on_error!r}")
    if velocity <= 0 or timestep_fs <= 0:
        raise ValueError("velocity and timestep_fs must be positive")
    work = atoms.copy()
    spring = Spring(*_groups(work, pull), k)
    d_start, _ = spring.distance(work)
    d0 = d_start if d0_start is None else float(d0_start)
    end = d0 + 3.5 if d0_end is None else float(d0_end)
    calc = SteeredCalculator(calculator, spring, d0)
    work.calc = calc
    pairs, limit = bond_limits(work, break_factor)
    rng = np.random.default_rng(seed)
    if not quasi_static and not np.any(work.get_momenta()):
        thermalize(work, temperature_K, rng)
    delta = d0_step if quasi_static else velocity * timestep_fs * 1e-3
    n = int(np.ceil((end - d0) / delta - 1e-9))
    dyn = None
    if not quasi_static:
        if thermostat == "berendsen":
            dyn = _Berendsen(work, timestep_fs * units.fs, temperature_K=temperature_K, taut=taut_fs * units.fs,
                             fixcm=False)  # fmt: skip
        else:
            dyn = LangevinBAOAB(work, timestep_fs * units.fs, temperature_K=temperature_K,
                                T_tau=friction_fs * units.fs, rng=rng)  # fmt: skip
    rec: dict[str, list] = {key: [] for key in ("d0", "distance", "work", "energy", "kinetic", "spring_energy",
                                                "heat", "sigma", "positions")}  # fmt: skip
    traj = Path(trajectory) if trajectory else None
    if traj is not None and traj.exists():
        traj.unlink()
    W = 0.0
    broken, break_d0, break_step, stopped = None, None, None, None
    # quasi-static refinement: end of the fine interval, last minimum (d0, spring force, positions), largest force
    fine_until, intact, f_max = None, None, 0.0
    bar = tqdm(total=n + 1, desc="SMD", unit="step", disable=not progress, leave=False)
    step, error = 0, None
    while True:
        try:
            if step > 0:
                new_d0 = min(d0 + delta, end)
                d, _ = spring.distance(work)
                W += 0.5 * k * ((d - new_d0) ** 2 - (d - d0) ** 2)  # the spring's energy change at fixed positions
                d0 = calc.d0 = new_d0
                if not quasi_static:
                    dyn.step()
            if quasi_static:
                optimizer(work, logfile=None).run(fmax=fmax, steps=5000)
                force = k * (d0 - spring.distance(work)[0])
                if fine_until is None and refine > 1 and intact and intact[1] - force > 0.25 * f_max:
                    fine_until, delta = d0, delta / refine  # redo this step finely from the last intact minimum
                    d0 = calc.d0 = intact[0]
                    work.positions = intact[2]
                    continue
                if fine_until is not None and d0 >= fine_until - 1e-12:
                    delta = d0_step
                intact, f_max = (d0, force, work.positions.copy()), max(f_max, force)
            work.get_potential_energy()  # fills calc.results
        except Exception as exc:
            if on_error == "raise" or step == 0:
                raise
            error = f"{type(exc).__name__} at d0 = {d0:.3f} Å: {exc}"
            break
        r = calc.results
        rec["d0"].append(d0)
        rec["distance"].append(r["distance"])
        rec["work"].append(W)
        rec["energy"].append(r["model_energy"])
        rec["kinetic"].append(work.get_kinetic_energy())
        rec["spring_energy"].append(r["spring_energy"])
        rec["heat"].append(dyn.heat if isinstance(dyn, _Berendsen) else np.nan)
        rec["sigma"].append(r.get("sigma", np.nan))
        if record_positions:
            rec["positions"].append(work.positions.copy())
        if broken is None and (b := broken_bond(work, pairs, limit)) is not None:
            broken, break_d0, break_step = b, d0, step
        if traj is not None and (step % trajectory_every == 0 or d0 >= end - 1e-12):
            frame = work.copy()
            frame.calc = None
            frame.info.update(step=step, d0=d0, distance=r["distance"], work=W, energy=r["model_energy"],
                              spring_energy=r["spring_energy"])  # fmt: skip
            frame.arrays["forces"] = calc.base_forces.copy()
            if "sigma" in r:
                frame.info["sigma"] = r["sigma"]
            write(traj, frame, format="extxyz", append=True)
        if stop is not None and stop(step, work, calc):
            stopped = step
            break
        if d0 >= end - 1e-12:
            break
        step += 1
        bar.update(1)
    bar.close()
    positions = np.array(rec.pop("positions")) if record_positions else None
    arrays = {key: np.array(v, dtype=float) for key, v in rec.items()}
    if quasi_static:  # W = ∫ k (d0 − d) dd0 along the minimised path (trapezoids)
        force = k * (arrays["d0"] - arrays["distance"])
        arrays["work"] = np.concatenate([[0.0], np.cumsum(0.5 * (force[1:] + force[:-1]) * np.diff(arrays["d0"]))])
    snap = None
    if quasi_static and len(arrays["d0"]) > 1:
        force = k * (arrays["d0"] - arrays["distance"])
        j = int(np.argmin(np.diff(force)))
        snap = j if force[j] - force[j + 1] > 0.25 * force[: j + 1].max() else None
    final = work.copy()
    final.calc = None
    return SMDResult(
        d0=arrays["d0"], distance=arrays["distance"], spring_force=k * (arrays["d0"] - arrays["distance"]),
        work=arrays["work"], energy=arrays["energy"], kinetic=arrays["kinetic"],
        spring_energy=arrays["spring_energy"], heat=arrays["heat"],
        sigma=None if np.all(np.isnan(arrays["sigma"])) else arrays["sigma"], broken_bond=broken,
        break_d0=break_d0, break_step=break_step, atoms=final, stopped_at=stopped, positions=positions, error=error,
        snap_step=snap,
    )  # fmt: skip
