"""How precisely can a pull measure E_a? The oracle's own pulls, from moved starts and with other minimisers.

Dynamic: each reference pull of the hexane study (GFN2-xTB, Berendsen 10 K, 1 Å/ps) is repeated
from its own start state with every coordinate moved by a uniform random amount in [−δ, δ]
(δ = 1e-6 … 1e-3 Å), same momenta. A model's trajectory differs from the oracle's by far more than
1e-4 Å long before the break, so the spread found here is a noise floor of the paired dynamic ΔE_a
of any model. Quasi-static: the oracle's quasi-static pull with other minimisers, tolerances and d0
steps; hexane's two equivalent terminal C–C bonds make the snap a symmetry-breaking instability, and
where a minimiser leaves the symmetric branch moves the barrier. Reference data are shared with
``benchmarks/hexane_smd.py`` (``runs/hexane_study``). Writes ``benchmarks/results/hexane_chaos.md``;
last line: the rms change of the dynamic E_a (eV) for δ = 1e-4 Å.

    python benchmarks/hexane_chaos.py [--quick] [--seeds 0 1 2] [--deltas 1e-6 1e-4 1e-3]
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
from hal.protocols.hexane_reference import PullSettings, oracle_calculator, reference_pull, start_state

QUASI_STATIC = [("FIRE", 1e-2, 0.02), ("FIRE", 1e-3, 0.02), ("FIRE", 1e-3, 0.01), ("BFGS", 1e-3, 0.02),
                ("BFGS", 1e-3, 0.01)]  # fmt: skip


def perturbed_pull(job: tuple) -> tuple[int, float, int, float, float, tuple | None]:
    """(seed, δ, replica, E_a, break d0, broken bond) of the oracle's pull from the moved start."""
    run_dir, seed, delta, replica = job
    settings = PullSettings()
    start = start_state(run_dir, 6, seed, settings)
    kwargs = settings.kwargs(start)  # the same spring and d0 schedule as the reference
    rng = np.random.default_rng([seed, replica])
    start.positions += rng.uniform(-delta, delta, start.positions.shape)
    with threadpool_limits(1):
        res = smd.run(start, oracle_calculator(), seed=seed, **kwargs)
    return seed, delta, replica, res.activation_energy, res.break_d0, res.broken_bond


def quasi_static_pull(job: tuple) -> tuple[str, float, float, float, float, float]:
    """(minimiser, fmax, d0 step, E_a, snap d0, spring force at the snap) of the oracle's quasi-static pull."""
    run_dir, name, fmax, step = job
    settings = PullSettings()
    start = start_state(run_dir, 6, 0, settings)
    with threadpool_limits(1):
        res = smd.run(start, oracle_calculator(), quasi_static=True, fmax=fmax, d0_step=step,
                      optimizer={"FIRE": FIRE, "BFGS": BFGS}[name], **settings.kwargs(start))  # fmt: skip
    s = res.snap_step
    return name, fmax, step, res.activation_energy, res.d0[s], res.spring_force[s]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seed 0, δ = 1e-6 and 1e-4 Å, one replica")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--deltas", type=float, nargs="*", default=[1e-6, 1e-5, 1e-4, 1e-3])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--out", default="runs/hexane_study", help="run directory of the reference data")
    args = ap.parse_args()
    seeds, deltas, replicas = ([0], [1e-6, 1e-4], 1) if args.quick else (args.seeds, args.deltas, args.replicas)
    run_dir = Path(args.out)
    t0 = time.perf_counter()
    # forkserver: no pool child inherits a parent that has run tblite's OpenMP
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        refs = dict(zip(seeds, pool.map(reference_pull, *zip(*[(run_dir, 6, s, PullSettings()) for s in seeds]))))
        jobs = [(run_dir, s, d, r) for d in deltas for s in seeds for r in range(replicas)]
        out = list(pool.map(perturbed_pull, jobs))
        cases = QUASI_STATIC[1:3] if args.quick else QUASI_STATIC
        qs = list(pool.map(quasi_static_pull, [(run_dir, *q) for q in cases]))
    lines = [
        f"python benchmarks/hexane_chaos.py {'--quick' if args.quick else ''}".strip(), "",
        f"GFN2-xTB pulls of hexane (Berendsen 10 K, 1 Å/ps) from each seed's start state moved by a uniform "
        f"random δ per coordinate; seeds {seeds}, {replicas} replica(s) per δ; wall {time.perf_counter() - t0:.0f} s.",
        "", "Reference E_a per seed: " + ", ".join(f"{s}: {refs[s].activation_energy:.3f} eV" for s in seeds), "",
        "| δ (Å) | pulls | rms E_a change (eV) | max change (eV) | rms break d0 change (Å) | another bond breaks |",
        "|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    rms = {}
    for d in deltas:
        rows = [o for o in out if o[1] == d]
        de = np.array([o[3] - refs[o[0]].activation_energy for o in rows])
        dd = np.array([o[4] - refs[o[0]].break_d0 for o in rows])
        other = sum(tuple(o[5] or ()) != tuple(refs[o[0]].broken_bond or ()) for o in rows)
        rms[d] = float(np.sqrt(np.mean(de**2)))
        lines.append(f"| {d:g} | {len(rows)} | {rms[d]:.3f} | {np.abs(de).max():.3f} | "
                     f"{np.sqrt(np.mean(dd**2)):.4f} | {other} of {len(rows)} |")  # fmt: skip
    lines += ["", "Per pull (seed, δ, replica, E_a eV, break d0 Å, bond):", ""]
    lines += [f"    {o[0]} {o[1]:g} {o[2]} {o[3]:.3f} {o[4]:.3f} {o[5]}" for o in out]
    lines += ["", "Quasi-static pulls of the oracle from the seed-0 start (E_a = W at the snap, refined tenfold):", "",
              "| minimiser | fmax (eV/Å) | d0 step (Å) | E_a (eV) | snap d0 (Å) | spring force at the snap (eV/Å) |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {q[0]} | {q[1]:g} | {q[2]:g} | {q[3]:.3f} | {q[4]:.3f} | {q[5]:.2f} |" for q in qs]
    key = 1e-4 if 1e-4 in rms else deltas[-1]
    lines += ["", f"ea_rms_change_at_{key:g}A: {rms[key]:.3f}"]
    text = "\n".join(lines) + "\n"
    publish("hexane_chaos", text, args.quick)


if __name__ == "__main__":
    main()
