"""The alloy protocol to stability, against a model fitted to as many plain-MD samples.

Runs ``protocols/alloy.toml`` with ``n_stable`` steps per stage (default 5000) in a fresh run
directory, then fits the same basis (BRR) to the same number of structures drawn from plain EMT
Langevin MD (the initial cells + equal numbers of solid 800 K and liquid 3000 K frames) and compares
both on the run's held-out solid and liquid MD frames. HAL's data also cover close contacts that MD
at these temperatures never visits, so the run's own close-contact labels are scored too (both models,
the HAL model in-sample). Prints oracle calls, wall time and the error table; last line the oracle calls.

    python benchmarks/alloy_demo.py [--quick] [--n-stable 5000] [--out runs/alloy_demo]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from ase.io import read

from hal.config import load
from hal.fit import fit
from hal.fit.metrics import errors
from hal.loop.store import Store
from hal.protocols import alloy, default_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n_stable 1000, 15 labels per stage")
    ap.add_argument("--n-stable", type=int, default=5000)
    ap.add_argument("--budget", type=int, default=100, help="oracle calls per stage")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/alloy_demo")
    args = ap.parse_args()
    config = load(default_config("alloy"), alloy.SCHEMA)
    n_stable, budget = (1000, 15) if args.quick else (args.n_stable, args.budget)
    for stage in config["stages"]:
        stage["n_stable"], stage["max_oracle_calls"] = n_stable, budget
    config["workers"] = args.workers
    run_dir = Path(args.out)
    shutil.rmtree(run_dir, ignore_errors=True)

    t0 = time.perf_counter()
    summary = alloy.run(config, run_dir, progress=True)
    wall = time.perf_counter() - t0
    store = Store(run_dir / "data.db")
    calls = store.count()
    hal_data = store.labelled()
    test = read(run_dir / "test.xyz", ":")

    # plain MD baseline with the same number of labelled structures
    rng = np.random.default_rng(config["seed"] + 7)
    s = config["system"]
    initial = [a for a in hal_data if a.info["source"] == "initial"]
    n_md = len(hal_data) - len(initial)
    cells = alloy.random_cells(2, s["elements"], s["supercell"], s["lattice_constant"], 0.0, rng)
    md = alloy.md_samples(cells[0], n_md // 2, 800.0, seed=11, every=50, config_type="solid")
    md += alloy.md_samples(cells[1], n_md - n_md // 2, 3000.0, seed=12, every=50, config_type="liquid")
    basis = alloy.basis_of(config)
    options = {**alloy.fit_options(config), "committee_size": 0}
    models = {"HAL": fit(hal_data, basis, progress=False, **options),
              "plain MD": fit(initial + md, basis, progress=False, **options)}  # fmt: skip
    contacts = [a for a in hal_data if a.info.get("reason") == "min_distance"]
    for a in contacts:
        a.info["config_type"] = "close contact"

    lines = [f"alloy protocol, n_stable {n_stable}, budget {budget} per stage, {args.workers} workers",
             f"stages: {[summary[st['name']] for st in config['stages']]}",
             f"oracle calls (incl. {len(initial)} initial): {calls}; wall time {wall:.0f} s", "",
             "| model | structures | solid E meV/at | solid F eV/Å | liquid E meV/at | liquid F eV/Å "
             "| close-contact F eV/Å |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, model in models.items():
        e = errors(model, test)
        cc = errors(model, contacts).get("close contact", {}).get("F_rmse", np.nan) if contacts else np.nan
        lines.append(f"| {name} | {len(hal_data)} | {e['solid']['E_rmse']:.2f} | {e['solid']['F_rmse']:.4f} | "
                     f"{e['liquid']['E_rmse']:.2f} | {e['liquid']['F_rmse']:.4f} | {cc:.3f} |")  # fmt: skip
    lines += ["", "final refits:", summary["ard_sweep"]]
    text = "\n".join(lines)
    print(text)
    results = Path("benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / f"alloy_demo{'_quick' if args.quick else ''}.txt").write_text(text + f"\noracle_calls: {calls}\n")
    print(f"oracle_calls: {calls}")


if __name__ == "__main__":
    main()
