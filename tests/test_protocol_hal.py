"""The general protocol: the user's structures and oracle from one config file, bad input refused before
anything is written, a flaky oracle survived, a crash that leaves a resumable run; PySCF as an oracle."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.db import connect
from ase.io import write

from hal.cli import main
from hal.demo import alloy_cells

ORACLE = '''
import numpy as np
from ase.calculators.emt import EMT


class Flaky(EMT):
    """EMT that raises on the 2nd of every 5 calls and returns NaN on the 3rd (40 %, counted per process)."""

    calls = 0

    def calculate(self, *args, **kwargs):
        Flaky.calls += 1
        super().calculate(*args, **kwargs)
        if Flaky.calls % 5 == 2:
            raise RuntimeError("SCF did not converge (simulated)")
        if Flaky.calls % 5 == 3:
            self.results["energy"] = float("nan")


def make(flaky=True):
    return Flaky() if flaky else EMT()
'''

CONFIG = """
protocol = "hal"
workers = 1
[system]
starts = ["starts.xyz"]
n_walkers = 2
[oracle]
calculator = "my_oracle.py:make"
kwargs = {{ flaky = {flaky} }}
[basis]
order = 2
max_degree = [6, 6]
r_cut = 4.5
r0 = 2.6
r_in = 1.6
[fit]
committee_size = 8
[[stages]]
name = "hot"
temperature_K = 1000.0
n_stable = 120
max_oracle_calls = 6
tau_rel = 0.6
n_hist = 20
f_tol = 1.0
"""


def project(tmp_path, flaky: bool = True, extra: str = "") -> str:
    """A user's folder: start structures, an oracle module and a config; returns the config path."""
    cells = [Atoms(a.numbers, a.positions, cell=a.cell, pbc=True) for a in alloy_cells(4, seed=3)]  # no labels
    write(tmp_path / "starts.xyz", cells)
    (tmp_path / "my_oracle.py").write_text(ORACLE)
    config = tmp_path / "hal.toml"
    config.write_text(CONFIG.format(flaky=str(flaky).lower()) + extra)
    return str(config)


