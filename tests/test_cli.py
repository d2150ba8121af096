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
    cell = alloy_cells(1, seed=0)[0]
    basis.evaluate_coefficients(cell, np.zeros(basis.size), threads=1)  # eval_folded compiled and cached here
    basis.evaluate(cell)  # and eval_full
    notice = "from hal.ace import kernels as k; k.compile_notice(k.eval_folded); k.compile_notice(k.eval_full)"
    cold = subprocess.run([sys.executable, "-c", notice], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})  # fmt: skip
    assert cold.stderr.count("compiling the ACE kernels") == 1
    warm = subprocess.run([sys.executable, "-c", notice], capture_output=True, text=True, check=True)
    assert "compiling" not in warm.stderr


def _bad_inputs(cells, tmp_path):
    nan = [a.copy() for a in cells[:6]]
    for a, src in zip(nan, cells):
        a.info["energy"], a.arrays["forces"] = src.info["energy"], src.arrays["forces"]
    nan[3].positions[1, 0] = np.nan
    write(tmp_path / "nan.xyz", nan)
    same = [a.copy() for a in nan]
    same[3].positions[1] = same[3].positions[0]
    write(tmp_path / "same.xyz", same)
    write(tmp_path / "good.xyz", cells[:8])
    good = str(tmp_path / "good.xyz")
    return {
        "nan": ([str(tmp_path / "nan.xyz")], "nan.xyz: configuration 3"),
        "coincident": ([str(tmp_path / "same.xyz")], "same.xyz: configuration 3"),
        "order": ([good, "--order", "0"], "--order"),
        "max_degree": ([good, "--max-degree", "-8", "6"], "--max-degree"),
        "r_cut": ([good, "--r-cut", "0.5"], "--r-cut 0.5"),
        "e0": ([good, "--e0", "Cu=-3.5"], "--e0"),
        "test_fraction": ([good, "--test-fraction", "1.5"], "--test-fraction"),
        "out": ([good, "--out", "/nonexistent/m.npz"], "--out /nonexistent/m.npz"),
        "element": ([good, "--elements", "Cu"], "good.xyz: configuration 0"),
    }


@pytest.mark.parametrize(
    "case", ["nan", "coincident", "order", "max_degree", "r_cut", "e0", "test_fraction", "out", "element"]
)
def test_fit_bad_input_is_one_line_exit_2_and_writes_nothing(cells, tmp_path, capsys, case):
    argv, named = _bad_inputs(cells, tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    opts = [] if "--order" in argv or "--max-degree" in argv else ARGS
    out = [] if "--out" in argv else ["--out", str(tmp_path / "m.npz")]
    assert main(["fit", *opts, *argv, *out]) == 2  # the case's options last: argparse keeps the last value
    err = capsys.readouterr().err.strip()
    assert named in err and "\n" not in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_fit_reports_what_it_leaves_out_and_scores_what_it_fits(cells, tmp_path, capsys):
    from ase import Atoms

    data = [a.copy() for a in cells[:10]]
    for a, src in zip(data, cells):
        a.info["energy"], a.arrays["forces"] = src.info["energy"], src.arrays["forces"].copy()
    data[2].arrays["forces"][0] = [1e4, 0, 0]
    del data[5].arrays["forces"]
    molecule = Atoms("Cu2", positions=[[0, 0, 0], [2.4, 0, 0]])
    molecule.info.update(energy=1.0, stress=np.full(6, 0.1))
    molecule.arrays["forces"] = np.zeros((2, 3))
    write(tmp_path / "train.xyz", [*data, molecule])
    assert main(["fit", str(tmp_path / "train.xyz"), "--test-fraction", "0", "--out", str(tmp_path / "m.npz"),
                 *ARGS]) == 0  # fmt: skip
    text = capsys.readouterr().out
    notes = [line for line in text.splitlines() if line.startswith("note:")]
    assert any("1 atom(s) with |F| > 20 eV/Å" in n and "train.xyz:2" in n for n in notes), notes
    assert any("no forces" in n and "train.xyz:5" in n for n in notes), notes
    assert any("stress" in n and "train.xyz:10" in n for n in notes), notes
    f_rmse = float(next(line for line in text.splitlines() if "| train | all |" in line).split("|")[5])
    assert f_rmse < 1.0  # the 1e4 eV/Å label is not scored


def test_fit_from_a_config_file(cells, tmp_path, capsys):
    """`hal fit CONFIG.toml`: globbed data, per-pair cutoffs and r_in, per-config_type weights, parity plot,
    per-element force errors and stress errors in GPa; a bad value names its key, exit 2, nothing written."""
    for k, a in enumerate(cells):
        a.info["config_type"] = "even" if k % 2 == 0 else "odd"
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "a.xyz", cells[:6])
    write(tmp_path / "data" / "b.xyz", cells[6:12])
    write(tmp_path / "test.xyz", cells[12:])
    config = tmp_path / "fit.toml"
    config.write_text(
        'data = ["data/*.xyz"]\ntest = ["test.xyz"]\nout = "m.npz"\n'
        "[basis]\norder = 2\nmax_degree = [6, 6]\nr_cut = 4.5\nr0 = 2.6\n"
        'r_cut_pairs = { "Cu-Al" = 4.2 }\nr_in_pairs = { "Cu-Cu" = 1.5 }\npair_degree = 4\n'
        "[fit]\ncommittee_size = 4\n[config_type_weights]\nodd = [30.0, 0.0, 1.0]\n"
    )
    assert main(["fit", str(config)]) == 0
    text = capsys.readouterr().out
    model = LinearACE.load(tmp_path / "m.npz")
    b = model.basis
    cu, al = b.elements.index("Cu"), b.elements.index("Al")
    assert b.r_cut[cu, al] == 4.2 and b.r_cut[cu, cu] == 4.5 and b.r_in[cu, cu] == 1.5 and b.pair_degree == 4
    assert model.committee.shape[0] == 4
    assert "| train | element Cu |" in text and "stress RMSE GPa" in text and "| test | odd |" in text
    assert (tmp_path / "m.parity.png").stat().st_size > 10_000
    config.write_text(config.read_text().replace("committee_size = 4", "committee_size = -1"))
    assert main(["fit", str(config)]) == 2
    assert "fit.committee_size: -1 must be >= 0" in capsys.readouterr().err
