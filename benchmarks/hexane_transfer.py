"""Transferability of the main job's HAL-SMD model: other chains and other loading rates.

The hexane-trained HAL-SMD model of the main job (``protocols/hexane_smd.toml``, run or resumed in
``--out``) pulls C2…C11 chains at 1 Å/ps and hexane at 0.25, 0.5, 2 and 4 Å/ps, each case paired with
its own GFN2-xTB reference pulls from the same start states (3 seeds; cached in the run directory).
Writes ``benchmarks/results/hexane_transfer[_quick].md``; last line: the largest |ΔE_a| / E_a over
the cases.

    python benchmarks/hexane_transfer.py [--quick] [--out runs/hexane_smd]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from publish import publish

from hal import protocols
from hal.config import load
from hal.loop.learner import read_events
from hal.protocols import hexane_smd
from hal.protocols.hexane_report import transfer_table


def config(quick: bool) -> dict:
    """The main job's configuration with the transfer cases (quick: a smaller study, 3 cases, 1 seed)."""
    cfg = load(protocols.default_config("hexane_smd"), hexane_smd.SCHEMA)
    if quick:
        cfg.update(seeds=[0], initial={**cfg["initial"], "n_md": 100})
        cfg["strategies"] = [{**s, "max_oracle_calls": 60} for s in cfg["strategies"] if s["kind"] == "hal"]
        cfg["transfer"] = {"model": "hal-smd", "chains": [2, 3], "velocities": [4.0], "seeds": [0]}
    else:
        cfg["transfer"] = {"model": "hal-smd", "chains": [2, 3, 4, 5, 7, 8, 9, 10, 11],
                           "velocities": [0.25, 0.5, 2.0, 4.0], "seeds": [0, 1, 2]}  # fmt: skip
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 60-call HAL-SMD model, C2 and C3, hexane at 4 Å/ps")
    ap.add_argument("--out", default=None, help="run directory (default: the main job's, runs/hexane_smd)")
    args = ap.parse_args()
    cfg = config(args.quick)
    run_dir = Path(args.out or ("runs/hexane_transfer_quick" if args.quick else cfg["run_dir"]))
    t0 = time.perf_counter()
    hexane_smd.run(cfg, run_dir, progress=True)
    hexane_smd.report(run_dir, cfg)
    cases = [e for e in read_events(run_dir) if e["event"] == "transfer"]
    worst = max(abs(e["delta_ea"]) / np.mean(e["ea_reference"]) for e in cases)
    cmd = "python benchmarks/hexane_transfer.py " + " ".join(sys.argv[1:])
    wall = time.perf_counter() - t0
    out = (f"{cmd}\n\nrun directory {run_dir}, wall {wall:.0f} s (this invocation; cached steps excluded)\n\n"
           f"{transfer_table(run_dir)}\ntransfer_worst_relative_delta_ea: {worst:.3f}\n")  # fmt: skip
    publish("hexane_transfer", out, args.quick)


if __name__ == "__main__":
    main()
