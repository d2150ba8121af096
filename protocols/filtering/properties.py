"""Properties of diamond silicon for any ASE calculator: E–V curve and bulk modulus (``ase.eos``),
relaxed elastic constants (matscipy), phonon bands, DOS and F(T), Cv(T) (phonopy, 4×4×4 primitive
supercell). The same functions score the oracle and every model, so differences are the model's."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

GPA = 1 / units.GPa  # eV/Å³ → GPa
BAND_PATH = "GXWKGL"  # fcc special points, explicit (seekpath is not a dependency)
KJ_PER_MOL = units.kJ / units.mol  # eV


def relaxed(atoms: Atoms, calc: Calculator, fmax: float = 1e-3, steps: int = 300) -> Atoms:
    """A copy of ``atoms`` with positions and cell relaxed by ``calc`` (BFGS on a Fréchet cell filter)."""
    atoms = atoms.copy()
    atoms.calc = calc
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    atoms.calc = None
    return atoms


def relaxed_diamond(calc: Calculator, a: float = 5.43, fmax: float = 1e-5) -> Atoms:
    """The 8-atom cubic diamond cell relaxed by ``calc`` (cell and positions)."""
    return relaxed(bulk("Si", "diamond", a=a, cubic=True), calc, fmax, steps=200)


def _birch_murnaghan(V: list[float], E: list[float]) -> tuple[float, float, float]:
    """V0 (Å³/atom), E0 (eV/atom), B (eV/Å³) of a Birch–Murnaghan fit; NaN where it finds no minimum."""
    try:
        return EquationOfState(V, E, eos="birchmurnaghan").fit()
    except (RuntimeError, ValueError):  # no minimum on the grid (an early, poor model)
        return np.nan, np.nan, np.nan


def _energies(calc: Calculator, a0: float, strains: np.ndarray) -> tuple[list[float], list[float]]:
    """Volume (Å³/atom) and energy (eV/atom) of the cubic diamond cell at lattice constants a0·strains."""
    V, E = [], []
    for s in strains:
        atoms = bulk("Si", "diamond", a=a0 * s, cubic=True)
        atoms.calc = calc
        V.append(atoms.get_volume() / len(atoms))
        E.append(atoms.get_potential_energy() / len(atoms))
    return V, E


def equation_of_state(calc: Calculator, a0: float, strains: np.ndarray | None = None, fit_strain: float = 0.01) -> dict:
    """The E–V curve per atom on a ±6 % lattice grid about ``a0`` (``V``, ``E``, and ``B_curve`` (GPa), the
    Birch–Murnaghan B of the whole curve), and the equilibrium V0, E0, B (GPa), a0 (Å) from a fit over
    ±``fit_strain`` (1 %, about the ±1.25 % of the elastic constants): B is a property of the minimum, and a fit
    to the whole curve mixes into it the curve's errors at ±18 % in volume."""
    strains = np.linspace(0.94, 1.06, 13) if strains is None else strains
    V, E = _energies(calc, a0, strains)
    b_curve = _birch_murnaghan(V, E)[2]
    v0, e0, b = _birch_murnaghan(*_energies(calc, a0, np.linspace(1 - fit_strain, 1 + fit_strain, 13)))
    return {"V": np.array(V), "E": np.array(E), "strains": np.asarray(strains), "B_curve": float(b_curve * GPA),
            "V0": float(v0), "E0": float(e0), "B": float(b * GPA), "a0": float((8 * v0) ** (1 / 3))}  # fmt: skip


def elastic_constants(calc: Calculator, cell: Atoms) -> dict:
    """Relaxed-ion C11, C12, C44 (GPa) of a relaxed cubic cell by stress–strain regression."""
    from matscipy.elasticity import fit_elastic_constants

    atoms = cell.copy()
    atoms.calc = calc
    C, _ = fit_elastic_constants(atoms, symmetry="cubic", N_steps=5, delta=0.005, optimizer=BFGS, fmax=1e-5,
                                 verbose=False)  # fmt: skip
    C = C * GPA
    return {"C11": float(C[0, 0]), "C12": float(C[0, 1]), "C44": float(C[3, 3])}


