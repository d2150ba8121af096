"""Design assembly and Bayesian regression (BRR, ARD), committee sampling."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from sklearn.linear_model import BayesianRidge

import hal
from hal.demo import alloy_cells
from hal.fit import ARD, BRR, LabelKeys, Weights, assemble, reference_energies
from hal.fit.design import config_rows


@pytest.fixture(scope="module")
def cells():
    return alloy_cells(12, seed=3)


@pytest.fixture(scope="module")
def basis_cual():
    return hal.ACEBasis(["Cu", "Al"], order=2, max_degree=[8, 8], r_cut=4.5, r0=2.6, r_in=1.6)


def test_brr_matches_sklearn_on_ace_design(cells, basis_cual):
    rows = [config_rows(basis_cual, a, {"Cu": 0.0, "Al": 0.0}) for a in cells]
    X = np.vstack([r for r, _ in rows])
    y = np.concatenate([t for _, t in rows])
    X = X / np.linalg.norm(X, axis=0)  # well-posed columns for both
    sk = BayesianRidge(fit_intercept=False, tol=1e-12, max_iter=2000).fit(X, y)
    me = BRR(tol=1e-12, max_iter=2000).fit(X.T @ X, X.T @ y, y @ y, len(y), y_mean=y.mean())
    assert me.alpha_ == pytest.approx(sk.lambda_, rel=1e-6)  # prior precision
    assert me.lambda_ == pytest.approx(sk.alpha_, rel=1e-6)  # noise precision
    assert np.allclose(X @ me.coef_, sk.predict(X), rtol=1e-6, atol=1e-8 * np.abs(y).max())
    # Σ from eigh(ΨᵀΨ) vs sklearn's SVD of Ψ: agreement to 1e-6 of the matrix scale
    assert np.abs(me.sigma_ - sk.sigma_).max() < 1e-6 * np.abs(sk.sigma_).max()


def test_ard_recovers_planted_sparse_solution():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 60))
    truth = np.zeros(60)
    truth[[2, 11, 23, 40, 57]] = [1.5, -2.0, 0.7, 3.0, -1.1]
    y = X @ truth + 0.01 * rng.normal(size=400)
    ard = ARD(threshold=1e4).fit(X.T @ X, X.T @ y, y @ y, len(y))
    assert set(np.flatnonzero(ard.active_)) == {2, 11, 23, 40, 57}
    assert np.allclose(ard.coef_, truth, atol=5e-3)
    # the posterior lives on the kept functions only
    S = ard.sigma_
    assert np.all(S[~ard.active_] == 0) and np.all(np.diag(S)[ard.active_] > 0)


def test_committee_covariance_approaches_posterior():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 12))
    X[:, -1] = X[:, 0] + 1e-9 * rng.normal(size=100)  # nearly singular ΨᵀΨ
    y = X @ rng.normal(size=12) + 0.1 * rng.normal(size=100)
    brr = BRR().fit(X.T @ X, X.T @ y, y @ y, len(y))
    samples = brr.sample(40000, seed=5)
    assert np.all(np.isfinite(samples))
    err = np.abs(np.cov(samples.T) - brr.sigma_).max() / np.abs(brr.sigma_).max()
    assert err < 0.03
    assert np.array_equal(brr.sample(4, seed=7), brr.sample(4, seed=7))


def test_parallel_assembly_equals_serial(cells, basis_cual):
    e0 = {"Cu": -0.1, "Al": -0.2}
    many = cells * 6  # 72 configurations: above the parallel threshold
    serial = assemble(basis_cual, many, e0, n_workers=1, progress=False)
    parallel = assemble(basis_cual, many, e0, n_workers=2, progress=False)
    assert parallel.n_rows == serial.n_rows
    assert np.allclose(parallel.G, serial.G, rtol=1e-12, atol=1e-12 * np.abs(serial.G).max())
    assert np.allclose(parallel.b, serial.b, rtol=1e-12, atol=1e-12 * np.abs(serial.b).max())


def test_rows_weights_fmax_and_labels(basis_cual, cells):
    a = cells[0].copy()
    e0 = {"Cu": 0.0, "Al": 0.0}
    Psi, y = config_rows(basis_cual, a, e0)
    n = len(a)
    assert Psi.shape == (3 * n + 1 + 6, basis_cual.size)
    # weight overrides
    a.info["energy_weight"] = 0.0
    assert config_rows(basis_cual, a, e0)[0].shape[0] == 3 * n + 6
    # a force above f_max drops that atom's rows and the configuration's energy and virial rows
    b = cells[1].copy()
    b.arrays["forces"] = b.arrays["forces"].copy()
    b.arrays["forces"][5] = [30.0, 0.0, 0.0]
    Psi, y = config_rows(basis_cual, b, e0, Weights(f_max=20.0))
    assert Psi.shape[0] == 3 * (n - 1)
    b.info["f_max"] = np.inf  # its own cutoff (the oracle dimers of hal.fit.dimers): every row back
    assert config_rows(basis_cual, b, e0, Weights(f_max=20.0))[0].shape[0] == 3 * n + 1 + 6
    # labels from an attached SinglePointCalculator, custom keys, and bad labels
    c = cells[2].copy()
    energy, forces = c.info.pop("energy"), c.arrays.pop("forces")
    c.info.pop("stress")
    c.calc = SinglePointCalculator(c, energy=energy, forces=forces)
    assert config_rows(basis_cual, c, e0)[0].shape[0] == 3 * n + 1
    d = cells[3].copy()
    d.info["E_dft"] = d.info.pop("energy")
    assert config_rows(basis_cual, d, e0, keys=LabelKeys(energy="E_dft"))[0].shape[0] == 3 * n + 1 + 6
    d.info["E_dft"] = np.nan
    with pytest.raises(ValueError, match="energy"):
        config_rows(basis_cual, d, e0, keys=LabelKeys(energy="E_dft"))


def test_e0_from_isolated_atoms_or_fitted(cells):
    iso = []
    for el, e in (("Cu", -0.5), ("Al", -0.25)):
        atom = Atoms(el)
        atom.info["energy"] = e
        iso.append(atom)
    assert reference_energies(cells + iso, ["Cu", "Al"]) == {"Cu": -0.5, "Al": -0.25}
    fitted = reference_energies(cells, ["Cu", "Al"])
    counts = np.array([[a.get_chemical_symbols().count(s) for s in ("Cu", "Al")] for a in cells])
    E = np.array([a.info["energy"] for a in cells])
    resid = E - counts @ np.array([fitted["Cu"], fitted["Al"]])
    assert np.abs(resid).mean() < np.abs(E - E.mean()).mean()
    unfitted = cells[0].copy()  # an energy the fit does not use (energy weight 0) does not move E0 either
    unfitted.info.update(energy=1e3, energy_weight=0.0)
    assert reference_energies(cells + [unfitted], ["Cu", "Al"]) == pytest.approx(fitted, rel=1e-12)


def test_fit_reproduces_emt_and_save_load(cells, basis_cual, tmp_path):
    model = hal.fit(cells[:9], basis_cual, committee_size=8, progress=False)
    assert model.committee.shape == (8, basis_cual.size)
    test = cells[9:]
    rmse = np.sqrt(np.mean([(model.evaluate(a).forces[0] - a.arrays["forces"]) ** 2 for a in test]))
    assert rmse < 0.1  # eV/Å; EMT forces here are O(1) eV/Å
    loaded = hal.LinearACE.load(model.save(tmp_path / "m.npz"))
    assert np.array_equal(loaded.committee, model.committee) and loaded.fit_info == model.fit_info
    r1, r2 = model.evaluate_committee(test[0]), loaded.evaluate_committee(test[0])
    assert np.array_equal(r1.member_energies, r2.member_energies)
    assert np.array_equal(r1.member_forces, r2.member_forces)
    ard = hal.fit(cells[:9], basis_cual, solver="ard", committee_size=4, progress=False)
    assert 0 < ard.fit_info["n_active"] <= basis_cual.size
    with pytest.raises(ValueError, match="solver"):
        hal.fit(cells[:2], basis_cual, solver="lasso", progress=False)


def test_brr_leaves_the_null_space_of_the_design_empty():
    """Exactly dependent columns and rows of very different weight (energies × 1000): the eigen-
    directions ΨᵀΨ does not see get no coefficient, instead of round-off divided by a small α
    (which made the evidence iteration blow up on a real ACE design)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30))
    X = np.hstack([X, X[:, :10], 1e-3 * X[:, :5]])  # 15 exactly dependent columns
    X[:40] *= 3e3
    y = X[:, :30] @ rng.normal(size=30) + rng.normal(scale=0.1, size=400)
    est = BRR().fit(X.T @ X, X.T @ y, float(y @ y), len(y))
    s, V = np.linalg.eigh(X.T @ X)
    null = V[:, s < 1e-9 * s.max()]
    assert null.shape[1] == 15 and np.all(np.isfinite(est.coef_))
    assert np.abs(null.T @ est.coef_).max() < 1e-12 * np.abs(est.coef_).max()
    sk = BayesianRidge(fit_intercept=False).fit(X, y)
    assert np.allclose(X @ est.coef_, X @ sk.coef_, rtol=0, atol=1e-9 * np.abs(y).max())
