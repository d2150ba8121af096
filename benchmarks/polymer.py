"""HAL against active learning on PEG(2) (HAL paper Fig. 6), with GFN2-xTB (tblite) as the oracle.

Runs the packaged protocol (``protocols/polymer.toml``: τ_r = 0 (AL), 0.05, 0.1, 0.2; 500 K, 0.5 fs; max f_i
criterion with the bond/temperature guard; the MD stability test of every saved model) in
``benchmarks/results/polymer[_quick]_run`` (resumable), and writes ``benchmarks/results/polymer[_quick].md``
with Fig. 6 and, per strategy, the first iteration whose model keeps every seed intact, with the
exploratory MD steps and oracle calls behind it.

    python benchmarks/polymer.py [--quick] [--fresh]

Goal: the best HAL strategy reaches "every seed stable" with ≥ 5× fewer exploratory MD steps than AL,
and no more oracle calls. Last line: ``al_over_best_hal_md_steps_to_stable: <ratio>`` (nan when a
strategy never gets there within its budget).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from hal.config import load
from hal.io import read_jsonl
from hal.protocols import default_config
from hal.protocols import polymer as P

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller basis, budget and stability test")
    ap.add_argument("--fresh", action="store_true", help="delete an earlier run directory first")
    args = ap.parse_args()
    config = load(default_config("polymer"), P.SCHEMA)
    tag = "polymer_quick" if args.quick else "polymer"
    if args.quick:
        config["basis"]["max_degree"] = [10, 8, 6]
        config["hal"].update(n_stable=1000, max_oracle_calls=16)
        config["stability"].update(seeds=4, steps=2000)
    run_dir = RESULTS / f"{tag}_run"
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    P.run(config, run_dir, progress=True)
    wall = time.perf_counter() - t0
    report = P.report(run_dir, config)
    rows = read_jsonl(run_dir / "stability.jsonl")
    first = {t: P.first_stable(rows, t) for t in config["hal"]["tau_rel"]}
    al = first.get(0.0)
    hal = [f for t, f in first.items() if t > 0 and f is not None]
    best = min(hal, key=lambda f: f["md_steps"]) if hal else None
    ratio = al["md_steps"] / max(best["md_steps"], 1) if al and best else float("nan")
    text = report.read_text().replace("](", f"]({run_dir.name}/")
    head = (f"`python benchmarks/polymer.py{' --quick' if args.quick else ''}`: {wall:.0f} s on this machine "
            f"(a rerun resumes). Basis ν = {config['basis']['order']}, max_degree {config['basis']['max_degree']}; "
            f"{config['hal']['max_oracle_calls']} oracle calls per strategy at most, n_stable "
            f"{config['hal']['n_stable']}.\n\n")  # fmt: skip
    (RESULTS / f"{tag}.md").write_text(head + text)
    for t, f in first.items():
        said = f"iteration {f['iteration']}, {f['md_steps']} MD steps, {f['oracle_calls']} calls" if f else "never"
        print(f"τ_r {t:g}: first stable model {said}")
    print(f"al_over_best_hal_md_steps_to_stable: {ratio:.2f}")


if __name__ == "__main__":
    main()
