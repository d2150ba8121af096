"""Held-out accuracy of hal's Bayesian fit vs python-ace's linear fit on the same data and split.

Data (benchmarks/datasets.py): GFN2-xTB hexane MD at 300/500/800 K and EMT Cu–Al cells; 80/20
random split. hal: BRR with the smoothness prior and default weights. PACE: ``pyace.linearacefit``
(``LinearACEDataset`` + ``LinearACEFit``, its default Ridge) on a linear-embedding basis of about
the same size; both fit E − ΣE0 with the same E0.

    python benchmarks/fit_quality.py [--quick]

Last line: ``force_rmse_ratio_vs_pace: <worst hal/PACE held-out force RMSE>`` (≤ 1: not worse).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from datasets import cual_emt, hexane_md, labels_to_info

import hal
from hal.fit.design import reference_energies
from hal.fit.metrics import errors

CASES = {
    "hexane (GFN2-xTB MD)": dict(
        data=hexane_md,
        n=1800,
        quick_n=300,
        elements=["C", "H"],
        hal=dict(order=4, max_degree=[15, 11, 9, 6], r_cut=5.0),
        pace=([15, 4, 3, 2], [0, 2, 1, 1]),
    ),
    "Cu–Al (EMT)": dict(
        data=cual_emt,
        n=200,
        quick_n=60,
        elements=["Cu", "Al"],
        hal=dict(order=3, max_degree=[14, 12, 9], r_cut=5.0, r0=2.6, r_in=1.6),
        pace=([14, 6, 3], [0, 3, 1]),
    ),
}


def pace_fit(train, test, elements, nrad, lmax, e0):
    from pace import pace_config, pace_size
    from pyace.linearacefit import LinearACEDataset, LinearACEFit

    bconf = pace_config(elements, nrad, lmax)
    size = pace_size(bconf)

    def frame(configs):
        return pd.DataFrame(
            {
                "ase_atoms": configs,
                "energy_corrected": [a.info["energy"] - sum(e0[s] for s in a.get_chemical_symbols()) for a in configs],
                "forces": [a.arrays["forces"] for a in configs],
            }
        )

    t0 = time.perf_counter()
    tr = LinearACEDataset(bconf, frame(train))
    tr.construct_design_matrix(max_workers=2)
    fitter = LinearACEFit(train_dataset=tr)
    fitter.fit()
    t_fit = time.perf_counter() - t0
    te = LinearACEDataset(bconf, frame(test))
    te.construct_design_matrix(max_workers=2)
    err = fitter.compute_errors(te)
    return size, {"E_rmse": err["epa_rmse"] * 1000, "F_rmse": err["f_comp_rmse"]}, t_fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller datasets")
    args = ap.parse_args()
    print(
        "| data | train/test | hal functions | hal E RMSE meV/at | hal F RMSE eV/Å | hal fit s "
        "| PACE functions | PACE E RMSE meV/at | PACE F RMSE eV/Å | PACE fit s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for name, case in CASES.items():
        configs = labels_to_info(case["data"](case["n"]))[: case["quick_n"] if args.quick else case["n"]]
        order = np.random.default_rng(0).permutation(len(configs))
        n_test = len(configs) // 5
        test = [configs[k] for k in order[:n_test]]
        train = [configs[k] for k in order[n_test:]]
        e0 = reference_energies(train, case["elements"])
        basis = hal.ACEBasis(case["elements"], **case["hal"])
        t0 = time.perf_counter()
        model = hal.fit(train, basis, e0=e0, committee_size=0, progress=False, n_workers=2)
        t_hal = time.perf_counter() - t0
        ours = errors(model, test)["all"]
        size, theirs, t_pace = pace_fit(train, test, case["elements"], *case["pace"], e0)
        ratios.append(ours["F_rmse"] / theirs["F_rmse"])
        print(
            f"| {name} | {len(train)}/{len(test)} | {basis.size} | {ours['E_rmse']:.2f} | {ours['F_rmse']:.4f} "
            f"| {t_hal:.1f} | {size} | {theirs['E_rmse']:.2f} | {theirs['F_rmse']:.4f} | {t_pace:.1f} |",
            flush=True,
        )
    print(f"force_rmse_ratio_vs_pace: {max(ratios):.2f}")


if __name__ == "__main__":
    main()
