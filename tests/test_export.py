"""PACE export: python-ace's evaluators on the exported .yace agree with hal to round-off."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

import hal
from hal.cli import main
from hal.export import ExportError, real_to_complex
from tests.conftest import labelled, random_cluster

pyace = pytest.importorskip("pyace")


def pace(path, recursive: bool = False):
    return pyace.PyACECalculator(str(path), recursive_evaluator=recursive, recursive=recursive)


def compare(model: hal.LinearACE, path, structures: list[Atoms]) -> None:
    """Energies within 1e-9 relative, forces within 1e-8 eV/Å, stress within 1e-9 eV/Å³ (both evaluators)."""
    for recursive in (False, True):
        calc = pace(path, recursive)
        for atoms in structures:
            ours, theirs = atoms.copy(), atoms.copy()
            ours.calc, theirs.calc = model.calculator(), calc
            e = ours.get_potential_energy()
            assert abs(theirs.get_potential_energy() - e) <= 1e-9 * max(abs(e), 1.0)
            np.testing.assert_allclose(theirs.get_forces(), ours.get_forces(), rtol=0, atol=1e-8)
            if atoms.pbc.all():
                np.testing.assert_allclose(theirs.get_stress(), ours.get_stress(), rtol=0, atol=1e-9)


def random_model(basis: hal.ACEBasis, seed: int) -> hal.LinearACE:
    rng = np.random.default_rng(seed)
    scale = 0.3 / (1.0 + np.arange(basis.size) % 7)
    e0 = {el: -1.0 - k for k, el in enumerate(basis.elements)}
    return hal.LinearACE(basis, rng.normal(size=basis.size) * scale, e0=e0)


def close_contact_molecules(rng: np.random.Generator, n: int = 4) -> list[Atoms]:
    """C/H/O clusters with distances down to 0.4 Å: every pair's core below r_in is sampled."""
    return [random_cluster("C3H4O2", rng, dmin=0.4, box=2.8) for _ in range(n)]


def test_real_harmonics_are_a_unitary_mix_of_the_complex_ones():
    for l, U in enumerate(real_to_complex(4)):
        assert U.shape == (2 * l + 1, 2 * l + 1)
        np.testing.assert_allclose(U @ U.conj().T, np.eye(2 * l + 1), atol=1e-12)


@pytest.mark.parametrize(
    "order, max_degree, pair_degree",
    [(1, 8, 0), (1, 8, 6), (2, [8, 7], 6), (3, [8, 7, 6], 6), (4, [7, 6, 5, 4], 6)],
)
def test_random_cho_models_agree_with_pyace(tmp_path, order, max_degree, pair_degree, rng):
    basis = hal.ACEBasis(["C", "H", "O"], order=order, max_degree=max_degree, r_cut=4.0, pair_degree=pair_degree,
                         pair_r_cut=4.5)  # fmt: skip
    model = random_model(basis, order)
    path = model.to_yace(tmp_path / "model.yace")
    structures = close_contact_molecules(rng)
    inside = 0  # pairs closer than their own r_in: the reppot core is exercised
    for a in structures:
        sp = basis._species_of[a.numbers]
        inside += np.sum(np.triu(a.get_all_distances() < basis.r_in[sp[:, None], sp[None, :]], 1))
    assert inside >= 2
    compare(model, path, structures)


