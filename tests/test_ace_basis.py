"""Correctness of the ACE basis: symmetries, derivatives, periodic images, cutoffs, rank, fast path."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

from hal import ACEBasis
from tests.conftest import random_cluster


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-300))


def mixed_cluster(rng: np.random.Generator) -> Atoms:
    return random_cluster("C3H5", rng, dmin=0.9, box=3.5)


def test_basis_has_all_orders_and_readable_summary(basis_ch):
    orders = basis_ch.function_orders()
    assert set(orders) == {0, 2, 3, 4}  # the pair basis (order 0) replaces the order-1 functions
    no_pair = ACEBasis(["C", "H"], order=2, max_degree=[6, 5], r_cut=4.0, pair_degree=0)
    assert set(no_pair.function_orders()) == {1, 2} and no_pair.n_pair == 0
    assert np.sum(no_pair.function_orders() == 1) == 3 * 6  # C-C, C-H (once), H-H
    assert basis_ch.size == basis_ch.n_ace + basis_ch.n_pair
    text = basis_ch.summary()
    assert str(basis_ch.size) in text and "nu=4" in text and "pair basis" in text and "C-H" in text


def test_invariance_rotation_reflection_translation_permutation(basis_ch, rng):
    atoms = mixed_cluster(rng)
    E = basis_ch.evaluate(atoms).energy
    assert np.abs(E).max() > 1e-3
    R = Rotation.random(random_state=3).as_matrix()
    for transform in (R, -np.eye(3), np.diag([1.0, -1.0, 1.0])):
        moved = atoms.copy()
        moved.positions = atoms.positions @ transform.T + np.array([0.3, -1.7, 2.2])
        assert rel_err(E, basis_ch.evaluate(moved).energy) < 1e-10
    perm = rng.permutation(len(atoms))
    assert rel_err(E, basis_ch.evaluate(atoms[perm]).energy) < 1e-10
    # rotated forces are the rotated forces
    moved = atoms.copy()
    moved.positions = atoms.positions @ R.T
    F = basis_ch.evaluate(atoms).forces
    Fr = basis_ch.evaluate(moved).forces
    assert rel_err(np.einsum("ab,ibn->ian", R, F), Fr) < 1e-10


def test_forces_are_minus_gradient_by_central_differences(basis_ch, rng):
    atoms = mixed_cluster(rng)
    val = basis_ch.evaluate(atoms)
    h = 1e-5
    for i in range(len(atoms)):
        for a in range(3):
            p, m = atoms.copy(), atoms.copy()
            p.positions[i, a] += h
            m.positions[i, a] -= h
            fd = -(basis_ch.evaluate(p).energy - basis_ch.evaluate(m).energy) / (2 * h)
            assert np.abs(fd - val.forces[i, a]).max() < 1e-6


def test_virial_is_finite_strain_derivative(basis_al, rng):
    atoms = bulk("Al", "fcc", a=4.0) * (2, 1, 1)
    atoms.set_cell(atoms.cell.array + rng.normal(scale=0.2, size=(3, 3)), scale_atoms=True)
    atoms.rattle(0.1, rng=rng)
    val = basis_al.evaluate(atoms)
    h = 1e-5
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k, (a, b) in enumerate(voigt):
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h if a == b else h / 2
        plus, minus = atoms.copy(), atoms.copy()
        plus.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        minus.set_cell(atoms.cell.array @ (np.eye(3) - eps), scale_atoms=True)
        dE = (basis_al.evaluate(plus).energy - basis_al.evaluate(minus).energy) / (2 * h)
        assert np.abs(-dE - val.virial[k]).max() < 1e-6


def test_wrap_invariance_and_small_triclinic_cell_matches_supercell(basis_al, rng):
    cell = np.array([[2.9, 0.0, 0.0], [1.1, 2.6, 0.0], [0.7, 0.9, 2.4]])  # all widths << 2 r_cut
    atoms = Atoms("Al2", positions=[[0.1, 0.2, 0.3], [1.6, 1.3, 1.2]], cell=cell, pbc=True)
    val = basis_al.evaluate(atoms)
    shifted = atoms.copy()
    shifted.positions += cell[0] * 2 - cell[2] + 0.01
    wrapped = shifted.copy()
    wrapped.wrap()
    for other in (shifted, wrapped):
        v2 = basis_al.evaluate(other)
        assert rel_err(val.energy, v2.energy) < 1e-10
        assert rel_err(val.forces, v2.forces) < 1e-10
    sup = atoms * (2, 3, 1)
    vs = basis_al.evaluate(sup)
    assert rel_err(6 * val.energy, vs.energy) < 1e-10
    assert rel_err(np.tile(val.forces, (6, 1, 1)), vs.forces) < 1e-10
    assert rel_err(6 * val.virial, vs.virial) < 1e-10


@pytest.mark.parametrize("which", ["ace", "pair"])
def test_energy_and_force_continuous_at_cutoff(basis_ch, which):
    rc = basis_ch.r_cut[0, 1] if which == "ace" else basis_ch.pair_r_cut
    cols = slice(0, basis_ch.n_ace) if which == "ace" else slice(basis_ch.n_ace, None)
    for d in (1e-3, 1e-5):
        inside = basis_ch.evaluate(Atoms("CH", positions=[[0, 0, 0], [rc - d, 0, 0]]))
        scale = d**2  # value and slope vanish: E ~ d², F ~ d
        assert np.abs(inside.energy[cols]).max() < 1e3 * scale
        assert np.abs(inside.forces[..., cols]).max() < 1e3 * d
    outside = basis_ch.evaluate(Atoms("CH", positions=[[0, 0, 0], [rc + 1e-9, 0, 0]]))
    assert np.all(outside.energy[cols] == 0) and np.all(outside.forces[..., cols] == 0)


def _min_singular_ratio(Psi: np.ndarray) -> float:
    Psi = Psi / np.linalg.norm(Psi, axis=0)
    s = np.linalg.svd(Psi, compute_uv=False)
    return float(s[-1] / s[0])


@pytest.mark.parametrize("system", ["CHO", "CuAl"])
@pytest.mark.parametrize("pair_degree", [None, ACEBasis.MAX_PAIR_DEGREE])
def test_full_column_rank_on_random_multispecies_clusters(system, pair_degree):
    """Energy+force design of random clusters (distances in (r_in, r_cut) and below r_in): every singular
    value of the column-normalised design stays above 1e-10 of the largest, at the default pair degree
    and the largest allowed. (Order-1 ACE functions beside the pair basis put 8 of them at 1e-16 for C/H/O.)"""
    rng = np.random.default_rng(1)
    if system == "CHO":
        basis = ACEBasis(["C", "H", "O"], order=3, max_degree=8, r_cut=5.0, pair_degree=pair_degree)
        make = lambda: random_cluster("C4H6O4", rng, dmin=0.5, box=3.5)
    else:
        basis = ACEBasis(["Cu", "Al"], order=3, max_degree=8, r_cut=5.0, r0=2.6, r_in=1.6, pair_degree=pair_degree)
        make = lambda: random_cluster("Cu7Al7", rng, dmin=1.2, box=5.0)
    rows, below = [], 0
    while sum(len(r) for r in rows) < 3 * basis.size:
        atoms = make()
        sp = basis._species_of[atoms.numbers]
        below += np.sum(np.triu(atoms.get_all_distances() < basis.r_in[sp[:, None], sp[None, :]], 1))
        v = basis.evaluate(atoms)
        rows += [v.energy[None, :], v.forces.reshape(-1, basis.size)]
    Psi = np.concatenate(rows)
    assert below > 0 and basis.pair_degree == (pair_degree or 8)
    assert _min_singular_ratio(Psi) > 1e-10
    dependent = np.concatenate([Psi, Psi[:, :1] + 0.5 * Psi[:, 1:2]], axis=1)
    assert _min_singular_ratio(dependent) < 1e-14


def test_fast_path_equals_full_evaluation(basis_ch, basis_al, rng):
    for basis, atoms in (
        (basis_ch, mixed_cluster(rng)),
        (basis_al, bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))),
    ):
        atoms.rattle(0.05, rng=rng)
        C = rng.normal(size=(5, basis.size))
        full = basis.evaluate(atoms)
        fast = basis.evaluate_coefficients(atoms, C)
        assert rel_err(C @ full.energy, fast.energies) < 1e-10
        assert rel_err(np.einsum("ian,kn->kia", full.forces, C), fast.forces) < 1e-10
        assert rel_err(fast.atom_energies.sum(axis=1), fast.energies) < 1e-12
        if atoms.pbc.any():
            assert rel_err(C @ full.virial.T, fast.virial) < 1e-10
        else:
            assert fast.virial is None and full.virial is None
        one = basis.evaluate_coefficients(atoms, C[2])
        assert rel_err(one.energies, fast.energies[2:3]) < 1e-12


def test_inner_core_is_the_pace_reppot_and_repulsive(basis_ch):
    """Below r_in a pair potential V is e0 + B exp(−a (r/r_in − 1)) r_in/r with B = −V'(r_in) r_in/(a+1),
    e0 = V(r_in) − B (PACE's reppot); it rises towards r = 0 when V slopes repulsively at r_in."""
    rin, a = basis_ch.r_in[0, 0], basis_ch.core_strength

    def pair_energy(d, c):
        return basis_ch.evaluate(Atoms("C2", positions=[[0, 0, 0], [d, 0, 0]])).energy @ c

    blk = basis_ch.n_ace + basis_ch._pcol[0, 0]
    h = 1e-5
    for seed in range(3):
        c = np.zeros(basis_ch.size)
        c[blk : blk + basis_ch.pair_degree] = np.random.default_rng(seed).normal(size=basis_ch.pair_degree)
        v = pair_energy(rin, c)
        dv = (pair_energy(rin + h, c) - pair_energy(rin + 2 * h, c) * 0.25 - 0.75 * v) / (0.5 * h)  # one-sided O(h²)
        B = -dv * rin / (a + 1)
        for d in (0.02, 0.3, 0.7 * rin, rin - 1e-3):
            expected = v - B + B * np.exp(-a * (d / rin - 1)) * rin / d
            assert pair_energy(d, c) == pytest.approx(expected, rel=1e-6, abs=1e-8)
        # C¹ at r_in: the slope from inside equals the slope from outside
        inside = (v - pair_energy(rin - h, c)) / h
        assert inside == pytest.approx(dv, rel=1e-3, abs=1e-6)
    # ACE functions are switched off inside r_in; only the pair basis (core) remains
    vals = np.array([basis_ch.evaluate(Atoms("C2", positions=[[0, 0, 0], [d, 0, 0]])).energy for d in (0.3, 0.6)])
    assert np.all(vals[:, : basis_ch.n_ace] == 0) and np.all(np.isfinite(vals))
    # a potential sloping repulsively at r_in rises monotonically towards r = 0
    c = np.zeros(basis_ch.size)
    c[blk : blk + basis_ch.pair_degree] = -np.sign(
        basis_ch.evaluate(Atoms("C2", positions=[[0, 0, 0], [rin + 1e-4, 0, 0]])).energy
        - basis_ch.evaluate(Atoms("C2", positions=[[0, 0, 0], [rin, 0, 0]])).energy
    )[blk : blk + basis_ch.pair_degree]
    energy = np.array([pair_energy(d, c) for d in np.linspace(0.05, rin, 12)])
    assert np.all(np.diff(energy) < 0) and energy[0] > energy[-1] + 1.0


def test_bad_input_errors(basis_ch):
    with pytest.raises(ValueError, match=r"\['O'\].*\['C', 'H'\]"):
        basis_ch.evaluate(Atoms("CO", positions=[[0, 0, 0], [1.2, 0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        basis_ch.evaluate(Atoms("CH", positions=[[0, 0, 0], [np.nan, 0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        basis_ch.evaluate(Atoms("CH", positions=[[0, 0, 0], [1, 0, 0]], cell=np.diag([5, 5, np.inf]), pbc=True))
    with pytest.raises(ValueError, match="coincide"):
        basis_ch.evaluate(Atoms("CH", positions=[[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="zero-volume"):
        basis_ch.evaluate(Atoms("CH", positions=[[0, 0, 0], [1, 0, 0]], cell=np.diag([5, 5, 0]), pbc=True))
    with pytest.raises(ValueError, match="entries"):
        basis_ch.fold(np.zeros(3))
    with pytest.raises(ValueError, match="order"):
        ACEBasis(["C"], order=5)
    with pytest.raises(ValueError, match="Xx"):
        ACEBasis(["C", "Xx"])
    with pytest.raises(ValueError, match="C-H"):
        ACEBasis(["C", "H"], order=2, max_degree=4, r_cut={("C", "C"): 4.0, ("H", "H"): 3.0})
    with pytest.raises(ValueError, match="r_in"):
        ACEBasis(["C"], order=2, max_degree=4, r_cut=1.0, r_in=2.0)
    for atoms in (Atoms(), Atoms("C"), Atoms("H", cell=[3, 3, 3], pbc=True)):
        v = basis_ch.evaluate(atoms)
        assert v.energy.shape == (basis_ch.size,) and np.all(np.isfinite(v.energy))
