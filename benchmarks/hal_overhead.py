"""Cost of a HAL MD step (K = 32: σ, bias force, adaptive τ, f_i) over a plain Langevin step.

Same model (hexane, 1029 functions, fitted to GFN2-xTB MD data), same system, same integrator
(ASE LangevinBAOAB, 0.5 fs, 500 K). HAL variants: f_i on every step, on every 10th step, never
(σ and ∇σ still act on every step).

    python benchmarks/hal_overhead.py [--quick]

Last line: ``hal_step_overhead: <HAL step with f_i every step / plain step>`` (goal ≤ 1.3).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase import units
from ase.md.langevinbaoab import LangevinBAOAB
from datasets import hexane_md, labels_to_info

import hal
from hal.dynamics import run_hal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    args = ap.parse_args()
    steps = 100 if args.quick else 400
    data = labels_to_info(hexane_md(1800))
    basis = hal.ACEBasis(["C", "H"], order=4, max_degree=[15, 11, 9, 6], r_cut=5.0)
    model = hal.fit(data[:300], basis, committee_size=32, progress=False, n_workers=2)
    start = data[0]

    def plain() -> None:
        atoms = start.copy()
        atoms.calc = model.calculator()
        dyn = LangevinBAOAB(atoms, 0.5 * units.fs, temperature_K=500, T_tau=100 * units.fs,
                            rng=np.random.default_rng(0))  # fmt: skip
        for _ in range(steps):
            dyn.step()

    def hal_run(check_every: int):
        return lambda: run_hal(start, model, steps=steps, temperature_K=500, timestep_fs=0.5, n_hist=50,
                               check_every=check_every, s_tol=2.0, seed=0)  # fmt: skip

    variants = {"plain": plain, "hal_fi_every_step": hal_run(1), "hal_fi_every_10": hal_run(10),
                "hal_no_fi": hal_run(10**9)}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(3):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / steps)
    t = {k: float(np.median(v)) for k, v in times.items()}
    print(f"hexane, K = 32, {steps} steps; µs per step: " + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in t.items()))
    for k in ("hal_fi_every_step", "hal_fi_every_10", "hal_no_fi"):
        print(f"{k}_over_plain: {t[k] / t['plain']:.2f}")
    print(f"hal_step_overhead: {t['hal_fi_every_step'] / t['plain']:.2f}")


if __name__ == "__main__":
    main()
