"""Full neighbour lists for the ACE kernels, reused between MD steps as a Verlet list.

A list of radius ``cutoff + skin`` (vesin for periodic cells, matscipy for molecules) holds every
pair within ``cutoff`` until some atom has moved more than skin/2 since it was built. Each call
keeps the pairs now within ``cutoff``, sorted by centre atom, neighbour species, neighbour and
periodic shift, with the vectors computed as ``D = r_j − r_i + S·cell`` (Å): the kernels' input is
then the same, to the bit, whether the list was just built or reused.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from matscipy.neighbours import neighbour_list as matscipy_neighbour_list
from numba import njit

_NO_PBC = np.zeros(3, dtype=bool)


@njit(cache=True)
def _sort_pairs(N, species, i, j, S):
    """Pairs sorted by (i, species of j, j, S): offsets ``first`` (N + 1), j and S in that order.

    A counting sort by i, then a sort of each atom's own neighbours (keys are distinct)."""
    npairs = i.shape[0]
    smax = 0
    for p in range(npairs):
        for k in range(3):
            smax = max(smax, abs(S[p, k]))
    w = 2 * smax + 1
    first = np.zeros(N + 1, dtype=np.int64)
    for p in range(npairs):
        first[i[p] + 1] += 1
    for a in range(N):
        first[a + 1] += first[a]
    fill = first[:-1].copy()
    by_i = np.empty(npairs, dtype=np.int64)
    for p in range(npairs):
        by_i[fill[i[p]]] = p
        fill[i[p]] += 1
    jo = np.empty(npairs, dtype=np.int64)
    So = np.empty((npairs, 3), dtype=np.int64)
    for a in range(N):
        lo, hi = first[a], first[a + 1]
        key = np.empty(hi - lo, dtype=np.int64)
        for q in range(lo, hi):
            p = by_i[q]
            kk = species[j[p]] * N + j[p]
            for k in range(3):
                kk = kk * w + S[p, k] + smax
            key[q - lo] = kk
        order = np.argsort(key)
        for q in range(hi - lo):
            p = by_i[lo + order[q]]
            jo[lo + q] = j[p]
            for k in range(3):
                So[lo + q, k] = S[p, k]
    return first, jo, So


@njit(cache=True, inline="always")
def _vector(pos, cell, a, b, shift):
    """r_b − r_a + shift·cell (Å), the pair vector in the list's convention."""
    s0, s1, s2 = shift[0], shift[1], shift[2]
    return (pos[b, 0] - pos[a, 0] + (s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]),
            pos[b, 1] - pos[a, 1] + (s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]),
            pos[b, 2] - pos[a, 2] + (s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]))  # fmt: skip


@njit(cache=True)
def _within(first, j, S, pos, cell, cutoff):
    """The pairs of a sorted list closer than ``cutoff``: (first, j, D, the first pair (i, j) of
    coincident atoms or (-1, -1), and the smallest distance² of those pairs (Å², inf: none))."""
    N = first.shape[0] - 1
    npairs = j.shape[0]
    c2 = cutoff * cutoff
    fo = np.zeros(N + 1, dtype=np.int64)
    jo = np.empty(npairs, dtype=np.int64)
    D = np.empty((npairs, 3))
    bad_i, bad_j = -1, -1
    best = np.inf
    n = 0
    for a in range(N):
        for p in range(first[a], first[a + 1]):
            b = j[p]
            d0, d1, d2 = _vector(pos, cell, a, b, S[p])
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if r2 >= c2:
                continue
            if r2 < 1e-16 and bad_i < 0:
                bad_i, bad_j = a, b
            best = min(best, r2)
            jo[n] = b
            D[n, 0] = d0
            D[n, 1] = d1
            D[n, 2] = d2
            n += 1
        fo[a + 1] = n
    return fo, jo[:n], D[:n], bad_i, bad_j, best


@njit(cache=True)
def _unchanged(pos, ref, numbers, ref_numbers, cell, ref_cell, pbc, ref_pbc, limit2):
    """True when numbers, cell and pbc are those of the list and no atom has moved a distance²
    of ``limit2`` (Å²) or more (NaN counts as moved): the list can be reused."""
    if pos.shape[0] != ref.shape[0]:
        return False
    for a in range(numbers.shape[0]):
        if numbers[a] != ref_numbers[a]:
            return False
    for x in range(3):
        if pbc[x] != ref_pbc[x]:
            return False
        for y in range(3):
            if cell[x, y] != ref_cell[x, y]:
                return False
    for a in range(pos.shape[0]):
        d0 = pos[a, 0] - ref[a, 0]
        d1 = pos[a, 1] - ref[a, 1]
        d2 = pos[a, 2] - ref[a, 2]
        if not d0 * d0 + d1 * d1 + d2 * d2 < limit2:
            return False
    return True


