"""Design assembly: weighted energy, force and virial rows, accumulated as normal equations.

Rows of one configuration with N atoms (the choice of normalisation, as in ACE1/ACEpotentials):
  energy  w_E · (E − Σ E0) / N           (energy per atom)
  forces  w_F · F_iα                      (every component)
  virial  w_V · V_k / N, V = −stress·vol  (periodic cells only; per atom)
Defaults w_E = 30, w_F = 1, w_V = 1 (1 meV/atom of energy error weighs like 30 meV/Å of force).
Per-configuration overrides from ``atoms.info`` (``OVERRIDES``): ``energy_weight``, ``force_weight``,
``virial_weight``, ``weight`` (multiplies all three) and ``f_max``. Atoms whose force norm exceeds
``f_max`` (default 20 eV/Å) lose their force rows and the configuration its energy and virial rows.
Only ΨᵀΨ, Ψᵀy, yᵀy and the row count are kept, accumulated blockwise, so memory is O(M²).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from ase import Atoms
from tqdm import tqdm

from hal.ace.basis import ACEBasis

ROW_BLOCK = 4096  # rows buffered before one BLAS update of ΨᵀΨ
OVERRIDES = ("weight", "energy_weight", "force_weight", "virial_weight", "f_max")  # per configuration, atoms.info


@dataclasses.dataclass(frozen=True)
class Weights:
    """Row weights and the force cutoff (see the module docstring)."""

    energy: float = 30.0
    forces: float = 1.0
    virial: float = 1.0
    f_max: float = 20.0

    def f_max_of(self, atoms: Atoms) -> float:
        """The force cutoff of one configuration (eV/Å): its ``info["f_max"]``, else ``f_max``."""
        return float(atoms.info.get("f_max", self.f_max))

    def energy_of(self, atoms: Atoms) -> float:
        """The energy weight of one configuration: ``info`` overrides times ``weight``."""
        return float(atoms.info.get("weight", 1.0)) * float(atoms.info.get("energy_weight", self.energy))


@dataclasses.dataclass(frozen=True)
class LabelKeys:
    """Where labels live: ``atoms.info[energy]``, ``atoms.arrays[forces]``, ``atoms.info[stress]``
    (ASE sign, Voigt 6 or 3×3, eV/Å³). An attached SinglePointCalculator is used when absent."""

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"


@dataclasses.dataclass
class Labels:
    """Labels of one configuration: energy (eV), forces (N, 3) eV/Å, virial (6,) eV (−stress·vol)."""

    energy: float | None
    forces: np.ndarray | None
    virial: np.ndarray | None


def read_labels(atoms: Atoms, keys: LabelKeys = LabelKeys()) -> Labels:
    """Labels of a configuration; ValueError when there are none or they are not finite."""
    results = getattr(atoms.calc, "results", {}) or {}
    energy = atoms.info.get(keys.energy, results.get("energy"))
    forces = atoms.arrays.get(keys.forces, results.get("forces"))
    stress = atoms.info.get(keys.stress, results.get("stress"))
    if energy is None and forces is None:
        raise ValueError(f"no energy ('{keys.energy}') or forces ('{keys.forces}') label")
    if energy is not None:
        energy = float(energy)
        if not np.isfinite(energy):
            raise ValueError("energy label is not finite")
    if forces is not None:
        forces = np.asarray(forces, dtype=float)
        if forces.shape != (len(atoms), 3) or not np.all(np.isfinite(forces)):
            raise ValueError(f"forces label must be finite with shape ({len(atoms)}, 3)")
    virial = None
    if stress is not None and atoms.pbc.any():
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (3, 3):
            stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        if stress.shape != (6,) or not np.all(np.isfinite(stress)):
            raise ValueError("stress label must be finite, Voigt (6,) or (3, 3)")
        virial = -stress * atoms.get_volume()
    return Labels(energy, forces, virial)


def is_isolated_atom(atoms: Atoms) -> bool:
    return len(atoms) == 1 and not atoms.pbc.any()


def reference_energies(
    configs: Sequence[Atoms], elements: Sequence[str], keys: LabelKeys = LabelKeys()
) -> dict[str, float]:
    """E0 per species: from isolated-atom configurations when every species has one, else the
    least-squares fit of total energies to the species counts (eV), over the configurations whose
    energies are fitted (an ``energy_weight`` of 0, e.g. a restraint dimer's, leaves one out)."""
    isolated = {}
    for atoms in configs:
        if is_isolated_atom(atoms):
            lab = read_labels(atoms, keys)
            if lab.energy is not None:
                isolated[atoms.get_chemical_symbols()[0]] = lab.energy
    if all(el in isolated for el in elements):
        return {el: isolated[el] for el in elements}
    rows, ys = [], []
    for atoms in configs:
        lab = read_labels(atoms, keys)
        if lab.energy is not None and not is_isolated_atom(atoms) and Weights().energy_of(atoms) > 0:
            sym = atoms.get_chemical_symbols()
            rows.append([sym.count(el) for el in elements])
            ys.append(lab.energy)
    if not rows:
        return dict.fromkeys(elements, 0.0)
    sol = np.linalg.lstsq(np.array(rows, dtype=float), np.array(ys), rcond=None)[0]
    return {el: float(v) for el, v in zip(elements, sol)}


def exclusions(named: Sequence[tuple[str, Atoms]], weights: Weights = Weights(), keys: LabelKeys = LabelKeys(),
               limit: int = 5) -> list[str]:  # fmt: skip
    """One line per kind of label the fit leaves out or ignores, naming the configurations (``named``:
    (name, atoms) pairs, e.g. ``"train.xyz:3"``): forces above f_max (and that configuration's energy
    and virial), stress labels on non-periodic cells, configurations without forces or energy,
    isolated atoms (they only give E0), zero weights."""
    found: dict[str, list[str]] = {}
    n_atoms = 0
    for name, atoms in named:
        lab = read_labels(atoms, keys)
        results = getattr(atoms.calc, "results", {}) or {}
        if is_isolated_atom(atoms):
            found.setdefault("isolated", []).append(name)
            continue
        if lab.forces is not None and len(atoms):
            big = int(np.sum(np.linalg.norm(lab.forces, axis=1) > weights.f_max_of(atoms)))
            if big:
                n_atoms += big
                found.setdefault("f_max", []).append(name)
        if lab.forces is None:
            found.setdefault("no_forces", []).append(name)
        if lab.energy is None:
            found.setdefault("no_energy", []).append(name)
        if (keys.stress in atoms.info or "stress" in results) and not atoms.pbc.any():
            found.setdefault("stress", []).append(name)
        if float(atoms.info.get("weight", 1.0)) == 0.0:
            found.setdefault("weight", []).append(name)
    what = {
        "f_max": f"{n_atoms} atom(s) with |F| > {weights.f_max:g} eV/Å: their forces, and their configurations' "
                 "energy and virial, are left out of the fit and of the error tables",
        "stress": "stress labels on non-periodic cells are ignored",
        "no_forces": "no forces: fitted (and scored) on the energy alone",
        "no_energy": "no energy: fitted (and scored) on the forces alone",
        "isolated": "isolated atoms: used for E0 only, not fitted or scored",
        "weight": "weight 0: left out of the fit",
    }  # fmt: skip
    lines = []
    for key, names in found.items():
        shown = ", ".join(names[:limit]) + (f", … ({len(names)} configurations)" if len(names) > limit else "")
        lines.append(f"{what[key]} ({shown})")
    return lines


def config_rows(
    basis: ACEBasis,
    atoms: Atoms,
    e0: Mapping[str, float],
    weights: Weights = Weights(),
    keys: LabelKeys = LabelKeys(),
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted design rows and targets of one configuration (see the module docstring)."""
    lab = read_labels(atoms, keys)
    info = atoms.info
    w = float(info.get("weight", 1.0))
    wE = weights.energy_of(atoms)
    wF = w * float(info.get("force_weight", weights.forces))
    wV = w * float(info.get("virial_weight", weights.virial))
    val = basis.evaluate(atoms)
    n = len(atoms)
    rows, ys = [], []
    keep_global = True
    if lab.forces is not None and n:
        ok = np.linalg.norm(lab.forces, axis=1) <= weights.f_max_of(atoms)
        keep_global = bool(ok.all())
        if wF > 0 and ok.any():
            rows.append(wF * val.forces[ok].reshape(-1, basis.size))
            ys.append(wF * lab.forces[ok].ravel())
    if keep_global and lab.energy is not None and wE > 0 and n:
        ref = sum(e0[s] for s in atoms.get_chemical_symbols())
        rows.append(wE / n * val.energy[None, :])
        ys.append(np.array([wE / n * (lab.energy - ref)]))
    if keep_global and lab.virial is not None and val.virial is not None and wV > 0:
        rows.append(wV / n * val.virial)
        ys.append(wV / n * lab.virial)
    if not rows:
        return np.zeros((0, basis.size)), np.zeros(0)
    return np.vstack(rows), np.concatenate(ys)


@dataclasses.dataclass
class NormalEquations:
    """ΨᵀΨ, Ψᵀy, yᵀy and the number of rows of a (weighted) least-squares problem."""

    G: np.ndarray
    b: np.ndarray
    yy: float = 0.0
    n_rows: int = 0

    @classmethod
    def zeros(cls, size: int) -> NormalEquations:
        return cls(np.zeros((size, size)), np.zeros(size))

    def __iadd__(self, other: NormalEquations) -> NormalEquations:
        self.G += other.G
        self.b += other.b
        self.yy += other.yy
        self.n_rows += other.n_rows
        return self

    def __sub__(self, other: NormalEquations) -> NormalEquations:
        return NormalEquations(self.G - other.G, self.b - other.b, self.yy - other.yy, self.n_rows - other.n_rows)

    def add_rows(self, Psi: np.ndarray, y: np.ndarray) -> None:
        self.G += Psi.T @ Psi
        self.b += Psi.T @ y
        self.yy += float(y @ y)
        self.n_rows += len(y)


def _accumulate(basis, configs, e0, weights, keys, progress=None, groups=None) -> list[NormalEquations]:
    """Normal equations of every group of configurations (``groups``: (G, n) booleans; default
    one group of all); each configuration's rows are computed once, whatever its groups."""
    groups = np.ones((1, len(configs)), dtype=bool) if groups is None else np.asarray(groups, dtype=bool)
    nes = [NormalEquations.zeros(basis.size) for _ in groups]
    buffers: list[tuple[list, list]] = [([], []) for _ in groups]

    def flush(g: int) -> None:
        rows, ys = buffers[g]
        if rows:
            nes[g].add_rows(np.vstack(rows), np.concatenate(ys))
        buffers[g] = ([], [])

    for c, atoms in enumerate(configs):
        Psi, y = config_rows(basis, atoms, e0, weights, keys)
        for g in np.flatnonzero(groups[:, c]):
            buffers[g][0].append(Psi)
            buffers[g][1].append(y)
            if sum(len(v) for v in buffers[g][1]) >= ROW_BLOCK:
                flush(g)
        if progress is not None:
            progress.update(1)
    for g in range(len(groups)):
        flush(g)
    return nes


def _accumulate_chunk(args) -> list[NormalEquations]:
    return _accumulate(*args)


def assemble(
    basis: ACEBasis,
    configs: Iterable[Atoms],
    e0: Mapping[str, float],
    weights: Weights = Weights(),
    keys: LabelKeys = LabelKeys(),
    n_workers: int | None = None,
    progress: bool = True,
) -> NormalEquations:
    """Normal equations of all configurations; processes in parallel for more than 64 configs."""
    configs = list(configs)
    return assemble_groups(basis, configs, np.ones((1, len(configs)), bool), e0, weights, keys, n_workers, progress)[0]


def assemble_groups(
    basis: ACEBasis,
    configs: Sequence[Atoms],
    groups: np.ndarray,
    e0: Mapping[str, float],
    weights: Weights = Weights(),
    keys: LabelKeys = LabelKeys(),
    n_workers: int | None = None,
    progress: bool = True,
) -> list[NormalEquations]:
    """Normal equations of several subsets of ``configs`` (``groups``: (G, n) booleans, e.g. each
    ensemble member's training split), evaluating every configuration once. Isolated atoms are
    skipped (they enter through E0). Processes in parallel for more than 64 configurations."""
    groups = np.asarray(groups, dtype=bool)
    if groups.shape != (len(groups), len(configs)):
        raise ValueError(f"groups must have shape (G, {len(configs)}), got {groups.shape}")
    keep = [c for c, a in enumerate(configs) if not is_isolated_atom(a)]
    configs, groups = [configs[c] for c in keep], groups[:, keep]
    n_workers = n_workers or min(os.cpu_count() or 1, 8)
    with tqdm(total=len(configs), desc="design", unit="cfg", disable=not progress, leave=False) as bar:
        if n_workers <= 1 or len(configs) <= 64:
            return _accumulate(basis, configs, e0, weights, keys, bar, groups)
        n_chunks = 4 * n_workers
        idx = [np.arange(k, len(configs), n_chunks) for k in range(n_chunks)]
        jobs = [(basis, [configs[c] for c in i], dict(e0), weights, keys, None, groups[:, i]) for i in idx]
        nes = [NormalEquations.zeros(basis.size) for _ in groups]
        with ProcessPoolExecutor(n_workers) as pool:
            for i, parts in zip(idx, pool.map(_accumulate_chunk, jobs)):
                for ne, part in zip(nes, parts):
                    ne += part
                bar.update(len(i))
    return nes
