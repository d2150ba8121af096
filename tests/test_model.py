"""LinearACE and its ASE calculator: E0, stress, save/load, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from hal import LinearACE
from tests.conftest import random_cluster


@pytest.fixture
def model_ch(basis_ch, rng):
    return LinearACE(basis_ch, rng.normal(scale=0.01, size=basis_ch.size), {"C": -1.5, "H": -0.3})


def test_calculator_matches_basis_and_e0(model_ch, rng):
    atoms = random_cluster("C2H3", rng)
    val = model_ch.basis.evaluate(atoms)
    atoms.calc = model_ch.calculator()
    e = atoms.get_potential_energy()
    assert e == pytest.approx(val.energy @ model_ch.coefficients + 2 * -1.5 + 3 * -0.3, rel=1e-12)
    assert np.allclose(atoms.get_forces(), val.forces @ model_ch.coefficients, atol=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(e, rel=1e-12)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()
    # single atom and empty structure: just the reference energies
    single = Atoms("C")
    single.calc = model_ch.calculator()
    assert single.get_potential_energy() == pytest.approx(-1.5)


def test_stress_matches_finite_strain(basis_al, rng):
    model = LinearACE(basis_al, rng.normal(scale=0.05, size=basis_al.size), {"Al": -3.0})
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.rattle(0.05, rng=rng)
    atoms.calc = model.calculator()
    stress = atoms.get_stress(voigt=False)
    from ase.calculators.fd import calculate_numerical_stress

    num = calculate_numerical_stress(atoms, eps=1e-5, voigt=False)
    assert np.abs(stress - num).max() < 1e-7


def test_save_load_identical(model_ch, tmp_path, rng):
    path = model_ch.save(tmp_path / "model.npz")
    loaded = LinearACE.load(path)
    assert loaded.basis.spec == model_ch.basis.spec and loaded.e0 == model_ch.e0
    atoms = random_cluster("C3H4", rng)
    r1, r2 = model_ch.evaluate(atoms), loaded.evaluate(atoms)
    assert np.array_equal(r1.energies, r2.energies)
    assert np.array_equal(r1.forces, r2.forces)
    # the coupling is stored, not recomputed: identical arrays
    a1, a2 = model_ch.basis.coupling_arrays(), loaded.basis.coupling_arrays()
    assert all(np.array_equal(a1[k], a2[k]) for k in a1)


def test_model_bad_input(basis_ch):
    with pytest.raises(ValueError, match="shape"):
        LinearACE(basis_ch, np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        LinearACE(basis_ch, np.full(basis_ch.size, np.nan))
    with pytest.raises(ValueError, match="Si"):
        LinearACE(basis_ch, np.zeros(basis_ch.size), {"Si": 1.0})


def test_pruned_model_predicts_the_same_on_a_smaller_dag(basis_ch, rng, tmp_path):
    c = rng.normal(scale=0.01, size=basis_ch.size)
    off = rng.random(basis_ch.n_ace) < 0.7
    c[: basis_ch.n_ace][off] = 0.0
    committee = c + rng.normal(scale=1e-3, size=(3, basis_ch.size)) * np.concatenate([~off, np.ones(basis_ch.n_pair)])
    model = LinearACE(basis_ch, c, {"C": -1.5, "H": -0.3}, committee=committee)
    pruned = LinearACE.load(model.pruned().save(tmp_path / "pruned.npz"))
    assert pruned.basis.n_ace == (~off).sum() and pruned.basis.n_pair == basis_ch.n_pair
    assert len(pruned.basis._node_keys) < len(basis_ch._node_keys)
    atoms = random_cluster("C3H5", rng)
    full, small = model.evaluate_committee(atoms), pruned.evaluate_committee(atoms)
    assert abs(full.energy - small.energy) < 1e-12
    assert np.allclose(full.forces, small.forces, rtol=0, atol=1e-12)
    assert np.allclose(full.member_energies, small.member_energies, rtol=0, atol=1e-12)
    assert np.allclose(full.member_forces, small.member_forces, rtol=0, atol=1e-12)
    # the kept columns of the sub-basis are the kept functions of the full basis
    keep = np.flatnonzero(~off)
    assert np.allclose(basis_ch.evaluate(atoms).energy[keep], pruned.basis.evaluate(atoms).energy[: len(keep)])
    with pytest.raises(ValueError, match="distinct indices"):
        basis_ch.subset([0, 0])
