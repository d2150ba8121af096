"""Covalent topology of molecules: bonds that left their length window (the MD stability test of SPEC §7)
and O–H···O hydrogen bonds (end-to-end or internal), from a reference structure's bond graph."""

from __future__ import annotations

import dataclasses

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import natural_cutoffs, neighbor_list
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, shortest_path

from hal.structures import density

# SPEC §7: C–C and C–O within 1.0–2.0 Å, C–H and O–H within 0.8–2.0 Å (Å); other pairs 0.6–2.5 Å
WINDOWS = {("C", "C"): (1.0, 2.0), ("C", "O"): (1.0, 2.0), ("C", "H"): (0.8, 2.0), ("H", "O"): (0.8, 2.0)}
DEFAULT_WINDOW = (0.6, 2.5)


@dataclasses.dataclass(frozen=True)
class BrokenBond:
    """A bond of the reference outside its window in a frame: atoms i, j, the pair's name (``pair_name``),
    length (Å)."""

    i: int
    j: int
    pair: str
    length: float
    window: tuple[float, float]

    @property
    def side(self) -> str:
        """Which side of its window the bond left: "short" below it (a model that lacks repulsion), "long" above
        it (one that binds too weakly)."""
        return "short" if self.length < self.window[0] else "long"

    def __str__(self) -> str:
        return f"{self.pair} {self.side} {self.length:.2f} Å (atoms {self.i}, {self.j})"


def pair_name(a: str, b: str) -> str:
    """A bond's conventional name: heavy atoms alphabetically, hydrogen last (C–C, C–H, C–O, O–H)."""
    return "–".join(sorted((a, b), key=lambda e: (e == "H", e)))


@dataclasses.dataclass(frozen=True)
class HydrogenBond:
    """O_donor–H···O_acceptor: H···O distance (Å), O–H···O angle (degrees), kind "end-to-end" or "internal"."""

    donor: int
    hydrogen: int
    acceptor: int
    distance: float
    angle: float
    kind: str


