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
                                  [--dense [--steps N]] [--thermal FRAMES]

``--dense``: refit the run's data with the oracle's labels of these boxes at 1.1–1.3 g/cm³, and compare both
models' pressure error at 1.2 g/cm³ on held-out boxes and their 1 bar NPT density of the boxes.
``--thermal``: model and oracle total pressure at 300 K on the same thermal states at 1.0, 1.1, 1.2 g/cm³,
and where the oracle's crosses zero (line ``oracle_zero_pressure_density_g_cm3``).

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


def pressure_kbar(atoms, calc, kinetic: bool = False) -> float:
    """The potential (virial) pressure of a periodic box, kbar; with ``kinetic`` the total (+ N k T / V from its
    momenta)."""
    atoms = atoms.copy()
    atoms.calc = calc
    return float(-np.trace(atoms.get_stress(voigt=False, include_ideal_gas=kinetic)) / 3 / KBAR)


def label_pressure_kbar(atoms) -> float:
    """The pressure of a stored label's stress (Voigt or 3 × 3, eV/Å³), kbar."""
    s = np.asarray(atoms.info["stress"], dtype=float).ravel()
    return float(-(s[:3].sum() if s.size == 6 else s[[0, 4, 8]].sum()) / 3 / KBAR)


def thermal_eos(model: hal.LinearACE, boxes: list, densities: list[float], frames: int) -> tuple[list[str], float]:
    """The total pressure at 300 K (virial + kinetic) by the model and by the oracle on the same thermal states:
    each box moved to each density, then Langevin NVT with the model (1 ps, then ``frames`` frames 0.25 ps
    apart). The density where the oracle's pressure crosses zero is, to first order, its own 1 bar density."""
    from ase.md.langevin import Langevin

    from hal.dynamics.hal import thermalize

    oracle, rows = TBLiteRetry(), []
    for rho in densities:
        pm, po = [], []
        for w, box in enumerate(boxes):
            atoms = Topology(box).molecules_scaled(box, rho)
            atoms.calc = model.calculator(threads=2)
            thermalize(atoms, 300.0, np.random.default_rng(w))
            dyn = Langevin(
                atoms, 0.5 * units.fs, temperature_K=300.0, friction=0.01, fixcm=False, rng=np.random.default_rng(w)
            )
            dyn.run(2000)
            for _ in range(frames):
                dyn.run(500)
                pm.append(pressure_kbar(atoms, atoms.calc, kinetic=True))
                try:
                    po.append(pressure_kbar(atoms, oracle, kinetic=True))
                except Exception as e:
                    print(f"oracle failed at {rho} g/cm³ ({type(e).__name__})")
        rows.append((rho, np.mean(pm), np.std(pm) / np.sqrt(len(pm)), np.mean(po), np.std(po) / np.sqrt(len(po))))
        print(f"{rho:.2f} g/cm³ at 300 K: model {rows[-1][1]:+.1f}, oracle {rows[-1][3]:+.1f} kbar", flush=True)
    rho, p_oracle = np.array([r[0] for r in rows]), np.array([r[3] for r in rows])
    slope, intercept = np.polyfit(rho, p_oracle, 1)
    zero = -intercept / slope
    lines = ["", f"**Thermal states** (`--thermal`): each box moved to each density, 1 ps of Langevin NVT at 300 K "
             f"with the model, then {frames} frames 0.25 ps apart ({len(boxes) * frames} per density); total "
             "pressure (virial + N k T / V), kbar, mean ± standard error, by the model and by tblite on the same "
             "frames:", "", "| density (g/cm³) | model | tblite |", "|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r[0]:.2f} | {r[1]:+.2f} ± {r[2]:.2f} | {r[3]:+.2f} ± {r[4]:.2f} |" for r in rows]
    lines += ["", f"A line through tblite's pressures crosses zero at **{zero:.3f} g/cm³**: to first order (on the "
              "model's states) the oracle's own 300 K, 1 bar density of these boxes."]  # fmt: skip
    return lines, zero


