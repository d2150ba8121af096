"""benchmarks/nn_backends.py: its options build a valid study (one set of NN strategies per epoch count, the
7-member ensemble on request, a name filter), its settings table says what each row trained, and its headline
picks the best NN work-curve error beside linear-ACE HAL-SMD's."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.conftest import benchmark_module

pytest.importorskip("torchani")
pytest.importorskip("hal.backends.schnet")


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("nn_backends")


def _args(**kwargs) -> argparse.Namespace:
    defaults = {"quick": False, "iterations": 1, "dtype": "float32", "max_calls": 150, "refit_epochs": None,
                "ani7": False, "strategies": None, "seeds": [0, 1, 2], "n_md": 2000}  # fmt: skip
    return argparse.Namespace(**{**defaults, **kwargs})


def test_one_set_of_nn_strategies_per_epoch_count_and_the_7_member_ensemble_on_request(bench, tmp_path):
    cfg = bench.study_config(_args(ani7=True), [300, 20], tmp_path)
    names = [s["name"] for s in cfg["strategies"]]
    assert names[:2] == ["ace-inherited-3", "ace-hal-smd"]
    for e in (300, 20):
        assert {f"torchani-hal-smd-e{e}", f"torchani-inherited-3-e{e}", f"schnet-inherited-3-e{e}",
                f"torchani-inherited-7-e{e}"} <= set(names)  # fmt: skip
    by = {s["name"]: s for s in cfg["strategies"]}
    assert by["torchani-inherited-7-e20"]["members"] == 7 and by["schnet-inherited-3-e300"]["epochs"] == 300
    assert by["torchani-hal-smd-e300"]["refit_epochs"] == 30 and by["torchani-hal-smd-e20"]["refit_epochs"] == 2
    assert by["torchani-hal-smd-e20"]["max_oracle_calls"] == 150 and cfg["initial"]["n_md"] == 2000
    # HAL-SMD's small fits run all their epochs; the paper's loop stops on a validation plateau
    assert by["torchani-hal-smd-e300"]["patience"] == 300 and by["torchani-inherited-3-e300"]["patience"] == 50

    given = {s["name"]: s for s in bench.study_config(_args(refit_epochs=[4, 10]), [20, 300], tmp_path)["strategies"]}
    assert given["torchani-hal-smd-e20"]["refit_epochs"] == 4 and given["torchani-hal-smd-e300"]["refit_epochs"] == 10
    with pytest.raises(SystemExit, match="one count per --epochs entry"):
        bench.study_config(_args(refit_epochs=[10]), [20, 300], tmp_path)

    only = bench.study_config(_args(strategies=["ace-hal", "schnet"]), [20], tmp_path)
    assert [s["name"] for s in only["strategies"]] == ["ace-hal-smd", "schnet-inherited-3-e20"]
    quick = bench.study_config(_args(quick=True, ani7=True), [10], tmp_path)
    assert quick["initial"]["n_md"] == 200 and quick["seeds"] == [0, 1]

    table = bench.settings_table(cfg, "CPU").splitlines()
    row = next(r for r in table if r.startswith("| torchani-hal-smd-e20 "))
    assert "| 3 | 20 / 2 | float32 | CPU |" in row
    assert next(r for r in table if r.startswith("| ace-hal-smd ")).endswith("| 32 | – | float64 | cpu |")


def test_headline_is_the_best_finite_nn_work_curve_error_beside_ace_hal_smd(bench, tmp_path):
    def score(name, work, bonds=()):
        return {"event": "score", "strategy": name, "work_error": work, "bonds": list(bonds)}

    events = [score("ace-hal-smd", 0.5), score("ace-hal-smd", 0.015), score("ace-inherited-3", 0.001),
              score("schnet-inherited-3-e20", 0.01), score("schnet-inherited-3-e20", 2.0, ["C1–C2"] * 3),
              score("torchani-inherited-3-e20", 1.25, ["C2–C3", "C2–C3", "C1–C2"]),
              score("torchani-hal-smd-e20", float("nan"))]  # fmt: skip
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    names = [e["strategy"] for e in events]
    # the final score of each strategy counts, an ACE strategy is never the NN's best, NaN is skipped
    assert bench.headline(tmp_path, names) == (
        "best_nn_work_curve_error_ev: 1.250 (torchani-inherited-3-e20, bonds broken: C2–C3 ×2, C1–C2; "
        "ace-hal-smd: 0.015)"
    )
    assert bench.headline(tmp_path, ["ace-hal-smd", "torchani-hal-smd-e20"]).startswith(
        "best_nn_work_curve_error_ev: nan (ace-hal-smd: 0.015)"
    )