class Topology:
    """The bond graph of a reference molecule (covalent radii × ``scale``), to check frames against."""

    def __init__(self, reference: Atoms, scale: float = 1.15) -> None:
        i, j = neighbor_list("ij", reference, [c * scale for c in natural_cutoffs(reference)])
        keep = i < j
        self.bonds = np.stack([i[keep], j[keep]], axis=1)
        self.symbols = np.array(reference.get_chemical_symbols())
        self.hops = shortest_path(self._adjacency(), directed=False, unweighted=True)  # bonds apart (inf: never)
        self.windows = np.array([WINDOWS.get(tuple(sorted(self.symbols[[a, b]])), DEFAULT_WINDOW)
                                 for a, b in self.bonds]).reshape(-1, 2)  # fmt: skip

    @property
    def molecules(self) -> np.ndarray:
        """The molecule of each atom (0, 1, …): the connected parts of the bond graph."""
        return connected_components(self._adjacency(), directed=False)[1]

    def _adjacency(self) -> csr_matrix:
        n = len(self.symbols)
        return csr_matrix((np.ones(len(self.bonds)), (self.bonds[:, 0], self.bonds[:, 1])), shape=(n, n))

    def molecules_scaled(self, atoms: Atoms, density_g_cm3: float) -> Atoms:
        """A copy of the periodic box ``atoms`` at ``density_g_cm3`` (cell scaled) with each of the reference's
        molecules moved rigidly: unwrapped across the boundary along its bonds, its centre scaled with the
        cell. The same packing at another density, for an equation of state."""
        if not atoms.pbc.all() or density_g_cm3 <= 0:
            raise ValueError("molecules_scaled needs a periodic box and a positive density")
        adjacency, positions = self._adjacency(), atoms.positions.copy()
        scale = (density(atoms) / density_g_cm3) ** (1 / 3)
        label = self.molecules
        for m in range(label.max() + 1):
            members = np.flatnonzero(label == m)
            order, parent = breadth_first_order(adjacency, members[0], directed=False)
            for k in order[1:]:  # each atom placed from its parent by their minimum-image bond vector
                positions[k] = positions[parent[k]] + find_mic(atoms.positions[k] - atoms.positions[parent[k]],
                                                               atoms.cell)[0]  # fmt: skip
            positions[members] += (scale - 1) * positions[members].mean(axis=0)
        out = atoms.copy()
        out.set_cell(atoms.cell * scale)
        out.positions = positions
        out.wrap()
        return out

    def lengths(self, atoms: Atoms) -> np.ndarray:
        """Lengths (Å) of the reference's bonds in ``atoms`` (minimum image where periodic)."""
        v = atoms.positions[self.bonds[:, 1]] - atoms.positions[self.bonds[:, 0]]
        if atoms.pbc.any() and len(v):
            v, _ = find_mic(v, atoms.cell, atoms.pbc)
        return np.linalg.norm(v, axis=1)

    def broken(self, atoms: Atoms) -> list[BrokenBond]:
        """The reference's bonds outside their window in ``atoms`` (none: the topology holds)."""
        d = self.lengths(atoms)
        bad = np.flatnonzero((d < self.windows[:, 0]) | (d > self.windows[:, 1]))
        out = []
        for k in bad:
            i, j = (int(x) for x in self.bonds[k])
            lo, hi = (float(x) for x in self.windows[k])
            out.append(BrokenBond(i, j, pair_name(self.symbols[i], self.symbols[j]), float(d[k]), (lo, hi)))
        return out

    def intact(self, atoms: Atoms) -> bool:
        d = self.lengths(atoms)
        return bool(np.all((d >= self.windows[:, 0]) & (d <= self.windows[:, 1])))

    def intact_copies(self, positions: np.ndarray) -> np.ndarray:
        """For positions (m, N, 3) of m non-periodic copies of the molecule: True where every bond holds
        (NaN positions count as broken)."""
        b = self.bonds
        d = np.linalg.norm(positions[:, b[:, 1]] - positions[:, b[:, 0]], axis=-1)
        return np.all((d >= self.windows[:, 0]) & (d <= self.windows[:, 1]), axis=-1)

    def hydrogen_bonds(self, atoms: Atoms, max_distance: float = 2.5, min_angle: float = 120.0,
                       min_hops: int = 4) -> list[HydrogenBond]:  # fmt: skip
        """O–H···O hydrogen bonds: H···O < ``max_distance`` Å, ∠O–H···O > ``min_angle``°, and donor and
        acceptor O at least ``min_hops`` bonds apart (not neighbouring groups). End-to-end: a terminal
        OH donating to the other terminal O; everything else internal."""
        s = self.symbols
        oxygens = np.flatnonzero(s == "O")
        terminal = set(self.terminal_oxygens())
        out = []
        pos = atoms.positions
        for a, b in self.bonds:
            o, h = (a, b) if s[a] == "O" else (b, a)
            if not (s[o] == "O" and s[h] == "H"):
                continue
            for acc in oxygens:
                if acc == o or self.hops[o, acc] < min_hops:
                    continue
                r = pos[acc] - pos[h]
                dist = float(np.linalg.norm(r))
                if dist >= max_distance:
                    continue
                u = pos[o] - pos[h]
                angle = float(np.degrees(np.arccos(np.clip(u @ r / (np.linalg.norm(u) * dist), -1.0, 1.0))))
                if angle > min_angle:
                    kind = "end-to-end" if o in terminal and acc in terminal else "internal"
                    out.append(HydrogenBond(int(o), int(h), int(acc), dist, angle, kind))
        return out

    def terminal_oxygens(self) -> list[int]:
        """The oxygens bonded to a hydrogen (a chain's hydroxyl ends), in index order."""
        s = self.symbols
        return [int(o) for o in np.flatnonzero(s == "O") if any(s[n] == "H" for n in self._neighbours(o))]

    def _neighbours(self, a: int) -> np.ndarray:
        b = self.bonds
        return np.concatenate([b[b[:, 0] == a, 1], b[b[:, 1] == a, 0]])


class BondGuard:
    """A HAL stop (``run_hal(guard=…)``): True once a bond of ``topology`` leaves its window or the
    instantaneous temperature exceeds ``max_temperature_K`` (picklable, for walkers in other processes)."""

    def __init__(self, topology: Topology, max_temperature_K: float | None = None) -> None:
        self.topology, self.max_temperature_K = topology, max_temperature_K

    def __call__(self, atoms: Atoms) -> bool:
        if not self.topology.intact(atoms):
            return True
        return self.max_temperature_K is not None and atoms.get_temperature() > self.max_temperature_K
