"""The labelled pool of the filtering protocol: the user's extxyz / ASE db, checked, or the packaged
silicon default generated and labelled by the oracle (each configuration tagged ``config_type``).

Default pool (SPEC §7, paper II.A): mostly easy low-temperature diamond bulk (strained and scaled
cells, 64-atom MD at 300–1500 K) with a ≈ 30 % minority of hard environments (vacancy, divacancy and
interstitial MD, the 2500 K liquid, a quenched amorphous phase, and sc, bcc, fcc, hcp and
β-Sn relaxed by the oracle, then scaled). Every symmetric cell is rattled by 0.01–0.03 Å: zero forces
by symmetry are invisible to f_i.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.spacegroup import crystal

from hal.dynamics.sampling import labelled, md_frames
from hal.fit.design import read_labels
from hal.io import DataError, read_configs
from hal.protocols.filtering.properties import relaxed


def kumagai() -> Calculator:
    """matscipy's Kumagai–Izumi–Hara–Sakai (2007) Si bond-order potential: the embedded oracle."""
    from matscipy.calculators.manybody import Kumagai, Manybody
    from matscipy.calculators.manybody.explicit_forms.kumagai import Kumagai_Comp_Mat_Sci_39_Si

    return Manybody(**Kumagai(Kumagai_Comp_Mat_Sci_39_Si))


ORACLES: dict[str, Callable[[], Calculator]] = {"kumagai": kumagai}

# configurations per config_type of the default pool, scaled by ``size`` (1.0: 377, ≈ 18 000 environments)
COUNTS = {
    "diamond_strain": 60, "diamond_ev": 12, "diamond_md_300K": 60, "diamond_md_600K": 50, "diamond_md_900K": 40,
    "diamond_md_1200K": 20, "diamond_md_1500K": 20, "vacancy": 15, "divacancy": 15, "interstitial": 15,
    "liquid": 15, "amorphous": 15, "phases": 40,
}  # fmt: skip
HARD = ("vacancy", "divacancy", "interstitial", "liquid", "amorphous", "phases")  # ≈ 30 % of the environments
A0 = 5.429  # Å, the Kumagai lattice constant (a start: the E–V grid and strains are about it)