def phonons(calc: Calculator, a0: float, supercell: int = 4, mesh: int = 16,
            temperatures: np.ndarray | None = None, npoints: int = 120) -> dict:  # fmt: skip
    """Phonons of the 2-atom primitive cell from a supercell³ finite-displacement supercell: bands
    along Γ–X–W–K–Γ–L (THz), total DOS, and F(T) (meV/atom), Cv(T) (k_B/atom) on a mesh³ q-mesh."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    prim = bulk("Si", "diamond", a=a0)
    unit = PhonopyAtoms(
        symbols=prim.get_chemical_symbols(), cell=prim.cell[:], scaled_positions=prim.get_scaled_positions()
    )
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * supercell, primitive_matrix=None)
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    path = prim.cell.bandpath(BAND_PATH, npoints=npoints)
    ph.run_qpoints(path.kpts)
    bands = ph.qpoints.frequencies
    ph.run_mesh([mesh] * 3, is_gamma_center=True)
    ph.run_total_dos()
    dos = ph.total_dos
    T = np.arange(0, 1001, 50.0) if temperatures is None else np.asarray(temperatures, dtype=float)
    ph.run_thermal_properties(temperatures=T, exclude_gamma_acoustic=True)
    th = ph.thermal_properties
    n = len(prim)
    x, xs, labels = path.get_linear_kpoint_axis()
    return {
        "x": np.asarray(x), "special_x": np.asarray(xs), "labels": list(labels), "bands": np.asarray(bands),
        "dos_f": np.asarray(dos.frequency_points), "dos": np.asarray(dos.dos) / n,
        "T": T, "F": np.asarray(th.free_energy) * KJ_PER_MOL / n * 1e3,
        "Cv": np.asarray(th.heat_capacity) * units.J / units.mol / n / units.kB,
    }  # fmt: skip


def diamond_properties(calc: Calculator, phonon_supercell: int = 4) -> dict:
    """Everything above for one calculator: a0, E–V and B, C11/C12/C44, phonons and thermal."""
    cell = relaxed_diamond(calc)
    a0 = float(np.cbrt(cell.get_volume()))
    eos = equation_of_state(calc, a0)
    return {"a0": a0, "eos": eos, "B": eos["B"], **elastic_constants(calc, cell),
            "phonons": phonons(calc, a0, phonon_supercell)}  # fmt: skip


def compare(model: dict, ref: dict, at_K: float = 300.0) -> dict:
    """Model against reference: relative errors of B, C11, C12, C44; the largest relative phonon
    frequency error along the path (modes above 1 THz); F(at_K) error (meV/atom); a0 error (Å); the largest
    E–V curve error (meV/atom, each curve from its own minimum, at the same lattice strains; not a goal)."""
    out = {k: (model[k] - ref[k]) / ref[k] for k in ("B", "C11", "C12", "C44")}
    mb, rb = model["phonons"]["bands"], ref["phonons"]["bands"]
    hi = rb > 1.0
    out["phonon_max_rel"] = float(np.max(np.abs(mb[hi] - rb[hi]) / rb[hi]))
    i = int(np.argmin(np.abs(ref["phonons"]["T"] - at_K)))
    out["F_300K_meV"] = float(model["phonons"]["F"][i] - ref["phonons"]["F"][i])
    out["a0"] = model["a0"] - ref["a0"]
    me, oe = np.asarray(model["eos"]["E"]), np.asarray(ref["eos"]["E"])
    out["EV_max_meV"] = float(np.max(np.abs((me - me.min()) - (oe - oe.min()))) * 1e3)
    return out


def converged(comparison: dict, goals: dict) -> bool:
    """True when every |error| is within its goal (``goals``: key → bound, relative or meV/atom)."""
    return all(abs(comparison[k]) <= v for k, v in goals.items())


GOALS: dict[str, float] = {"B": 0.02, "C11": 0.02, "C12": 0.02, "C44": 0.02, "phonon_max_rel": 0.03, "F_300K_meV": 1.0}