@njit(cache=True)
def _closest(first, j, S, pos, cell):
    """Smallest pair distance² (Å²) of a sorted list (inf without pairs), allocating nothing."""
    best = np.inf
    for a in range(first.shape[0] - 1):
        for p in range(first[a], first[a + 1]):
            b = j[p]
            d0, d1, d2 = _vector(pos, cell, a, b, S[p])
            best = min(best, d0 * d0 + d1 * d1 + d2 * d2)
    return best


class NeighbourList:
    """Full neighbour list within ``cutoff`` (Å) of one structure at a time, rebuilt with radius
    ``cutoff + skin`` when the atoms, cell or pbc change or an atom has moved more than skin/2
    (Å) since the last build; ``skin = 0`` rebuilds on every new configuration. ``builds`` counts
    the rebuilds; ``last_closest`` is the smallest pair distance (Å) seen by the last ``pairs``
    call, inf when no pair lies within ``cutoff`` (a minimum-distance check for free)."""

    def __init__(self, cutoff: float, skin: float = 1.0) -> None:
        if cutoff <= 0 or skin < 0:
            raise ValueError(f"cutoff must be positive and skin non-negative, got {cutoff}, {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.builds = 0
        self.last_closest = float("inf")
        self._list = None  # (numbers, cell, pbc, reference positions, first, j, S)
        self._vesin = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_vesin": None, "_list": None}  # vesin's handle is a ctypes object

    def pairs(self, atoms: Atoms, species: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first, j, D) of the pairs within ``cutoff``; ValueError when two atoms coincide."""
        pos = atoms.arrays["positions"]
        if not self._valid(atoms):
            self._build(atoms, species)
        first, j, S = self._list[4:]
        first, j, D, bad_i, bad_j, best = _within(first, j, S, pos, atoms.cell.array, self.cutoff)
        if bad_i >= 0:
            raise ValueError(f"atoms {bad_i} and {bad_j} coincide")
        self.last_closest = math.sqrt(best)
        return first, j, D

    def closest(self, atoms: Atoms) -> float:
        """Smallest interatomic distance (Å) if below ``cutoff``, else inf: a per-step minimum-distance
        check at the cost of the Verlet list's reuse test."""
        if not self._valid(atoms):
            self._build(atoms, np.zeros(len(atoms), dtype=np.int64))
        d2 = _closest(*self._list[4:], atoms.arrays["positions"], atoms.cell.array)
        return float(np.sqrt(d2)) if d2 < self.cutoff**2 else float("inf")

    def _valid(self, atoms: Atoms) -> bool:
        if self._list is None:
            return False
        numbers, cell, pbc, ref = self._list[:4]
        return _unchanged(atoms.arrays["positions"], ref, atoms.arrays["numbers"], numbers, atoms.cell.array, cell,
                          atoms.pbc, pbc, (0.5 * self.skin) ** 2)  # fmt: skip

    def _build(self, atoms: Atoms, species: np.ndarray) -> None:
        pos = atoms.arrays["positions"]
        N = len(pos)
        radius = self.cutoff + self.skin
        if atoms.pbc.any():  # vesin: fastest for periodic cells of any shape and size
            if self._vesin is None or self._vesin.cutoff != radius:
                import vesin  # imported on first use: it pulls in torch when that is installed (seconds)

                self._vesin = vesin.NeighborList(cutoff=radius, full_list=True)
            i, j, S = self._vesin.compute(points=pos, box=atoms.cell.array, periodic=atoms.pbc, quantities="ijS")
        else:  # matscipy: lower call overhead for molecules; needs a box, any enclosing one will do
            lo = pos.min(axis=0)
            extent = pos.max(axis=0) - lo + 1.0
            if N <= 1000 and np.prod(extent / radius) > 8 * N:  # sparse (e.g. a fragment flew off): bins
                i, j = np.nonzero(~np.eye(N, dtype=bool))  # would be slow: all pairs instead
            else:
                i, j = matscipy_neighbour_list("ij", positions=pos - lo, cell=np.diag(extent), pbc=_NO_PBC,
                                               cutoff=radius)  # fmt: skip
            S = np.zeros((len(i), 3), dtype=np.int64)
        first, j, S = _sort_pairs(N, species, i.astype(np.int64), j.astype(np.int64), S.astype(np.int64))
        state = (atoms.arrays["numbers"].copy(), atoms.cell.array.copy(), atoms.pbc.copy(), pos.copy())
        self._list = (*state, first, j, S)
        self.builds += 1