def _rattled(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    atoms = atoms.copy()
    atoms.positions += rng.normal(scale=rng.uniform(0.01, 0.03), size=atoms.positions.shape)
    return atoms


def phases(a0: float = A0) -> dict[str, Atoms]:
    """Starting cells of the other Si phases (sc, bcc, fcc, hcp, β-Sn), at about the right density."""
    v = a0**3 / 8  # Å³/atom of diamond; the denser phases start at about 0.8 of it
    beta = crystal("Si", [(0, 0, 0)], spacegroup=141, cellpar=[4.7, 4.7, 2.6, 90, 90, 90])
    return {
        "sc": bulk("Si", "sc", a=(0.8 * v) ** (1 / 3)),
        "bcc": bulk("Si", "bcc", a=(1.6 * v) ** (1 / 3), cubic=True),
        "fcc": bulk("Si", "fcc", a=(3.2 * v) ** (1 / 3), cubic=True),
        "hcp": bulk("Si", "hcp", a=2.7, c=2.7 * 1.633),
        "beta_sn": beta,
    }


def default_pool(calc: Calculator, seed: int = 0, size: float = 1.0, progress: bool = False) -> list[Atoms]:
    """The default silicon pool, labelled by ``calc``; ``size`` scales every count (≥ 1 each)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    n = {k: max(1, round(v * size)) for k, v in COUNTS.items()}
    diamond = bulk("Si", "diamond", a=A0, cubic=True)
    big = diamond.repeat(2)  # 64 atoms
    out: list[Atoms] = []
    bar = tqdm(total=len(COUNTS), desc="default pool", unit="kind", disable=not progress)
    for _ in range(n["diamond_strain"]):  # random strains and shears of the 8-atom cell
        eps = rng.uniform(-0.03, 0.03, size=(3, 3))
        cell = diamond.copy()
        cell.set_cell(diamond.cell @ (np.eye(3) + (eps + eps.T) / 2), scale_atoms=True)
        out.append(labelled(_rattled(cell, rng), calc, "diamond_strain"))
    bar.update(1)
    for s in np.linspace(0.94, 1.06, n["diamond_ev"]):  # the E–V grid
        cell = diamond.copy()
        cell.set_cell(diamond.cell * s, scale_atoms=True)
        out.append(labelled(_rattled(cell, rng), calc, "diamond_ev"))
    bar.update(1)
    for T in (300, 600, 900, 1200, 1500):
        out += md_frames(big, calc, n[f"diamond_md_{T}K"], T, rng, config_type=f"diamond_md_{T}K")
        bar.update(1)
    defects = {"vacancy": big[1:], "divacancy": big[2:], "interstitial": big.copy()}
    defects["interstitial"].append("Si")
    defects["interstitial"].positions[-1] = (0.5 * A0, 0.5 * A0, 0.5 * A0)  # tetrahedral site
    for kind, cell in defects.items():
        per_T = np.array_split(np.arange(n[kind]), 3)
        for T, idx in zip((600, 900, 1200), per_T):
            if len(idx):
                out += md_frames(_rattled(cell, rng), calc, len(idx), T, rng, config_type=kind)
        bar.update(1)
    liquid = md_frames(big, calc, n["liquid"], 2500, rng, every=40, burn_in=2000, config_type="liquid")
    out += liquid
    bar.update(1)
    melt = liquid[-1].copy()  # quench from the melt: 2500 → 300 K in 2000 steps, then sample at 300 K
    melt.calc = calc
    dyn = Langevin(melt, 1.0 * units.fs, temperature_K=2500, friction=0.02, fixcm=False, rng=rng)
    for T in np.linspace(2500, 300, 20):
        dyn.set_temperature(temperature_K=T)
        dyn.run(100)
    out += md_frames(melt, calc, n["amorphous"], 300, rng, burn_in=200, config_type="amorphous")
    bar.update(1)
    kinds = phases()
    scales = np.linspace(0.92, 1.08, max(1, n["phases"] // len(kinds)))
    for name, cell in kinds.items():
        cell = relaxed(cell, calc)
        cell = cell.repeat([max(1, int(np.ceil(6.0 / w))) for w in cell.cell.lengths()])  # ≥ 6 Å each way
        for s in scales:
            c = cell.copy()
            c.set_cell(cell.cell * s ** (1 / 3), scale_atoms=True)
            out.append(labelled(_rattled(c, rng), calc, "phases"))
            out[-1].info["phase"] = name
    bar.update(1)
    bar.close()
    return out


def check_pool(configs: list[Atoms], source: str, elements: list[str] | None = None) -> None:
    """Raise ``DataError`` naming ``source`` and the configuration index of the first one without
    finite energy and forces, or with elements outside ``elements``."""
    allowed = set(elements or [])
    for i, atoms in enumerate(configs):
        where = f"{source}: configuration {i}"
        try:
            lab = read_labels(atoms)
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from exc
        if lab.forces is None or lab.energy is None:
            raise DataError(f"{where}: the pool needs energy and forces labels on every configuration")
        extra = set(atoms.get_chemical_symbols()) - allowed if allowed else set()
        if extra:
            raise DataError(f"{where}: element(s) {', '.join(sorted(extra))} outside the basis {sorted(allowed)}")
    if len(configs) < 3:
        raise DataError(f"{source}: a pool needs at least 3 configurations, got {len(configs)}")


def read_pool(path: str, elements: list[str] | None = None) -> list[Atoms]:
    """The user's labelled pool (extxyz or ASE db), checked; ``config_type`` defaults to "pool"."""
    configs = read_configs(path)
    check_pool(configs, path, elements)
    for atoms in configs:
        atoms.info.setdefault("config_type", "pool")
    return configs


def split(configs: list[Atoms], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the pool and of a held-out test set stratified by ``config_type`` (each type keeps
    at least one pool configuration)."""
    rng = np.random.default_rng(seed)
    types = np.array([a.info.get("config_type", "pool") for a in configs])
    test = []
    for t in np.unique(types):
        idx = rng.permutation(np.flatnonzero(types == t))
        test += list(idx[: min(len(idx) - 1, round(test_fraction * len(idx)))])
    test = np.sort(np.array(test, dtype=int))
    return np.setdiff1d(np.arange(len(configs)), test), test


def is_hard(config_type: str) -> bool:
    return config_type in HARD
