"""Filtering (HAL paper II.A) on the default silicon pool: greedy max-f_i selection against random.

Two studies of the packaged protocol (``protocols/filtering.toml``: Kumagai oracle, ν = 3 basis of
578 functions, K = 32, ε = mean predicted force): the whole pool, and its diamond configurations alone
(``config_types = ["diamond*"]``, as the paper's property study of its 489 diamond configurations).
Each runs in ``benchmarks/results/<study>_run`` (resumable: a second call reuses the pool and the logs)
and writes ``benchmarks/results/<study>.md`` with the learning curves, the property table (Table I),
the whole-pool fit (the ceiling of any selection) and the selection histogram.

    python benchmarks/filtering.py [--quick] [--fresh] [--budget 0.3 --studies filtering_diamond]

``--studies filtering_diamond_cool`` runs a third study, not a default: the diamond frames without the
900–1500 K MD, so that the pool's hard and easy frames have comparable force scales (the paper's GAP
database has; ours is dominated by hot MD, which max f_i picks first).

``--budget`` goes on past the default 10 % (checkpoints 15, 20, 30 %, … up to it) in ``<study>_b<percent>_run``,
started from a copy of the 10 % run: does a property that filtering misses at 10 % converge later?

Goals: at 5 % of the environments the filtered test force RMSE ≤ 0.7× the random one (mean over
seeds); B, C11, C12, C44 within 2 %, phonons within 3 %, F(300 K) within 1 meV/atom.
Last line: ``filtered_over_random_force_rmse_at_5pct: <ratio>`` (the whole pool).
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
COOL = ["diamond_ev", "diamond_strain", "diamond_md_300K", "diamond_md_600K"]  # no 900-1500 K MD: comparable forces
STUDIES = {"filtering": [], "filtering_diamond": ["diamond*"], "filtering_diamond_cool": COOL}
DEFAULT = ["filtering", "filtering_diamond"]
HEADLINE = "filtered_over_random_force_rmse_at_5pct: {:.2f}"  # of the whole pool's study, its file's last line


def study(tag: str, config_types: list[str], quick: bool, fresh: bool, budget: float | None = None) -> dict:
    """Run (or resume) one study and write its report; returns the protocol's summary."""
    name = tag  # the study, as --studies names it
    config = load(default_config("filtering"), F.SCHEMA)
    config["pool"]["config_types"] = config_types
    if quick:
        tag += "_quick"
        config["pool"]["size"] = 0.35
        config["selection"].update(budget=0.06, random_seeds=3)
        config["properties"].update(checkpoints=[0.02, 0.05], phonon_supercell=3)
    base = RESULTS / f"{tag}_run"  # the run at the default budget
    if budget is not None:
        cps = config["properties"]["checkpoints"]
        config["selection"]["budget"] = budget
        config["properties"]["checkpoints"] = cps + [c for c in (0.15, 0.2, 0.3, 0.5) if cps[-1] < c <= budget]
        tag += f"_b{100 * budget:g}"
    run_dir = RESULTS / f"{tag}_run"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if budget is not None and not run_dir.exists() and (base / "greedy.jsonl").exists():
        shutil.copytree(base, run_dir)  # a larger budget extends the default run (claim() allows it)
    pool_dir = RESULTS / ("filtering_quick_run" if quick else "filtering_run")
    if config_types and not (run_dir / "pool.xyz").exists() and (pool_dir / "pool.xyz").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(pool_dir / "pool.xyz", run_dir / "pool.xyz")  # the same pool, not a second one
    t0 = time.perf_counter()
    summary = F.run(config, run_dir, progress=True)["filtering"]
    wall = time.perf_counter() - t0
    report = figures.write(run_dir, config)
    text = report.read_text().replace("](", f"]({run_dir.name}/")
    split = json.loads((run_dir / "split.json").read_text())
    flags = (" --quick" if quick else "") + (f" --budget {budget:g}" if budget else "")
    flags += f" --studies {name}" if budget or name not in DEFAULT else ""
    head = (f"`python benchmarks/filtering.py{flags}`, study {tag}: {wall:.0f} s on this "
            f"machine (a rerun resumes). {len(split['train']) + len(split['test'])} Kumagai-labelled "
            f"configurations{' of config_types ' + ', '.join(config_types) if config_types else ''}.\n\n")  # fmt: skip
    headline = HEADLINE.format(summary["filtered_over_random"])
    last = f"\n{headline}\n" if not config_types and budget is None else ""  # the benchmark's headline
    (RESULTS / f"{tag}.md").write_text(head + text.rstrip("\n") + "\n" + last)
    runs = figures.selection_logs(run_dir)
    rnd = [F.held_out_force_rmse_at(v, 0.05) for k, v in runs.items() if k.startswith("random")]
    print(f"{tag}: test force RMSE at 5 %: filtered {summary['greedy_F_rmse']:.4f} eV/Å, random "
          f"{np.mean(rnd):.4f} ± {np.std(rnd):.4f} (median {np.median(rnd):.4f}) eV/Å over {len(rnd)} seeds; "
          f"filtered / random mean {summary['filtered_over_random']:.2f}, / median "
          f"{summary['filtered_over_random_median']:.2f}; {wall:.0f} s")  # fmt: skip
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a third of the pool, 3 random seeds, to 6 %%")
    ap.add_argument("--fresh", action="store_true", help="delete earlier run directories first")
    ap.add_argument("--budget", type=float, help="go on past 10 %% to this fraction (own run directory)")
    ap.add_argument("--studies", nargs="+", choices=list(STUDIES), default=DEFAULT)
    args = ap.parse_args()
    out = {tag: study(tag, STUDIES[tag], args.quick, args.fresh, args.budget) for tag in args.studies}
    tag = "filtering" if "filtering" in out else args.studies[0]
    name = HEADLINE if tag == "filtering" else HEADLINE.replace("5pct:", f"5pct_{tag.removeprefix('filtering_')}:")
    print(name.format(out[tag]["filtered_over_random"]))


if __name__ == "__main__":
    main()
