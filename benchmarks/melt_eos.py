"""The PEG melt's equation of state, model against oracle: why the model's melt density comes out where it does.

The potential pressure (virial only, no kinetic term; the same for both) of small periodic PEG boxes whose
molecules are moved rigidly to densities 0.6 … 1.3 g/cm³ (``hal.bonds.Topology.molecules_scaled``), by a
``polymer_bulk`` run's final model and by periodic tblite (GFN2-xTB, with D4 dispersion). The boxes are the
ones the run's box test left (``box_test_<model>.xyz``: 4 × PEG(4), 124 atoms, after 10 ps of the model's
own NPT at 5000 bar), so the packing is the model's and only the density changes. A model more repulsive
than the oracle at a density cannot reach it at 1 bar: the sign and size of the error say which way, and
how far, its melt density goes. Beside it, the same comparison on the run's labelled periodic boxes
(its training data: how well the fit holds the stress it was given).

    python benchmarks/melt_eos.py [RUN_DIR] [--densities 0.6 0.8 1.0 1.2 1.3] [--quick]

Default run: ``benchmarks/results/peg_density_run``. Writes ``benchmarks/results/melt_eos.md`` and ``.png``.
Last line: ``melt_pressure_error_1.2_kbar: <mean over boxes of model − oracle at 1.2 g/cm³>`` (≈ 0: the model
has the oracle's equation of state there).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.io import read

import hal
from hal.bonds import Topology
from hal.loop.store import Store
from hal.oracles import TBLiteRetry
from hal.protocols.polymer_bulk import final_model_path
from hal.structures import density

RESULTS = Path(__file__).resolve().parent / "results"
KBAR = 1e3 * units.bar


def pressure_kbar(atoms, calc) -> float:
    """The potential (virial) pressure of a periodic box, kbar."""
    atoms = atoms.copy()
    atoms.calc = calc
    return float(-np.trace(atoms.get_stress(voigt=False)) / 3 / KBAR)


def label_pressure_kbar(atoms) -> float:
    """The pressure of a stored label's stress (Voigt or 3 × 3, eV/Å³), kbar."""
    s = np.asarray(atoms.info["stress"], dtype=float).ravel()
    return float(-(s[:3].sum() if s.size == 6 else s[[0, 4, 8]].sum()) / 3 / KBAR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default=str(RESULTS / "peg_density_run"))
    ap.add_argument("--densities", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2, 1.3], help="g/cm³")
    ap.add_argument("--quick", action="store_true", help="2 boxes at 1.0 and 1.2 g/cm³")
    args = ap.parse_args()
    run = Path(args.run)
    model_path = final_model_path(run)
    boxes_path = run / f"box_test_{model_path.stem}.xyz"
    if not boxes_path.exists():
        raise SystemExit(f"{boxes_path} missing: run the protocol's box test (boxes.test_steps > 0) first")
    boxes = read(boxes_path, ":")
    densities = sorted(args.densities)
    if args.quick:
        boxes, densities = boxes[:2], [1.0, 1.2]
    if 1.2 not in densities:
        raise SystemExit("--densities must include 1.2 (the headline)")
    calc = hal.LinearACE.load(model_path).calculator(threads=1)
    oracle = TBLiteRetry()
    t0 = time.perf_counter()
    model_p, oracle_p = np.full((len(boxes), len(densities)), np.nan), np.full((len(boxes), len(densities)), np.nan)
    for b, box in enumerate(boxes):
        topology = Topology(box)
        for d, rho in enumerate(densities):
            scaled = topology.molecules_scaled(box, rho)
            model_p[b, d] = pressure_kbar(scaled, calc)
            try:
                oracle_p[b, d] = pressure_kbar(scaled, oracle)
            except Exception as e:  # an unconverged oracle leaves a gap, said below
                print(f"box {b} at {rho} g/cm³: oracle failed ({type(e).__name__})")
            print(f"box {b} {rho:.2f} g/cm³: model {model_p[b, d]:+.1f} kbar, oracle {oracle_p[b, d]:+.1f} kbar")
    wall = time.perf_counter() - t0
    labelled = [a for a in Store(run / "data.db").labelled() if a.pbc.all() and "stress" in a.info]
    fit_error = np.array([pressure_kbar(a, calc) - label_pressure_kbar(a) for a in labelled])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for b in range(len(boxes)):
        ax.plot(densities, oracle_p[b], "o-", color="k", lw=1, alpha=0.6, label="tblite" if b == 0 else None)
        ax.plot(densities, model_p[b], "s--", color="C3", lw=1, alpha=0.6, label="model" if b == 0 else None)
    ax.axvspan(1.2 * 0.97, 1.2 * 1.03, color="0.85", label="experiment 1.2 g/cm³ ± 3 %")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set(xlabel="density (g/cm³)", ylabel="potential pressure (kbar)", title=f"{run.name}, {model_path.name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "melt_eos.png", dpi=120)
    plt.close(fig)

    diff = model_p - oracle_p
    cmd = f"python benchmarks/melt_eos.py {os.path.relpath(run, RESULTS.parents[1])}{' --quick' if args.quick else ''}"
    lines = [f"# Melt equation of state: {run.name}, model {model_path.name} against periodic tblite", "",
             f"`{cmd}`: {wall:.0f} s. {len(boxes)} boxes of {len(boxes[0])} atoms from `{boxes_path.name}` "
             f"(sampled at {', '.join(f'{density(b):.2f}' for b in boxes)} g/cm³), molecules moved rigidly to each "
             "density; potential (virial) pressure, kbar, mean ± standard deviation over boxes.", "",
             "| density (g/cm³) | model | tblite | model − tblite |", "|---:|---:|---:|---:|"]  # fmt: skip
    for d, rho in enumerate(densities):
        lines.append(f"| {rho:.2f} | {np.nanmean(model_p[:, d]):+.1f} ± {np.nanstd(model_p[:, d]):.1f} | "
                     f"{np.nanmean(oracle_p[:, d]):+.1f} ± {np.nanstd(oracle_p[:, d]):.1f} | "
                     f"{np.nanmean(diff[:, d]):+.1f} ± {np.nanstd(diff[:, d]):.1f} |")  # fmt: skip
    if len(labelled):
        rho = [density(a) for a in labelled]
        lines += ["", f"The fit on its own labelled periodic boxes ({len(labelled)}, {min(rho):.2f}–{max(rho):.2f} "
                  f"g/cm³): model − label pressure {fit_error.mean():+.2f} kbar on average, RMSE "
                  f"{np.sqrt(np.mean(fit_error**2)):.2f} kbar."]  # fmt: skip
    lines += ["", "![pressure against density](melt_eos.png)"]
    (RESULTS / "melt_eos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"melt_pressure_error_1.2_kbar: {np.nanmean(diff[:, densities.index(1.2)]):+.1f}")


if __name__ == "__main__":
    main()
