"""Starting structures built from geometry alone (no downloads): linear alkanes, PEG chains and melts, and
molecule pairs in contact."""

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


AMU_PER_A3_TO_G_CM3 = 1.66053907  # 1 amu/Å³ in g/cm³
TORSIONS = np.radians([180.0, 60.0, -60.0])  # trans, gauche±: the rotational isomeric states of a backbone bond


def density(atoms: Atoms) -> float:
    """Mass density of a periodic cell (g/cm³)."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_TO_G_CM3)


def peg_melt(n: int, n_chains: int = 1, density_g_cm3: float = 0.3, seed: int = 0, min_distance: float = 2.0,
             max_tries: int = 20) -> Atoms:  # fmt: skip
    """A periodic cubic box of ``n_chains`` H[OCH2CH2]nOH chains at ``density_g_cm3``: each backbone a
    self-avoiding random walk with PEG's bond lengths and zigzag angle and random trans/gauche torsions,
    CH2 hydrogens tetrahedral; atoms more than two bonds apart are at least ``min_distance`` Å apart
    (minimum image). Chain by chain: backbone atoms in chain order, then its hydrogens. Not relaxed."""
    if n < 1 or n_chains < 1:
        raise ValueError(f"n and n_chains must be >= 1, got {n}, {n_chains}")
    chain = ["H", "O"] + ["C", "C", "O"] * n + ["H"]
    mass = peg(n).get_masses().sum() * n_chains
    side = (mass * AMU_PER_A3_TO_G_CM3 / density_g_cm3) ** (1 / 3)
    rng = np.random.default_rng(seed)
    placed = np.zeros((0, 3))  # every atom of the finished chains
    out = Atoms(pbc=True, cell=[side] * 3)
    for _ in range(n_chains):
        for _ in range(max_tries):
            grown = _grow(chain, placed, side, min_distance, rng)
            if grown is not None:
                break
        else:
            raise RuntimeError(f"no self-avoiding chain in {max_tries} tries: lower the density or min_distance")
        backbone, hs = grown
        out += Atoms(chain + ["H"] * len(hs), positions=np.vstack([backbone, hs]))
        placed = np.vstack([placed, backbone, hs])
    out.wrap()
    return out


def molecule_contacts(molecule: Atoms, count: int, min_distance: float = 0.8, max_distance: float = 2.5,
                      seed: int = 0) -> list[Atoms]:  # fmt: skip
    """``count`` pairs of ``molecule`` in independent random orientations, the second moved along a random
    direction until the closest distance between the two is a uniform draw from [min_distance,
    max_distance] (Å, to 1e-6 Å): non-bonded contacts (H···H, C···H, O–H···O) that isolated molecules never
    show, tagged ``config_type = "contact"``. Not periodic."""
    from scipy.spatial.distance import cdist
    from scipy.spatial.transform import Rotation

    if count < 0 or not 0 < min_distance <= max_distance:
        raise ValueError(f"need count >= 0 and 0 < min_distance <= max_distance, got {count}, {min_distance}, "
                         f"{max_distance}")  # fmt: skip
    rng = np.random.default_rng(seed)
    centred = molecule.positions - molecule.get_center_of_mass()
    far = 2 * np.ptp(centred, axis=0).max() + max_distance + 1.0  # no contact at this separation
    out = []
    for _ in range(count):
        a, b = (Rotation.random(random_state=rng.integers(2**31)).apply(centred) for _ in range(2))
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        target = rng.uniform(min_distance, max_distance)
        lo, hi = 0.0, far  # closest distance < target at lo, ≥ target at hi: bisect the separation
        while hi - lo > 1e-7:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if cdist(a, b + mid * u).min() < target else (lo, mid)
        pair = Atoms(molecule.numbers.tolist() * 2, positions=np.vstack([a, b + hi * u]))
        pair.info["config_type"] = "contact"
        out.append(pair)
    return out


def _grow(chain: list[str], placed: np.ndarray, side: float, min_distance: float, rng: np.random.Generator,
          budget: int = 50):  # fmt: skip
    """One backbone walk and its CH2 hydrogens (depth first: a dead end takes the previous atom's next
    torsion), or None after ``budget`` placements per atom."""
    bond = [BONDS[tuple(sorted(chain[k - 1 : k + 1]))] for k in range(1, len(chain))]
    for _ in range(budget):  # the first bond, clear of the other chains
        u = rng.normal(size=3)
        pos = [rng.uniform(0, side, 3)]
        pos.append(pos[0] + bond[0] * u / np.linalg.norm(u))
        if all(_clear(p, placed, side, min_distance) for p in pos):
            break
    else:
        return None
    frame = pos[0] + _perpendicular(pos[1] - pos[0])  # fixes the first torsion
    hs: list[list[np.ndarray]] = [[], []]  # per backbone atom: the hydrogens of its carbon (placed with the next atom)
    options = [[], []]  # per backbone atom: torsions not tried yet
    tries = 0
    while len(pos) < len(chain):
        k = len(pos)
        if len(options) == k:  # a new atom: trans first half the time, else a gauche
            options.append(list(TORSIONS[rng.choice(3, 3, replace=False, p=[0.5, 0.25, 0.25])]))
        if not options[k] or tries > budget * len(chain):
            if k == 2 or tries > budget * len(chain):
                return None
            options.pop()  # dead end: back to the previous atom's next torsion
            pos.pop()
            hs.pop()
            hs[-1] = []
            continue
        tries += 1
        a, b, c = pos[-3:] if k > 2 else (frame, *pos[-2:])
        new = _place(a, b, c, bond[k - 1], ANGLE_PEG, options[k].pop())
        new_h = _hydrogens(b, c, new) if chain[k - 1] == "C" else []
        # clear of the other chains and of every atom of this one more than two bonds away
        others = np.vstack([placed, *pos[: k - 2], *[h for hk in hs[: k - 1] for h in hk]]).reshape(-1, 3)
        if all(_clear(p, others, side, min_distance) for p in [new, *new_h]):
            hs[-1] = new_h
            pos.append(new)
            hs.append([])
    return np.array(pos), np.array([h for hk in hs for h in hk]).reshape(-1, 3)


def _perpendicular(v: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to ``v`` (fixes the first torsion's frame)."""
    w = np.cross(v, [1.0, 0.0, 0.0] if abs(v[0]) < 0.9 * np.linalg.norm(v) else [0.0, 1.0, 0.0])
    return w / np.linalg.norm(w)


