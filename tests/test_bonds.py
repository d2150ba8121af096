"""PEG builder geometry, the bond-window topology check, the hydrogen-bond detector, and the MD stability
test (a deliberately broken model is caught; the oracle itself survives)."""

from __future__ import annotations

import numpy as np
import pytest

from hal.bonds import Topology
from hal.dynamics.stability import stability_test
from hal.structures import BONDS, peg


@pytest.mark.parametrize("n", [1, 2, 4])
def test_peg_geometry(n):
    a = peg(n)
    assert a.get_chemical_formula(mode="hill") == f"C{2 * n}H{4 * n + 2}O{n + 1}"
    t = Topology(a)
    assert len(t.bonds) == len(a) - 1  # a tree: every atom bonded, no ring
    for i, j in t.bonds:
        pair = tuple(sorted(a.get_chemical_symbols()[k] for k in (i, j)))
        assert a.get_distance(i, j) == pytest.approx(BONDS[pair], abs=1e-9)
    d = a.get_all_distances()
    bonded = np.zeros_like(d, dtype=bool)
    bonded[t.bonds[:, 0], t.bonds[:, 1]] = bonded[t.bonds[:, 1], t.bonds[:, 0]] = True
    assert d[~bonded & ~np.eye(len(a), dtype=bool)].min() > 1.5  # no clashes
    hch = [a.get_angle(i, c, j) for c in np.flatnonzero(a.numbers == 6)
           for i, j in [np.flatnonzero((a.numbers == 1) & bonded[c])]]  # fmt: skip
    assert np.allclose(hch, 109.47, atol=0.1)
    assert not t.broken(a) and t.hydrogen_bonds(a) == []


def test_relaxed_peg_keeps_its_topology():
    from tblite.ase import TBLite

    a = peg(2, relax_with=TBLite(method="GFN2-xTB", verbosity=0))
    a.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert np.abs(a.get_forces()).max() < 0.03
    assert Topology(peg(2)).intact(a)


def test_topology_names_the_bond_that_left_its_window():
    a = peg(2)
    t = Topology(a)
    b = a.copy()
    c, o = 2, 1  # the first C and the terminal O it is bonded to
    b.positions[o] += 0.7 * (b.positions[o] - b.positions[c]) / b.get_distance(o, c)
    bad = t.broken(b)
    assert len(bad) == 1 and {bad[0].i, bad[0].j} == {o, c} and bad[0].pair == "C–O"
    assert bad[0].length == pytest.approx(1.42 + 0.7) and bad[0].window == (1.0, 2.0)
    b = a.copy()
    b.positions[0] = b.positions[1] + 0.7 * (b.positions[0] - b.positions[1]) / b.get_distance(0, 1)  # O–H 0.70 Å
    assert [(x.i, x.j) for x in t.broken(b)] == [(0, 1)] and not t.intact(b)
    assert str(t.broken(b)[0]) == "O–H short 0.70 Å (atoms 0, 1)"  # H first in the molecule, named O–H
    assert t.intact_copies(np.stack([a.positions, b.positions])).tolist() == [True, False]


def _acceptor_at(a, t, acceptor, distance, angle_deg):
    """A copy of ``a`` with O ``acceptor`` moved to ``distance`` from the terminal H 0 at the O–H···O angle."""
    b = a.copy()
    h, o = 0, 1
    u = (b.positions[h] - b.positions[o]) / b.get_distance(h, o)  # O → H
    w = np.cross(u, [0.0, 0.0, 1.0])
    w /= np.linalg.norm(w)
    phi = np.radians(180.0 - angle_deg)
    b.positions[acceptor] = b.positions[h] + distance * (np.cos(phi) * u + np.sin(phi) * w)
    return b


def test_hydrogen_bonds_end_to_end_internal_and_none():
    a = peg(4)
    t = Topology(a)
    oxygens = np.flatnonzero(a.numbers == 8)
    far_end, middle = oxygens[-1], oxygens[2]
    assert t.terminal_oxygens() == [1, far_end]  # the hydroxyl ends (backbone H–O–…–O–H first)
    found = t.hydrogen_bonds(_acceptor_at(a, t, far_end, 1.9, 170.0))
    assert [(x.donor, x.hydrogen, x.acceptor, x.kind) for x in found] == [(1, 0, far_end, "end-to-end")]
    assert found[0].distance == pytest.approx(1.9) and found[0].angle == pytest.approx(170.0)
    assert [x.kind for x in t.hydrogen_bonds(_acceptor_at(a, t, middle, 2.0, 150.0))] == ["internal"]
    assert t.hydrogen_bonds(_acceptor_at(a, t, far_end, 2.6, 170.0)) == []  # too far
    assert t.hydrogen_bonds(_acceptor_at(a, t, far_end, 1.9, 110.0)) == []  # too bent
    assert t.hydrogen_bonds(_acceptor_at(a, t, oxygens[1], 1.9, 170.0)) == []  # the neighbouring group's O


