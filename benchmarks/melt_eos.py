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
                                  [--dense [--steps N]] [--thermal FRAMES [--thermal-densities ...] [--thermal-refit]]

``--dense``: refit the run's data with the oracle's labels of these boxes at 1.1–1.3 g/cm³, and compare both
models' pressure error at 1.2 g/cm³ on held-out boxes and their 1 bar NPT density of the boxes.
``--thermal``: model and oracle total pressure at 300 K on the same thermal states at ``--thermal-densities``
(default 1.0, 1.1, 1.2 g/cm³), and up to where each is zero (line ``oracle_zero_pressure_edge_g_cm3``); the
oracle's labels (of these and of the rigid scans) are kept in the run directory and reused on a rerun.
``--thermal-refit``: refit the run's data with the thermal labels and compare both models' own zero-pressure edge
and 1 bar NPT density of the boxes.

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
from datasets import labels_to_info

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


class LabelCache:
    """The oracle's labels of this benchmark's structures, kept in one extxyz file of the run directory under a
    key (``fields`` in ``info``) and reused on a rerun; a failed label is not kept (tried again next time)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        from hal.loop import Oracle

        self.path, self.fields, self.oracle = path, fields, Oracle(TBLiteRetry)
        kept = labels_to_info(read(path, ":") if path.exists() else [])  # where the Oracle puts them
        self.done = {tuple(a.info[k] for k in fields): a for a in kept}

    def __call__(self, atoms, key: tuple, **info):
        """The labelled structure (info["energy"], ["stress"], arrays["forces"]) of ``key``, or None."""
        from ase.io import write

        if key not in self.done:
            r = self.oracle(atoms)
            if not r.ok:
                print(f"oracle failed on {dict(zip(self.fields, key))} ({r.status})", flush=True)
                return None
            r.atoms.info.update(dict(zip(self.fields, key)), **info)
            write(self.path, r.atoms, format="extxyz", append=True)
            self.done[key] = r.atoms
        return self.done[key]


def scan_labels(run: Path, boxes_path: Path) -> LabelCache:
    """Labels of a box file's boxes moved rigidly to a density: key (box index, density)."""
    return LabelCache(run / f"scan_labels_{boxes_path.stem}.xyz", ("scan_box", "scan_density"))


def thermal_states(model: hal.LinearACE, box, rho: float, frames: int, seed: int):
    """Frames of ``box`` moved to ``rho`` (g/cm³): Langevin NVT at 300 K with the model, 1 ps, then ``frames``
    frames 0.25 ps apart (the same ``Atoms``, advanced in place, its calculator the model's)."""
    from ase.md.langevin import Langevin

    from hal.dynamics.hal import thermalize

    atoms = Topology(box).molecules_scaled(box, rho)
    atoms.calc = model.calculator(threads=2)
    thermalize(atoms, 300.0, np.random.default_rng(seed))
    dyn = Langevin(
        atoms, 0.5 * units.fs, temperature_K=300.0, friction=0.01, fixcm=False, rng=np.random.default_rng(seed)
    )
    dyn.run(2000)
    for _ in range(frames):
        dyn.run(500)
        yield atoms


