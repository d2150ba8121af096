"""Oracle dimer curves (``hal.fit.dimers``): where they sit, and that they pin a fitted model's dimer forces
down to r_in, where bulk data alone leave them unconstrained."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

import hal
from hal.demo import alloy_cells
from hal.fit.dimers import dimer_curves


@pytest.fixture(scope="module")
def basis():
    return hal.ACEBasis(["Cu", "Al"], order=2, max_degree=[8, 8], r_cut=4.5, r0={("Cu", "Al"): 2.4, None: 2.6},
                        r_in=1.6)  # fmt: skip


def test_dimers_span_r_in_to_r0_for_every_species_pair(basis):
    dimers = dimer_curves(basis, 4, force_weight=0.2)
    assert len(dimers) == 3 * 4  # Cu–Cu, Cu–Al, Al–Al
    zs = basis.zs
    for k, (a, b) in enumerate([(0, 0), (0, 1), (1, 1)]):
        group = dimers[4 * k : 4 * k + 4]
        assert all(sorted(d.numbers) == sorted([zs[a], zs[b]]) for d in group)
        r = [d.get_distance(0, 1) for d in group]
        assert r[0] == pytest.approx(basis.r_in[a, b]) and r[-1] == pytest.approx(basis.r0[a, b])
    info = dimers[0].info
    assert (info["config_type"], info["energy_weight"], info["force_weight"], info["f_max"]) == (
        "dimer",
        0,
        0.2,
        np.inf,
    )
    with pytest.raises(ValueError, match="points"):
        dimer_curves(basis, 0)
    with pytest.raises(ValueError, match="r_in"):
        dimer_curves(basis, 4, r_max=0.5)


def test_dimer_forces_fitted_down_to_r_in_without_hurting_the_bulk(basis):
    cells = alloy_cells(12, seed=3)
    dimers = dimer_curves(basis, 6)
    for d in dimers:  # EMT labels; at r_in its forces (≈ 30 eV/Å) are above the default f_max of 20
        d.calc = EMT()
        d.arrays["forces"], d.info["energy"] = d.get_forces(), d.get_potential_energy()
        d.calc = None
    ref = np.array([d.arrays["forces"][1, 0] for d in dimers])
    assert ref.max() > 20.0
    errors, rmse = {}, {}
    for name, extra in (("bulk", []), ("bulk + dimers", dimers)):
        model = hal.fit(cells[:9] + extra, basis, committee_size=4, progress=False)
        pred = np.array([model.evaluate(d).forces[0][1, 0] for d in dimers])
        errors[name] = np.abs(pred - ref).max() / np.abs(ref).max()
        rmse[name] = np.sqrt(np.mean([(model.evaluate(a).forces[0] - a.arrays["forces"]) ** 2 for a in cells[9:]]))
    assert errors["bulk"] > 0.3  # nothing in the bulk cells reaches r_in: the fit leaves the core free
    assert errors["bulk + dimers"] < 0.1
    assert rmse["bulk + dimers"] < 1.5 * rmse["bulk"]  # eV/Å on held-out cells
