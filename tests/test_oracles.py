"""The sturdier embedded oracle: tblite retried at a higher electronic temperature when its SCF fails."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.calculator import CalculationFailed
from tblite.ase import TBLite

from hal.oracles import TBLiteRetry


def stretched_water() -> object:
    """H2O with one O–H pulled to 4 Å: GFN2-xTB's restricted SCF fails at 300 K and converges at 3000 K."""
    atoms = molecule("H2O")
    v = atoms.positions[1] - atoms.positions[0]
    atoms.positions[1] = atoms.positions[0] + 4.0 * v / np.linalg.norm(v)
    return atoms


def test_a_failed_scf_is_retried_hot_and_labelled_as_such():
    atoms = stretched_water()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    with pytest.raises(CalculationFailed):
        atoms.get_potential_energy()
    retry = TBLiteRetry()
    atoms.calc = retry
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    assert retry.retries == 1 and retry.results["electronic_temperature"] == 3000.0
    hot = atoms.copy()
    hot.calc = TBLite(method="GFN2-xTB", verbosity=0, electronic_temperature=3000.0)
    assert e == pytest.approx(hot.get_potential_energy(), abs=1e-8)
    assert np.allclose(f, hot.get_forces(), atol=1e-6)
    # the next, ordinary structure is computed at 300 K again, as plain tblite computes it
    water = molecule("H2O")
    water.calc = retry
    e = water.get_potential_energy()
    assert retry.retries == 1 and retry.results["electronic_temperature"] == 300.0
    water.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert e == pytest.approx(water.get_potential_energy(), abs=1e-8)


def test_md_through_the_retrying_oracle_is_plain_tblite_md():
    from ase import units
    from ase.md.verlet import VelocityVerlet

    def run(calc) -> np.ndarray:
        atoms = molecule("CH3OH")
        atoms.calc = calc
        VelocityVerlet(atoms, 0.5 * units.fs).run(10)
        return atoms.positions

    assert np.allclose(run(TBLiteRetry()), run(TBLite(method="GFN2-xTB", verbosity=0)), atol=1e-8)


def test_the_loop_records_a_hot_label(tmp_path):
    from hal.loop import Oracle
    from hal.loop.store import Store

    result = Oracle(TBLiteRetry)(stretched_water())
    assert result.ok and result.atoms.info["electronic_temperature"] == 3000.0
    store = Store(tmp_path / "data.db")
    store.add(result, "it000-w00", source="hal")
    assert store.labelled()[0].info["electronic_temperature"] == 3000.0
