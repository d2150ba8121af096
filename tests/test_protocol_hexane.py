"""The hexane study end to end on ethane with tiny budgets (tblite oracle): every strategy runs,
labels land in the store with provenance, the report is written, and a rerun labels nothing new."""

from __future__ import annotations

import numpy as np
import pytest

from hal.config import ConfigError, validate
from hal.loop.learner import read_events
from hal.loop.store import Store
from hal.protocols import hexane_smd
from hal.protocols.hexane_report import table
from tests.conftest import benchmark_module

pytest.importorskip("tblite")
torch = pytest.importorskip("torch")

# ethane and propane in turn, one model; no trigger can fire (σ < 10 eV, f_i off): a stable pull on each chain
# ends it
MULTI = {"name": "hal-multi", "kind": "hal", "chains": [2, 3], "n_initial": 10, "n_stable": 1, "sigma_tol": 10.0,
         "n_hist": 20, "committee_size": 8}  # fmt: skip
CONFIG = {
    "run_dir": "unused",
    "workers": 1,
    "seeds": [0, 1],
    "n_carbon": 2,
    "pull": {"velocity": 8.0, "stretch": 1.2, "prepare_steps": 100, "frame_every": 20},
    "initial": {"n_md": 30, "every": 5},
    "basis": {"order": 2, "max_degree": [6, 4], "r_cut": 4.0},
    "quasi_static_backends": ["ace"],  # the NN strategies: on their final scores only (quasi_static_final)
    "strategies": [
        {"name": "md", "kind": "baseline-md"},
        {
            "name": "inherited-2",
            "kind": "jung",
            "members": 2,
            "iterations": 1,
            "labels_per_iteration": 9,
            "uq_first_steps": 100,
        },
        {"name": "fit-only", "kind": "jung", "members": 2, "iterations": 0},  # the initial fit alone
        {
            "name": "ani-2",
            "kind": "jung",
            "backend": "torchani",
            "members": 2,
            "iterations": 1,
            "epochs": 3,
            "labels_per_iteration": 6,
            "uq_first_steps": 100,
        },  # fmt: skip
        {
            "name": "schnet-2",
            "kind": "jung",
            "backend": "schnet",
            "dtype": "float64",
            "members": 2,
            "iterations": 1,
            "epochs": 3,
            "labels_per_iteration": 6,
            "uq_first_steps": 100,
        },  # fmt: skip
        {
            "name": "hal-ani",
            "kind": "hal",
            "backend": "torchani",
            "members": 2,
            "epochs": 3,
            "refit_epochs": 2,
            "n_initial": 10,
            "max_oracle_calls": 13,
            "score_every": 3,
            "n_hist": 20,
            "check_every": 2,
            "f_tol": 0.1,
        },
        {
            "name": "hal",
            "kind": "hal",
            "n_initial": 10,
            "max_oracle_calls": 16,
            "score_every": 3,
            "n_hist": 20,
            "check_every": 2,
            "f_tol": 0.1,
            "committee_size": 8,
            "max_labels_per_pull": 2,
        },
        MULTI,
        {**MULTI, "name": "hal-multi-s1", "seed": 1, "velocities": [8.0, 16.0]},  # another draw, two loading rates
    ],
    "transfer": {"models": ["hal", "hal-multi"], "chains": [3], "velocities": [12.5]},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hexane")
    config = validate(CONFIG, hexane_smd.SCHEMA)
    summary = hexane_smd.run(config, run_dir, progress=False)
    return run_dir, config, summary


def test_every_strategy_is_scored_against_the_paired_reference(study):
    run_dir, config, summary = study
    transfer = {f"transfer {m} {case}" for m in ("hal", "hal-multi") for case in ("C3 8 Å/ps", "C2 12.5 Å/ps")}
    strategies = {"md", "inherited-2", "fit-only", "ani-2", "schnet-2", "hal-ani", "hal", "hal-multi", "hal-multi-s1"}
    assert set(summary) == {*strategies, *transfer}
    scores = [e for e in read_events(run_dir) if e["event"] == "score"]
    for e in scores:
        assert len(e["ea_model"]) == len(e["ea_reference"]) == 2
        assert e["delta_ea"] == pytest.approx(np.mean(np.subtract(e["ea_model"], e["ea_reference"])))
        assert np.isfinite(e["force_mae"])
    for name in strategies:  # the quasi-static pull: on every ACE score, on the final one of every strategy
        mine = [e for e in scores if e["strategy"] == name]
        nn = name in ("ani-2", "schnet-2", "hal-ani")
        assert [np.isfinite(e["delta_ea_quasi_static"]) for e in mine] == [not nn] * (len(mine) - 1) + [True]
        assert np.isfinite(mine[-1]["work_error"]) and np.isfinite(mine[-1]["peak_force_error"])
    for name in ("inherited-2", "ani-2", "schnet-2"):  # the same loop on linear ACE and on the NN ensembles
        jung = [e for e in scores if e["strategy"] == name]
        assert [e["iteration"] for e in jung] == [0, 1] and jung[1]["oracle_calls"] > jung[0]["oracle_calls"]
    fit_only = [e for e in scores if e["strategy"] == "fit-only"]  # iterations 0: one final score, no labels
    assert [(e["iteration"], e["oracle_calls"]) for e in fit_only] == [(0, 30)]
    assert not list(Store(run_dir / "data.db").db.select(strategy="fit-only"))
    assert (run_dir / "models" / "ani-2-iter_001.pt").exists() and (
        run_dir / "models" / "schnet-2-iter_001.pt"
    ).exists()
    hal_ani = [e for e in scores if e["strategy"] == "hal-ani"]  # HAL-SMD on the NN ensemble
    assert len(hal_ani) >= 2 and hal_ani[-1]["oracle_calls"] > hal_ani[0]["oracle_calls"] == 10
    assert (run_dir / "models" / "hal-ani-final.pt").exists()
    dtypes = {n: torch.load(run_dir / "models" / f"{n}-iter_001.pt", weights_only=False)["dtype"]
              for n in ("ani-2", "schnet-2")}  # fmt: skip
    assert dtypes == {"ani-2": "torch.float32", "schnet-2": "torch.float64"}  # float32 unless set


def test_labels_have_provenance_and_respect_the_budgets(study):
    run_dir, config, _ = study
    store = Store(run_dir / "data.db")
    jung = store.labelled(strategy="inherited-2")
    assert 0 < len(jung) <= 9 and len(jung) % 3 == 0
    for k in range(0, len(jung), 3):  # an accepted configuration, then its two augmented copies
        for copy in jung[k + 1 : k + 3]:
            assert np.abs(copy.positions - jung[k].positions).max() <= 0.05
    hal_rows = list(store.db.select(strategy="hal"))
    assert 0 < len(hal_rows) <= 16 - 10
    assert 0 < len(list(store.db.select(strategy="hal-ani"))) <= 13 - 10
    assert all(r.source == "hal-smd" and r.get("d0") is not None and r.get("sigma") is not None for r in hal_rows)
    pulls = [e for e in read_events(run_dir) if e["event"] == "pull" and e["strategy"] == "hal"]
    assert max(e["triggers"] for e in pulls) == 2 and len(pulls) >= 3  # at most 2 labels a pull: 6 take 3 pulls


def test_transferability_pulls_other_chains_against_their_own_reference(study):
    run_dir, config, _ = study
    cases = [e for e in read_events(run_dir) if e["event"] == "transfer"]
    assert [(e["strategy"], e["chain"], e["velocity"]) for e in cases] == [
        (m, n, v) for m in ("hal", "hal-multi") for n, v in ((3, 8.0), (2, 12.5))
    ]
    assert cases[0]["ea_reference"] == cases[2]["ea_reference"]  # one reference per case, shared by the models
    assert (run_dir / "reference" / "C3-v8-s0.npz").exists() and (run_dir / "reference" / "C2-v12.5-s0.npz").exists()
    ethane = [e for e in read_events(run_dir) if e["event"] == "score" and e["strategy"] == "hal"][-1]
    assert cases[1]["ea_reference"][0] != ethane["ea_reference"][0]  # another loading rate, another reference
    for e in cases:  # which bond broke, per seed, for the model and the reference
        assert len(e["bonds"]) == len(e["bonds_reference"]) == len(e["ea_reference"])
        assert set(e["bonds"] + e["bonds_reference"]) <= {"C1–C2", "C2–C3", "C1–H", "C2–H", "none"}


def test_multi_chain_hal_smd_pulls_each_chain_in_turn_with_one_model(study):
    run_dir, config, _ = study
    pulls = [e for e in read_events(run_dir) if e["event"] == "pull" and e["strategy"] == "hal-multi"]
    assert [(e["chain"], e["seed"], e["stable"]) for e in pulls] == [(2, 0, 1), (3, 0, 2)]
    rates = [e for e in read_events(run_dir) if e["event"] == "pull" and e["strategy"] == "hal-multi-s1"]
    assert [(e["chain"], e["velocity"], e["stable"]) for e in rates] == [(2, 8, 1), (2, 16, 2), (3, 8, 3), (3, 16, 4)]
    assert (run_dir / "reference" / "C3-s0-start.xyz").exists()  # the oracle's start state of the other chain
    assert (run_dir / "models" / "hal-multi-final.npz").exists()
    from hal.model import LinearACE

    c0, c1 = (LinearACE.load(run_dir / "models" / f"{m}-final.npz").coefficients for m in ("hal-multi", "hal-multi-s1"))
    assert not np.allclose(c0, c1)  # its own seed: another training of the same setting
    plan = [hexane_smd.pull_plan(k, [2, 4, 6], [0, 1]) for k in range(7)]
    assert plan == [(2, 0), (4, 0), (6, 0), (2, 1), (4, 1), (6, 1), (2, 0)]


def test_bond_names_are_up_to_the_mirror_symmetry_of_the_chain():
    from hal.protocols.hexane_eval import bond_name

    assert bond_name((0, 1), 6) == bond_name((5, 4), 6) == "C1–C2"
    assert bond_name((2, 3), 6) == "C3–C4" and bond_name((1, 2), 6) == bond_name((3, 4), 6) == "C2–C3"
    assert bond_name((5, 17), 6) == bond_name((6, 0), 6) == "C1–H" and bond_name(None, 6) == "none"


def test_report_and_rerun_labels_nothing_new(study):
    run_dir, config, _ = study
    report = hexane_smd.report(run_dir, config)
    assert report.exists() and "| hal |" in report.read_text() and "| C3 | 8 | 1 |" in report.read_text()
    row = next(r for r in report.read_text().splitlines() if r.startswith("| hal |"))
    bonds = [e for e in read_events(run_dir) if e["event"] == "score" and e["strategy"] == "hal"][-1]["bonds"]
    assert bonds and all(b in row.split("|")[-2] for b in bonds)  # the last column: the bonds its pulls broke
    only = [r for r in table(run_dir, ["hal"]).splitlines()[2:] if r]  # the rows of the named strategies alone
    assert len(only) == 1 and only[0] == row
    others = [s["name"] for s in config["strategies"] if s["name"] != "hal"]
    assert others and all(f"| {n} |" in report.read_text() for n in others)
    hal_only = {**config, "strategies": [s for s in config["strategies"] if s["name"] == "hal"]}
    text = hexane_smd.report(run_dir, hal_only).read_text()  # a report of a config's strategies, not the directory's
    assert row in text and not any(f"| {n} |" in text for n in others)
    for name in ("learning.png", "work.png", "snapshots.png"):
        assert (run_dir / name).stat().st_size > 1000
    rows, events = Store(run_dir / "data.db").count(), len(read_events(run_dir))
    models = {p: p.read_bytes() for p in (run_dir / "models").iterdir()}
    hexane_smd.run(config, run_dir, progress=False)
    assert Store(run_dir / "data.db").count() == rows
    assert not [e for e in read_events(run_dir)[events:] if e["event"] == "score"]
    # every model is the one scored: a finished HAL-SMD strategy is not refitted (an NN one, from scratch)
    assert {p: p.read_bytes() for p in (run_dir / "models").iterdir()} == models


def test_more_seeds_confirm_a_transfer_case_and_its_row_replaces_the_first(study):
    from hal.protocols.hexane_report import transfer_cases, transfer_table

    run_dir, config, _ = study
    more = {**config, "strategies": [], "transfer": {**config["transfer"], "models": ["hal"], "seeds": [0, 1]}}
    for _ in range(2):  # the second run finds the cases done for these seeds
        hexane_smd.run(more, run_dir, progress=False)
    rows = [e for e in read_events(run_dir) if e["event"] == "transfer" and (e["strategy"], e["chain"]) == ("hal", 3)]
    assert [len(e["ea_model"]) for e in rows] == [1, 2] and rows[1]["seeds"] == [0, 1]
    assert rows[1]["ea_reference"][0] == rows[0]["ea_reference"][0]  # seed 0's reference pull is cached
    cases = transfer_cases(run_dir)
    assert len(cases) == 4 and [len(e["ea_model"]) for e in cases] == [2, 2, 1, 1]  # the cases keep their places
    ref = run_dir / "reference"  # each seed its own reference at a fractional rate ("v12.5" is not a file suffix)
    assert (
        (ref / "C2-v12.5-s0.npz").exists() and (ref / "C2-v12.5-s1.npz").exists() and (ref / "C2-v12.5-s1.xyz").exists()
    )
    assert cases[1]["ea_reference"][0] != cases[1]["ea_reference"][1]
    assert "| C3 | 8 | 2 |" in transfer_table(run_dir) and "| C2 | 12.5 | 2 |" in transfer_table(run_dir)


def test_config_checks():
    bad = validate({**CONFIG, "strategies": [CONFIG["strategies"][0]] * 2}, hexane_smd.SCHEMA)
    with pytest.raises(ConfigError, match="unique"):
        hexane_smd.check(bad)
    with pytest.raises(ConfigError, match="members"):
        hexane_smd.check(validate({**CONFIG, "strategies": [{"name": "j", "kind": "jung", "members": 1}]},
                                  hexane_smd.SCHEMA))  # fmt: skip


def test_nn_hal_refit_convergence_check_starts_from_the_model_the_study_scored(study):
    pytest.importorskip("hal.backends.schnet")
    run_dir, config, _ = study
    text = benchmark_module("nn_backends").refit_convergence(config, run_dir, 2)
    row = next(r for r in text.splitlines() if r.startswith("| hal-ani "))
    before, after = (float(x) for x in row.split("|")[3:5])
    final = [e for e in read_events(run_dir) if e["event"] == "score" and e["strategy"] == "hal-ani"][-1]
    assert before == pytest.approx(final["force_mae"], rel=1e-3)  # the best member on the same unseen frames
    assert np.isfinite(after) and after != before  # two more epochs moved it
    assert "| hal |" not in text and "| ani-2 |" not in text  # NN HAL-SMD strategies only


def test_nn_strategy_trains_with_its_own_epochs_and_patience(tmp_path):
    from types import SimpleNamespace

    sel = validate({**CONFIG, "strategies": [{"name": "h", "kind": "hal", "backend": "torchani", "epochs": 7,
                                              "patience": 4}]}, hexane_smd.SCHEMA)["strategies"][0]  # fmt: skip
    study = SimpleNamespace(progress=False, config={"workers": 2}, dir=tmp_path)
    backend = hexane_smd.make_backend(study, sel)
    assert (backend.epochs, backend.patience, backend.threads) == (7, 4, 2)
    default = validate({**CONFIG, "strategies": [{"name": "h", "kind": "hal"}]}, hexane_smd.SCHEMA)["strategies"][0]
    assert default["patience"] == 50


def test_hal_trigger_stops_a_blown_pull_and_keeps_the_last_sane_step():
    from types import SimpleNamespace

    from hal.structures import linear_alkane

    sel = validate({**CONFIG, "strategies": [{"name": "h", "kind": "hal", "sigma_tol": 0.05, "n_hist": 2}]},
                   hexane_smd.SCHEMA)["strategies"][0]  # fmt: skip
    start = linear_alkane(2)
    trigger = hexane_smd.Trigger(sel, start)
    stop = trigger.new_segment()
    n = len(start)
    results = {"energy": -1.0, "forces": np.zeros((n, 3)), "mean_forces": np.ones((n, 3)),
               "bias_forces": np.ones((n, 3)), "sigma": 0.01}  # fmt: skip
    calc = SimpleNamespace(base=SimpleNamespace(results=results, tau=0.0, force_uncertainty=False))
    sane = start.copy()
    for step in range(4):  # σ below sigma_tol: no stop
        assert not stop(step, sane, calc)
    results["sigma"] = 0.1  # above: a stop to label, not a blow-up
    assert stop(4, sane, calc) and not trigger.blown
    blown = sane.copy()
    blown.positions[0] = np.nan
    results["energy"] = np.nan
    assert stop(5, blown, calc) and trigger.blown
    assert np.array_equal(trigger.last_sane, sane.positions)