def dense_ablation(run: Path, model: hal.LinearACE, boxes: list, held_out: list, steps: int) -> list[str]:
    """Refit the run's data (the protocol's default fit options) plus the oracle's labels of ``boxes`` moved to
    1.1, 1.2 and 1.3 g/cm³, and compare with the run's model: the pressure error at 1.2 g/cm³ on ``held_out``
    boxes, and each model's 1 bar, 300 K Berendsen NPT of ``boxes`` (``steps`` of 0.5 fs, mean density of
    the second half)."""
    from hal.config import load
    from hal.dynamics.npt import npt_run
    from hal.fit import fit
    from hal.loop import Oracle
    from hal.protocols import default_config, polymer_bulk
    from hal.protocols import hal as general

    label = Oracle(TBLiteRetry)
    results = [label(Topology(box).molecules_scaled(box, rho)) for box in boxes for rho in (1.1, 1.2, 1.3)]
    dense = [r.atoms for r in results if r.ok]
    for a in dense:
        a.info["virial_weight"] = 1.0
    oracle = TBLiteRetry()
    config = load(default_config("polymer_bulk"), polymer_bulk.SCHEMA)
    data = Store(run / "data.db").labelled()
    refit = fit(data + dense, model.basis, seed=0, progress=False, **general.fit_options(config))
    models = {"run's model": model, f"+ {len(dense)} dense boxes": refit}
    lines = ["", f"**Dense boxes** (`--dense`): the oracle labels these boxes moved to 1.1, 1.2 and 1.3 g/cm³ "
             f"({len(dense)} labels, stress weight 1) and the run's data are refitted with them. Model − tblite "
             f"potential pressure at 1.2 g/cm³ on {len(held_out)} held-out boxes (the previous box test's), kbar; "
             f"then 1 bar, 300 K NPT of the boxes for {steps * 0.5e-3:g} ps from their 5000-bar density, mean "
             "density of the second half:", "", "| model | pressure error at 1.2 | 1 bar density (g/cm³) |",
             "|---|---:|---:|"]  # fmt: skip
    scaled = [Topology(b).molecules_scaled(b, 1.2) for b in held_out]
    reference = [pressure_kbar(b, oracle) for b in scaled]
    for name, m in models.items():
        calc = m.calculator(threads=2)
        error = [pressure_kbar(b, calc) - r for b, r in zip(scaled, reference)]
        rho = []
        for w, box in enumerate(boxes):
            trace = npt_run(box.copy(), calc, steps, 300.0, 1.0, 0.5, record_every=100, topology=Topology(box), seed=w)
            rho.append(trace.density[trace.time_ps >= trace.time_ps[-1] / 2].mean())
        lines.append(
            f"| {name} | {np.mean(error):+.1f} ± {np.std(error):.1f} | {np.mean(rho):.3f} ± {np.std(rho):.3f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default=str(RESULTS / "peg_density_run"))
    ap.add_argument("--densities", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2, 1.3], help="g/cm³")
    ap.add_argument("--quick", action="store_true", help="2 boxes at 1.0 and 1.2 g/cm³")
    ap.add_argument("--dense", action="store_true", help="+ a refit with dense labelled boxes, and 1 bar box NPT")
    ap.add_argument("--steps", type=int, default=10000, help="steps of each 1 bar box NPT (--dense)")
    ap.add_argument(
        "--thermal",
        type=int,
        default=0,
        metavar="FRAMES",
        help="+ model and oracle pressure on FRAMES thermal frames per box at 1.0, 1.1, 1.2 g/cm³",
    )
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
    flags = [f for f, on in (("--quick", args.quick), ("--dense", args.dense)) if on]
    flags += [f"--thermal {args.thermal}"] if args.thermal else []
    cmd = " ".join(["python benchmarks/melt_eos.py", os.path.relpath(run, RESULTS.parents[1]), *flags])
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
    if args.dense:
        tests = sorted(run.glob("box_test_iter_*.xyz"))  # by model: iter_NNN, zero-padded
        held_out = read(tests[-2], ":") if len(tests) > 1 else []
        lines += dense_ablation(run, hal.LinearACE.load(model_path), boxes, held_out, args.steps)
    zero = None
    if args.thermal:
        more, zero = thermal_eos(hal.LinearACE.load(model_path), boxes, [1.0, 1.1, 1.2], args.thermal)
        lines += more
    (RESULTS / "melt_eos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if zero is not None:
        print(f"oracle_zero_pressure_density_g_cm3: {zero:.3f}")
    print(f"melt_pressure_error_1.2_kbar: {np.nanmean(diff[:, densities.index(1.2)]):+.1f}")


if __name__ == "__main__":
    main()
