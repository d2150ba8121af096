"""The alloy protocol end to end through `hal run`, then `hal run` again (a finished run is not redone)
and `hal report`."""

from __future__ import annotations

import json

from ase.db import connect

from hal.cli import main

CONFIG = """
protocol = "alloy"
workers = 1
[system]
n_initial = 4
n_walkers = 2
[basis]
order = 2
max_degree = [8, 8]
r_cut = 4.5
pair_degree = 4
[fit]
committee_size = 8
[[stages]]
name = "solid"
n_stable = 200
max_oracle_calls = 2
temperature_K = 900.0
n_hist = 30
tau_rel = 0.3
mc_every = 10
mc_moves = ["swap", "volume", "shape"]
[[stages]]
name = "liquid"
n_stable = 200
max_oracle_calls = 2
temperature_K = 2500.0
timestep_fs = 1.0
n_hist = 30
tau_rel = 0.3
pressure_GPa = 0.0
[final]
ard_thresholds = [1e3]
n_test = 3
"""


def test_alloy_protocol_runs_reports_and_does_not_redo(tmp_path, capsys):
    config = tmp_path / "alloy.toml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--dir", str(run_dir), "--quiet"]) == 0
    rows = list(connect(str(run_dir / "data.db")).select(sort="id"))
    hal_rows = [r for r in rows if r.source == "hal"]
    assert sum(r.source == "initial" for r in rows) == 4
    assert {r.stage for r in hal_rows} <= {"solid", "liquid"} and hal_rows
    for stage in ("solid", "liquid"):  # each stage within its budget
        assert sum(r.stage == stage for r in hal_rows) <= 2
    liquid_iters = [r.iteration for r in hal_rows if r.stage == "liquid"]
    solid_iters = [r.iteration for r in hal_rows if r.stage == "solid"]
    if liquid_iters and solid_iters:
        assert min(liquid_iters) > max(solid_iters)  # iterations run on across stages
    # every iteration, the stable one without labels included, belongs to one stage: names never clash
    fits = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    fits = [(e["stage"], e["iteration"]) for e in fits if e["event"] == "fit"]
    assert len({k for _, k in fits}) == len(fits), fits
    solid_fits = [k for stage, k in fits if stage == "solid"]
    assert all(k > max(solid_fits) for stage, k in fits if stage == "liquid"), fits
    for name in ("report.md", "traces.png", "learning.png", "ard_sweep.md", "test.xyz", "config.toml"):
        assert (run_dir / name).stat().st_size > 0, name
    report = (run_dir / "report.md").read_text()
    assert "| brr |" in report and "| ard |" in report and "solid E / F RMSE" in report and "nan" not in report
    assert "ard_sweep" in capsys.readouterr().out

    # run again with the same config: everything is done, nothing is labelled or logged as ended twice
    assert main(["run", str(config), "--dir", str(run_dir), "--quiet"]) == 0
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert len(list(connect(str(run_dir / "data.db")).select())) == len(rows)
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    ends = [e["stage"] for e in events if e["event"] == "end"]
    assert sorted(ends) == ["liquid", "solid"]
    assert main(["report", str(run_dir)]) == 0


def test_summary_lines_read_as_sentences():
    from hal.cli import format_summary

    line = format_summary("hal-smd", {"oracle_calls": 83, "delta_ea": 0.0338, "force_mae": 0.0386})
    assert line == "hal-smd: oracle calls 83, ΔE_a +0.034 eV, unseen F MAE 0.0386 eV/Å"
    line = format_summary("solid", {"stage": "solid", "reason": "budget", "labels": 2, "failures": 0})
    assert line == "solid: stopped on budget, labels 2, failed oracle calls 0" and "{" not in line


def test_ctrl_c_leaves_a_resumable_run_and_no_traceback(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    config = tmp_path / "alloy.toml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "hal.cli", "run", str(config), "--dir", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    # a background job of a non-interactive shell inherits SIGINT ignored: give the run Python's own handler
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    t0 = time.time()
    while not (run_dir / "data.db").exists() and time.time() - t0 < 120:  # the run is under way
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"hal run --resume {run_dir}" in err
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0


def test_traces_plot_names_the_criterion_and_its_threshold(tmp_path):
    import numpy as np

    from hal.report import plot_traces

    def trace(n, pressure):
        return {"sigma": np.ones(n), "criterion": np.linspace(0, 0.2, n), "temperature": np.full(n, 800.0),
                "pressure_GPa": np.full(n, pressure), "tau": np.zeros(n)}  # fmt: skip

    items = [("solid", 0, 0, trace(50, 1.0)), ("solid", 1, 0, trace(30, 1.0)), ("liquid", 2, 0, trace(40, 0.1))]
    shown = plot_traces(items, tmp_path / "t.png", {"solid": ("max_i f_i", 0.1), "liquid": ("max_i f_i", 0.2)})
    assert shown["ylabels"] == ["max_i f_i", "T (K)", "P (GPa)", "τ"] and shown["thresholds"] == 3
    assert shown["colorbar"] == "iteration" and shown["fontsize"] >= 10
    molecule = [(s, it, w, {**tr, "pressure_GPa": np.full(len(tr["tau"]), np.nan)}) for s, it, w, tr in items]
    assert "P (GPa)" not in plot_traces(molecule, tmp_path / "m.png", {})["ylabels"]  # no cell, no panel


def test_an_interrupt_dropped_in_a_callback_is_raised_again(monkeypatch):
    """A Ctrl-C inside a weakref callback (the CI failure: an import lock's) must still stop the run."""
    import signal
    import sys
    import time
    import weakref

    import pytest

    from hal.cli import _redeliver_interrupt

    class Thing:
        pass

    def callback(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "unraisablehook", _redeliver_interrupt)
    thing = Thing()
    ref = weakref.ref(thing, callback)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # also where SIGINT came in ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            del thing  # the callback's KeyboardInterrupt is unraisable: printed and dropped without the hook
            time.sleep(2.0)  # the SIGINT sent again (after 0.05 s) interrupts this
    finally:
        signal.signal(signal.SIGINT, handler)
    assert ref() is None
