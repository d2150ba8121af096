"""The polymer protocol (HAL against AL on PEG): a tiny run end to end through `hal run` / `hal report`, and
kill -9 then resume deciding the same as an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from ase.db import connect

from hal.cli import main
from hal.config import load
from hal.io import read_jsonl
from tests.conftest import benchmark_module

CONFIG = """
protocol = "polymer"
workers = 1
[system]
n = 1
n_initial = 6
md_every = 20
n_walkers = 2
[basis]
order = 2
max_degree = [8, 6]
r_cut = 4.0
pair_degree = 6
pair_r_cut = 4.5
[fit]
committee_size = 8
[hal]
tau_rel = [0.0, 0.2]
n_stable = 200
max_oracle_calls = 4
[stability]
seeds = 2
steps = 200
"""


def _uids(run_dir, tau: str) -> list[str]:
    return sorted(r.uid for r in connect(str(run_dir / f"tau_{tau}" / "data.db")).select(source="hal"))


def test_tiny_polymer_run_end_to_end(tmp_path, capsys):
    path = tmp_path / "polymer.toml"
    path.write_text(CONFIG)
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--dir", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "tau_rel 0:" in out and "tau_rel 0.2:" in out
    rows = read_jsonl(run_dir / "stability.jsonl")
    assert {r["tau_rel"] for r in rows} == {0.0, 0.2}
    for t in (0.0, 0.2):  # every saved model tested once, exploration cumulative
        rs = sorted((r for r in rows if r["tau_rel"] == t), key=lambda r: r["iteration"])
        assert [r["iteration"] for r in rs] == list(range(len(rs))) and rs[0]["md_steps"] == 0
        assert all(a["md_steps"] < b["md_steps"] for a, b in zip(rs, rs[1:]))
        assert all(len(r["first_broken"]) == 2 and r["min_stable"] == min(r["first_broken"]) for r in rs)
        assert all((b is None) == (f >= 200) for r in rs for f, b in zip(r["first_broken"], r["broken_bonds"]))
    assert len(_uids(run_dir, "0.2")) <= 4  # the oracle budget per strategy
    assert main(["report", str(run_dir)]) == 0
    assert "| AL (τ = 0) |" in (run_dir / "report.md").read_text()
    assert (run_dir / "stability.png").stat().st_size > 1000


def test_initial_md_driven_by_tblite_is_labelled_by_the_oracle(tmp_path):
    """``md_calculator = "tblite"``: GFN2-xTB drives the initial MD and the oracle (here GFN1-xTB, standing in
    for PySCF) labels the frames it yields: the labels are the oracle's energies and forces, not the driver's."""
    import numpy as np

    from hal.protocols import polymer as P

    path = tmp_path / "polymer.toml"
    path.write_text(
        CONFIG.replace("n_walkers = 2", 'n_walkers = 2\nmd_calculator = "tblite"').replace(
            "[basis]", '[oracle]\ncalculator = "hal.oracles:TBLiteRetry"\nkwargs = {method = "GFN1-xTB"}\n[basis]'
        )
    )
    config = load(path, P.SCHEMA)
    drive, label = P.md_calculators(config)
    assert label is not None
    frames = P.initial_data(config, tmp_path)
    assert len(frames) == 6
    a, b = frames[-1].copy(), frames[-1].copy()
    a.calc, b.calc = label, drive
    assert frames[-1].get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(frames[-1].get_forces(), a.get_forces(), atol=1e-4)  # extxyz keeps 8 digits
    assert abs(b.get_potential_energy() - a.get_potential_energy()) > 1e-3  # the two really differ
    config["system"]["md_calculator"] = "oracle"
    assert P.md_calculators(config)[1] is None


def test_first_stable_and_stays_stable_from_on_hand_made_rows():
    """A lucky stable model counts for ``first_stable`` but not for ``stable_from``, which needs every later
    model stable; a strategy whose last model breaks never stays stable."""
    from hal.protocols.polymer import first_stable, stable_from

    ok = {0.0: [0, 0, 1, 0, 1, 1], 0.1: [0, 1, 1, 0], 0.2: [0, 0]}
    rows = [{"tau_rel": t, "iteration": i, "all_stable": bool(s)} for t, ss in ok.items() for i, s in enumerate(ss)]
    rows.reverse()  # order in the file does not matter
    assert first_stable(rows, 0.0)["iteration"] == 2 and stable_from(rows, 0.0) == 4
    assert first_stable(rows, 0.1)["iteration"] == 1 and stable_from(rows, 0.1) is None
    assert first_stable(rows, 0.2) is None and stable_from(rows, 0.2) is None


def test_what_broke_names_the_pair_and_the_side_of_its_window():
    from hal.bonds import BrokenBond
    from hal.protocols.polymer import broken_bond, what_broke

    window = (0.8, 2.0)
    assert broken_bond(BrokenBond(7, 8, "O–H", 0.757, window), True) == "O–H short 0.76"
    assert broken_bond(BrokenBond(2, 3, "C–C", 2.09, (1.0, 2.0)), True) == "C–C long 2.09"
    assert broken_bond(None, True) == "non-finite" and broken_bond(None, False) is None
    rows = [{"tau_rel": 0.0, "broken_bonds": ["O–H short 0.76", None, "O–H short 0.79", "non-finite"]},
            {"tau_rel": 0.0, "broken_bonds": ["C–C long 2.09", None]},
            {"tau_rel": 0.0},  # a row from before the bonds were recorded
            {"tau_rel": 0.1, "broken_bonds": ["C–H short 0.16"]}]  # fmt: skip
    assert what_broke(rows, 0.0) == {"O–H short": 2, "non-finite": 1, "C–C long": 1}
    assert what_broke(rows, 0.1) == {"C–H short": 1}


def test_polymer_kill_and_resume(tmp_path):
    """Labels made before a SIGKILL survive it, none is made twice, every saved model gets its stability test,
    and a replayed iteration's MD steps are counted once (≤ walkers × n_stable per iteration). Whole and
    resumed runs are not compared label by label: their 500 K trajectories are chaotic."""
    path = tmp_path / "polymer.toml"
    path.write_text(CONFIG)
    killed = tmp_path / "killed"
    run = [sys.executable, "-m", "hal.cli", "run", "--quiet"]
    proc = subprocess.Popen([*run, str(path), "--dir", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    db = killed / "tau_0" / "data.db"
    while proc.poll() is None and not (db.exists() and _uids(killed, "0")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _uids(killed, "0")
    assert before and not (killed / "stability.jsonl").exists()  # killed before the end
    assert subprocess.run([*run, "--resume", str(killed)], capture_output=True).returncode == 0
    after = _uids(killed, "0")
    assert set(before) <= set(after) and len(after) == len(set(after))
    rows = read_jsonl(killed / "stability.jsonl")
    for tau in (0.0, 0.2):
        models = sorted((killed / f"tau_{tau:g}" / "models").glob("iter_*.npz"))
        assert sorted(r["iteration"] for r in rows if r["tau_rel"] == tau) == list(range(len(models)))
    assert all(r["md_steps"] <= 2 * 200 * r["iteration"] for r in rows)


RARE = """
protocol = "polymer_rare"
workers = 1
[system]
n = 1
frames = [8, 6]
trajectories = 2
md_every = 5
burn_in = 10
[basis]
order = 2
max_degree = [8, 6]
r_cut = 4.0
pair_degree = 6
pair_r_cut = 4.5
[fit]
committee_size = 8
dimers = 2
[hal]
n_hal = 6
n_walkers = 2
n_stable = 300
[conformers]
fold_seeds = 1
fold_steps = 20
"""


def test_hh_contact_flags_two_hydrogens_closer_than_one_angstrom():
    from hal.protocols.polymer_rare import hh_contact
    from hal.structures import peg

    chain = peg(1)
    assert not hh_contact(chain)  # geminal hydrogens sit ≈ 1.8 Å apart
    h = [i for i, z in enumerate(chain.numbers) if z == 1]
    far = max(h[1:], key=lambda j: chain.get_distance(h[0], j))
    squeezed = chain.copy()
    squeezed.positions[far] = chain.positions[h[0]] + [0.0, 0.0, 0.9]
    assert hh_contact(squeezed)


def test_ring_start_needs_a_chain_whose_ends_can_bond(tmp_path):
    from hal.config import ConfigError
    from hal.protocols import polymer_rare

    path = tmp_path / "ring.toml"
    path.write_text(RARE.replace("n_stable = 300\n", "n_stable = 300\nring_start = true\n"))
    config = load(path, polymer_rare.SCHEMA)
    with pytest.raises(ConfigError, match="ring_start"):
        polymer_rare.check(config)
    config["hal"]["ring_start"] = False
    polymer_rare.check(config)


def test_tiny_rare_event_run_end_to_end_and_resumed(tmp_path, capsys):
    import json

    from ase.io import read

    from hal.bonds import Topology
    from hal.protocols import polymer_rare
    from hal.structures import peg

    path = tmp_path / "rare.toml"
    path.write_text(RARE)
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--dir", str(run_dir), "--quiet"]) == 0
    assert "ratio (500K+800K)/(500K+HAL) on HAL test" in capsys.readouterr().out
    # the sets: trajectories split whole (the last one is test), HAL every third frame held out
    assert [len(read(run_dir / f"md_500K_{k}.xyz", ":")) for k in (0, 1)] == [4, 4]
    assert [len(read(run_dir / f"md_800K_{k}.xyz", ":")) for k in (0, 1)] == [3, 3]
    frames = polymer_rare.hal_frames(run_dir)
    topo = Topology(peg(1))
    train, test = polymer_rare.split_hal(frames, topo)
    intact = [a for a in frames if topo.intact(a)]
    assert 3 <= len(frames) <= 6 and len(test) == len(intact) // 3 and len(train) + len(test) == len(intact)
    table = json.loads((run_dir / "scores.json").read_text())
    sets = {"500K train", "500K test", "800K train", "800K test", "HAL train", "HAL test"}
    clean = [a for a in test if not polymer_rare.hh_contact(a)]
    sets |= {polymer_rare.CLEAN} if clean else set()
    assert set(table) == set(polymer_rare.MODELS) and all(set(v) == sets for v in table.values())
    assert all(v.get(polymer_rare.CLEAN, {"n": 0})["n"] == len(clean) for v in table.values())
    census = json.loads((run_dir / "census.json").read_text())
    assert census["HAL test"]["end-to-end"] == sum(
        any(b.kind == "end-to-end" for b in topo.hydrogen_bonds(a)) for a in test
    )
    assert (run_dir / "report.md").exists() and (run_dir / "parity.png").exists()
    # no frame of PEG(1) can hold an end-to-end bond (its ends are 3 bonds apart), so the chain was folded,
    # in vain, once
    conf = json.loads((run_dir / "conformers.json").read_text())
    assert conf["ring"] is None and conf["fold_tries"] == 1
    # a rerun resumes: no new MD, labels or fits
    stamps = {p: p.stat().st_mtime_ns for p in [*run_dir.glob("md_*.xyz"), *run_dir.glob("models/*.npz")]}
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert len(polymer_rare.hal_frames(run_dir)) == len(frames)
    # the added weight: a set weighted up is fitted better, the base model does not depend on it, and the
    # scan's cached fits at the configured weight are the run's. This tiny basis cannot fit the HAL frames
    # beside the MD ones: between weights 0.01 and 1 their force error moves by 0.01 ‰ either way (8 seeds),
    # so the comparison is to a weight that makes the fit take them (≥ 1000× lower in each of 8 seeds tried)
    config = load(path, polymer_rare.SCHEMA)
    scan = polymer_rare.weight_scan(config, run_dir, polymer_rare.scored_sets(config, run_dir), [0.01, 0.5, 10.0])
    assert scan[10.0]["500K+HAL"]["HAL train"]["F"] < 0.5 * scan[0.01]["500K+HAL"]["HAL train"]["F"]
    assert scan[10.0]["500K+800K"]["800K train"]["F"] < 0.5 * scan[0.01]["500K+800K"]["800K train"]["F"]
    assert scan[10.0]["500K"] == scan[0.01]["500K"] and scan[0.5] == table


def test_the_added_weight_is_chosen_on_validation_frames_never_on_a_test_set(tmp_path):
    import json

    import numpy as np
    from ase.calculators.emt import EMT
    from ase.io import write

    from hal.config import ConfigError
    from hal.protocols import polymer_rare
    from hal.structures import peg
    from tests.conftest import labelled

    toml = RARE.replace("trajectories = 2", "trajectories = 3").replace(
        "dimers = 2", "dimers = 0\nweight_candidates = [0.01, 0.3, 1.0]"
    )
    config = load(_write(tmp_path / "rare.toml", toml), polymer_rare.SCHEMA)
    rng = np.random.default_rng(0)

    def frames(n, scale):
        out = [peg(1) for _ in range(n)]
        for a in out:
            a.positions += rng.normal(scale=scale, size=a.positions.shape)
        return labelled(out, EMT)

    trajectories = [frames(3, 0.05) for _ in range(3)]
    for k, t in enumerate(trajectories):
        write(tmp_path / f"md_500K_{k}.xyz", t)
    sets = {"500K train": trajectories[0] + trajectories[1], "500K test": trajectories[2],
            "800K train": frames(3, 0.1), "800K test": frames(3, 0.1), "HAL train": frames(6, 0.15),
            "HAL test": frames(3, 0.15)}  # fmt: skip
    train, val = polymer_rare.validation_sets(config, tmp_path, sets)
    same = lambda a, b: len(a) == len(b) and all(np.allclose(x.positions, y.positions) for x, y in zip(a, b))  # noqa: E731
    assert same(val["500K val"], trajectories[1]) and same(train["500K train"], trajectories[0])
    assert same(val["HAL val"], sets["HAL train"][2::3]) and len(train["HAL train"]) == 4
    w = polymer_rare.validated_weight(config, tmp_path, sets)
    done = json.loads((tmp_path / "validation.json").read_text())
    ok = [
        c
        for c in (0.01, 0.3, 1.0)
        if all(done[f"{c:g}"]["500K val"][q] <= 1.1 * done["base"]["500K val"][q] for q in "EF")
    ]
    assert w == (max(ok) if ok else 0.01) and polymer_rare.added_weight(config, tmp_path) == w
    assert done["1"] != done["0.01"] and set(done) == {"sizes", "base", "0.01", "0.3", "1"}  # one fit per candidate
    # test sets play no part: garbage test labels, a fresh cache, the same choice and the same scores
    (tmp_path / "validation.json").unlink()
    for key in ("500K test", "HAL test"):
        for a in sets[key]:
            a.info["energy"] = float("nan")
    assert polymer_rare.validated_weight(config, tmp_path, sets) == w
    assert json.loads((tmp_path / "validation.json").read_text()) == done
    sets["HAL train"] = sets["HAL train"][:-1]  # a grown (here: shrunk) HAL set is validated afresh
    polymer_rare.validated_weight(config, tmp_path, sets)
    assert json.loads((tmp_path / "validation.json").read_text())["sizes"]["HAL val"] == 1
    with pytest.raises(ConfigError, match="weight_candidates"):
        polymer_rare.check(load(_write(tmp_path / "two.toml", toml.replace("trajectories = 3", "trajectories = 2")),
                                polymer_rare.SCHEMA))  # fmt: skip


def _write(path, text):
    path.write_text(text)
    return path


def test_polymer_benchmark_verdict_says_whether_hal_needs_5x_fewer_md_steps_and_no_more_calls(tmp_path):
    bench = benchmark_module("polymer")
    bench.RESULTS = tmp_path  # no other variant's file is listed as tried

    def outcome(steps: int, calls: int, stable: bool = True):
        row = {"md_steps": steps, "oracle_calls": calls, "iteration": 3}
        return bench.Outcome(row if stable else None, row if stable else None, row)

    label = {0.0: "AL (τ = 0)", 0.1: "HAL τ_r = 0.1"}

    def say(al, hal):
        firsts = {s: {0.0: al[s], 0.1: hal[s]} for s in range(3)}
        _, medians = bench.ratio_table(firsts, label, "first")
        _, stays = bench.ratio_table(firsts, label, "stays")
        return "\n".join(bench.verdict(firsts, label, medians, stays, "polymer"))

    al = [outcome(60000, 20), outcome(40000, 20), outcome(9000, 20, stable=False)]  # the last: a lower bound
    hal = [outcome(6000, 12), outcome(8000, 12), outcome(1500, 12)]
    text = say(al, hal)
    assert "**The goal is met**" in text and "median AL/HAL = 6.00" in text and "≥ 5 in 3 of 3 seeds" in text
    assert "stable in 2/3" in text  # AL's never-stable seed
    assert "**The goal is not met**" in say(al, [outcome(6000, 30)] * 3)  # 10× fewer steps, but more calls
    assert "**The goal is not met**" in say(al, [outcome(20000, 12)] * 3)  # 3× fewer steps
    assert "**The goal is not met**" in say(al, [outcome(6000, 12, stable=False)] * 3)  # HAL never stable: 0
