"""Fit speed (design assembly + solve) against python-ace, and the per-call overhead of HAL.

1. Hexane (GFN2-xTB MD data) with a C,H basis of ≈1030 functions: hal ``assemble`` (2 processes) +
   BRR solve vs pyace ``LinearACEDataset.construct_design_matrix(max_workers=2)`` + its Ridge solve,
   for 10² … 1.8·10³ configurations (and 10⁴ in the full run: the 1800 configurations repeated
   with 0.01 Å rattles; hal only, with its peak memory).
2. hal time vs basis size (≈10², 10³, 3·10³ functions) on 300 configurations.
3. HAL overhead on hexane, K = 32: one HALCalculator call (energy, forces, σ, f_i, bias) and one
   without f_i, over a plain ACECalculator call (energy + forces).

    python benchmarks/fit_speed.py [--quick]

Prints ``fit_time_vs_pace`` (goal ≤ 0.5) and ``hal_overhead`` (goal ≤ 1.25); last line
``worst_ratio_to_goal: max(fit_time_vs_pace / 0.5, hal_overhead / 1.25)`` (≤ 1: both goals met).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
from ase.calculators.calculator import all_changes
from datasets import hexane_md, labels_to_info

import hal
from hal.fit import assemble, solve
from hal.fit.design import reference_energies

HEX = dict(order=4, max_degree=[15, 11, 9, 6], r_cut=5.0)
SIZES = {"~100": dict(order=3, max_degree=[8, 6, 4], r_cut=5.0), "~1000": HEX,
         "~3000": dict(order=4, max_degree=[18, 14, 11, 8], r_cut=5.0)}  # fmt: skip


def hal_fit_time(configs, basis, e0) -> tuple[float, float]:
    t0 = time.perf_counter()
    ne = assemble(basis, configs, e0, n_workers=2, progress=False)
    t1 = time.perf_counter()
    solve(ne, basis)
    return t1 - t0, time.perf_counter() - t1


def pace_fit_time(configs, e0) -> tuple[float, float, int]:
    from pace import pace_config
    from pyace.linearacefit import LinearACEDataset, LinearACEFit

    bconf = pace_config(["C", "H"], [15, 4, 3, 2], [0, 2, 1, 1])
    df = pd.DataFrame(
        {
            "ase_atoms": configs,
            "energy_corrected": [a.info["energy"] - sum(e0[s] for s in a.get_chemical_symbols()) for a in configs],
            "forces": [a.arrays["forces"] for a in configs],
        }
    )
    t0 = time.perf_counter()
    ds = LinearACEDataset(bconf, df)
    ds.construct_design_matrix(max_workers=2)
    t1 = time.perf_counter()
    LinearACEFit(train_dataset=ds).fit()
    return t1 - t0, time.perf_counter() - t1, ds.nfunc


def hal_overhead(configs, seconds: float) -> dict[str, float]:
    basis = hal.ACEBasis(["C", "H"], **HEX)
    model = hal.fit(configs[:300], basis, committee_size=32, progress=False, n_workers=2)
    atoms = configs[-1].copy()
    calcs = {"plain": model.calculator(), "hal_with_fi": hal.HALCalculator(model, tau=0.1),
             "hal_no_fi": hal.HALCalculator(model, tau=0.1, force_uncertainty=False)}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in calcs}
    for _ in range(5):
        for name, calc in calcs.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                atoms.positions[0, 0] += 1e-7
                calc.calculate(atoms, ["energy", "forces"], all_changes)
                n += 1
            times[name].append((time.perf_counter() - t0) / n)
    t = {k: float(np.median(v)) for k, v in times.items()}
    return {"with_fi": t["hal_with_fi"] / t["plain"], "no_fi": t["hal_no_fi"] / t["plain"], "plain_s": t["plain"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 and 300 configurations, short timings")
    args = ap.parse_args()
    data = labels_to_info(hexane_md(1800))
    e0 = reference_energies(data, ["C", "H"])
    basis = hal.ACEBasis(["C", "H"], **HEX)
    print(f"hexane, hal basis {basis.size} functions; times in s (2 processes)")
    print("| configurations | hal assembly | hal solve | hal total | PACE design | PACE solve | PACE total | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    counts = (100, 300) if args.quick else (100, 300, 1000, 1800)
    ratio = None
    for n in counts:
        ha, hs = hal_fit_time(data[:n], basis, e0)
        pa, ps, nf = pace_fit_time(data[:n], e0)
        ratio = (ha + hs) / (pa + ps)
        print(f"| {n} | {ha:.1f} | {hs:.1f} | {ha + hs:.1f} | {pa:.1f} | {ps:.1f} | {pa + ps:.1f} | {ratio:.2f} |",
              flush=True)  # fmt: skip
    if not args.quick:
        rng = np.random.default_rng(0)
        big = []
        for k in range(10000):
            a = data[k % len(data)].copy()
            a.positions += rng.normal(scale=0.01, size=a.positions.shape)
            big.append(a)
        ha, hs = hal_fit_time(big, basis, e0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| 10000 | {ha:.1f} | {hs:.1f} | {ha + hs:.1f} | – | – | – | – |  (peak RSS {peak:.0f} MB)")
    print("\nhal time vs basis size (300 configurations)")
    print("| basis | functions | assembly s | solve s |")
    print("|---|---:|---:|---:|")
    for label, spec in list(SIZES.items())[:2] if args.quick else SIZES.items():
        b = hal.ACEBasis(["C", "H"], **spec)
        ha, hs = hal_fit_time(data[:300], b, e0)
        print(f"| {label} | {b.size} | {ha:.1f} | {hs:.1f} |", flush=True)
    ov = hal_overhead(data, 0.3 if args.quick else 1.0)
    print(
        f"\nHAL call over plain call (hexane, K = 32): with f_i {ov['with_fi']:.2f}×, "
        f"without f_i (σ from the member energies, ∇σ from a second adjoint column) {ov['no_fi']:.2f}×; "
        f"plain call {ov['plain_s'] * 1e6:.0f} µs"
    )
    print(f"fit_time_vs_pace: {ratio:.2f}")
    print(f"hal_overhead: {ov['with_fi']:.2f}")
    print(f"worst_ratio_to_goal: {max(ratio / 0.5, ov['with_fi'] / 1.25):.2f}")


if __name__ == "__main__":
    main()