def test_general_protocol_end_to_end_with_a_flaky_oracle(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", project(tmp_path), "--dir", str(run_dir), "--quiet"]) == 0
    rows = list(connect(str(run_dir / "data.db")).select())
    status = {r.status for r in rows}
    assert {"ok", "error", "non_finite"} <= status, status  # failures recorded, and survived
    assert sum(r.source == "initial" for r in rows) == 4  # the start structures, labelled by the oracle
    assert 1 <= sum(r.source == "hal" for r in rows) <= 6  # within the stage's budget, failed calls included
    out = capsys.readouterr().out
    assert "hot: stopped on" in out and "failed oracle calls" in out and "{" not in out
    assert (run_dir / "model.npz").exists() and (run_dir / "report.md").exists()
    assert main(["export", str(run_dir / "model.npz"), str(tmp_path / "model.yace")]) == 0


@pytest.mark.parametrize(
    "change, named",
    [
        ({"[[stages]]\nname = \"hot\"\ntemperature_K = 1000.0": '[[stages]]\nname = "hot"\ntemperature_K = -800.0'},
         "stages[0].temperature_K: -800.0 must be > 0"),
        ({"f_tol = 1.0": "f_tol = -1.0"}, "stages[0].f_tol: -1.0 must be > 0"),
        ({"committee_size = 8": "committee_size = 0"}, "fit.committee_size: 0 must be >= 2"),
        ({"max_degree = [6, 6]": "max_degree = [-10, 6]"}, "basis.max_degree[0]: -10 must be >= 1"),
        ({"n_walkers = 2": 'n_walkers = 2\nelements = ["Cu", "Xx"]'}, "system.elements[1]: 'Xx' is not a chemical"),
        ({"my_oracle.py:make": "no_such_module:Calc"}, "oracle.calculator: cannot import no_such_module"),
        ({"my_oracle.py:make": "my_oracle.py:nothing"}, "oracle.calculator:"),
        ({"starts.xyz": "missing_*.xyz"}, "missing_*.xyz: no file matches"),
        ({"r_cut = 4.5": "r_cut = 1.0"}, "basis: r_in must be smaller"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, change, named):
    path = project(tmp_path)
    capsys.readouterr()
    text = open(path).read()
    for old, new in change.items():
        assert old in text
        text = text.replace(old, new)
    open(path, "w").write(text)
    assert main(["run", path, "--dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_broken_structures_name_file_and_index(tmp_path, capsys):
    path = project(tmp_path)
    cells = alloy_cells(3, seed=3)
    cells[2].positions[1] = cells[2].positions[0]
    write(tmp_path / "starts.xyz", cells)
    capsys.readouterr()
    assert main(["run", path, "--dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "starts.xyz: configuration 2" in err and "coincide" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "key, value", [("temperature_K", -800.0), ("f_tol", -1.0), ("timestep_fs", -2.0), ("n_stable", 0)]
)
def test_alloy_bad_values_are_refused_too(tmp_path, capsys, key, value):
    from hal.config import dumps, read
    from hal.protocols import default_config

    raw = read(default_config("alloy"))
    raw["stages"][0][key] = value
    path = tmp_path / "alloy.toml"
    path.write_text(dumps(raw))
    assert main(["run", str(path), "--dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"stages[0].{key}: {value!r} must be" in err and not (tmp_path / "run").exists(), err


def test_a_crash_after_the_start_leaves_a_resumable_run(tmp_path, capsys, monkeypatch):
    from hal.protocols import hal as general

    path = project(tmp_path, flaky=False)
    run_dir = tmp_path / "run"
    real = general.run_stages

    def crash(*args, **kwargs):
        raise RuntimeError("the cluster went away")

    monkeypatch.setattr(general, "run_stages", crash)
    assert main(["run", path, "--dir", str(run_dir), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "the cluster went away" in err and f"hal run --resume {run_dir}" in err and "Traceback" not in err
    assert "Traceback" in (run_dir / "error.log").read_text()
    monkeypatch.setattr(general, "run_stages", real)
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "model.npz").exists()


def test_pyscf_oracle_energy_and_forces():
    pytest.importorskip("pyscf")
    from hal.oracles import PySCF

    atoms = Atoms("OH2", positions=[[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.74, -0.48]])
    atoms.calc = PySCF(method="hf", basis="sto-3g")
    e = atoms.get_potential_energy()
    assert e == pytest.approx(-74.96 * 27.211386, rel=1e-3)  # HF/STO-3G water: −74.96 Hartree
    f = atoms.get_forces()
    h = 1e-4
    for i, a in ((1, 1), (2, 2), (0, 2)):
        p, m = atoms.copy(), atoms.copy()
        p.positions[i, a] += h
        m.positions[i, a] -= h
        p.calc, m.calc = PySCF(method="hf", basis="sto-3g"), PySCF(method="hf", basis="sto-3g")
        fd = -(p.get_potential_energy() - m.get_potential_energy()) / (2 * h)
        assert f[i, a] == pytest.approx(fd, abs=1e-4)
    assert np.abs(f.sum(axis=0)).max() < 1e-6
    with pytest.raises(ValueError, match="periodic"):
        Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]], cell=[5, 5, 5], pbc=True, calculator=PySCF()).get_forces()


def test_packaged_example_runs_with_tblite(tmp_path, capsys):
    """`hal run hal`: the packaged ethanol example with GFN2-xTB through its import path (a short budget)."""
    pytest.importorskip("tblite")
    from hal.config import dumps, read
    from hal.protocols import default_config

    raw = read(default_config("hal"))
    raw["system"]["starts"] = [str(default_config("hal").parent / "hal_example.xyz")]
    raw["stages"][0].update(n_stable=100, max_oracle_calls=3)
    path = tmp_path / "example.toml"
    path.write_text(dumps(raw))
    assert main(["run", str(path), "--dir", str(tmp_path / "run"), "--quiet"]) == 0
    rows = list(connect(str(tmp_path / "run" / "data.db")).select())
    assert sum(r.source == "initial" and r.status == "ok" for r in rows) == 8
    assert 1 <= sum(r.source == "hal" for r in rows) <= 3
    assert "md500: stopped on" in capsys.readouterr().out
