"""Can the quasi-static E_a be made independent of the minimiser? Kicked minimisation, oracle and model.

Hexane's two equivalent terminal C–C bonds make the quasi-static snap a symmetry-breaking
instability: a minimiser that starts on the symmetric branch can converge onto it after it has turned
into a saddle, and where it leaves it moves E_a by 0.5 eV (``benchmarks/hexane_chaos.py``). Here
every minimisation starts with a seeded random kick of ±δ per coordinate, which a saddle does not
survive, and the quasi-static pull (E_a = W at the last minimum before the snap) is repeated with
other minimisers, d0 steps and kick seeds, for the oracle (GFN2-xTB) and for the main job's HAL-SMD
model, from the seed-0 start of the main job's run directory (run ``scripts/demo.sh`` first).
Writes ``benchmarks/results/hexane_quasi_static[_quick].md``; last line: the mean |ΔE_a| (eV) of
the model over the kicked variants.

    python benchmarks/hexane_quasi_static.py [--quick] [--run-dir runs/hexane_smd] [--kick 0.01]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from ase.optimize import BFGS, FIRE
from publish import publish
from threadpoolctl import threadpool_limits

from hal.dynamics import smd
from hal.model import LinearACE
from hal.protocols.hexane_reference import PullSettings, oracle_calculator, start_state

OPTIMIZERS = {"FIRE": FIRE, "BFGS": BFGS}


class Kicked:
    """An ASE optimizer class for ``smd.run``: each ``run`` first moves every coordinate by a seeded
    uniform random amount in [−δ, δ] Å, then minimises with ``base``."""

    def __init__(self, atoms, base, delta: float, rng: np.random.Generator, logfile=None) -> None:
        self.atoms, self.base, self.delta, self.rng = atoms, base, delta, rng

    def run(self, fmax: float, steps: int) -> bool:
        self.atoms.positions = self.atoms.positions + self.rng.uniform(-self.delta, self.delta, (len(self.atoms), 3))
        return self.base(self.atoms, logfile=None).run(fmax=fmax, steps=steps)


def pull(job: tuple) -> tuple:
    """(who, minimiser, d0 step, kick, kick seed, E_a, snap d0, spring force at the snap) of one quasi-static pull."""
    run_dir, who, name, step, kick, kick_seed = job
    settings = PullSettings()
    start = start_state(run_dir, 6, 0, settings)
    if who == "oracle":
        calc = oracle_calculator()
    else:
        calc = LinearACE.load(Path(run_dir) / "models" / "hal-smd-final.npz").calculator()
    base = OPTIMIZERS[name]
    rng = np.random.default_rng(kick_seed)
    optimizer = (lambda atoms, logfile=None: Kicked(atoms, base, kick, rng)) if kick > 0 else base
    with threadpool_limits(1):
        res = smd.run(start, calc, quasi_static=True, fmax=1e-3, d0_step=step, optimizer=optimizer, on_error="stop",
                      **settings.kwargs(start))  # fmt: skip
    s = res.snap_step if res.snap_step is not None else len(res.d0) - 1
    return who, name, step, kick, kick_seed, res.activation_energy, res.d0[s], res.spring_force[s]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="FIRE only, 0.02 Å steps, one kick seed, plus no kick")
    ap.add_argument("--run-dir", default="runs/hexane_smd", help="the main job's run directory")
    ap.add_argument("--kick", type=float, default=0.01, help="kick amplitude δ (Å)")
    args = ap.parse_args()
    variants = [("FIRE", 0.02, 0.0, 0), ("FIRE", 0.02, args.kick, 0)]
    if not args.quick:
        variants += [("FIRE", 0.02, args.kick, 1), ("FIRE", 0.01, args.kick, 0), ("BFGS", 0.02, 0.0, 0),
                     ("BFGS", 0.02, args.kick, 0), ("BFGS", 0.01, args.kick, 1)]  # fmt: skip
    jobs = [(args.run_dir, who, *v) for v in variants for who in ("oracle", "model")]
    t0 = time.perf_counter()
    # forkserver: no pool child inherits a parent that has run tblite's OpenMP
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        out = {(o[0], *o[1:5]): o[5:] for o in pool.map(pull, jobs)}
    lines = [f"python benchmarks/hexane_quasi_static.py {'--quick' if args.quick else ''}".strip(), "",
             f"Quasi-static pulls (fmax 1e-3 eV/Å, snap refined tenfold) from the seed-0 start of {args.run_dir}; "
             f"oracle GFN2-xTB, model its HAL-SMD final model; wall {time.perf_counter() - t0:.0f} s.", "",
             "| minimiser | d0 step (Å) | kick δ (Å) | kick seed | E_a oracle (eV) | E_a model (eV) | ΔE_a (eV) "
             "| snap d0 oracle / model (Å) | snap force oracle / model (eV/Å) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
    deltas, kicked_oracle = [], []
    for v in variants:
        (ea, d0, f), (em, dm, fm) = out[("oracle", *v)], out[("model", *v)]
        lines.append(f"| {v[0]} | {v[1]:g} | {v[2]:g} | {v[3]} | {ea:.3f} | {em:.3f} | {em - ea:+.3f} | "
                     f"{d0:.3f} / {dm:.3f} | {f:.2f} / {fm:.2f} |")  # fmt: skip
        if v[2] > 0:
            deltas.append(em - ea)
            kicked_oracle.append(ea)
    lines += ["", f"kicked: oracle E_a {np.mean(kicked_oracle):.3f} eV, range {np.ptp(kicked_oracle):.3f} eV over "
              f"{len(kicked_oracle)} variants; model ΔE_a {np.mean(deltas):+.3f} eV, range {np.ptp(deltas):.3f} eV",
              "", f"quasi_static_kicked_mean_abs_delta_ea: {np.mean(np.abs(deltas)):.3f}"]  # fmt: skip
    text = "\n".join(lines) + "\n"
    publish("hexane_quasi_static", text, args.quick)


if __name__ == "__main__":
    main()
