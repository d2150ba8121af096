"""The PEG melt-density protocol end to end with tiny budgets through `hal run` / `hal report`: chain data,
a HAL stage, stability, a melt relaxed and run NPT by the model, the export for LAMMPS, and the
20 eV/Å exclusion counted in the report, the oracle dimers beside it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from hal.cli import main
from hal.config import ConfigError, validate
from hal.loop.store import Store
from hal.protocols import polymer_bulk
from hal.structures import peg

pytest.importorskip("tblite")

CONFIG = """
protocol = "polymer_bulk"
workers = 1
[chains]
n = [1, 2]
md_frames = [6, 4]
md_every = 10
include = ["big_force.xyz"]
[basis]
order = 2
max_degree = [8, 6]
r_cut = 4.0
pair_degree = 6
pair_r_cut = 4.5
[contacts]
n = 1
count = 3
[fit]
committee_size = 8
dimers = 2
[hal]
n = [2]
n_walkers = 1
n_stable = 100
max_oracle_calls = 2
[boxes]
n = 1
n_chains = 2
density = 0.3
n_walkers = 1
n_stable = 20
max_oracle_calls = 1
max_rounds = 1
test_steps = 20
[stability]
seeds = 2
steps = 100
[melt]
n = 3
n_chains = 4
relax_steps = 0
compress_steps = 0
steps = 100
equilibration_ps = 0.01
record_every = 5
threads = 1
"""


def test_tiny_melt_density_run_end_to_end(tmp_path):
    big = peg(1)  # a labelled configuration with one force above 20 eV/Å: left out, and counted
    forces = np.zeros((len(big), 3))
    forces[0] = [30.0, 0.0, 0.0]
    forces[1] = [-30.0, 0.0, 0.0]
    big.calc = SinglePointCalculator(big, energy=-100.0, forces=forces)
    write(tmp_path / "big_force.xyz", big)
    path = tmp_path / "polymer_bulk.toml"
    path.write_text(CONFIG)
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--dir", str(run_dir), "--quiet"]) == 0
    assert main(["report", str(run_dir)]) == 0

    assert len(read(run_dir / "md_n1.xyz", ":")) == 6 and len(read(run_dir / "md_n2.xyz", ":")) == 4
    final = sorted((run_dir / "models").glob("iter_*.npz"))[-1].name  # the melt's caches name their model
    assert json.loads((run_dir / "melt_start.json").read_text())["model"] == final
    assert str(np.load(run_dir / "npt_300K.npz")["model"]) == final
    melt = read(run_dir / "melt_start.xyz")
    assert len(melt) == 4 * len(peg(3)) and melt.pbc.all()
    r = np.load(run_dir / "npt_300K.npz")
    assert int(r["steps"]) <= 100 and np.all(np.isfinite(r["density"])) and len(r["density"]) >= 2
    assert r["time_ps"][-1] == pytest.approx(int(r["steps"]) * 0.5e-3)
    for name in ("peg.yace", "melt.data", "npt.in", "density.png", "stability.jsonl"):
        assert (run_dir / name).stat().st_size > 0, name
    assert "pair_coeff      * * peg.yace C H O" in (run_dir / "npt.in").read_text()

    text = (run_dir / "report.md").read_text()
    assert "left out of the fit: 2 of" in text and "in 1 configurations" in text  # not the dimers' (no f_max)
    assert "| – | dimers r_in … r0 (force weight 0.1) | 12 | 12 |" in text  # 2 distances × 6 species pairs
    assert "| 1 | contacts (molecule pairs) | 3 | 3 |" in text
    assert "| 1 | HAL in 2-chain periodic melts | 1 | 1 |" in text
    (box,) = Store(run_dir / "data.db").labelled(stage="boxes")  # periodic tblite: stress labels, fitted
    assert box.pbc.all() and np.all(np.isfinite(box.info["stress"])) and box.info["virial_weight"] == 1.0
    (test,) = [r for r in map(json.loads, (run_dir / "stability.jsonl").read_text().splitlines())
               if r.get("system") == "boxes"]  # fmt: skip
    assert (test["model"], test["n"], test["seeds"], test["steps"]) == (final, 1, 1, 20)
    (end,) = read(run_dir / f"box_test_{final[:-4]}.xyz", ":")  # the box where the model's NPT left it
    assert end.pbc.all() and len(end) == 2 * len(peg(1)) and end.info["config_type"] == "melt box"
    assert f"| {final} | 1 | 20 | {test['min_stable']} |" in text
    assert f"| {final} | 1 | 2 | 100 |" in text  # PEG(1)'s chain test is not the box test of the same n
    assert "| 1 | MD 500 K | 6 | 260 |" in text  # 200 burn-in steps + 6 frames × 10 steps, all oracle calls
    assert "| 2 | HAL |" in text and "| 300 |" in text and "| iter_00" in text
    assert "Drift: the change of the block means" in text and ("300 K: settled" in text or "300 K: still" in text)

    before = (run_dir / "npt_300K.npz").stat().st_mtime_ns
    assert main(["run", str(path), "--dir", str(run_dir), "--quiet"]) == 0  # resumed: nothing recomputed
    assert (run_dir / "npt_300K.npz").stat().st_mtime_ns == before

    # a melt that broke on its way in: no density, and the report says where instead of failing
    (run_dir / "melt_start.json").write_text(json.dumps({"broken": "compression: O–C bond 1–2", "model": final}))
    assert main(["report", str(run_dir)]) == 0
    text = (run_dir / "report.md").read_text()
    assert "| 300 | nan | nan |" in text and "compression: O–C bond 1–2 |" in text


def test_config_checks():
    base = validate({}, polymer_bulk.SCHEMA)
    with pytest.raises(ConfigError, match="md_frames"):
        polymer_bulk.check({**base, "chains": {**base["chains"], "md_frames": [1, 2]}})
    with pytest.raises(ConfigError, match="need MD frames"):
        polymer_bulk.check({**base, "hal": {**base["hal"], "n": [64]}})
    with pytest.raises(ConfigError, match="equilibration_ps"):
        polymer_bulk.check({**base, "melt": {**base["melt"], "steps": 100}})
