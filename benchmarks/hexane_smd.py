"""The full hexane bond-breaking study: |ΔE_a| vs oracle calls per strategy (Jung et al. vs HAL-SMD).

GFN2-xTB (tblite) reference pulls for 5 seeds, 2000 frames of 500 K MD, then every strategy of the
paper on linear ACE (baselines; random-3 and inherited-3/5/7 ensembles with 150 labels per
iteration) and HAL-SMD, each scored after every refit by paired pulls on the same 5 seeds. The run
directory keeps everything (reference data are cached, a rerun resumes). Writes the strategy table
to ``benchmarks/results/hexane_smd.md``; last line: the oracle calls at which HAL-SMD first reached
|ΔE_a| ≤ 1 kcal/mol (0.043 eV).

    python benchmarks/hexane_smd.py [--quick] [--iterations 4] [--strategies hal-smd inherited-3 ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from hal.config import validate
from hal.protocols import hexane_smd
from hal.protocols.hexane_report import calls_to_target, scores_by_strategy, table

RESULTS = Path(__file__).parent / "results"


def config(quick: bool, iterations: int, hal_budget: int, sigma_tol: float, f_tol: float,
           names: list[str] | None) -> dict:  # fmt: skip
    jung = [("random-3", 3, "random"), ("inherited-3", 3, "inherited"), ("inherited-5", 5, "inherited"),
            ("inherited-7", 7, "inherited")]  # fmt: skip
    strategies = [{"name": "baseline-md", "kind": "baseline-md"}, {"name": "baseline-smd", "kind": "baseline-smd"}]
    strategies += [{"name": n, "kind": "jung", "members": m, "split": s, "iterations": iterations} for n, m, s in jung]
    strategies.append({"name": "hal-smd", "kind": "hal", "sigma_tol": sigma_tol, "f_tol": f_tol,
                       "max_oracle_calls": hal_budget, "n_initial": 40, "score_every": 25})  # fmt: skip
    if names:
        strategies = [s for s in strategies if s["name"] in names]
    raw = {"run_dir": "runs/hexane_study", "seeds": [0, 1, 2] if quick else [0, 1, 2, 3, 4],
           "initial": {"n_md": 300 if quick else 2000}, "strategies": strategies}  # fmt: skip
    return validate(raw, hexane_smd.SCHEMA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 300 MD frames, 1 iteration, HAL up to 150 calls")
    ap.add_argument("--iterations", type=int, default=4, help="iterations of each Jung et al. strategy")
    ap.add_argument("--hal-budget", type=int, default=400, help="HAL-SMD oracle calls at most")
    ap.add_argument("--sigma-tol", type=float, default=0.005, help="HAL-SMD trigger: σ of E − E(start), eV")
    ap.add_argument("--f-tol", type=float, default=0.0, help="HAL-SMD trigger: max f_i (0: off)")
    ap.add_argument("--strategies", nargs="*", help="run only these")
    ap.add_argument("--out", default=None, help="run directory (default runs/hexane_study[_quick])")
    args = ap.parse_args()
    cfg = config(args.quick, 1 if args.quick else args.iterations, 150 if args.quick else args.hal_budget,
                 args.sigma_tol, args.f_tol, args.strategies)  # fmt: skip
    run_dir = Path(args.out or ("runs/hexane_study_quick" if args.quick else "runs/hexane_study"))
    t0 = time.perf_counter()
    hexane_smd.run(cfg, run_dir, progress=True)
    hexane_smd.report(run_dir, cfg)
    text = table(run_dir)
    cmd = "python benchmarks/hexane_smd.py " + " ".join(sys.argv[1:])
    hal = scores_by_strategy(run_dir).get("hal-smd", [])
    hit, hit_w = calls_to_target(hal), calls_to_target(hal, key="work_error")
    stem = "hexane_smd_quick" if args.quick else "hexane_smd"
    RESULTS.mkdir(exist_ok=True)
    for name in ("learning", "work", "snapshots"):
        shutil.copy(run_dir / f"{name}.png", RESULTS / f"{stem}_{name}.png")
    images = "".join(f"![{name}]({stem}_{name}.png)\n\n" for name in ("learning", "work", "snapshots"))
    out = (f"{cmd}\n\nseeds {cfg['seeds']}, {cfg['initial']['n_md']} MD frames, wall {time.perf_counter() - t0:.0f} s "
           f"(this invocation; cached steps excluded)\n\n{text}\n{images}"
           f"oracle_calls_to_1kcal_work_curve: {hit_w if hit_w is not None else 'not reached'}\n"
           f"oracle_calls_to_1kcal: {hit if hit is not None else 'not reached'}\n")  # fmt: skip
    (RESULTS / f"{stem}.md").write_text(out)
    print(out, end="")


if __name__ == "__main__":
    main()
