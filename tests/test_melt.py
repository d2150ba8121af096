"""The PEG melt builder and the NPT density run: composition, density, no overlaps across periodic images,
PEG's bonded geometry; the barostat drives an ideal gas to PV = NkT; a broken bond stops the run; molecule
pairs in contact at the distance drawn."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.lj import LennardJones
from ase.geometry import get_distances
from scipy.spatial.distance import cdist

from hal.bonds import Topology
from hal.dynamics.npt import block_average, drift, npt_run
from hal.structures import BONDS, density, molecule_contacts, peg, peg_melt


@pytest.fixture(scope="module")
def melt() -> Atoms:
    return peg_melt(12, n_chains=3, density_g_cm3=0.5, seed=3)


def test_melt_has_the_composition_and_density_asked_for(melt):
    single = peg(12)
    assert len(melt) == 3 * len(single)
    assert melt.get_chemical_formula() == (single + single + single).get_chemical_formula()
    assert density(melt) == pytest.approx(0.5, rel=1e-12)
    assert melt.pbc.all() and np.allclose(melt.cell.angles(), 90.0)
    scaled = melt.get_scaled_positions(wrap=False)
    assert np.all((scaled >= 0) & (scaled < 1))  # wrapped into the box


def test_melt_bonds_are_pegs_and_nothing_else_is_close(melt):
    topo = Topology(melt)
    single = Topology(peg(12))
    assert len(topo.bonds) == 3 * len(single.bonds)  # no spurious bond: no overlap, across images too
    symbols = np.array(melt.get_chemical_symbols())
    expected = [BONDS[tuple(sorted(symbols[[i, j]]))] for i, j in topo.bonds]
    assert topo.lengths(melt) == pytest.approx(expected, abs=1e-9)  # minimum image: bonds across the boundary
    raw = np.linalg.norm(melt.positions[topo.bonds[:, 1]] - melt.positions[topo.bonds[:, 0]], axis=1)
    assert np.any(raw > 2.5)  # some bonds do cross the boundary (so the check above used the images)
    _, d = get_distances(melt.positions, cell=melt.cell, pbc=True)
    far = topo.hops > 2  # more than two bonds apart (other chains: infinitely far)
    assert np.isinf(topo.hops[0, -1])  # chains are separate molecules
    assert d[far].min() >= 2.0 - 1e-9


def test_melt_builder_gives_a_clear_error_when_it_cannot_pack():
    with pytest.raises(RuntimeError, match="lower the density"):
        peg_melt(4, n_chains=4, density_g_cm3=3.0, max_tries=2)
    with pytest.raises(ValueError):
        peg_melt(0)


def test_barostat_drives_an_ideal_gas_to_pv_equal_nkt():
    n, temperature, pressure_bar = 64, 300.0, 500.0
    rng = np.random.default_rng(0)
    gas = Atoms(f"Ar{n}", positions=rng.uniform(0, 30, (n, 3)), cell=[30.0] * 3, pbc=True)
    trace = npt_run(gas, LennardJones(epsilon=0.0), steps=3000, temperature_K=temperature, pressure_bar=pressure_bar,
                    timestep_fs=2.0, taut_fs=50.0, taup_fs=500.0, compressibility_per_bar=1 / pressure_bar,
                    record_every=20)  # fmt: skip
    mass = gas.get_masses().sum()
    target = pressure_bar * units.bar * mass / (n * units.kB * temperature) * 1.66053907  # g/cm³
    rho, err = block_average(trace.density[len(trace.density) // 2 :])
    assert rho == pytest.approx(target, rel=0.1)  # started 5× too dilute
    assert trace.density[0] < 0.3 * target
    assert np.mean(trace.pressure[len(trace.pressure) // 2 :]) == pytest.approx(pressure_bar, rel=0.15)
    assert trace.broken is None and trace.steps == 3000 and trace.us_per_atom_step > 0


def test_npt_run_stops_at_a_broken_bond():
    atoms = Atoms("CO", positions=[[0, 0, 0], [1.13, 0, 0]], cell=[10.0] * 3, pbc=True)
    topo = Topology(atoms)
    atoms.positions[1, 0] = 3.0  # out of its window from the start: the first record stops the run
    trace = npt_run(atoms, LennardJones(epsilon=0.0), steps=100, record_every=10, topology=topo)
    assert trace.broken is not None and trace.broken_step == 10 and trace.steps == 10


def test_npt_run_keeps_an_intact_box_lookback_records_before_a_break():
    atoms = Atoms("CO", positions=[[0, 0, 0], [1.13, 0, 0]], cell=[10.0] * 3, pbc=True)
    topo = Topology(atoms)
    atoms.set_velocities([[-0.01, 0, 0], [0.01, 0, 0]])  # Å/fs: the bond stretches by ≈ 0.1 Å every 10 steps
    runs = [npt_run(atoms.copy(), LennardJones(epsilon=0.0), steps=1000, record_every=10, topology=topo,
                    lookback=k) for k in (1, 3)]  # fmt: skip
    assert all(r.broken is not None and r.broken_step > 50 for r in runs)
    stretch = [r.broken.length - r.intact.get_distance(0, 1, mic=True) for r in runs]
    assert 0 < stretch[0] < 0.5 and stretch[1] == pytest.approx(3 * stretch[0], rel=0.2)  # k records back
    for r in runs:
        assert r.intact.calc is None and not topo.broken(r.intact)
        assert np.any(r.intact.get_momenta())  # a restart carries on from its velocities


def test_block_average_standard_error():
    rng = np.random.default_rng(1)
    x = rng.normal(1.2, 0.05, 10000)
    mean, err = block_average(x, 10)
    assert mean == pytest.approx(1.2, abs=4 * 0.05 / 100)
    assert err == pytest.approx(0.05 / 100, rel=0.6)  # independent samples: σ/√N
    with pytest.raises(ValueError):
        block_average(x[:3], 5)


def test_molecule_contacts_touch_at_the_drawn_distance_and_keep_each_molecule_rigid():
    mol = peg(2)
    pairs = molecule_contacts(mol, 12, 0.8, 2.5, seed=1)
    n = len(mol)
    closest = [cdist(p.positions[:n], p.positions[n:]).min() for p in pairs]
    assert min(closest) >= 0.8 - 1e-6 and max(closest) <= 2.5 + 1e-6 and np.ptp(closest) > 0.5  # spread over the range
    for p in pairs:
        assert p.info["config_type"] == "contact" and list(p.numbers) == list(mol.numbers) * 2
        for half in (p[:n], p[n:]):  # each molecule moved rigidly: its internal distances unchanged
            assert np.allclose(half.get_all_distances(), mol.get_all_distances(), atol=1e-9)
    assert np.allclose(molecule_contacts(mol, 2, seed=1)[1].positions, molecule_contacts(mol, 2, seed=1)[1].positions)
    with pytest.raises(ValueError, match="min_distance"):
        molecule_contacts(mol, 2, 2.0, 1.0)


def test_molecules_scaled_moves_whole_molecules_across_the_boundary(melt):
    topo = Topology(melt)
    assert sorted(np.bincount(topo.molecules)) == [len(peg(12))] * 3
    dense = topo.molecules_scaled(melt, 0.8)
    assert density(dense) == pytest.approx(0.8, rel=1e-12) and dense.pbc.all()
    assert topo.lengths(dense) == pytest.approx(topo.lengths(melt), abs=1e-9)  # across the boundary too
    near = topo.hops <= 4  # within four bonds: a chain's own shape (a chain meeting its image changes, rightly)
    before, after = melt.get_all_distances(mic=True), dense.get_all_distances(mic=True)
    assert after[near] == pytest.approx(before[near], abs=1e-9)
    back = topo.molecules_scaled(dense, 0.5)  # centres scaled back: every atom where it was, up to a lattice vector
    assert np.allclose(back.cell, melt.cell)
    _, moved = get_distances(back.positions, melt.positions, cell=melt.cell, pbc=True)
    assert np.diag(moved).max() < 1e-9
    _, d = get_distances(dense.positions, cell=dense.cell, pbc=True)
    assert d[topo.hops > 2].min() < 2.0 - 0.1  # the packing came closer: a denser box of the same molecules
    with pytest.raises(ValueError):
        Topology(peg(2)).molecules_scaled(peg(2), 1.0)


def test_drift_tells_a_settled_trace_from_a_drifting_one():
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 10.0, 1001)
    flat = 1.0 + 0.01 * rng.normal(size=t.size)
    change, err = drift(t, flat)
    assert abs(change) < 3 * err + 1e-3 and err < 0.01
    ramp = flat - 0.008 * t  # a density still falling by 0.08 over the window
    change, err = drift(t, ramp)
    assert change == pytest.approx(-0.08, abs=4 * err) and abs(change) > 10 * err
    with pytest.raises(ValueError, match="blocks"):
        drift(t[:2], flat[:2])
