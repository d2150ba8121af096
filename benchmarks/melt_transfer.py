"""Does a model of isolated PEG chains transfer to the melt? Its forces against the oracle's on melt frames.

The polymer protocol's premise (HAL paper Fig. 8) is that the oracle cannot label the periodic melt, so the
model must extrapolate from isolated chains. tblite can in fact compute a periodic GFN2-xTB box (≈ 1 min
for 460 atoms here), which lets us measure that extrapolation; those labels are a diagnostic only and
never enter a fit. The run's final model relaxes the run's built melt and compresses it as the protocol
does (FIRE, then Berendsen NPT at 5000 bar), keeping frames until a bond breaks or ``--steps``;
``--frames`` of them, evenly spaced, are labelled by tblite. Beside them: the same model on labelled
isolated chains, ``--chains`` (default: the full run's four 500 K PEG(32) MD frames, held out from the
``--medium`` run's data). Reported: force RMSE, the oracle's RMS force, the largest
relative force uncertainty max f_i (ε = 0.2 eV/Å), and whether the frame's topology had broken.

    python benchmarks/melt_transfer.py [RUN_DIR] [--chains XYZ] [--frames 4] [--steps 1200] [--quick]

Default run: ``benchmarks/results/peg_density_medium_run``. Writes ``benchmarks/results/melt_transfer.md``.
Last line: ``melt_force_rmse_ratio: <melt RMSE / isolated-chain RMSE>`` (≈ 1: the model transfers).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.io import read
from ase.md.nptberendsen import NPTBerendsen
from ase.optimize import FIRE

import hal
from hal.bonds import Topology
from hal.dynamics.hal import thermalize
from hal.oracles import TBLiteRetry
from hal.uncertainty import relative_force_uncertainty

RESULTS = Path(__file__).resolve().parent / "results"


def rel(path: str) -> str:
    """A path as seen from the repository root."""
    return os.path.relpath(Path(path).resolve(), RESULTS.parents[1])


def compression_frames(model: hal.LinearACE, melt, steps: int, every: int, bar: float) -> list:
    """Frames of the protocol's relaxation and compression (300 K), every ``every`` steps, up to a break."""
    atoms, topology = melt.copy(), Topology(melt)
    atoms.calc = model.calculator()
    FIRE(atoms, logfile=None).run(fmax=0.5, steps=300)
    thermalize(atoms, 300.0, np.random.default_rng(0))
    dyn = NPTBerendsen(atoms, 0.5 * units.fs, temperature_K=300.0, pressure_au=bar * units.bar, taut=100 * units.fs,
                       taup=1000 * units.fs, compressibility_au=4.6e-5 / units.bar)  # fmt: skip
    frames = [atoms.copy()]
    for step in range(1, steps + 1):
        dyn.run(1)
        broken = bool(topology.broken(atoms))
        if step % every == 0 or broken:
            frame = atoms.copy()
            frame.info.update(step=step, broken=broken)
            frames.append(frame)
        if broken:
            break
    frames[0].info.update(step=0, broken=False)
    return frames


def score(model: hal.LinearACE, frames: list, reference) -> dict:
    """Force RMSE (eV/Å), the reference's RMS force, max f_i over the frames; reference: a calculator or None
    (the frames' own labels)."""
    err, ref, fi = [], [], []
    for f in frames:
        res = model.evaluate_committee(f)
        fi.append(relative_force_uncertainty(res.member_forces, res.forces, eps=0.2).max())
        if reference is not None:
            f = f.copy()
            f.calc = reference
        forces = f.get_forces()
        err.append((res.forces - forces).ravel())
        ref.append(forces.ravel())
    err, ref = np.concatenate(err), np.concatenate(ref)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "rms_force": float(np.sqrt(np.mean(ref**2))),
            "max_fi": float(max(fi))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default=str(RESULTS / "peg_density_medium_run"))
    ap.add_argument("--chains", default=str(RESULTS / "peg_density_run" / "md_n32.xyz"), help="labelled chains")
    ap.add_argument("--frames", type=int, default=4, help="melt frames labelled by periodic tblite")
    ap.add_argument("--steps", type=int, default=1200, help="compression steps at most (0.5 fs)")
    ap.add_argument("--quick", action="store_true", help="2 frames, 300 steps")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.steps = 2, 300
    run = Path(args.run)
    model_path = sorted((run / "models").glob("iter_*.npz"))[-1]
    model = hal.LinearACE.load(model_path)
    t0 = time.perf_counter()
    frames = compression_frames(model, read(run / "melt_built.xyz"), args.steps, 50, 5000.0)
    picks = [frames[int(k)] for k in np.linspace(0, len(frames) - 1, args.frames).round()]
    oracle = TBLiteRetry()
    rows = [{"step": f.info["step"], "broken": f.info["broken"], **score(model, [f], oracle)} for f in picks]
    chains = score(model, read(args.chains, ":"), None)
    wall = time.perf_counter() - t0
    melt = [r for r in rows if not r["broken"]] or rows
    ratio = float(np.sqrt(np.mean([r["rmse"] ** 2 for r in melt]))) / chains["rmse"]
    lines = [f"# Melt transfer: {run.name}, model {model_path.name}", "",
             f"`python benchmarks/melt_transfer.py {rel(args.run)} --chains {rel(args.chains)} --frames {args.frames} "
             f"--steps {args.steps}`: {wall:.0f} s. Melt {len(picks[0])} atoms, relaxed and compressed at 5000 bar, "
             "300 K (0.5 fs steps); oracle tblite GFN2-xTB, periodic (a diagnostic, never fitted).", "",
             "| frames | step | topology | force RMSE (eV/Å) | oracle RMS force (eV/Å) | max f_i |",
             "|---|---:|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| melt | {r['step']} | {'broken' if r['broken'] else 'intact'} | {r['rmse']:.3f} | "
              f"{r['rms_force']:.3f} | {r['max_fi']:.2f} |" for r in rows]  # fmt: skip
    lines += [f"| isolated chains: {rel(args.chains)} | – | intact | {chains['rmse']:.3f} | "
              f"{chains['rms_force']:.3f} | {chains['max_fi']:.2f} |", "",
              f"melt_force_rmse_ratio: {ratio:.2f}"]  # fmt: skip
    (RESULTS / "melt_transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:-2]))
    print(json.dumps({"wall_s": round(wall), "model": model_path.name}))
    print(f"melt_force_rmse_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