def model_eos(model: hal.LinearACE, boxes: list, densities: list[float], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's own 300 K total pressure (kbar) at each density over the boxes' thermal frames: mean, standard
    error."""
    p = [[pressure_kbar(a, a.calc, kinetic=True) for w, box in enumerate(boxes)
          for a in thermal_states(model, box, rho, frames, w)] for rho in densities]  # fmt: skip
    return np.array([np.mean(x) for x in p]), np.array([np.std(x) / np.sqrt(len(x)) for x in p])


def thermal_eos(
    run: Path, model_path: Path, boxes: list, densities: list[float], frames: int
) -> tuple[list[str], float, float, list]:
    """The total pressure at 300 K (virial + kinetic) by the model and by the oracle on the same thermal states
    (``thermal_states``), and the top of each one's zero-pressure range (``zero_edge``: oracle's, model's). The
    oracle's labelled frames are kept in RUN/thermal_labels_<model>.xyz and reused on a rerun; they are returned
    too (for ``--thermal-refit``)."""
    model = hal.LinearACE.load(model_path)
    label = LabelCache(
        run / f"thermal_labels_{model_path.stem}.xyz", ("thermal_density", "thermal_box", "thermal_frame")
    )
    rows, labelled = [], []
    for rho in densities:
        pm, po = [], []
        for w, box in enumerate(boxes):
            for f, atoms in enumerate(thermal_states(model, box, rho, frames, w)):
                pm.append(pressure_kbar(atoms, atoms.calc, kinetic=True))
                kinetic = 2 * atoms.get_kinetic_energy() / (3 * atoms.get_volume()) / KBAR
                a = label(atoms, (round(rho, 4), w, f), thermal_kinetic_kbar=kinetic)
                if a is not None:
                    labelled.append(a)
                    po.append(label_pressure_kbar(a) + a.info["thermal_kinetic_kbar"])
        rows.append((rho, np.mean(pm), np.std(pm) / np.sqrt(len(pm)), np.mean(po), np.std(po) / np.sqrt(len(po))))
        print(f"{rho:.2f} g/cm³ at 300 K: model {rows[-1][1]:+.1f}, oracle {rows[-1][3]:+.1f} kbar", flush=True)
    rho, p_model, se_model, p_oracle, se_oracle = (np.array([r[k] for r in rows]) for k in range(5))
    zero, zero_model = zero_edge(rho, p_oracle, se_oracle), zero_edge(rho, p_model, se_model)
    lines = ["", f"**Thermal states** (`--thermal`): each box moved to each density, 1 ps of Langevin NVT at 300 K "
             f"with the model, then {frames} frames 0.25 ps apart ({len(boxes) * frames} per density); total "
             "pressure (virial + N k T / V), kbar, mean ± standard error, by the model and by tblite on the same "
             "frames:", "", "| density (g/cm³) | model | tblite |", "|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r[0]:.2f} | {r[1]:+.2f} ± {r[2]:.2f} | {r[3]:+.2f} ± {r[4]:.2f} |" for r in rows]
    lines += ["", f"tblite's pressure is zero within two standard errors up to **{zero:.2f} g/cm³**, the model's up to "
              f"**{zero_model:.2f} g/cm³**, and positive beyond (`zero_edge`): below that edge these states have no "
              "pressure that would hold a box at one density (a 1 bar NPT drifts), so the edge, not a zero crossing, "
              "is what locates each one's 300 K, 1 bar density here, to the grid's spacing."]  # fmt: skip
    return lines, zero, zero_model, labelled


def thermal_refit(
    run: Path,
    model: hal.LinearACE,
    boxes: list,
    labelled: list,
    densities: list[float],
    frames: int,
    steps: int,
    known: tuple[float, list[float] | None],
) -> list[str]:
    """Refit the run's data plus the oracle's thermal frames (``thermal_eos``), and compare both models: the edge
    of the zero-pressure range of their own 300 K pressure (``model_eos`` on each one's own thermal states,
    ``zero_edge``) and their 1 bar, 300 K NPT density of ``boxes`` (``npt_density``). ``known``: the run's
    model's edge (from ``thermal_eos``) and its NPT densities (from ``dense_ablation``, or None), not run twice."""
    extra = [a.copy() for a in labelled]
    for a in extra:
        a.info["virial_weight"] = 1.0
    refit = refit_with(run, model, extra)
    lines = ["", f"**Thermal labels in the fit** (`--thermal-refit`): the run's data refitted with the {len(extra)} "
             "thermal frames above (oracle labels, stress weight 1). For each model: the edge of the zero-pressure "
             f"range of its own 300 K pressure on its own thermal states (as above, {frames} frames per box), and its "
             "1 bar, "
             f"300 K NPT of the boxes for {steps * 0.5e-3:g} ps from their 5000-bar density (mean density of the "
             "second half):", "",
             "| model | zero-pressure edge (g/cm³) | 1 bar NPT density (g/cm³) |", "|---|---:|---:|"]  # fmt: skip
    for name, m in (("run's model", model), (f"+ {len(extra)} thermal frames", refit)):
        zero, rho = (
            known if m is model else (zero_edge(np.array(densities), *model_eos(m, boxes, densities, frames)), None)
        )
        rho = npt_density(m, boxes, steps) if rho is None else rho
        lines.append(f"| {name} | {zero:.2f} | {np.mean(rho):.3f} ± {np.std(rho):.3f} |")
        print(lines[-1], flush=True)
    return lines


def refit_with(run: Path, model: hal.LinearACE, extra: list) -> hal.LinearACE:
    """The run's labelled data plus ``extra``, fitted with the protocol's default fit options on the model's basis."""
    from hal.config import load
    from hal.fit import fit
    from hal.protocols import default_config, polymer_bulk
    from hal.protocols import hal as general

    config = load(default_config("polymer_bulk"), polymer_bulk.SCHEMA)
    data = Store(run / "data.db").labelled()
    return fit(data + extra, model.basis, seed=0, progress=False, **general.fit_options(config))


def npt_density(model: hal.LinearACE, boxes: list, steps: int) -> list[float]:
    """The model's 1 bar, 300 K Berendsen NPT of each box (``steps`` of 0.5 fs): mean density of the second half."""
    from hal.dynamics.npt import npt_run

    calc, rho = model.calculator(threads=2), []
    for w, box in enumerate(boxes):
        trace = npt_run(box.copy(), calc, steps, 300.0, 1.0, 0.5, record_every=100, topology=Topology(box), seed=w)
        rho.append(float(trace.density[trace.time_ps >= trace.time_ps[-1] / 2].mean()))
    return rho


def zero_edge(rho: np.ndarray, pressure: np.ndarray, se: np.ndarray) -> float:
    """The highest density (g/cm³) whose pressure is zero within two standard errors while every higher one is
    above that (the top of a flat, zero-pressure stretch of the isotherm); NaN when the highest is itself zero."""
    zero = np.abs(pressure) <= 2 * se
    above = pressure > 2 * se
    for k in range(len(rho) - 1):
        if zero[k] and above[k + 1 :].all():
            return float(rho[k])
    return float("nan")


def dense_ablation(
    run: Path, model: hal.LinearACE, boxes: list, held_out: list, steps: int, label: LabelCache, held_label: LabelCache
) -> tuple[list[str], list[float]]:
    """Refit the run's data (the protocol's default fit options) plus the oracle's labels of ``boxes`` moved to
    1.1, 1.2 and 1.3 g/cm³, and compare with the run's model: the pressure error at 1.2 g/cm³ on ``held_out``
    boxes, and each model's 1 bar, 300 K Berendsen NPT of ``boxes`` (``steps`` of 0.5 fs, mean density of
    the second half). Returns the table's lines and the run's model's NPT densities."""
    dense = [
        label(Topology(box).molecules_scaled(box, rho), (b, rho))
        for b, box in enumerate(boxes)
        for rho in (1.1, 1.2, 1.3)
    ]
    dense = [a.copy() for a in dense if a is not None]
    for a in dense:
        a.info["virial_weight"] = 1.0
    refit = refit_with(run, model, dense)
    models = {"run's model": model, f"+ {len(dense)} dense boxes": refit}
    rhos = []
    lines = ["", f"**Dense boxes** (`--dense`): the oracle labels these boxes moved to 1.1, 1.2 and 1.3 g/cm³ "
             f"({len(dense)} labels, stress weight 1) and the run's data are refitted with them. Model − tblite "
             f"potential pressure at 1.2 g/cm³ on {len(held_out)} held-out boxes (the previous box test's), kbar; "
             f"then 1 bar, 300 K NPT of the boxes for {steps * 0.5e-3:g} ps from their 5000-bar density, mean "
             "density of the second half:", "", "| model | pressure error at 1.2 | 1 bar density (g/cm³) |",
             "|---|---:|---:|"]  # fmt: skip
    scaled = [Topology(b).molecules_scaled(b, 1.2) for b in held_out]
    reference = [held_label(a, (b, 1.2)) for b, a in enumerate(scaled)]
    for name, m in models.items():
        calc = m.calculator(threads=2)
        error = [pressure_kbar(a, calc) - label_pressure_kbar(r) for a, r in zip(scaled, reference) if r is not None]
        rho = npt_density(m, boxes, steps)
        rhos.append(rho)
        lines.append(
            f"| {name} | {np.mean(error):+.1f} ± {np.std(error):.1f} | {np.mean(rho):.3f} ± {np.std(rho):.3f} |"
        )
        print(lines[-1], flush=True)
    return lines, rhos[0]  # the run's model's


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default=str(RESULTS / "peg_density_run"))
    ap.add_argument("--densities", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2, 1.3], help="g/cm³")
    ap.add_argument("--quick", action="store_true", help="2 boxes at 1.0 and 1.2 g/cm³")
    ap.add_argument("--dense", action="store_true", help="+ a refit with dense labelled boxes, and 1 bar box NPT")
    ap.add_argument("--steps", type=int, default=10000, help="steps of each 1 bar box NPT (--dense, --thermal-refit)")
    ap.add_argument(
        "--thermal",
        type=int,
        default=0,
        metavar="FRAMES",
        help="+ model and oracle pressure on FRAMES thermal frames per box at the --thermal-densities",
    )
    ap.add_argument("--thermal-densities", type=float, nargs="+", default=[1.0, 1.1, 1.2], help="g/cm³ (--thermal)")
    ap.add_argument("--thermal-refit", action="store_true", help="+ a refit with the thermal frames (--thermal)")
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
    label = scan_labels(run, boxes_path)
    t0 = time.perf_counter()
    model_p, oracle_p = np.full((len(boxes), len(densities)), np.nan), np.full((len(boxes), len(densities)), np.nan)
    for b, box in enumerate(boxes):
        topology = Topology(box)
        for d, rho in enumerate(densities):
            scaled = topology.molecules_scaled(box, rho)
            model_p[b, d] = pressure_kbar(scaled, calc)
            labelled_box = label(scaled, (b, rho))  # None: the oracle did not converge, a gap (NaN)
            if labelled_box is not None:
                oracle_p[b, d] = label_pressure_kbar(labelled_box)
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
    if args.thermal:
        flags += [f"--thermal {args.thermal}", "--thermal-densities", *(f"{d:g}" for d in args.thermal_densities)]
        flags += ["--thermal-refit"] if args.thermal_refit else []
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
    run_rho = None  # the run's model's 1 bar NPT densities, once measured
    if args.dense:
        tests = sorted(run.glob("box_test_iter_*.xyz"))  # by model: iter_NNN, zero-padded
        held_out = read(tests[-2], ":") if len(tests) > 1 else []
        held_label = scan_labels(run, tests[-2]) if len(tests) > 1 else None
        more, run_rho = dense_ablation(
            run, hal.LinearACE.load(model_path), boxes, held_out, args.steps, label, held_label
        )
        lines += more
    zero = None
    if args.thermal:
        densities_t = sorted(args.thermal_densities)
        more, zero, zero_model, labelled_t = thermal_eos(run, model_path, boxes, densities_t, args.thermal)
        lines += more
        if args.thermal_refit:
            model = hal.LinearACE.load(model_path)
            known = (zero_model, run_rho)
            lines += thermal_refit(run, model, boxes, labelled_t, densities_t, args.thermal, args.steps, known)
    (RESULTS / "melt_eos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if zero is not None:
        print(f"oracle_zero_pressure_edge_g_cm3: {zero:.2f}")
    print(f"melt_pressure_error_1.2_kbar: {np.nanmean(diff[:, densities.index(1.2)]):+.1f}")


if __name__ == "__main__":
    main()
