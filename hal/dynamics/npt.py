"""NPT molecular dynamics of a periodic box for its density: ASE's Berendsen thermostat and isotropic
barostat (robust from a box far from equilibrium; its mean density is that of the NPT ensemble, its
fluctuations are too small), the density and temperature recorded along the way, the bond topology
checked throughout, and the block average of the equilibrated part."""

from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.nptberendsen import NPTBerendsen
from tqdm import tqdm

from hal.bonds import BrokenBond, Topology
from hal.dynamics.hal import thermalize
from hal.structures import density


@dataclasses.dataclass
class DensityTrace:
    """A recorded NPT run: time (ps), density (g/cm³), temperature (K) and pressure (bar) every
    ``record_every`` steps; ``broken``: the first bond out of its window (None: topology intact), at
    ``broken_step``; ``wall_s`` the run's wall time; ``intact`` an intact recorded box (with momenta,
    no calculator) ``lookback`` records before the end: where to restart, short of a break."""

    time_ps: np.ndarray
    density: np.ndarray
    temperature: np.ndarray
    pressure: np.ndarray
    steps: int
    n_atoms: int
    wall_s: float
    broken: BrokenBond | None = None
    broken_step: int | None = None
    intact: Atoms | None = None

    @property
    def us_per_atom_step(self) -> float:
        """Wall time per atom and MD step (µs)."""
        return self.wall_s / max(self.steps, 1) / self.n_atoms * 1e6


def npt_run(
    atoms: Atoms,
    calculator: Calculator,
    steps: int,
    temperature_K: float = 300.0,
    pressure_bar: float = 1.0,
    timestep_fs: float = 0.5,
    taut_fs: float = 100.0,
    taup_fs: float = 1000.0,
    compressibility_per_bar: float = 4.6e-5,
    record_every: int = 20,
    topology: Topology | None = None,
    seed: int = 0,
    progress: bool = False,
    lookback: int = 1,
) -> DensityTrace:
    """Run ``steps`` Berendsen NPT steps on ``atoms`` (changed in place; velocities drawn at
    ``temperature_K`` unless it has momenta), recording every ``record_every`` steps, and stop at the
    first record where a bond of ``topology`` has left its window. Polymer compressibility ≈ 4.6e-5 /bar."""
    if not atoms.pbc.all():
        raise ValueError("npt_run needs a periodic box (atoms.pbc all True)")
    if not np.any(atoms.get_momenta()):
        thermalize(atoms, temperature_K, np.random.default_rng(seed))
    atoms.calc = calculator
    dyn = NPTBerendsen(atoms, timestep_fs * units.fs, temperature_K=temperature_K, pressure_au=pressure_bar * units.bar,
                       taut=taut_fs * units.fs, taup=taup_fs * units.fs,
                       compressibility_au=compressibility_per_bar / units.bar)  # fmt: skip
    rows: list[tuple[float, float, float, float]] = []
    broken, broken_step, intact = None, None, collections.deque([atoms.copy()], maxlen=max(lookback, 1))
    t0 = time.perf_counter()

    def record() -> None:
        p = -np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3 / units.bar
        rows.append((dyn.nsteps * timestep_fs / 1000, density(atoms), atoms.get_temperature(), p))

    record()
    with tqdm(total=steps, desc="NPT", unit="step", disable=not progress) as bar:
        while dyn.nsteps < steps:
            k = min(record_every, steps - dyn.nsteps)
            dyn.run(k)
            bar.update(k)
            record()
            bad = topology.broken(atoms) if topology is not None else []
            if bad or not np.all(np.isfinite(atoms.positions)):
                broken, broken_step = (bad[0] if bad else None), dyn.nsteps
                break
            intact.append(atoms.copy())
            bar.set_postfix(density=f"{rows[-1][1]:.3f}", T=f"{rows[-1][2]:.0f}")
    t, rho, temp, p = (np.array(c) for c in zip(*rows))
    wall = time.perf_counter() - t0
    return DensityTrace(t, rho, temp, p, dyn.nsteps, len(atoms), wall, broken, broken_step, intact[0])


def block_average(x: np.ndarray, n_blocks: int = 5) -> tuple[float, float]:
    """Mean of ``x`` and its standard error from ``n_blocks`` consecutive block means (blocks longer
    than the correlation time make them independent)."""
    x = np.asarray(x, dtype=float)
    if len(x) < n_blocks:
        raise ValueError(f"{len(x)} values cannot make {n_blocks} blocks")
    means = np.array([b.mean() for b in np.array_split(x, n_blocks)])
    return float(x.mean()), float(means.std(ddof=1) / np.sqrt(n_blocks))


def drift(t: np.ndarray, x: np.ndarray, n_blocks: int = 5) -> tuple[float, float]:
    """Change of ``x`` across the window ``t`` (the slope of its ``n_blocks`` block means against their
    mid-times, times the window's length) and its standard error: a mean is an equilibrium value only
    when this change is within about twice its standard error and the block average's."""
    from scipy.stats import linregress

    t, x = np.asarray(t, dtype=float), np.asarray(x, dtype=float)
    if len(x) < n_blocks or n_blocks < 3:
        raise ValueError(f"{len(x)} values in {n_blocks} blocks cannot give a drift (at least 3 blocks of one)")
    tb = np.array([b.mean() for b in np.array_split(t, n_blocks)])
    xb = np.array([b.mean() for b in np.array_split(x, n_blocks)])
    fit = linregress(tb, xb)
    span = t[-1] - t[0]
    return float(fit.slope * span), float(fit.stderr * span)
