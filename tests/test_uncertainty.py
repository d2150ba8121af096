"""σ, f_i, criteria and the committee / HAL calculators."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

import hal
from hal.demo import alloy_cells
from hal.uncertainty import max_criterion, relative_force_uncertainty, softmax_criterion


@pytest.fixture(scope="module")
def model():
    basis = hal.ACEBasis(["Cu", "Al"], order=2, max_degree=[8, 8], r_cut=4.5, r0=2.6, r_in=1.6)
    return hal.fit(alloy_cells(10, seed=11), basis, committee_size=16, progress=False)


@pytest.fixture
def cell():
    atoms = alloy_cells(1, seed=99)[0]
    atoms.rattle(0.05, seed=4)
    return atoms


def test_sigma_grows_away_from_training_data(model, cell):
    sigmas = []
    for strain in (0.0, 0.06, 0.12, 0.2):
        a = cell.copy()
        a.set_cell(cell.cell * (1 + strain), scale_atoms=True)
        a.calc = model.committee_calculator()
        sigmas.append(a.calc.get_property("sigma", a))
    assert np.all(np.diff(sigmas) > 0), sigmas
    assert sigmas[-1] > 5 * sigmas[0]


def test_committee_calculator_results(model, cell):
    cell.calc = model.committee_calculator()
    r = {
        k: cell.calc.get_property(k, cell)
        for k in ("energy", "forces", "committee_energies", "committee_forces", "sigma", "force_uncertainty")
    }
    assert r["committee_energies"].shape == (16,) and r["committee_forces"].shape == (16, len(cell), 3)
    assert r["sigma"] == pytest.approx(np.sqrt(np.mean((r["committee_energies"] - r["energy"]) ** 2)))
    f = relative_force_uncertainty(r["committee_forces"], r["forces"], 0.2)
    assert np.allclose(r["force_uncertainty"], f) and np.all(f > 0)
    plain = model.calculator()
    assert cell.calc.get_property("energy", cell) == pytest.approx(plain.get_potential_energy(cell), rel=1e-12)


def test_relative_force_uncertainty_is_the_mean_deviation_over_the_force_norm():
    """f_i from its definition, written independently (per atom and member), and a clear error for
    member forces that do not match the mean forces."""
    rng = np.random.default_rng(3)
    members, mean = rng.normal(size=(7, 5, 3)), rng.normal(size=(5, 3))
    expected = [
        np.mean([np.linalg.norm(members[k, i] - mean[i]) for k in range(7)]) / (np.linalg.norm(mean[i]) + 0.3)
        for i in range(5)
    ]
    assert np.allclose(relative_force_uncertainty(members, mean, 0.3), expected, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="do not match"):
        relative_force_uncertainty(members, mean[:4], 0.3)
    with pytest.raises(ValueError, match="at least one"):
        relative_force_uncertainty(members[:0], mean, 0.3)


@pytest.mark.parametrize("members", [True, False])
@pytest.mark.parametrize("relative", [False, True])
def test_biased_forces_and_stress_are_derivatives_of_biased_energy(model, cell, members, relative):
    reference = alloy_cells(1, seed=99)[0] if relative else None
    calc = hal.HALCalculator(model, tau=0.7, force_uncertainty=members, reference=reference)
    cell.calc = calc
    F = cell.get_forces()
    S = cell.get_stress()
    res = dict(calc.results)
    assert res["sigma"] > 0 and res["tau"] == 0.7
    assert ("force_uncertainty" in res) == members
    # biased = mean + τ ∇σ, and the energy is lowered by τσ
    assert np.allclose(F, res["mean_forces"] + 0.7 * res["bias_forces"])
    assert res["energy"] == pytest.approx(res["mean_energy"] - 0.7 * res["sigma"])
    assert np.abs(F - calculate_numerical_forces(cell, eps=1e-5)).max() < 1e-5
    assert np.abs(S - calculate_numerical_stress(cell, eps=1e-6)).max() < 1e-5


def test_bias_gradient_paths_agree(model, cell):
    a = hal.HALCalculator(model, tau=1.0, force_uncertainty=True)
    b = hal.HALCalculator(model, tau=1.0, force_uncertainty=False)
    a.calculate(cell, ["energy", "forces", "stress"])
    b.calculate(cell, ["energy", "forces", "stress"])
    assert np.allclose(a.results["bias_forces"], b.results["bias_forces"], rtol=1e-9, atol=1e-12)
    assert np.allclose(a.results["stress"], b.results["stress"], rtol=1e-9, atol=1e-14)


def test_sigma_relative_to_a_reference_is_the_spread_of_energy_differences(model, cell):
    start = alloy_cells(1, seed=99)[0]
    members = {}
    for name, atoms in (("start", start), ("cell", cell)):
        atoms.calc = model.committee_calculator()
        members[name] = atoms.calc.get_property("committee_energies", atoms) - atoms.get_potential_energy()
    expected = np.sqrt(np.mean((members["cell"] - members["start"]) ** 2))
    for fi in (True, False):
        calc = hal.HALCalculator(model, tau=0.2, force_uncertainty=fi, reference=start)
        calc.calculate(cell, ["energy"])
        assert calc.results["sigma"] == pytest.approx(expected, rel=1e-10)
        calc.calculate(start, ["energy"])
        assert calc.results["sigma"] < 1e-9 * np.abs(members["start"]).max()


def test_tau_zero_is_the_plain_model(model, cell):
    cell.calc = hal.HALCalculator(model, tau=0.0)
    plain = model.calculator()
    assert cell.get_potential_energy() == pytest.approx(plain.get_potential_energy(cell), rel=1e-12)
    assert np.allclose(cell.get_forces(), plain.get_forces(cell), rtol=0, atol=1e-12)
    assert np.allclose(cell.get_stress(), plain.get_stress(cell), rtol=0, atol=1e-14)


def test_criteria():
    f = np.array([0.1, 0.2, 3.0])
    assert max_criterion(f) == 3.0
    s = softmax_criterion(f)
    assert s == pytest.approx(np.exp(3.0) / np.exp(f).sum()) and s > 0.5
    assert softmax_criterion(np.zeros(10)) == pytest.approx(0.1)
    assert softmax_criterion(np.array([])) == 0.0


def test_model_without_committee_is_refused(model, cell):
    plain = hal.LinearACE(model.basis, model.coefficients, model.e0)
    with pytest.raises(ValueError, match="committee"):
        plain.evaluate_committee(cell)


def test_two_phase_store_reuse_across_structures(model):
    """The stored forward pass is reused between calls of equal size; results must not leak."""
    cells = alloy_cells(3, seed=21)
    cells[1].set_cell(cells[1].cell * 1.05, scale_atoms=True)  # fewer neighbours than the first
    fast = hal.HALCalculator(model, tau=0.5, force_uncertainty=False)
    ref = hal.HALCalculator(model, tau=0.5, force_uncertainty=True)
    for atoms in cells + cells[:1]:
        fast.calculate(atoms, ["energy", "forces", "stress"])
        ref.calculate(atoms, ["energy", "forces", "stress"])
        assert fast.results["energy"] == pytest.approx(ref.results["energy"], rel=1e-12)
        assert np.allclose(fast.results["forces"], ref.results["forces"], rtol=1e-9, atol=1e-12)
        assert np.allclose(fast.results["stress"], ref.results["stress"], rtol=1e-9, atol=1e-14)
