"""The fast paths give the results of the plain ones: threaded = serial evaluation, a reused Verlet
list = a rebuilt one (and = ASE's neighbour list), ASE state checks that still see every change."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.md.langevinbaoab import LangevinBAOAB
from ase.neighborlist import neighbor_list

from hal import ACEBasis, LinearACE
from hal.ace import kernels
from hal.ace.neighbours import NeighbourList
from hal.uncertainty import committee_sigma, sigma_gradient_from_members, sigma_weights
from tests.conftest import random_cluster


def committee_model(basis: ACEBasis, rng: np.random.Generator, K: int = 6) -> LinearACE:
    c = rng.normal(size=basis.size) * 0.05
    return LinearACE(basis, c, committee=c + 0.01 * rng.normal(size=(K, basis.size)))


def al_cell(rng: np.random.Generator) -> Atoms:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 2, 2)
    atoms.rattle(0.1, seed=int(rng.integers(1000)))
    return atoms


def close(a: np.ndarray, b: np.ndarray, rel: float) -> bool:
    return bool(np.all(np.abs(a - b) <= rel * max(np.abs(b).max(), 1e-300)))


@pytest.mark.parametrize("system", ["cluster", "cell"])
def test_threaded_evaluation_equals_serial_and_is_deterministic(system, basis_ch, basis_al, rng):
    basis, atoms = (basis_ch, random_cluster("C4H8", rng, box=4.5)) if system == "cluster" else (basis_al, al_cell(rng))
    model = committee_model(basis, rng)
    folds = model._committee_folds()
    species, first, jnb, D = basis.neighbours(atoms)

    def kernel(nt: int, folded):  # any number of shares, also more than numba's pool
        K, N = folded.ctil.shape[1], len(atoms)
        out = (np.zeros((K, N)), np.zeros((K, N, 3)), np.zeros((K, 6)), np.zeros(len(basis._node_keys)),
               np.zeros(basis.n_pair))  # fmt: skip
        args = (species, first, jnb, D, basis._rad, basis._dag, basis._pairk, basis._maxblock, folded.ctil,
                folded.pcoef, *out)  # fmt: skip
        kernels.eval_folded(*args) if nt == 1 else kernels.eval_folded_threads(nt, *args)
        return out

    for folded in (folds["mean"], folds["all"]):
        serial = kernel(1, folded)
        for nt in (2, 3, 5):
            threaded = kernel(nt, folded)
            Eat, F, V, AAsum, Ep = threaded
            assert close(Eat.sum(axis=1), serial[0].sum(axis=1), 1e-12)
            assert close(F, serial[1], 1e-10) and close(V, serial[2], 1e-10) and close(AAsum, serial[3], 1e-12)
            assert all(np.array_equal(x, y) for x, y in zip(threaded, kernel(nt, folded)))  # same shares, same bits
    # through the public API (thread counts capped by numba's pool)
    for nt in (1, 2):
        res, grad, _ = model.evaluate_bias(atoms, threads=nt)
        plain = model.evaluate(atoms, threads=nt)
        check, _, _ = model.evaluate_bias(atoms, threads=nt, member_forces=True)  # a HAL check step's
        if nt == 1:
            ref = (res, grad, plain, check)
            continue
        assert abs(res.energy - ref[0].energy) <= 1e-12 * abs(ref[0].energy)
        assert close(res.member_energies, ref[0].member_energies, 1e-12)
        assert close(res.forces, ref[0].forces, 1e-10) and close(grad, ref[1], 1e-10)
        assert close(plain.forces, ref[2].forces, 1e-10) and close(check.member_forces, ref[3].member_forces, 1e-10)


@pytest.mark.parametrize("system", ["cluster", "cell"])
def test_bias_pass_equals_the_members_and_needs_no_store(system, basis_ch, basis_al, rng, monkeypatch):
    """σ and ∇σ (and dσ/dstrain) of the two-column pass = those from every member's forces; the same
    when the per-atom store is over its limit and the forward pass runs twice instead. With
    ``member_forces`` the same pass also gives every member's forces and virials (f_i's), and the
    mean and ∇σ do not change."""
    basis, atoms = (basis_ch, random_cluster("C4H8", rng, box=4.5)) if system == "cluster" else (basis_al, al_cell(rng))
    model = committee_model(basis, rng)
    full = model.evaluate_committee(atoms, member_forces=True)
    sigma = committee_sigma(full.member_energies, full.energy)
    grad_m, dvir_m = sigma_gradient_from_members(full, sigma_weights(full.member_energies, full.energy, sigma))
    for limit in (basis.STORE_LIMIT_BYTES, 0):
        monkeypatch.setattr(basis, "STORE_LIMIT_BYTES", limit)
        basis._store_key = None  # forget the cached store (the shared basis rebuilds it on its next call)
        res, grad, dvir = model.evaluate_bias(atoms)
        assert abs(res.energy - full.energy) <= 1e-12 * abs(full.energy)
        assert close(res.member_energies, full.member_energies, 1e-12) and close(res.forces, full.forces, 1e-10)
        assert close(grad, grad_m, 1e-9)
        assert (dvir is None) == (dvir_m is None) and (dvir is None or close(dvir, dvir_m, 1e-9))
        assert close(res.atom_energies, full.atom_energies, 1e-12)
        both, grad_b, dvir_b = model.evaluate_bias(atoms, member_forces=True)
        assert close(both.member_forces, full.member_forces, 1e-10) and close(both.forces, res.forces, 1e-12)
        assert close(grad_b, grad, 1e-12) and (dvir is None or close(dvir_b, dvir, 1e-12))
        assert (both.member_virials is None) == (full.member_virials is None)
        assert both.member_virials is None or close(both.member_virials, full.member_virials, 1e-10)


@pytest.mark.parametrize("K", [3, 5, 33, 200])
def test_many_gradient_columns_equal_one_column_at_a_time(K, basis_ch, basis_al, rng):
    """K > 2 columns run the wide path (padded adjoint rows, the pull-back as BLAS products over
    blocks of neighbours: several blocks per species at K = 200); each column must give what a
    single-column evaluation of the same coefficients gives (forces, virials, site energies)."""
    for basis, atoms in ((basis_ch, random_cluster("C4H8", rng, box=4.5)), (basis_al, al_cell(rng))):
        C = rng.normal(size=(K, basis.size)) * 0.05
        wide = basis.evaluate_folded(atoms, basis.fold(C))
        assert wide.forces.shape == (K, len(atoms), 3)
        first = basis.evaluate_folded(atoms, basis.fold(C), site_energies=1)  # members' site energies skipped
        assert first.atom_energies.shape == (1, len(atoms)) and close(first.forces, wide.forces, 1e-12)
        assert close(first.atom_energies[0], wide.atom_energies[0], 1e-12)
        for k in sorted({0, 1, K // 2, K - 1}):
            one = basis.evaluate_folded(atoms, basis.fold(C[k]))
            assert close(wide.forces[k], one.forces[0], 1e-12) and close(
                wide.atom_energies[k], one.atom_energies[0], 1e-12
            )
            assert wide.virial is None or close(wide.virial[k], one.virial[0], 1e-12)
            assert abs(wide.energies[k] - one.energies[0]) <= 1e-12 * abs(one.energies[0])


def test_thread_settings():
    with pytest.raises(ValueError, match="threads"):
        kernels.set_threads(0)
    with kernels.default_threads(1):
        assert kernels.threads_for(100) == 1
    assert kernels.threads_for(1, threads=8) == 1  # never more threads than atoms


def _pairs(first: np.ndarray, j: np.ndarray, D: np.ndarray) -> list[tuple]:
    i = np.repeat(np.arange(len(first) - 1), np.diff(first))
    return sorted(zip(i.tolist(), j.tolist(), *np.round(D, 9).T.tolist()))


@pytest.mark.parametrize("cell", ["molecule", "small_triclinic", "supercell"])
def test_verlet_list_matches_ase_and_rebuilds_when_needed(cell, rng):
    cutoff, skin = 4.0, 1.0
    if cell == "molecule":
        atoms = random_cluster("C6H6", rng, box=5.0)
    else:
        atoms = bulk("Al", "fcc", a=4.05) * ((1, 1, 1) if cell == "small_triclinic" else (3, 3, 3))
        atoms.rattle(0.05, seed=1)  # the primitive cell is smaller than the cutoff: many images of each atom
    species = np.zeros(len(atoms), dtype=np.int64)
    nl = NeighbourList(cutoff, skin)
    for move, rebuilt in ((0.0, 1), (0.2 * skin, 1), (0.2 * skin, 1), (0.2 * skin, 2)):
        atoms.positions[0] += move * np.array([1.0, 0.0, 0.0])  # in all: 0.4 < skin/2 < 0.6
        first, j, D = nl.pairs(atoms, species)
        assert nl.builds == rebuilt
        i_ase, j_ase, D_ase = neighbor_list("ijD", atoms, cutoff)
        assert _pairs(first, j, D) == sorted(zip(i_ase.tolist(), j_ase.tolist(), *np.round(D_ase, 9).T.tolist()))
    fresh = NeighbourList(cutoff, 0.0).pairs(atoms, species)  # rebuilt from scratch: the same input, bit for bit
    assert all(np.array_equal(a, b) for a, b in zip(fresh, nl.pairs(atoms, species)))
    if cell != "molecule":
        atoms.set_cell(atoms.cell * 1.01, scale_atoms=True)
        nl.pairs(atoms, species)
        assert nl.builds == 3  # a new cell rebuilds


def test_coincident_atoms_are_an_error():
    atoms = Atoms("H3", positions=[[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="coincide"):
        NeighbourList(3.0).pairs(atoms, np.zeros(3, dtype=np.int64))


def test_md_with_the_list_reused_follows_the_rebuilt_trajectory(basis_ch, rng, tmp_path):
    path = LinearACE(basis_ch, 1e-3 * rng.normal(size=basis_ch.size)).save(tmp_path / "model.npz")  # gentle forces
    start = random_cluster("C3H6", rng, dmin=1.1, box=4.0)
    runs = {}
    for skin in (1.0, 0.0):
        m = LinearACE.load(path)  # a fresh basis, hence a fresh list, for each
        m.basis.NEIGHBOUR_SKIN = skin
        atoms = start.copy()
        atoms.calc = m.calculator(threads=1)
        dyn = LangevinBAOAB(atoms, 0.5 * units.fs, temperature_K=300, T_tau=50 * units.fs,
                            rng=np.random.default_rng(3), hydrostatic=True)  # fmt: skip
        dyn.run(150)
        runs[skin] = (atoms.positions.copy(), m.basis._nlist.builds)
    assert runs[0.0][1] == 151 and runs[1.0][1] < 20  # rebuilt on every step vs. a handful of times
    np.testing.assert_allclose(runs[1.0][0], runs[0.0][0], rtol=0, atol=1e-10)


def test_state_check_sees_every_change(basis_al, rng):
    model = committee_model(basis_al, rng)
    atoms = al_cell(rng)
    calc = model.calculator()
    e0 = calc.get_potential_energy(atoms)
    f0 = calc.get_forces(atoms)
    f0[:] = 0.0  # a copy: the calculator's results stay
    assert np.abs(calc.get_forces(atoms)).max() > 0 and calc.check_state(atoms) == []
    assert calc.atoms is not atoms
    changes = {
        "positions": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 0.01),
        "cell": lambda a: a.set_cell(a.cell * 1.002),
        "pbc": lambda a: a.set_pbc([True, True, False]),
    }
    for name, change in changes.items():
        change(atoms)
        assert calc.check_state(atoms) == [name]
        fresh = model.calculator().get_potential_energy(atoms)
        assert calc.get_potential_energy(atoms) == pytest.approx(fresh, rel=1e-12, abs=1e-12)
        assert calc.get_potential_energy(atoms) != pytest.approx(e0, abs=1e-9)
    shorter = atoms[:-1]
    assert calc.check_state(shorter) != []
    assert calc.get_potential_energy(shorter) == pytest.approx(model.calculator().get_potential_energy(shorter))
