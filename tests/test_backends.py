"""The Backend protocol on linear ACE: per-member fits, shared design rows, ensemble committee."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

import hal
from hal.backends.ace import ACEBackend, ACEEnsemble
from hal.backends.base import Backend, Ensemble, MemberCalculator
from hal.fit import assemble, assemble_groups
from hal.fit.design import reference_energies
from hal.loop.select import Splits
from tests.conftest import labelled, random_cluster


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    return labelled([random_cluster(["Cu"] * 5 + ["Al"] * 3, rng, dmin=2.2, box=5.0) for _ in range(30)], EMT)


@pytest.fixture(scope="module")
def basis():
    return hal.ACEBasis(["Cu", "Al"], order=2, max_degree=[8, 6], r_cut=4.5, r0=2.6, r_in=1.6)


def test_grouped_assembly_equals_assembling_each_subset(data, basis):
    e0 = reference_energies(data, basis.elements)
    groups = np.random.default_rng(0).random((3, len(data))) < 0.6
    for ne, mask in zip(assemble_groups(basis, data, groups, e0, n_workers=1, progress=False), groups):
        direct = assemble(basis, [a for a, m in zip(data, mask) if m], e0, n_workers=1, progress=False)
        assert ne.n_rows == direct.n_rows and np.allclose(ne.G, direct.G) and np.allclose(ne.b, direct.b)
    with pytest.raises(ValueError, match="shape"):
        assemble_groups(basis, data, groups[:, :5], e0)


def test_ace_backend_members_fit_their_own_splits(data, basis, tmp_path):
    backend = ACEBackend(basis)
    assert isinstance(backend, Backend)
    splits = Splits(3, seed=0).random(len(data), 0)
    ens = backend.fit(data, splits.train)
    assert isinstance(ens, Ensemble) and ens.n_members == 3
    # each member equals a plain BRR fit on its training configurations alone
    for m in range(3):
        train = [data[i] for i in splits.indices(m)[0]]
        alone = hal.fit(train, basis, e0=ens.model.e0, committee_size=0, progress=False)
        assert np.allclose(ens.model.committee[m], alone.coefficients, rtol=1e-6, atol=1e-8)
    # best = lowest force MAE over all the data; members differ off the data (σ > 0)
    assert ens.best == int(np.argmin(ens.model.fit_info["force_mae"]))
    far = data[0].copy()
    far.positions *= 0.9
    calc = MemberCalculator(ens)
    far.calc = calc
    e = far.get_potential_energy()
    assert calc.results["sigma"] > 0
    assert e == pytest.approx(ens.member(ens.best).calculator().get_potential_energy(far))
    # save → load: identical predictions and the same best member
    again = backend.load(ens.save(tmp_path / "ens.npz"))
    assert again.best == ens.best
    r1, r2 = ens.evaluate_committee(far), again.evaluate_committee(far)
    assert np.allclose(r1.member_energies, r2.member_energies) and np.allclose(r1.member_forces, r2.member_forces)
    with pytest.raises(ValueError, match="train_masks"):
        backend.fit(data, [t[:3] for t in splits.train])


def test_hal_bias_on_an_ensemble_is_the_gradient_of_the_biased_energy(data, basis):
    ens = ACEBackend(basis).fit(data, Splits(4, seed=2).random(len(data), 0).train)
    atoms = data[3].copy()
    atoms.calc = hal.HALCalculator(ens, tau=0.5, force_uncertainty=False)
    f = atoms.get_forces()
    h = 1e-5
    for i, k in [(0, 0), (4, 2), (7, 1)]:
        x = atoms.copy()
        x.calc = atoms.calc
        x.positions[i, k] += h
        ep = x.get_potential_energy()
        x.positions[i, k] -= 2 * h
        em = x.get_potential_energy()
        assert f[i, k] == pytest.approx(-(ep - em) / (2 * h), abs=1e-5)


def test_ensemble_needs_members(basis):
    with pytest.raises(ValueError, match="members"):
        ACEEnsemble(hal.LinearACE(basis, np.zeros(basis.size)))


def test_sparse_molecule_neighbours_match_ase(basis):
    """A fragment far away (a sparse box) takes the all-pairs path; neighbours must not change."""
    from ase.neighborlist import neighbor_list

    rng = np.random.default_rng(1)
    atoms = random_cluster(["Cu"] * 6, rng, dmin=2.2, box=5.0)
    atoms.positions[0] += [800.0, 0.0, 0.0]
    atoms += Atoms("Al", positions=[atoms.positions[0] + [2.5, 0, 0]])
    _, first, jnb, D = basis.neighbours(atoms)
    i, j = neighbor_list("ij", atoms, basis.cutoff)
    assert len(jnb) == len(j) and sorted(zip(i, j)) == sorted(
        (a, b) for a in range(len(atoms)) for b in jnb[first[a] : first[a + 1]]
    )
