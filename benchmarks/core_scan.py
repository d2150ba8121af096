"""Attractive holes below the data: a fitted model's energy along one bond of PEG(2), from far inside its
inner cutoff r_in to past its equilibrium length.

Below the shortest distance in the training data a linear ACE model is unconstrained down to r_in, and
below r_in the pair core continues with the slope it has there (``hal.ace.radial``): repulsive only if the
fit leaves the pair energy falling towards r_in. A model that relaxes or runs MD into such a hole
collapses a bond (the PEG melt of issue 19 did, during its relaxation). This scans the terminal O–H and a
C–H bond of all-trans PEG(2), moving the H atom alone along the bond, and reports the lowest energy found
below 0.8 × the equilibrium length against the energy at equilibrium.

    python benchmarks/core_scan.py [MODEL.npz] [--quick] [--refit]

Default model: the ``--medium`` PEG density run's final model. ``--refit`` also refits that run's
database as the protocol does (w_E 15, w_F 1) twice, with the ``f_max`` = 20 eV/Å rule (forces above it
left out: those of the colliding atoms) and with every force kept, and scans both. Last line:
``oh_hole_depth_ev: <E(eq) − min E below 0.8 r_eq>`` (> 0: a hole that deep; ≤ 0: repulsive), with
``--refit`` that of the refit keeping every force.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import hal
from hal.structures import peg

MODEL = Path(__file__).resolve().parent / "results" / "peg_density_medium_run" / "models" / "iter_024.npz"


def scan(model: hal.LinearACE, h: int, x: int, factors: np.ndarray) -> tuple[float, list[tuple[float, float, float]]]:
    """(equilibrium length r_eq in Å, rows (r, E − E(r_eq), force on H along the bond)) for H atom h bonded to x."""
    atoms = peg(2)
    d = atoms.positions[h] - atoms.positions[x]
    r_eq = float(np.linalg.norm(d))
    u = d / r_eq
    calc = model.calculator()
    rows = []
    for f in factors:
        a = atoms.copy()
        a.positions[h] = a.positions[x] + f * r_eq * u
        a.calc = calc
        rows.append((f * r_eq, a.get_potential_energy(), float(a.get_forces()[h] @ u)))
    e_eq = rows[int(np.argmin(np.abs(factors - 1.0)))][1]
    return r_eq, [(r, e - e_eq, fu) for r, e, fu in rows]


def refits(data_path: Path) -> dict[str, hal.LinearACE]:
    """The run's database refitted with and without the f_max rule (the protocol's weights and basis)."""
    from ase.db import connect

    from hal.config import load
    from hal.fit.design import Weights
    from hal.protocols import default_config, polymer_bulk

    config = load(default_config("polymer_bulk"), polymer_bulk.SCHEMA)
    w_e, w_f, _ = config["fit"]["weights"]
    basis = hal.LinearACE.load(MODEL).basis
    data = [row.toatoms() for row in connect(data_path).select()]
    return {f"f_max {fm:g} eV/Å": hal.fit(data, basis, weights=Weights(energy=w_e, forces=w_f, f_max=fm),
                                           committee_size=32, progress=False)
            for fm in (config["fit"]["f_max"], float("inf"))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(MODEL), help="a saved LinearACE (.npz) on C, H, O")
    ap.add_argument("--quick", action="store_true", help="fewer points")
    ap.add_argument("--refit", action="store_true", help="also refit the --medium run's data with and without f_max")
    args = ap.parse_args()
    models = {Path(args.model).name: hal.LinearACE.load(args.model)}
    if args.refit:
        models.update(refits(MODEL.parents[1] / "data.db"))
    for name, model in models.items():
        print(f"== {name}")
        depth = report(model, args.quick)
    print(f"ch_hole_depth_ev: {depth['C–H']:.3f}")
    print(f"oh_hole_depth_ev: {depth['O–H (terminal)']:.3f}")


def report(model: hal.LinearACE, quick: bool) -> dict[str, float]:
    """Print the scans of both bonds; the depth of each bond's hole (eV, ≤ 0: none)."""
    factors = np.linspace(0.2, 1.4, 7 if quick else 25)
    factors = np.unique(np.append(factors, 1.0))
    atoms = peg(2)
    symbols = atoms.get_chemical_symbols()
    carbons = [i for i, s in enumerate(symbols) if s == "C"]
    h, c = min(((i, j) for i, s in enumerate(symbols) if s == "H" for j in carbons),
               key=lambda p: atoms.get_distance(*p))  # a CH2 hydrogen and its carbon  # fmt: skip
    bonds = {"O–H (terminal)": (0, 1), "C–H": (h, c)}  # peg(): the chain starts H, O
    depth = {}
    for name, (h, x) in bonds.items():
        r_eq, rows = scan(model, h, x, factors)
        zs = list(model.basis.zs)
        i, j = zs.index(atoms.numbers[h]), zs.index(atoms.numbers[x])
        print(f"{name}: r_eq {r_eq:.3f} Å, model r_in {model.basis.r_in[i, j]:.3f} Å")
        print("  r (Å)   E − E(r_eq) (eV)   F_H along the bond (eV/Å)")
        for r, e, fu in rows:
            print(f"  {r:6.3f}  {e:12.3f}  {fu:12.2f}")
        depth[name] = -min(e for r, e, _ in rows if r < 0.8 * r_eq)
    return depth


if __name__ == "__main__":
    main()
