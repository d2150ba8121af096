"""`hal fit` end to end: extxyz and ASE-db input, error table, model file, bad data."""

from __future__ import annotations

import numpy as np
import pytest
from ase.db import connect
from ase.io import write

from hal import LinearACE
from hal.cli import main
from hal.demo import alloy_cells

ARGS = ["--order", "2", "--max-degree", "6", "6", "--r-cut", "4.5", "--pair-degree", "3", "--committee", "4"]


@pytest.fixture(scope="module")
def cells():
    return alloy_cells(16, seed=5)


def test_fit_extxyz_writes_model_and_table(cells, tmp_path, capsys):
    for k, a in enumerate(cells):
        a.info["config_type"] = "even" if k % 2 == 0 else "odd"
    write(tmp_path / "train.xyz", cells[:12])
    write(tmp_path / "test.xyz", cells[12:])
    out = tmp_path / "model.npz"
    rc = main(["fit", str(tmp_path / "train.xyz"), "--test", str(tmp_path / "test.xyz"), "--out", str(out), *ARGS])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| test | all |" in text and "| train | odd |" in text and "F RMSE" in text
    model = LinearACE.load(out)
    assert model.committee.shape == (4, model.basis.size)
    f = model.evaluate(cells[13]).forces[0]
    assert np.sqrt(np.mean((f - cells[13].arrays["forces"]) ** 2)) < 0.2


def test_fit_reads_ase_database(cells, tmp_path):
    db = connect(tmp_path / "data.db")
    for a in cells[:10]:
        b = a.copy()
        from ase.calculators.singlepoint import SinglePointCalculator

        b.calc = SinglePointCalculator(b, energy=a.info["energy"], forces=a.arrays["forces"], stress=a.info["stress"])
        db.write(b)
    out = tmp_path / "m.npz"
    assert main(["fit", str(tmp_path / "data.db"), "--out", str(out), *ARGS]) == 0
    assert out.exists()


@pytest.mark.parametrize("problem", ["nan_energy", "missing", "element"])
def test_bad_data_names_file_and_index(cells, tmp_path, capsys, problem):
    bad = [a.copy() for a in cells[:4]]
    if problem == "nan_energy":
        bad[2].info["energy"] = float("nan")
        elements = []
    elif problem == "missing":
        del bad[2].info["energy"]
        del bad[2].arrays["forces"]
        elements = []
    else:
        elements = ["--elements", "Cu"]
    path = tmp_path / "bad.xyz"
    write(path, bad)
    out = tmp_path / "never.npz"
    rc = main(["fit", str(path), "--out", str(out), *ARGS, *elements])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert str(path) in err and ("configuration 2" in err or problem == "element")
    assert main(["fit", str(tmp_path / "nope.xyz"), "--out", str(out)]) == 2
