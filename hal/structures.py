"""Starting structures built from geometry alone (no downloads): linear alkanes, PEG chains."""

from __future__ import annotations

import numpy as np
from ase import Atoms

CC, CH = 1.53, 1.09  # bond lengths (Å)
ANGLE_CCC = np.radians(112.0)
TETRA = np.radians(109.47)


def linear_alkane(n_carbon: int) -> Atoms:
    """All-trans CₙH₂ₙ₊₂ (n ≥ 1), carbons first (C1 … Cn), then hydrogens; not relaxed."""
    if n_carbon < 1:
        raise ValueError(f"n_carbon must be >= 1, got {n_carbon}")
    half = ANGLE_CCC / 2
    carbons = np.array([[k * CC * np.sin(half), (k % 2) * CC * np.cos(half), 0.0] for k in range(n_carbon)])
    z = np.array([0.0, 0.0, 1.0])
    hs = []
    for k, c in enumerate(carbons):
        nbs = [carbons[m] for m in (k - 1, k + 1) if 0 <= m < n_carbon]
        if len(nbs) == 2:  # CH2: in the plane of the bisector and the chain normal
            b = (c - nbs[0]) + (c - nbs[1])
            b /= np.linalg.norm(b)
            a = TETRA / 2
            hs += [c + CH * (np.cos(a) * b + s * np.sin(a) * z) for s in (1, -1)]
            continue
        # CH3 (or CH4): one H anti to the chain, the others 120° around the bond axis
        u = (c - nbs[0]) / np.linalg.norm(c - nbs[0]) if nbs else np.array([1.0, 0.0, 0.0])
        e1 = np.array([0.0, 1.0 if k % 2 == 0 else -1.0, 0.0])
        e1 -= e1.dot(u) * u
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(u, e1)
        beta = np.pi - TETRA
        dirs = [
            np.cos(beta) * u + np.sin(beta) * (np.cos(p) * e1 + np.sin(p) * e2) for p in np.radians([0.0, 120.0, 240.0])
        ]
        if not nbs:
            dirs.append(-u)
        hs += [c + CH * d for d in dirs]
    atoms = Atoms(f"C{n_carbon}H{len(hs)}", positions=np.vstack([carbons, hs]))
    atoms.center(vacuum=0.0)
    return atoms


BONDS = {("C", "C"): 1.52, ("C", "O"): 1.42, ("H", "O"): 0.96, ("C", "H"): 1.09}  # Å
ANGLE_PEG = np.radians(110.0)  # one zigzag angle for C–C–O, C–O–C and C–O–H


def peg(n: int, relax_with=None, fmax: float = 0.02) -> Atoms:
    """All-trans H[OCH2CH2]nOH (n ≥ 1): a planar zigzag H–O–(C–C–O)n–H backbone with tetrahedral CH2
    hydrogens; backbone atoms first, in chain order. ``relax_with``: an ASE calculator to relax it
    (BFGS to ``fmax`` eV/Å)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    chain = ["H", "O"] + ["C", "C", "O"] * n + ["H"]
    half = ANGLE_PEG / 2
    pos = [np.zeros(3)]
    for k in range(1, len(chain)):
        step = np.array([np.sin(half), np.cos(half) * (1 if k % 2 else -1), 0.0])
        pos.append(pos[-1] + BONDS[tuple(sorted(chain[k - 1 : k + 1]))] * step)
    pos = np.array(pos)
    z = np.array([0.0, 0.0, 1.0])
    hs = []
    for k, sym in enumerate(chain):
        if sym != "C":
            continue
        b = (pos[k] - pos[k - 1]) / np.linalg.norm(pos[k] - pos[k - 1])
        b += (pos[k] - pos[k + 1]) / np.linalg.norm(pos[k] - pos[k + 1])
        b /= np.linalg.norm(b)
        hs += [pos[k] + BONDS[("C", "H")] * (np.cos(TETRA / 2) * b + sgn * np.sin(TETRA / 2) * z) for sgn in (1, -1)]
    atoms = Atoms(chain + ["H"] * len(hs), positions=np.vstack([pos, hs]))
    atoms.center(vacuum=5.0)
    atoms.pbc = False
    if relax_with is not None:
        from ase.optimize import BFGS

        atoms.calc = relax_with
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=500)
        atoms.calc = None
    return atoms
