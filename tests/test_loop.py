"""Oracle wrapper (failures, NaN, timeout, cost) and the provenance store."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from hal.demo import alloy_cells
from hal.loop import Oracle, Store

CALLS = itertools.count()


class Flaky(Calculator):
    """EMT that fails on 20 % of the calls: every 10th raises, every 10th + 5 returns NaN."""

    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        key = next(CALLS) % 10
        if key == 0:
            raise RuntimeError("SCF did not converge")
        ref = EMT()
        ref.calculate(self.atoms, properties, system_changes)
        self.results = dict(ref.results)
        if key == 5:
            self.results["forces"] = self.results["forces"] * np.nan


class Slow(EMT):
    def calculate(self, *args, **kwargs):
        time.sleep(5)
        super().calculate(*args, **kwargs)


@pytest.fixture(scope="module")
def cells():
    return alloy_cells(20, seed=8)


def test_oracle_labels_match_the_calculator(cells):
    res = Oracle(EMT)(cells[0])
    assert res.ok and res.wall_time > 0
    assert res.atoms.info["energy"] == pytest.approx(cells[0].info["energy"], rel=1e-12)
    assert np.allclose(res.atoms.arrays["forces"], cells[0].arrays["forces"])
    assert np.allclose(res.atoms.info["stress"], cells[0].info["stress"])


def test_failing_oracle_is_recorded_not_raised(cells, tmp_path):
    oracle = Oracle(Flaky)
    store = Store(tmp_path / "data.db")
    statuses = []
    for k, atoms in enumerate(cells):
        res = oracle(atoms)
        statuses.append(res.status)
        store.add(res, uid=f"u{k}", iteration=0, walker=k % 2, source="test")
    assert statuses.count("error") == 2 and statuses.count("non_finite") == 2 and statuses.count("ok") == 16
    assert store.count(status="ok") == statuses.count("ok")
    assert store.count(status="error") + store.count(status="non_finite") == len(cells) - statuses.count("ok")
    failed = next(store.db.select(status="error"))
    assert "SCF" in failed.data["error"]


def test_store_writes_past_a_lock_file_left_by_a_killed_run(cells, tmp_path):
    # ASE's default lock file, left behind by a kill -9 during a write, made the resumed run wait forever
    path = tmp_path / "data.db"
    Path(f"{path}.lock").touch()
    label = Oracle(EMT)(cells[0])
    writer = threading.Thread(target=lambda: Store(path).add(label, uid="init-0"), daemon=True)
    writer.start()
    writer.join(timeout=10.0)
    assert not writer.is_alive() and Store(path).has("init-0")


def test_oracle_timeout(cells):
    res = Oracle(Slow, timeout_s=0.5)(cells[0])
    assert res.status == "timeout" and res.wall_time < 3
    ok = Oracle(EMT, timeout_s=30)(cells[0])
    assert ok.ok and ok.atoms.info["energy"] == pytest.approx(cells[0].info["energy"], rel=1e-12)


def test_store_roundtrip_and_provenance(cells, tmp_path):
    path = tmp_path / "run" / "data.db"
    store = Store(path)
    oracle = Oracle(EMT)
    for k, atoms in enumerate(cells[:5]):
        store.add(oracle(atoms), uid=f"it0-w0-{k}", iteration=0, walker=0, tau=0.1, criterion=0.7)
    again = Store(path)  # a resumed run reopens the same file
    assert len(again) == 5 and again.has("it0-w0-3") and not again.has("it0-w0-9")
    back = again.labelled()
    for a, b in zip(back, cells[:5]):
        assert a.info["energy"] == pytest.approx(b.info["energy"], rel=1e-12)
        assert np.allclose(a.arrays["forces"], b.arrays["forces"])
        assert np.allclose(a.info["stress"], b.info["stress"])
        assert a.info["iteration"] == 0 and a.info["tau"] == 0.1 and a.info["status"] == "ok"
    tagged = cells[5].copy()  # the fit's per-configuration overrides and config_type survive the store
    tagged.info.update(config_type="dimer", force_weight=0.1, energy_weight=0.0, f_max=np.inf)
    store.add(oracle(tagged), uid="init-5", source="initial")
    back = Store(path).labelled(uid="init-5")[0].info
    assert (back["config_type"], back["force_weight"], back["energy_weight"], back["f_max"]) == (
        "dimer",
        0.1,
        0.0,
        np.inf,
    )
