"""Demonstration job: a linear ACE model fitted by least squares to EMT-labelled Cu–Al cells.

It stands in for the HAL loop until that exists. Data: random substitutional fcc Cu–Al cells of
32 atoms (lattice constants 3.7–4.1 Å, rattled by up to 0.15 Å), labelled with ASE's EMT (no
licence, no network). Rows: energies per atom (weight 1 / N_atoms), forces, virials per atom;
a small ridge on column-normalised features. Writes the model file, a parity plot and the table.

    python -m hal.demo [--out runs/demo] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from tqdm import tqdm

from hal import ACEBasis, LinearACE
from hal.fit.metrics import errors


def alloy_cells(n: int, seed: int = 0, elements: tuple[str, str] = ("Cu", "Al")) -> list[Atoms]:
    """n random substitutional fcc cells (32 atoms) labelled with EMT: energy, forces, stress."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in tqdm(range(n), desc="EMT labels", unit="cell", leave=False):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.7, 4.1), cubic=True) * (2, 2, 2)
        frac = rng.uniform(0.1, 0.9)
        atoms.symbols = [elements[int(rng.random() < frac)] for _ in range(len(atoms))]
        atoms.rattle(rng.uniform(0.02, 0.15), rng=rng)
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.info["stress"] = atoms.get_stress()
        atoms.calc = None
        out.append(atoms)
    return out


def isolated_atom_energies(elements: tuple[str, ...]) -> dict[str, float]:
    """EMT energy of each isolated atom (eV): the per-species reference E0."""
    e0 = {}
    for el in elements:
        atom = Atoms(el)
        atom.calc = EMT()
        e0[el] = atom.get_potential_energy()
    return e0


def design_rows(basis: ACEBasis, atoms: Atoms, e0: dict[str, float], w_v: float = 1.0):
    """(rows, targets) of one configuration: E/N, forces, virial/N (virial = -stress · volume)."""
    val = basis.evaluate(atoms)
    n = len(atoms)
    ref = sum(e0[s] for s in atoms.get_chemical_symbols())
    rows = [val.energy[None, :] / n, val.forces.reshape(3 * n, -1)]
    ys = [np.array([(atoms.info["energy"] - ref) / n]), atoms.arrays["forces"].ravel()]
    if val.virial is not None and "stress" in atoms.info:
        rows.append(w_v * val.virial / n)
        ys.append(w_v * -np.asarray(atoms.info["stress"]) * atoms.get_volume() / n)
    return np.vstack(rows), np.concatenate(ys)


def least_squares(basis: ACEBasis, configs: list[Atoms], e0: dict[str, float], ridge: float = 1e-8):
    """Ridge least squares on column-normalised rows; returns a LinearACE model."""
    rows, ys = zip(*(design_rows(basis, a, e0) for a in tqdm(configs, desc="design", leave=False)))
    Psi, y = np.vstack(rows), np.concatenate(ys)
    scale = np.linalg.norm(Psi, axis=0)
    scale[scale == 0] = 1.0
    Psi = Psi / scale
    lhs = Psi.T @ Psi + ridge * np.eye(Psi.shape[1])
    coef = np.linalg.solve(lhs, Psi.T @ y) / scale
    return LinearACE(basis, coef, e0)


def parity_plot(model: LinearACE, configs: list[Atoms], path: Path) -> None:
    """Force parity plot (model vs EMT) of the test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = np.concatenate([a.arrays["forces"].ravel() for a in configs])
    pred = np.concatenate([model.evaluate(a).forces[0].ravel() for a in configs])
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot(ref, pred, ".", ms=2, alpha=0.5)
    lim = np.abs(np.concatenate([ref, pred])).max() * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.6)
    ax.set(
        xlim=(-lim, lim), ylim=(-lim, lim), xlabel="EMT force (eV/Å)", ylabel="ACE force (eV/Å)", title="Cu–Al test set"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo", help="output directory")
    ap.add_argument("--quick", action="store_true", help="smaller data and basis (a few seconds)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_test = (24, 8) if args.quick else (80, 20)
    t0 = time.perf_counter()
    basis = ACEBasis(
        ["Cu", "Al"],
        order=3,
        max_degree=[10, 8, 6] if args.quick else [14, 12, 9],
        r_cut=5.0,
        r0=2.6,
        r_in=1.6,
        pair_degree=6,
    )
    print(basis.summary())
    configs = alloy_cells(n_train + n_test, seed=0)
    train, test = configs[:n_train], configs[n_train:]
    e0 = isolated_atom_energies(("Cu", "Al"))
    model = least_squares(basis, train, e0)
    path = model.save(out / "model.npz")
    table = {"train": errors(model, train)["all"], "test": errors(model, test)["all"]}
    parity_plot(model, test, out / "parity_forces.png")
    print(f"\n{n_train} train / {n_test} test configurations (32 atoms), basis {basis.size} functions")
    print(f"{'set':6s} {'E RMSE':>10s} {'E MAE':>10s} {'F RMSE':>10s} {'F MAE':>10s}")
    print(f"{'':6s} {'meV/atom':>10s} {'meV/atom':>10s} {'eV/Å':>10s} {'eV/Å':>10s}")
    for name, e in table.items():
        print(f"{name:6s} {e['E_rmse']:10.2f} {e['E_mae']:10.2f} {e['F_rmse']:10.4f} {e['F_mae']:10.4f}")
    print(f"\nmodel: {path}\nparity plot: {out / 'parity_forces.png'}\nwall time {time.perf_counter() - t0:.1f} s")
    return table


if __name__ == "__main__":
    main()