def test_periodic_cu_al_triclinic_cells_agree_with_pyace(tmp_path, rng):
    # per-pair cutoffs and inner cutoffs, asymmetric bonds in the file
    basis = hal.ACEBasis(
        ["Cu", "Al"],
        order=3,
        max_degree=[8, 7, 6],
        r_cut={("Cu", "Cu"): 4.5, ("Cu", "Al"): 4.2, ("Al", "Al"): 4.8},
        r0=2.6,
        r_in={("Cu", "Cu"): 1.6, ("Cu", "Al"): 1.5, ("Al", "Al"): 1.7},
        pair_degree=8,
        pair_r_cut=5.0,
    )
    model = random_model(basis, 7)
    path = model.to_yace(tmp_path / "cual.yace")
    cells = []
    for k in range(3):
        cell = np.diag([3.2, 3.5, 3.9]) + rng.uniform(-0.6, 0.6, size=(3, 3))  # triclinic, every side < 2 r_cut
        frac = rng.uniform(size=(5, 3))
        atoms = Atoms(["Cu", "Al", "Cu", "Al", "Al"], scaled_positions=frac, cell=cell, pbc=True)
        if k == 0:
            atoms = Atoms("CuAl", scaled_positions=[[0, 0, 0], [0.5, 0.45, 0.55]], cell=cell, pbc=True)
        cells.append(atoms)
    assert all(np.linalg.norm(a.cell, axis=1).max() < 2 * basis.cutoff for a in cells)
    compare(model, path, cells)


def test_fitted_model_and_committee_member_export_through_the_cli(tmp_path, rng):
    from hal.demo import alloy_cells

    data = labelled(alloy_cells(12, seed=3), EMT)
    for atoms in data:
        atoms.rattle(0.15, rng=rng)
    labelled(data, EMT)
    train = tmp_path / "train.xyz"
    from ase.io import write

    write(train, data)
    model_path = tmp_path / "m.npz"
    assert main(["fit", str(train), "--order", "2", "--max-degree", "8", "6", "--r-cut", "4.5", "--committee", "4",
                 "--test-fraction", "0.2", "--out", str(model_path)]) == 0  # fmt: skip
    model = hal.LinearACE.load(model_path)
    assert main(["export", str(model_path), str(tmp_path / "m.yace")]) == 0
    assert main(["export", str(model_path), str(tmp_path / "m3.yace"), "--member", "3"]) == 0
    compare(model, tmp_path / "m.yace", data[:3])
    member = hal.LinearACE(model.basis, model.committee[3], model.e0)
    assert np.abs(member.coefficients - model.coefficients).max() > 0
    compare(member, tmp_path / "m3.yace", data[3:5])


def test_export_errors_leave_no_file(tmp_path, capsys):
    basis = hal.ACEBasis(["C", "H"], order=2, max_degree=6, r_cut=4.0, transform_p=1.5, pair_degree=4)
    model = random_model(basis, 0)
    with pytest.raises(ExportError, match="transform_p = 1.5"):
        model.to_yace(tmp_path / "x.yace")
    with pytest.raises(ExportError, match="no committee"):
        model.to_yace(tmp_path / "x.yace", member=0)
    assert not list(tmp_path.iterdir())
    good = random_model(hal.ACEBasis(["C", "H"], order=2, max_degree=6, r_cut=4.0, pair_degree=4), 0)
    good.save(tmp_path / "g.npz")
    assert main(["export", str(tmp_path / "g.npz"), str(tmp_path / "g.yace"), "--member", "2"]) == 2
    assert main(["export", str(tmp_path / "nothere.npz"), str(tmp_path / "g.yace")]) == 2
    assert main(["export", str(tmp_path / "g.npz"), str(tmp_path / "nodir" / "g.yace")]) == 2
    err = capsys.readouterr().err
    assert "no committee" in err and "nothere.npz" in err and "nodir" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npz"]


def test_lammps_example_files_match_the_model(tmp_path):
    """examples/lammps/prepare.py: the data file's types follow pair_coeff's element order, and the
    exported file evaluates the data file's structure as hal does."""
    import subprocess
    import sys
    from pathlib import Path

    from ase.io import read

    basis = hal.ACEBasis(["C", "H"], order=2, max_degree=[7, 6], r_cut=4.0)
    model = random_model(basis, 5)
    model.save(tmp_path / "m.npz")
    script = Path(__file__).resolve().parents[1] / "examples" / "lammps" / "prepare.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "m.npz"), str(tmp_path)], check=True)
    atoms = read(tmp_path / "hexane.data", format="lammps-data", atom_style="atomic", Z_of_type={1: 6, 2: 1})
    assert atoms.get_chemical_formula() == "C6H14"
    compare(model, tmp_path / "hexane.yace", [atoms])
