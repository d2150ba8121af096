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


def test_help_is_fast_and_first_compile_is_announced(tmp_path):
    """`hal --help` imports neither numba nor torch (< 1 s); the one-line compile notice appears when numba
    has no cache of the kernels (an empty NUMBA_CACHE_DIR) and not when it has one."""
    import os
    import subprocess
    import sys
    import time

    import hal

    probe = "import sys, hal.cli; print(sorted(m for m in ('numba', 'torch', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hal.cli", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - t0 < 1.5  # < 1 s measured; slack for a loaded CI machine
    version = subprocess.run([sys.executable, "-m", "hal.cli", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"hal {hal.__version__}"

    basis = hal.ACEBasis(["Cu", "Al"], order=2, max_degree=3)
    basis.evaluate_coefficients(alloy_cells(1, seed=0)[0], np.zeros(basis.size))  # compiled and cached here
    notice = "from hal.ace import kernels as k; k.compile_notice(k.eval_folded); k.compile_notice(k.eval_full)"
    cold = subprocess.run([sys.executable, "-c", notice], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})  # fmt: skip
    assert cold.stderr.count("compiling the ACE kernels") == 1
    warm = subprocess.run([sys.executable, "-c", notice], capture_output=True, text=True, check=True)
    assert "compiling" not in warm.stderr