def test_stability_catches_a_broken_model_and_passes_the_oracle():
    from ase.calculators.calculator import Calculator, all_changes
    from tblite.ase import TBLite

    class Repulsive(Calculator):
        """A 'model' whose bonds repel: every molecule flies apart."""

        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            r = self.atoms.positions
            d = r[:, None] - r[None]
            dist = np.linalg.norm(d, axis=-1) + np.eye(len(r))
            off = (1 - np.eye(len(r)))[..., None]
            self.results = {"energy": float(np.sum(np.triu(1 / dist, 1))),
                            "forces": np.sum(d / dist[..., None] ** 3 * off, axis=1)}  # fmt: skip

    mol = peg(1)
    bad = stability_test(Repulsive, mol, seeds=3, steps=400, temperature_K=500)
    assert bad.min_stable < 400 and not bad.all_stable and all(b is not None for b in bad.bonds)
    good = stability_test(lambda: TBLite(method="GFN2-xTB", verbosity=0), mol, seeds=2, steps=100, temperature_K=500)
    assert good.all_stable and good.min_stable == 100


@pytest.fixture(scope="module")
def peg1_model():
    """A small committee model fitted to rattled PEG(1) frames labelled by GFN2-xTB."""
    from tblite.ase import TBLite

    from hal import ACEBasis, fit

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(30):
        a = peg(1)
        a.positions += rng.normal(scale=0.08, size=a.positions.shape)
        a.calc = TBLite(method="GFN2-xTB", verbosity=0)
        a.info["energy"], a.arrays["forces"] = a.get_potential_energy(), a.get_forces()
        a.calc = None
        frames.append(a)
    basis = ACEBasis(["C", "H", "O"], order=2, max_degree=[8, 6], r_cut=4.0, pair_degree=6)
    return fit(frames, basis, committee_size=8, progress=False)


def test_hal_stability_command(tmp_path, capsys, peg1_model):
    """`hal stability`: a model fitted to rattled PEG(1) frames against the same model made repulsive."""
    from hal.cli import main
    from hal.model import LinearACE

    model = peg1_model
    model.save(tmp_path / "good.npz")
    bad = LinearACE(model.basis, -5 * model.coefficients, model.e0)
    bad.save(tmp_path / "bad.npz")
    argv = ["stability", str(tmp_path / "good.npz"), str(tmp_path / "bad.npz"), "--molecule", "peg1",
            "--seeds", "3", "--steps", "200", "--temperature", "300", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    good_line, bad_line = (next(x for x in out if x.startswith(str(tmp_path / n))) for n in ("good", "bad"))
    assert good_line.split()[1:3] == ["200", "3/3"] and good_line.rstrip().endswith("–")
    assert int(bad_line.split()[1]) < 200 and "Å (atoms" in bad_line
    assert main(["stability", str(tmp_path / "missing.npz")]) == 2


def test_bond_guard_stops_hal_when_a_bond_breaks(peg1_model):
    import pickle

    from hal.bonds import BondGuard
    from hal.dynamics import run_hal

    mol = peg(1)
    guard = pickle.loads(pickle.dumps(BondGuard(Topology(mol), max_temperature_K=5000.0)))
    assert not guard(mol)
    hot = mol.copy()
    hot.set_velocities(np.full((len(mol), 3), 0.2))
    assert BondGuard(Topology(mol), max_temperature_K=1000.0)(hot) and not BondGuard(Topology(mol))(hot)
    stretched = mol.copy()
    stretched.positions[0] += [3.0, 0, 0]  # the terminal H, 3 Å off its O
    assert guard(stretched)
    run = run_hal(mol, peg1_model, steps=500, temperature_K=500, timestep_fs=0.5, check_every=10, s_tol=2.0,
                  guard=BondGuard(Topology(mol), max_temperature_K=1.0))  # fmt: skip
    assert run.reason == "guard" and run.steps == 0  # checked from the first step on
    run = run_hal(mol, peg1_model, steps=50, temperature_K=300, timestep_fs=0.5, check_every=10, s_tol=2.0,
                  guard=guard)  # fmt: skip
    assert run.reason == "max_steps"


def test_stability_copies_of_a_long_chain_stay_apart():
    from ase.geometry import get_distances

    from hal.dynamics.stability import copies
    from hal.structures import peg

    chain = peg(16)  # ≈ 57 Å long: more than the default 30 Å spacing
    box = copies(chain, 3)
    n = len(chain)
    _, d = get_distances(box.positions[:n], box.positions[n : 2 * n])
    assert d.min() >= 20.0 - 1e-9
    assert np.allclose(box.positions[2 * n :] - box.positions[n : 2 * n], box.positions[n : 2 * n] - box.positions[:n])