def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, length: float, angle: float, torsion: float) -> np.ndarray:
    """The atom d bonded to c with |cd| = length, ∠bcd = angle and torsion a–b–c–d (radians): the NeRF step."""
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    d = length * np.array([-np.cos(angle), np.sin(angle) * np.cos(torsion), np.sin(angle) * np.sin(torsion)])
    return c + d[0] * bc + d[1] * m + d[2] * n


def _hydrogens(prev: np.ndarray, carbon: np.ndarray, nxt: np.ndarray) -> list[np.ndarray]:
    """The two tetrahedral hydrogens of a backbone CH2 between ``prev`` and ``nxt``."""
    b = (carbon - prev) / np.linalg.norm(carbon - prev) + (carbon - nxt) / np.linalg.norm(carbon - nxt)
    b /= np.linalg.norm(b)
    z = np.cross(carbon - prev, nxt - carbon)
    z /= np.linalg.norm(z)
    return [carbon + BONDS[("C", "H")] * (np.cos(TETRA / 2) * b + s * np.sin(TETRA / 2) * z) for s in (1, -1)]


def _clear(p: np.ndarray, others: np.ndarray, side: float, min_distance: float) -> bool:
    """Whether ``p`` is at least ``min_distance`` from every row of ``others`` (minimum image, cubic box)."""
    if not len(others):
        return True
    d = others - p
    d -= side * np.round(d / side)
    return bool(np.min(np.einsum("ij,ij->i", d, d)) >= min_distance**2)
