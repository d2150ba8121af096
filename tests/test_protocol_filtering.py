"""The filtering protocol: the greedy rule against a direct committee evaluation, the oracle's Kumagai
properties, a tiny pool end to end through `hal run` / `hal report`, kill -9 and resume, and bad pools."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.io import write

from hal.cli import main
from hal.io import read_jsonl
from hal.protocols.filtering import greedy, pool, properties

CONFIG = """
protocol = "filtering"
workers = 1
[pool]
path = "pool.xyz"
test_fraction = 0.25
[basis]
order = 2
max_degree = [10, 8]
r_cut = 4.5
pair_degree = 3
pair_r_cut = 5.0
[fit]
committee_size = 8
[selection]
budget = 0.4
random_seeds = {seeds}
[properties]
enabled = {props}
checkpoints = [0.2]
phonon_supercell = 2
"""


def tiny_pool(n: int = 24, seed: int = 0) -> list:
    """Kumagai-labelled 8-atom diamond cells (strained, rattled) and 7-atom vacancy cells."""
    rng = np.random.default_rng(seed)
    calc = pool.kumagai()
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", a=5.43 * rng.uniform(0.97, 1.03), cubic=True)
        kind = "vacancy" if k % 4 == 3 else "diamond"
        if kind == "vacancy":
            del atoms[0]
        atoms.positions += rng.normal(scale=0.05 if kind == "diamond" else 0.15, size=atoms.positions.shape)
        out.append(pool.labelled(atoms, calc, kind))
    return out


@pytest.fixture(scope="module")
def configs():
    return tiny_pool()


def project(tmp_path, configs, seeds: int = 2, props: bool = False) -> str:
    write(tmp_path / "pool.xyz", configs)
    path = tmp_path / "filtering.toml"
    path.write_text(CONFIG.format(seeds=seeds, props=str(props).lower()))
    return str(path)


def test_greedy_picks_the_largest_max_fi(configs):
    from concurrent.futures import ProcessPoolExecutor

    from hal.ace.basis import ACEBasis
    from hal.fit.design import Weights, reference_energies
    from hal.uncertainty import relative_force_uncertainty

    basis = ACEBasis(["Si"], order=2, max_degree=[10, 8], r_cut=4.5, pair_degree=3)
    sel = greedy.Selection(configs, basis, reference_energies(configs, ["Si"]), Weights(5.0, 1.0, 1.0), 8)
    sel.add(0)
    sel.add(3)
    model = sel.fit()
    pick, fmax, eps = sel.greedy_pick(model)
    rest = sel.remaining()
    direct = [model.evaluate_committee(configs[i], member_forces=True) for i in rest]
    eps_direct = np.mean(np.concatenate([np.linalg.norm(r.forces, axis=1) for r in direct]))
    fi = [relative_force_uncertainty(r.member_forces, r.forces, eps_direct).max() for r in direct]
    assert eps == pytest.approx(eps_direct, rel=1e-10)
    assert pick == rest[int(np.argmax(fi))] and fmax == pytest.approx(max(fi), rel=1e-10)
    assert sorted(fi)[-1] > 1.01 * sorted(fi)[-2]  # a clear winner, so the check means something
    with ProcessPoolExecutor(2) as ex:  # the batched pass over workers gives the same pick
        assert sel.greedy_pick(model, executor=ex)[:2] == pytest.approx((pick, fmax), rel=1e-10)
    assert sel.greedy_pick(model, eps=0.2)[2] == 0.2
    own = [relative_force_uncertainty(r.member_forces, r.forces, np.linalg.norm(r.forces, axis=1).mean()).max()
           for r in direct]  # each configuration's own ε  # fmt: skip
    pick_c, fmax_c, _ = sel.greedy_pick(model, eps_per_config=True)
    assert pick_c == rest[int(np.argmax(own))] and fmax_c == pytest.approx(max(own), rel=1e-10)


def test_oracle_properties_reproduce_the_kumagai_values():
    calc = pool.kumagai()
    cell = properties.relaxed_diamond(calc)
    a0 = float(np.cbrt(cell.get_volume()))
    eos = properties.equation_of_state(calc, a0)
    C = properties.elastic_constants(calc, cell)
    assert abs(a0 - 5.429) < 0.002 and abs(eos["a0"] - a0) < 0.002
    assert abs(eos["B"] - 99.0) < 0.3 and abs(eos["B_curve"] - 99.0) < 1.0
    assert abs(C["C11"] - 166.0) < 1.0 and abs(C["C12"] - 65.6) < 1.0 and abs(C["C44"] - 76.7) < 1.0
    assert abs((C["C11"] + 2 * C["C12"]) / 3 - eos["B"]) < 0.3  # cubic B from the Cij: the same curvature
    ph = properties.phonons(calc, a0, supercell=2, mesh=8)
    assert np.all(np.abs(ph["bands"][0, :3]) < 1e-2)  # acoustic modes vanish at Γ
    prim, d = bulk("Si", "diamond", a=a0), 1e-3  # Γ optical mode directly: one sublattice shifted by ±d
    prim.calc = calc
    f = []
    for s in (d, -d):
        prim.positions[1, 0] += s
        f.append(prim.get_forces()[1, 0])
        prim.positions[1, 0] -= s
    k = -(f[0] - f[1]) / (2 * d)  # eV/Å²
    nu = np.sqrt(2 * k / prim.get_masses()[0]) * units.second / (2 * np.pi) / 1e12  # THz
    assert ph["bands"][0, 3:] == pytest.approx([nu] * 3, rel=1e-3)
    assert 2.5 < ph["Cv"][-1] < 3.0  # towards Dulong–Petit at 1000 K


def test_compare_scores_the_curve_shape_and_the_moduli():
    E = np.array([0.30, 0.10, 0.0, 0.12, 0.33])
    ph = {"bands": np.array([[0.0, 5.0, 10.0]]), "T": np.array([0.0, 300.0]), "F": np.array([60.0, 40.0])}
    ref = {"B": 99.0, "C11": 166.0, "C12": 65.6, "C44": 76.7, "a0": 5.43, "eos": {"E": E}, "phonons": ph}
    bent = {**ref, "B": 100.9, "eos": {"E": E - 4.0 + np.array([0.004, 0, 0, 0, -0.002])},
            "phonons": {**ph, "bands": np.array([[0.0, 5.0, 10.2]]), "F": np.array([60.0, 40.5])}}  # fmt: skip
    c = properties.compare(bent, ref)
    assert c["EV_max_meV"] == pytest.approx(4.0)  # a constant shift of E is not an error of the curve
    assert c["B"] == pytest.approx(1.9 / 99) and c["C11"] == 0 and c["phonon_max_rel"] == pytest.approx(0.02)
    assert c["F_300K_meV"] == pytest.approx(0.5)
    assert properties.converged(c, properties.GOALS)
    assert not properties.converged({**c, "B": 0.021}, properties.GOALS)


def test_tiny_pool_end_to_end_and_report(tmp_path, configs, capsys):
    path = project(tmp_path, configs, seeds=2, props=True)
    run_dir = tmp_path / "run"
    t0 = time.perf_counter()
    assert main(["run", path, "--dir", str(run_dir), "--quiet"]) == 0
    assert time.perf_counter() - t0 < 60
    g = read_jsonl(run_dir / "greedy.jsonl")
    r0, r1 = read_jsonl(run_dir / "random_0.jsonl"), read_jsonl(run_dir / "random_1.jsonl")
    assert g[0]["pick"] == r0[0]["pick"] == r1[0]["pick"]  # one start
    assert [r["pick"] for r in r0] != [r["pick"] for r in r1]  # seeds differ
    for log in (g, r0, r1):
        picks = [r["pick"] for r in log]
        assert len(set(picks)) == len(picks) and log[-1]["fraction"] >= 0.4 > log[-2]["fraction"]
        assert all(r["test"]["all"]["F_rmse"] > 0 for r in log)
    assert all(r["max_fi"] > 0 for r in g[1:])
    props = read_jsonl(run_dir / "properties.jsonl")
    assert {p["run"] for p in props} == {"oracle", "greedy", "random_0", "random_1", "full"}
    full = read_jsonl(run_dir / "full.jsonl")[0]  # the ceiling: one fit to the whole selectable pool
    assert full["fraction"] == 1.0 and full["train"]["all"]["F_rmse"] <= g[-1]["train"]["all"]["F_rmse"] * 3
    assert main(["report", str(run_dir)]) == 0
    text = (run_dir / "report.md").read_text()
    assert "| filtered | 20 |" in text and "| whole pool | 100 |" in text and "Picks by config_type" in text
    for png in ("learning.png", "selection.png", "properties.png"):
        assert (run_dir / png).stat().st_size > 1000


def _hal_run(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "hal.cli", "run", "--quiet", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def test_kill_and_resume_give_the_same_selection(tmp_path, configs):
    path = project(tmp_path, configs, seeds=1)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _hal_run(path, "--dir", str(whole)).wait() == 0
    proc = _hal_run(path, "--dir", str(killed))
    log = killed / "greedy.jsonl"
    while proc.poll() is None and len(read_jsonl(log)) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(read_jsonl(log))
    assert 2 <= n_before < len(read_jsonl(whole / "greedy.jsonl"))
    assert _hal_run("--resume", str(killed)).wait() == 0
    for name in ("greedy", "random_0"):
        assert [r["pick"] for r in read_jsonl(killed / f"{name}.jsonl")] == [
            r["pick"] for r in read_jsonl(whole / f"{name}.jsonl")
        ]


@pytest.mark.parametrize("flaw, named", [("forces", "configuration 5: the pool needs energy and forces"),
                                         ("nan", "configuration 5: energy label is not finite"),
                                         ("element", "configuration 5: element(s) C outside the basis")])  # fmt: skip
def test_bad_pools_are_refused_before_anything_is_written(tmp_path, configs, capsys, flaw, named):
    bad = [a.copy() for a in configs]
    for a, b in zip(bad, configs):
        a.info, a.arrays["forces"] = dict(b.info), b.arrays["forces"].copy()
    if flaw == "forces":
        del bad[5].arrays["forces"]
    elif flaw == "nan":
        bad[5].info["energy"] = float("nan")
    else:
        bad[5][0].symbol = "C"
    path = project(tmp_path, bad)
    assert main(["run", path, "--dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pool.xyz: " + named in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_config_types_restrict_the_pool(tmp_path, configs):
    from hal.config import load
    from hal.protocols import filtering as F

    path = project(tmp_path, configs, seeds=1)
    config = load(path, F.SCHEMA)
    F.resolve_paths(config, tmp_path)
    config["pool"]["config_types"] = ["vac*"]
    config["selection"].update(full_fit=False, budget=0.5)
    F.run(config, tmp_path / "run", progress=False)
    for name in ("greedy", "random_0"):
        assert {r["config_type"] for r in read_jsonl(tmp_path / "run" / f"{name}.jsonl")} == {"vacancy"}
    config["pool"]["config_types"] = ["liquid"]
    with pytest.raises(Exception, match="pool.config_types"):
        F.run(config, tmp_path / "other", progress=False)
    config["pool"]["config_types"] = ["diamond"]  # another pool in the same directory: refused, named
    with pytest.raises(Exception, match=r"other settings \(pool.config_types"):
        F.run(config, tmp_path / "run", progress=False)
