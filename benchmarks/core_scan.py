"""Attractive holes below the data: a fitted PEG model's energy along a bond, from far inside its inner
cutoff r_in to past equilibrium, and between two molecules pushed into contact, against the oracle.

Below the shortest distance in the training data a linear ACE model is unconstrained down to r_in, and
below r_in the pair core continues with the slope it has there (``hal.ace.radial``): repulsive only if the
fit leaves the pair energy falling towards r_in. Between molecules, a model of isolated chains has never
seen two non-bonded atoms closer than ≈ 1.8 Å. A model that relaxes or runs MD into such a hole collapses
(the PEG melt of issue 19 did). This moves the H atom of the terminal O–H and of a C–H of all-trans PEG(2)
along its bond (depth: the lowest energy below 0.8 r_eq under E(r_eq)), and brings the hydroxyl H of one
PEG(2) head-on onto a CH2 hydrogen of another, 0.6–4 Å, beside tblite's energies (depth: the lowest energy
below 1 Å under that at 4 Å; tblite's is +0.85 eV at 1 Å and rising).

    python benchmarks/core_scan.py [MODEL.npz] [--quick] [--refit]

Default model: the ``--medium`` PEG density run's final model. ``--refit`` also refits that run's database
as the protocol does (w_E 15, w_F 1, f_max 20 eV/Å) three ways, to see what each kind of data does: the
chains' MD and HAL frames alone, with the oracle dimers (``fit.dimers``), and with dimers and molecule
contacts (``[contacts]``; the protocol's fit). Last lines: ``ch_hole_depth_ev``, ``hh_contact_hole_ev``
and ``oh_hole_depth_ev`` of the last model scanned (> 0: a hole that deep; ≤ 0: repulsive).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

import hal
from hal.structures import peg

RUN = Path(__file__).resolve().parent / "results" / "peg_density_medium_run"
CONTACT = np.array([0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 2.4, 3.0, 4.0])  # H···H (Å)


def default_model() -> Path:
    """The medium run's last model (fitted on every label)."""
    return sorted((RUN / "models").glob("iter_*.npz"))[-1]


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


def contact_pairs() -> list:
    """Two PEG(2): the hydroxyl H of the second head-on onto a CH2 hydrogen of the first, at each ``CONTACT``."""
    a = peg(2)
    symbols = a.get_chemical_symbols()
    c = symbols.index("C")
    h = min((i for i, s in enumerate(symbols) if s == "H" and i > 1), key=lambda i: a.get_distance(i, c))
    u = (a.positions[h] - a.positions[c]) / a.get_distance(h, c)
    b = peg(2)  # peg(): the chain starts H, O
    v = (b.positions[0] - b.positions[1]) / b.get_distance(0, 1)
    rot = Rotation.align_vectors([-u], [v])[0]
    b.positions = rot.apply(b.positions - b.positions[0])
    out = []
    for d in CONTACT:
        pair = a + b
        pair.positions[len(a) :] = b.positions + a.positions[h] + d * u
        out.append(pair)
    return out


def energies(pairs: list, calc) -> np.ndarray:
    """Energies (eV) relative to the last pair's (the farthest)."""
    e = []
    for p in pairs:
        p = p.copy()
        p.calc = calc
        e.append(p.get_potential_energy())
    return np.array(e) - e[-1]


def refits(run: Path) -> dict[str, hal.LinearACE]:
    """The run's database refitted as the protocol does, without and with the dimers and the contacts."""
    from hal.fit.design import Weights
    from hal.loop.store import Store

    data = Store(run / "data.db").labelled()
    basis = hal.LinearACE.load(default_model()).basis
    kinds = {"chains only": (), "chains + dimers": ("dimer",), "chains + dimers + contacts": ("dimer", "contact")}
    w = Weights(energy=15.0, forces=1.0, virial=0.0, f_max=20.0)
    extra = ("dimer", "contact")
    return {name: hal.fit([a for a in data if a.info.get("config_type") not in extra or a.info["config_type"] in keep],
                          basis, weights=w, committee_size=32, progress=False)
            for name, keep in kinds.items()}  # fmt: skip


def report(model: hal.LinearACE, quick: bool, oracle_contact: np.ndarray) -> dict[str, float]:
    """Print the scans of both bonds and the contact; each one's hole depth (eV, ≤ 0: none)."""
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
    e_model = energies(contact_pairs(), model.calculator())
    print("H···H contact of two PEG(2) (hydroxyl H onto a CH2 H): E − E(4 Å) (eV)")
    print("  H···H (Å)   model     oracle")
    for d, em, eo in zip(CONTACT, e_model, oracle_contact):
        print(f"  {d:6.2f}  {em:9.3f}  {eo:9.3f}")
    depth["H···H"] = -float(e_model[CONTACT <= 1.0].min())
    return depth


def main() -> None:
    from hal.oracles import TBLiteRetry

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="a saved LinearACE (.npz) on C, H, O (default: the --medium run's)")
    ap.add_argument("--quick", action="store_true", help="fewer points along the bonds")
    ap.add_argument("--refit", action="store_true", help="also refit the --medium run's data with and without "
                    "the dimers and contacts")  # fmt: skip
    args = ap.parse_args()
    path = Path(args.model) if args.model else default_model()
    models = {path.name: hal.LinearACE.load(path)}
    if args.refit:
        models.update(refits(RUN))
    oracle = energies(contact_pairs(), TBLiteRetry())
    for name, model in models.items():
        print(f"== {name}")
        depth = report(model, args.quick, oracle)
    print(f"ch_hole_depth_ev: {depth['C–H']:.3f}")
    print(f"hh_contact_hole_ev: {depth['H···H']:.3f}")
    print(f"oh_hole_depth_ev: {depth['O–H (terminal)']:.3f}")


if __name__ == "__main__":
    main()
