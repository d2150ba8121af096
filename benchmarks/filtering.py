"""Filtering (HAL paper II.A) on the default silicon pool: greedy max-f_i selection against random.

Runs the packaged protocol (``protocols/filtering.toml``: Kumagai oracle, ν = 3 basis of 578 functions,
K = 32, ε = mean predicted force) in ``benchmarks/results/filtering_run`` (resumable: a second call
reuses the pool and the logs), then writes ``benchmarks/results/filtering.md`` with the learning
curves, the property table (Table I) and the selection histogram.

    python benchmarks/filtering.py [--quick] [--fresh]

Goals: at 5 % of the environments the filtered test force RMSE ≤ 0.7× the random one (mean over
seeds); B, C11, C12, C44 within 2 %, phonons within 3 %, F(300 K) within 1 meV/atom.
Last line: ``filtered_over_random_force_rmse_at_5pct: <ratio>``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from hal.config import load
from hal.protocols import default_config
from hal.protocols import filtering as F
from hal.protocols.filtering import figures

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a third of the pool, 3 random seeds, to 6 %%")
    ap.add_argument("--fresh", action="store_true", help="delete an earlier run directory first")
    args = ap.parse_args()
    config = load(default_config("filtering"), F.SCHEMA)
    tag = "filtering_quick" if args.quick else "filtering"
    if args.quick:
        config["pool"]["size"] = 0.35
        config["selection"].update(budget=0.06, random_seeds=3)
        config["properties"].update(checkpoints=[0.02, 0.05], phonon_supercell=3)
    run_dir = RESULTS / f"{tag}_run"
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    summary = F.run(config, run_dir, progress=True)["filtering"]
    wall = time.perf_counter() - t0
    report = figures.write(run_dir, config)
    text = report.read_text().replace("](", f"]({run_dir.name}/")
    split = json.loads((run_dir / "split.json").read_text())
    head = (f"`python benchmarks/filtering.py{' --quick' if args.quick else ''}`: {wall:.0f} s on this machine "
            f"(pool, oracle properties and every selection run; a rerun resumes). Pool of "
            f"{len(split['train']) + len(split['test'])} Kumagai-labelled configurations.\n\n")  # fmt: skip
    (RESULTS / f"{tag}.md").write_text(head + text)
    runs = figures.selection_logs(run_dir)
    rnd = [F.test_rmse_at(v, 0.05) for k, v in runs.items() if k.startswith("random")]
    print(f"test force RMSE at 5 %: filtered {summary['greedy_F_rmse']:.4f} eV/Å, random "
          f"{np.mean(rnd):.4f} ± {np.std(rnd):.4f} (median {np.median(rnd):.4f}) eV/Å over {len(rnd)} seeds; "
          f"filtered / random median {summary['filtered_over_random_median']:.2f}; {wall:.0f} s")  # fmt: skip
    print(f"filtered_over_random_force_rmse_at_5pct: {summary['filtered_over_random']:.2f}")


if __name__ == "__main__":
    main()
