"""ACEBasis: the linear ACE basis (specification, coupling, evaluation) for any set of elements.

Basis functions, in column order: for each centre species, the coupled invariants of correlation
order ν = 1…``order`` selected by total degree Σ_t (n_t + w_L l_t) ≤ D_ν (n ≥ 1, l ≥ 0, Σ l even);
then the auxiliary pair basis, one block of ``pair_degree`` functions per unordered species pair.

The two-body part belongs to the pair basis alone: with a pair basis (``pair_degree`` > 0) there are
no order-1 ACE functions. Both are smooth radial families on the same distances, so any pair basis
rich enough to be useful spans the order-1 radials to round-off (exactly so for R_1 when the
transforms are x and √x), and the design would lose rank; the pair basis is the one that has a cutoff
of its own and the repulsive core. Without a pair basis (``pair_degree=0``) the order-1 functions
return (centre s and neighbour z ≠ s once, s < z: their total energies would be identical columns).
Units: Å, energies per unit coefficient.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from hal.ace import kernels
from hal.ace.coupling import coupled_monomials
from hal.ace.neighbours import NeighbourList
from hal.ace.radial import ace_norms, pair_norms, transform
from hal.ace.ylm import ylm_norms

PairValue = float | Mapping[tuple[str, str] | str, float] | None


@dataclasses.dataclass
class BasisValues:
    """Basis evaluated on one structure: energy (n,), forces (N, 3, n) = -dE/dr, virial (6, n)."""

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray | None


@dataclasses.dataclass
class FoldedCoefficients:
    """K coefficient vectors in fast-path form.

    Energies come for all K rows (Σ_i AA_i dotted with the folded rows: almost free); forces,
    virials and site energies for the ``gradient_rows`` only (one backward pass each).
    """

    coefficients: np.ndarray  # (K, size)
    gradient_rows: np.ndarray  # (Kg,) indices into the K rows
    ctil: np.ndarray  # (n_nodes, Kg)
    pcoef: np.ndarray  # (ns, ns, pair_degree, Kg), halved for the full neighbour list
    energy_functions: np.ndarray  # (n_ace, K): all K rows on the ACE functions, for the energies
    energy_pairs: np.ndarray  # (n_pair, K)


@dataclasses.dataclass
class FastResult:
    """Fast-path results: energies of all K rows; the rest for the Kg gradient rows (eV, eV/Å)."""

    energies: np.ndarray  # (K,)
    forces: np.ndarray  # (Kg, N, 3)
    virial: np.ndarray | None  # (Kg, 6) or None for a non-periodic structure
    atom_energies: np.ndarray  # (Kg, N)
    min_distance: float = float("inf")  # smallest pair distance (Å) if below ``cutoff``, else inf


def _pair_table(value: PairValue, default: Mapping[tuple[int, int], float], zs: list[int], name: str):
    """Symmetric (ns, ns) table from a float, a {(sym, sym): float} mapping, or None (defaults)."""
    ns = len(zs)
    out = np.empty((ns, ns))
    for a in range(ns):
        for b in range(ns):
            if value is None:
                v = default[(a, b)]
            elif isinstance(value, Mapping):
                pa, pb = chemical_symbols[zs[a]], chemical_symbols[zs[b]]
                keys = [(pa, pb), (pb, pa), f"{pa}-{pb}", f"{pb}-{pa}", f"{pa}{pb}", f"{pb}{pa}"]
                found = [value[k] for k in keys if k in value]
                if not found and (a, b) not in default:
                    raise ValueError(f"{name} has no value for the pair {pa}-{pb}")
                v = float(found[0]) if found else default[(a, b)]
            else:
                v = float(value)
            out[a, b] = v
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {out}")
    return out


class ACEBasis:
    """Linear ACE basis with an auxiliary pair basis; see the module docstring for the layout.

    Parameters: ``elements`` (symbols or numbers); ``order`` ν_max (1…4); ``max_degree`` an int or
    one per order; ``r_cut`` (Å, float or per species pair); ``w_L`` the weight of l in the
    degree; ``r0`` typical bond length (default: sum of covalent radii); ``r_in`` inner cutoff
    (default 0.6·r0); ``transform_p`` exponent p of x(r) = ((1+r0)/(1+r))^p. The pair basis, one
    radial family shared by every species pair with coefficients per pair (PACE's ``polypairpot``):
    ``pair_degree`` functions (default max_degree[0], the degree of the order-1 functions it
    replaces, capped at ``MAX_PAIR_DEGREE``), ``pair_r_cut`` one cutoff for all pairs (Å, default the
    largest r_cut), ``pair_transform_p`` its exponent p (default −1: x linear in r, which keeps the
    pair design well conditioned up to degree 20, where p = 1 or 2 lose 6–9 digits more); below each
    pair's r_in its repulsive core of exponent ``core_strength`` (see ``hal.ace.radial``). The pair
    family's r0 is the mean of the r0 table: a polynomial family in x mapped onto [-1, 1] spans the
    same functions for every r0.
    """

    MAX_PAIR_DEGREE = 20
    NEIGHBOUR_SKIN = 1.0  # Å: Verlet skin of the neighbour list reused between MD steps

    def __init__(
        self,
        elements: Sequence[str | int],
        order: int = 3,
        max_degree: int | Sequence[int] = 10,
        r_cut: PairValue = 5.0,
        *,
        w_L: float = 1.5,
        r0: PairValue = None,
        r_in: PairValue = None,
        transform_p: float = 2.0,
        pair_degree: int | None = None,
        pair_r_cut: float | None = None,
        pair_transform_p: float = -1.0,
        core_strength: float = 4.0,
        _coupling: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        unknown = [e for e in elements if isinstance(e, str) and e not in atomic_numbers]
        if unknown:
            raise ValueError(f"unknown element symbol(s) {unknown}")
        zs = [atomic_numbers[e] if isinstance(e, str) else int(e) for e in elements]
        if len(zs) == 0 or len(set(zs)) != len(zs):
            raise ValueError(f"elements must be non-empty and distinct, got {list(elements)}")
        if not 1 <= int(order) <= 4:
            raise ValueError(f"order must be 1..4, got {order}")
        degs = [int(max_degree)] * order if np.isscalar(max_degree) else [int(d) for d in max_degree]
        if len(degs) != order or min(degs) < 1:
            raise ValueError(f"max_degree needs one positive value per order ({order}), got {max_degree}")
        pair_degree = min(degs[0], self.MAX_PAIR_DEGREE) if pair_degree is None else int(pair_degree)
        if not 0 <= pair_degree <= self.MAX_PAIR_DEGREE:
            raise ValueError(f"pair_degree must be 0..{self.MAX_PAIR_DEGREE}, got {pair_degree}")
        if isinstance(pair_r_cut, Mapping):
            raise ValueError("pair_r_cut is one cutoff shared by all species pairs (a float), not a mapping")
        self.zs = zs
        self.elements = tuple(chemical_symbols[z] for z in zs)
        self.order = int(order)
        self.max_degree = tuple(degs)
        self.w_L = float(w_L)
        self.transform_p = float(transform_p)
        self.pair_degree = int(pair_degree)
        self.pair_transform_p = float(pair_transform_p)
        self.core_strength = float(core_strength)
        ns = len(zs)
        pairs = [(a, b) for a in range(ns) for b in range(ns)]
        default_r0 = {(a, b): covalent_radii[zs[a]] + covalent_radii[zs[b]] for a, b in pairs}
        self.r0 = _pair_table(r0, default_r0, zs, "r0")
        self.r_cut = _pair_table(r_cut, {}, zs, "r_cut")
        self.r_in = _pair_table(r_in, {k: 0.6 * self.r0[k] for k in pairs}, zs, "r_in")
        self.pair_r_cut = float(self.r_cut.max() if pair_r_cut is None else pair_r_cut)
        if np.any(self.r_in >= self.r_cut) or np.any(self.r_in >= self.pair_r_cut):
            raise ValueError("r_in must be smaller than r_cut and pair_r_cut for every pair")
        self.pair_r0 = float(self.r0.mean())
        self._user_args = dict(r_cut=r_cut, r0=r0, r_in=r_in, pair_r_cut=pair_r_cut)
        p = self.transform_p
        self._x_in = transform(self.r_in, self.r0, p)
        self._x_cut = transform(self.r_cut, self.r0, p)
        self._px_cut = float(transform(self.pair_r_cut, self.pair_r0, self.pair_transform_p))
        self._px_in = float(transform(self.r_in.min(), self.pair_r0, self.pair_transform_p))
        self._nlist = None
        self._store_key = self._store_cache = None
        self._species_of = np.full(119, -1, dtype=np.int64)
        self._species_of[zs] = np.arange(ns)
        if _coupling is None:
            self._build()
        else:
            self._load_coupling(_coupling)
        self._finish()

    # ------------------------------------------------------------------ construction
    def _labels(self) -> list[tuple[int, int, int]]:
        dmax = max(self.max_degree)
        return [
            (z, n, l)
            for z in range(len(self.zs))
            for n in range(1, dmax + 1)
            for l in range(0, int(dmax / self.w_L) + 1)
            if n + self.w_L * l <= dmax + 1e-9
        ]

    def _tuples(self, s: int):
        """Sorted label tuples of each order for centre species s that admit an invariant."""
        labels = self._labels()
        deg = [n + self.w_L * l for (_, n, l) in labels]
        out = []

        def rec(start: int, acc: list[int], total: float) -> None:
            nu = len(acc)
            if nu:
                labs = tuple(labels[k] for k in acc)
                ls = [lab[2] for lab in labs]
                ok = total <= self.max_degree[nu - 1] + 1e-9 and sum(ls) % 2 == 0
                if nu == 1:
                    ok = ok and self.pair_degree == 0 and ls[0] == 0 and s <= labs[0][0]
                elif nu == 2:
                    ok = ok and ls[0] == ls[1]
                elif nu == 3:
                    ok = ok and abs(ls[0] - ls[1]) <= ls[2] <= ls[0] + ls[1]
                if ok:
                    out.append(labs)
            if nu == self.order:
                return
            for k in range(start, len(labels)):
                if total + deg[k] <= max(self.max_degree[nu:]) + 1e-9:
                    rec(k, acc + [k], total + deg[k])

        rec(0, [], 0.0)
        return out

    def _build(self) -> None:
        ns = len(self.zs)
        tuples = [self._tuples(s) for s in range(ns)]
        used = [t for ts in tuples for t in ts]
        self.lmax = max([lab[2] for t in used for lab in t], default=0)
        self._nl = np.zeros(self.lmax + 1, dtype=np.int64)
        for t in used:
            for _, n, l in t:
                self._nl[l] = max(self._nl[l], n)
        self._set_a_layout()
        aoff, astride, nl = self._aoff, self._astride, self._nl

        def a_index(z, n, l, mu):
            return z * astride + aoff[l] + (l + np.asarray(mu)) * nl[l] + (n - 1)

        rows, fn_species, fn_labels = [], [], []
        for s in range(ns):
            for labs in tuples[s]:
                monos, coef = coupled_monomials(labs, a_index)
                for row in coef:
                    rows.append((s, monos, row))
                    fn_species.append(s)
                    fn_labels.append(labs)
        # monomial DAG per centre species: every prefix of a monomial is a node too
        node_keys: list[tuple[int, tuple[int, ...]]] = []
        for s in range(ns):
            keys: set[tuple[int, ...]] = set()
            for s2, monos, _ in rows:
                if s2 == s:
                    for m in monos:
                        m = tuple(int(v) for v in m)
                        for k in range(1, len(m) + 1):
                            keys.add(m[:k])
            node_keys += [(s, k) for k in sorted(keys, key=lambda k: (len(k), k))]
        index = {key: i for i, key in enumerate(node_keys)}
        r_idx, c_idx, vals = [], [], []
        for f, (s, monos, row) in enumerate(rows):
            for m, v in zip(monos, row):
                if v != 0.0:
                    r_idx.append(f)
                    c_idx.append(index[(s, tuple(int(x) for x in m))])
                    vals.append(v)
        self._node_species = np.array([s for s, _ in node_keys], dtype=np.int64)
        self._node_keys = [k for _, k in node_keys]
        self._fn_species = np.array(fn_species, dtype=np.int64)
        self._fn_labels = fn_labels
        self._coupling_matrix = sp.csr_matrix((vals, (r_idx, c_idx)), shape=(len(rows), len(node_keys)))

    def _set_a_layout(self) -> None:
        """Offsets of the atomic basis A: per species, per l a block of (2l+1) × nl[l] entries (n fastest)."""
        sizes = self._nl * (2 * np.arange(self.lmax + 1) + 1)
        self._aoff = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._astride = int(sizes.sum())
        self.nmax = int(max(self._nl.max(initial=0), 1))
        ns = len(self.zs)
        a_z, a_n, a_lm = [], [], []
        for z in range(ns):
            for l in range(self.lmax + 1):
                for m in range(-l, l + 1):
                    for n in range(self._nl[l]):
                        a_z.append(z)
                        a_n.append(n)
                        a_lm.append(l * l + l + m)
        self._a_z = np.array(a_z, dtype=np.int64)
        self._a_n = np.array(a_n, dtype=np.int64)
        self._a_lm = np.array(a_lm, dtype=np.int64)
        self._ynorm = ylm_norms(self.lmax)

    def _finish(self) -> None:
        ns = len(self.zs)
        self._parent = np.array([-1 if len(k) == 1 else 0 for k in self._node_keys], dtype=np.int64)
        index = {(s, k): i for i, (s, k) in enumerate(zip(self._node_species, self._node_keys))}
        for i, (s, k) in enumerate(zip(self._node_species, self._node_keys)):
            if len(k) > 1:
                self._parent[i] = index[(s, k[:-1])]
        self._aidx = np.array([k[-1] for k in self._node_keys], dtype=np.int64)
        self._node_start = np.searchsorted(self._node_species, np.arange(ns + 1)).astype(np.int64)
        # row of each parent node in the wide adjoint buffer (per species, in node order); −1: a leaf,
        # whose adjoint is its coefficient row itself (three nodes in four of an order-4 basis)
        inner = np.zeros(len(self._parent), dtype=bool)
        inner[self._parent[self._parent >= 0]] = True
        self._slot = np.full(len(self._parent), -1, dtype=np.int64)
        for s in range(ns):
            rows = np.flatnonzero(inner[self._node_start[s] : self._node_start[s + 1]]) + self._node_start[s]
            self._slot[rows] = np.arange(len(rows))
        self._anorms = ace_norms(max(self.nmax, 1))
        self._pnorms = pair_norms(max(self.pair_degree, 1))
        upairs = [(a, b) for a in range(ns) for b in range(a, ns)]
        self._pcol = np.zeros((ns, ns), dtype=np.int64)
        for k, (a, b) in enumerate(upairs):
            self._pcol[a, b] = self._pcol[b, a] = k * self.pair_degree
        self._upairs = upairs
        self.n_ace = self._coupling_matrix.shape[0]
        # constants handed to the kernels as tuples (see hal.ace.kernels)
        self._rad = (
            self.nmax, self.lmax, self.transform_p, self.r0, self.r_in, self.r_cut, self._x_in, self._x_cut,
            self._anorms, self._nl, self._aoff, self._astride, self._ynorm,
        )  # fmt: skip
        self._dag = (self._node_start, self._parent, self._aidx, self._slot)
        self._pairk = (
            self.pair_degree, self.pair_transform_p, self.pair_r0, self.pair_r_cut, self._px_in, self._px_cut,
            self.core_strength, self._pnorms, self._pcol,
        )  # fmt: skip
        self._amap = (self._a_z, self._a_n, self._a_lm)
        self._maxblock = kernels._maxblock(self._node_start)
        self.n_pair = len(upairs) * self.pair_degree
        self._CT = self._coupling_matrix.T.tocsr()
        C = self._coupling_matrix
        self._coupling = (C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data.astype(float))

    def _load_coupling(self, c: Mapping[str, np.ndarray]) -> None:
        self._nl = np.asarray(c["nl"], dtype=np.int64)
        self.lmax = len(self._nl) - 1
        self._set_a_layout()
        self._node_species = np.asarray(c["node_species"], dtype=np.int64)
        flat, lens = np.asarray(c["node_flat"]), np.asarray(c["node_len"])
        offs = np.concatenate([[0], np.cumsum(lens)])
        self._node_keys = [tuple(int(v) for v in flat[offs[i] : offs[i + 1]]) for i in range(len(lens))]
        self._fn_species = np.asarray(c["fn_species"], dtype=np.int64)
        lab = np.asarray(c["fn_labels"]).reshape(-1, self.order, 3)
        self._fn_labels = [tuple(tuple(int(v) for v in x) for x in row if x[1] > 0) for row in lab]
        self._coupling_matrix = sp.csr_matrix((c["C_data"], c["C_indices"], c["C_indptr"]), shape=tuple(c["C_shape"]))

    def subset(self, ace_functions: Sequence[int] | np.ndarray) -> ACEBasis:
        """The basis restricted to the given ACE functions (indices < n_ace; all pair functions
        stay): only their monomials and those monomials' prefixes remain in the DAG, so a sparse
        (ARD) model evaluates faster. Columns of the new basis: the kept ACE functions in the
        given order, then the pair functions."""
        keep = np.asarray(ace_functions, dtype=np.int64)
        if keep.size and (keep.min() < 0 or keep.max() >= self.n_ace or len(np.unique(keep)) != len(keep)):
            raise ValueError(f"ace_functions must be distinct indices in [0, {self.n_ace})")
        C = self._coupling_matrix[keep]
        needed = set()
        for i in np.unique(C.indices):
            s, key = int(self._node_species[i]), self._node_keys[i]
            needed.update((s, key[:k]) for k in range(1, len(key) + 1))
        old_index = {(int(s), k): i for i, (s, k) in enumerate(zip(self._node_species, self._node_keys))}
        nodes = sorted(needed, key=lambda sk: (sk[0], len(sk[1]), sk[1]))
        remap = np.full(len(self._node_keys), -1, dtype=np.int64)
        remap[[old_index[sk] for sk in nodes]] = np.arange(len(nodes))
        C = C.tocoo()
        C = sp.csr_matrix((C.data, (C.row, remap[C.col])), shape=(len(keep), len(nodes)))
        d = self.to_dict()
        new = dict(
            node_species=np.array([s for s, _ in nodes], dtype=np.int64),
            node_flat=np.array([v for _, k in nodes for v in k], dtype=np.int64),
            node_len=np.array([len(k) for _, k in nodes], dtype=np.int64),
            fn_species=self._fn_species[keep],
            fn_labels=d["coupling_fn_labels"][keep],
            C_data=C.data, C_indices=C.indices, C_indptr=C.indptr, C_shape=np.array(C.shape),
        )  # fmt: skip
        d.update({f"coupling_{k}": v for k, v in new.items()})
        return type(self).from_dict(d)

    def coupling_arrays(self) -> dict[str, np.ndarray]:
        """Arrays that rebuild this basis exactly without recomputing the coupling (for files)."""
        C = self._coupling_matrix
        lab = np.zeros((self.n_ace, self.order, 3), dtype=np.int64)
        for f, labs in enumerate(self._fn_labels):
            lab[f, : len(labs)] = labs
        return dict(
            nl=self._nl,
            node_species=self._node_species,
            node_flat=np.array([v for k in self._node_keys for v in k], dtype=np.int64),
            node_len=np.array([len(k) for k in self._node_keys], dtype=np.int64),
            fn_species=self._fn_species,
            fn_labels=lab,
            C_data=C.data,
            C_indices=C.indices,
            C_indptr=C.indptr,
            C_shape=np.array(C.shape),
        )

    # ------------------------------------------------------------------ description
    @property
    def size(self) -> int:
        """Number of basis functions (ACE + pair)."""
        return self.n_ace + self.n_pair

    @property
    def spec(self) -> dict:
        """JSON-serialisable constructor arguments (rebuilds this basis)."""

        def enc(v):
            if isinstance(v, Mapping):
                return {"-".join(k) if isinstance(k, tuple) else k: float(x) for k, x in v.items()}
            return v

        return dict(
            elements=list(self.elements),
            order=self.order,
            max_degree=list(self.max_degree),
            w_L=self.w_L,
            transform_p=self.transform_p,
            pair_degree=self.pair_degree,
            pair_transform_p=self.pair_transform_p,
            core_strength=self.core_strength,
            **{k: enc(v) for k, v in self._user_args.items()},
        )

    def function_orders(self) -> np.ndarray:
        """Correlation order of each basis function (pair functions: 0)."""
        return np.array([len(l) for l in self._fn_labels] + [0] * self.n_pair, dtype=np.int64)

    def summary(self) -> str:
        """Readable table: number of functions per correlation order and centre species."""
        orders = self.function_orders()[: self.n_ace]
        lines = [
            f"ACEBasis {'/'.join(self.elements)}: {self.size} functions "
            f"(order {self.order}, max degree {list(self.max_degree)}, w_L {self.w_L})",
            "  centre  " + "".join(f"  nu={nu:<4d}" for nu in range(1, self.order + 1)) + "   total",
        ]
        for s, el in enumerate(self.elements):
            cnt = [int(np.sum((self._fn_species == s) & (orders == nu))) for nu in range(1, self.order + 1)]
            lines.append(f"  {el:6s}  " + "".join(f"  {c:<7d}" for c in cnt) + f"   {sum(cnt)}")
        if self.pair_degree:
            names = ", ".join(f"{self.elements[a]}-{self.elements[b]}" for a, b in self._upairs)
            lines.append(
                f"  pair basis: {self.pair_degree} functions per pair ({names}), r_cut {self.pair_r_cut:.2f} Å"
            )
        lines.append(f"  monomials (DAG nodes): {len(self._node_keys)}; nmax {self.nmax}, lmax {self.lmax}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"ACEBasis(elements={self.elements}, order={self.order}, "
            f"max_degree={list(self.max_degree)}, size={self.size})"
        )

    # ------------------------------------------------------------------ evaluation
    @functools.cached_property
    def cutoff(self) -> float:
        """Largest cutoff of any function (Å): the neighbour-list radius."""
        return float(max(self.r_cut.max(), self.pair_r_cut if self.pair_degree else 0.0))

    def neighbours(self, atoms: Atoms):
        """Validated species indices and neighbour list (first, j, D) of a structure."""
        pos = atoms.arrays["positions"]
        numbers = atoms.arrays["numbers"]
        pbc = atoms.pbc
        cell = atoms.cell.array
        periodic = bool(pbc.any())
        if not (np.isfinite(pos).all() and np.isfinite(cell).all()):
            raise ValueError("atoms have NaN or infinite positions or cell")
        species = self._species_of[numbers]
        N = len(numbers)
        if N and species.min() < 0:
            bad = sorted({chemical_symbols[z] for z in numbers[species < 0]})
            raise ValueError(f"element(s) {bad} not in the basis elements {list(self.elements)}")
        if periodic and abs(np.linalg.det(cell)) < 1e-9:
            raise ValueError("periodic structure with a zero-volume cell")
        if N == 0:
            return species, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
        if self._nlist is None or self._nlist.cutoff != self.cutoff:
            self._nlist = NeighbourList(self.cutoff, self.NEIGHBOUR_SKIN)
        return (species, *self._nlist.pairs(atoms, species))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_store_key"] = state["_store_cache"] = None
        return state

    def evaluate(self, atoms: Atoms) -> BasisValues:
        """Full basis on one structure: energy (n,), forces (N, 3, n), virial (6, n) or None."""
        species, first, jnb, D = self.neighbours(atoms)
        N = len(species)
        nn = len(self._node_keys)
        AAsum = np.zeros(nn)
        dAA = np.zeros((nn, N, 3))
        vAA = np.zeros((nn, 6))
        Ep = np.zeros(self.n_pair)
        dEp = np.zeros((self.n_pair, N, 3))
        Vp = np.zeros((self.n_pair, 6))
        if N:
            kernels.compile_notice(kernels.eval_full)
            kernels.eval_full(
                species, first, jnb, D, self._rad, self._dag, self._pairk, self._maxblock, self._amap,
                AAsum, dAA, vAA, Ep, dEp, Vp,
            )  # fmt: skip
        C = self._coupling_matrix
        energy = np.concatenate([C @ AAsum, Ep])
        grad = np.concatenate([(C @ dAA.reshape(nn, 3 * N)).reshape(self.n_ace, N, 3), dEp])
        forces = -np.ascontiguousarray(grad.transpose(1, 2, 0))
        virial = None
        if np.any(atoms.pbc):
            virial = np.ascontiguousarray(np.concatenate([C @ vAA, Vp]).T)
        return BasisValues(energy=energy, forces=forces, virial=virial)

    def fold(self, coefficients: np.ndarray, gradient_rows: Sequence[int] | None = None) -> FoldedCoefficients:
        """Fold K coefficient vectors (K × size, or size) once; gradients for ``gradient_rows``
        (default: all rows)."""
        c = np.atleast_2d(np.asarray(coefficients, dtype=float))
        if c.shape[1] != self.size:
            raise ValueError(f"coefficients have {c.shape[1]} entries, the basis has {self.size}")
        rows = np.arange(len(c)) if gradient_rows is None else np.asarray(gradient_rows, dtype=np.int64)
        g = c[rows]
        ns = len(self.zs)
        pcoef = np.zeros((ns, ns, max(self.pair_degree, 1), len(rows)))
        for a, b in self._upairs:
            lo = self.n_ace + self._pcol[a, b]
            blk = g[:, lo : lo + self.pair_degree]
            pcoef[a, b, : self.pair_degree] = pcoef[b, a, : self.pair_degree] = 0.5 * blk.T
        return FoldedCoefficients(
            coefficients=c,
            gradient_rows=rows,
            ctil=np.ascontiguousarray(self._CT @ g[:, : self.n_ace].T).reshape(self._CT.shape[0], len(rows)),
            pcoef=pcoef,
            energy_functions=np.ascontiguousarray(c[:, : self.n_ace].T),
            energy_pairs=np.ascontiguousarray(c[:, self.n_ace :].T),
        )

    def evaluate_folded(
        self, atoms: Atoms, folded: FoldedCoefficients, threads: int | None = None, site_energies: int | None = None
    ) -> FastResult:
        """Energies of all K folded vectors; forces, virials, site energies of the gradient rows
        (``site_energies`` = k: of the first k of them only, when there are two or more).
        ``threads``: evaluation threads (default ``kernels.set_threads`` or numba's count)."""
        species, first, jnb, D = self.neighbours(atoms)
        N, Kg = len(species), folded.ctil.shape[1]
        periodic = bool(atoms.pbc.any())
        Eat = np.zeros((Kg if site_energies is None or Kg < 2 else min(site_energies, Kg), N))
        F = np.zeros((Kg, N, 3))
        V = np.zeros((Kg, 6 if periodic else 0))  # no virial work without a cell
        AAsum = np.zeros(len(self._node_keys))
        Ep = np.zeros(self.n_pair)
        if N:
            self._folded_kernel(species, first, jnb, D, folded.ctil, folded.pcoef, Eat, F, V, AAsum, Ep, threads)
        return FastResult(
            energies=kernels.function_sums(self._coupling, AAsum) @ folded.energy_functions + Ep @ folded.energy_pairs,
            forces=F,
            virial=V if periodic else None,
            atom_energies=Eat,
            min_distance=self._closest(N),
        )

    def _closest(self, n_atoms: int) -> float:
        """The smallest pair distance (Å) of the structure ``neighbours`` last saw (inf: none within
        ``cutoff``), found while the pairs were listed."""
        return self._nlist.last_closest if n_atoms else float("inf")

    def _folded_kernel(self, species, first, jnb, D, ctil, pcoef, Eat, F, V, AAsum, Ep, threads) -> None:
        nt = kernels.threads_for(len(species), threads)
        args = (species, first, jnb, D, self._rad, self._dag, self._pairk, self._maxblock, ctil, pcoef, Eat, F, V,
                AAsum, Ep)  # fmt: skip
        if nt == 1:
            kernels.compile_notice(kernels.eval_folded)
            kernels.eval_folded(*args)
        else:
            kernels.compile_notice(kernels.eval_folded_threads)
            kernels.eval_folded_threads(nt, *args)

    STORE_LIMIT_BYTES = 512 * 2**20

    def _store(self, species: np.ndarray, first: np.ndarray):
        """Per-atom forward-pass store (None past ``STORE_LIMIT_BYTES``), reused while N stays and it
        has room for the largest neighbour count (MD): entries past an atom's count are never read."""
        N = len(species)
        maxnb = kernels._maxnb(first)
        key = self._store_key
        if key is not None and key[0] == N and key[1] >= maxnb:
            return self._store_cache
        per_pair = 3 * self.nmax + 4 * (self.lmax + 1) ** 2 + 4 + 2 * max(self.pair_degree, 1)
        if 8 * N * (maxnb * per_pair + len(self._a_z) + self._maxblock) > self.STORE_LIMIT_BYTES:
            return None
        maxnb = max(maxnb, int(1.2 * maxnb))  # room for the neighbour count to grow during MD
        self._store_cache = kernels.store_buffers(N, maxnb, self._rad, self._maxblock, self.pair_degree)
        self._store_key = (N, maxnb)
        return self._store_cache

    def evaluate_spread(
        self,
        atoms: Atoms,
        mean: FoldedCoefficients,
        deviations: FoldedCoefficients,
        columns: tuple[np.ndarray, np.ndarray],
        shift: np.ndarray,
        threads: int | None = None,
    ) -> tuple[np.ndarray, FastResult]:
        """Energies E of a centre c̄ (E[0], from ``mean`` = fold(c̄), one row) and of members c^k (E[1:],
        from ``deviations`` = fold(c^k − c̄)) (eV, no E0), and the forces and virials of the columns
        of ``columns``: c̄, Σ_k w_k (c^k − c̄) with w_k = d_k/(Kσ), d_k = E_k − shift_k − E_0,
        σ = √(Σ d²/K), whose gradient is ∇σ (HAL's bias), then any further fixed columns (e.g. the
        members' c^k − c̄). ``columns``: work arrays (c̃ (n_nodes, n), pair coefficients
        (ns, ns, npair, n)) with c̄ in column 0; column 1 is overwritten. One call:
        the forward pass is stored per atom (past ``STORE_LIMIT_BYTES`` it is run twice) and σ's
        direction is formed between the passes. The result's ``energies`` is E[:1] and its
        ``atom_energies`` (1, N): the mean model's only.
        """
        species, first, jnb, D = self.neighbours(atoms)
        N = len(species)
        ctil, pcoef = columns
        K = deviations.ctil.shape[1]
        E = np.zeros(K + 1)
        periodic = bool(atoms.pbc.any())
        nc = ctil.shape[1]
        Eat, F, V = np.zeros((1, N)), np.zeros((nc, N, 3)), np.zeros((nc, 6 if periodic else 0))
        AAsum, Ep = np.zeros(len(self._node_keys)), np.zeros(self.n_pair)
        m = (mean.energy_functions.reshape(-1), mean.energy_pairs.reshape(-1))
        dev = (deviations.energy_functions, deviations.energy_pairs, deviations.pcoef.reshape(-1, K))
        store = self._store(species, first) if N else None
        if store is not None:
            nt = kernels.threads_for(N, threads)
            args = (species, first, jnb, D, self._rad, self._dag, self._pairk, self._maxblock, store, AAsum, Ep,
                    self._coupling, m, shift, dev, ctil, pcoef, E, Eat, F, V)  # fmt: skip
            if nt == 1:
                kernels.compile_notice(kernels.bias_all)
                kernels.bias_all(*args)
            else:
                kernels.compile_notice(kernels.bias_all_threads)
                kernels.bias_all_threads(nt, *args)
        else:  # too large to store: a forward pass for the energies, then one with the gradients
            if N:
                none = (np.empty((len(ctil), 0)), np.empty(pcoef.shape[:3] + (0,)), np.empty((0, N)),
                        np.empty((0, N, 3)), np.empty((0, 6)))  # fmt: skip
                self._folded_kernel(species, first, jnb, D, *none, AAsum, Ep, threads)
            kernels.spread_direction(AAsum, Ep, self._coupling, m, shift, dev, ctil, pcoef, E)
            if N:
                AAsum, Ep = np.zeros_like(AAsum), np.zeros_like(Ep)
                self._folded_kernel(species, first, jnb, D, ctil, pcoef, Eat, F, V, AAsum, Ep, threads)
        res = FastResult(energies=E[:1], forces=F, virial=V if periodic else None, atom_energies=Eat,
                         min_distance=self._closest(N))  # fmt: skip
        return E, res

    def evaluate_coefficients(self, atoms: Atoms, coefficients: np.ndarray, threads: int | None = None) -> FastResult:
        """Fast path without a prior ``fold`` (folds on every call: prefer ``fold`` in loops)."""
        return self.evaluate_folded(atoms, self.fold(coefficients), threads)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """Spec + coupling arrays (numpy) for a single-file model."""
        return {
            "spec_json": np.array(json.dumps(self.spec)),
            **{f"coupling_{k}": v for k, v in self.coupling_arrays().items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, np.ndarray]) -> ACEBasis:
        """Inverse of ``to_dict``."""
        spec = json.loads(str(d["spec_json"]))
        coupling = {k[len("coupling_") :]: d[k] for k in d if k.startswith("coupling_")}
        return cls(**spec, _coupling=coupling)
