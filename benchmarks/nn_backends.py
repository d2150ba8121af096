"""Linear ACE vs the NN ensembles (TorchANI-style, SchNet) on the hexane study: cost and accuracy.

Speed (same run, same machine, same 500 K hexane frames): the fit of the linear-ACE posterior vs one
training epoch of one NN member (batch 64); one HAL MD step (energy, forces, σ and the bias force of
the biased energy) and one best-member step, per backend, on CPU and on CUDA when there. Science:
the study's loop per backend × strategy (Jung et al.'s inherited-3 ensemble; HAL-SMD) with |ΔE_a| vs
oracle calls, fit time per refit, and the learning, work-curve and snapshot plots of
``hal report``. NN epochs are REDUCED on CPU (``--epochs``; SPEC: 300) and every table row says so
(strategy names end in ``-e<epochs>``); NN weights train in float32 by default (SPEC §6 allows it:
3–4× faster on a CPU). Every strategy's final model gets the quasi-static pull (work curve, peak
force). Resumable: a killed run goes on from its run directory. Writes
``benchmarks/results/nn_backends.md``; last line: the best final work-curve error of an NN strategy
(eV), with that strategy and the bonds its pulls broke, beside linear-ACE HAL-SMD's.

    python benchmarks/nn_backends.py [--quick] [--epochs 50 [300 ...]] [--refit-epochs 5 [30 ...]] [--iterations 2]
        [--n-md 2000] [--ani7] [--strategies PREFIX ...] [--speed-only]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import all_changes

from hal.ace.basis import ACEBasis
from hal.backends.base import MemberCalculator, member_errors
from hal.backends.schnet import SchNetBackend
from hal.backends.torch_ensemble import TorchEnsemble
from hal.backends.torchani import TorchANIBackend
from hal.calculators import HALCalculator
from hal.config import validate
from hal.fit import fit
from hal.loop.select import Splits
from hal.protocols import hexane_smd
from hal.protocols.hexane_reference import md_dataset
from hal.protocols.hexane_report import count, scores_by_strategy, table

RESULTS = Path(__file__).parent / "results"


def step_ms(calc, atoms, n: int) -> float:
    """Median wall time (ms) of one energy + forces evaluation at fresh positions."""
    rng = np.random.default_rng(0)
    work = atoms.copy()
    times = []
    for _ in range(n):
        work.positions = atoms.positions + rng.normal(scale=0.01, size=atoms.positions.shape)
        t = time.perf_counter()
        calc.calculate(work, ["energy", "forces"], all_changes)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def speed(data: list, basis: ACEBasis, devices: list[str], members: int, n_steps: int,
          dtype: torch.dtype = torch.float64) -> list[dict]:  # fmt: skip
    """One row per backend and device: fit/epoch time (s), HAL step and member step (ms)."""
    atoms = data[0]
    t = time.perf_counter()
    model = fit(data, basis, committee_size=32, progress=False)
    rows = [{"backend": "ace", "device": "cpu", "train_s": time.perf_counter() - t, "train": "full BRR fit",
             "hal_ms": step_ms(HALCalculator(model, tau=0.1, force_uncertainty=False), atoms, n_steps),
             "member_ms": step_ms(model.calculator(), atoms, n_steps)}]  # fmt: skip
    for device in devices:
        for cls in (TorchANIBackend, SchNetBackend):
            backend = cls(epochs=1, device=device, patience=10**6, dtype=dtype)
            train = backend._tensors(data)
            e0 = backend._self_energies(data)
            t = time.perf_counter()
            backend._train_member(0, train, {k: v[:0] for k, v in train.items()}, e0, seed=0)
            epoch = time.perf_counter() - t
            ens = TorchEnsemble([backend.make_net() for _ in range(members)], 0, device, backend.net_kwargs)
            rows.append({"backend": backend.name, "device": device, "train_s": epoch, "train": "1 epoch, 1 member",
                         "hal_ms": step_ms(HALCalculator(ens, tau=0.1, force_uncertainty=False), atoms, n_steps),
                         "member_ms": step_ms(MemberCalculator(ens, 0), atoms, n_steps)})  # fmt: skip
    return rows


def speed_table(rows: list[dict], n_frames: int, members: int, dtype: str) -> str:
    ace = rows[0]
    out = (f"Hexane (20 atoms), {n_frames} frames; NN ensembles of {members} members, {dtype}; "
           "ratios over linear ACE in the same run.\n\n"
           "| backend | device | training (s) | what | HAL step (ms) | × ACE | best-member step (ms) | × ACE |\n"
           "|---|---|---:|---|---:|---:|---:|---:|\n")  # fmt: skip
    for r in rows:
        hal_x, member_x = r["hal_ms"] / ace["hal_ms"], r["member_ms"] / ace["member_ms"]
        out += (f"| {r['backend']} | {r['device']} | {r['train_s']:.2f} | {r['train']} | {r['hal_ms']:.2f} | "
                f"{hal_x:.1f} | {r['member_ms']:.2f} | {member_x:.1f} |\n")  # fmt: skip
    return out


def study_config(args: argparse.Namespace, epochs: list[int], run_dir: Path) -> dict:
    """The study's config: inherited-3 (and -7) per backend and HAL-SMD on ACE and TorchANI, the NN ones once
    per epoch count, their names ending in it (``-e<epochs>``)."""
    q = args.quick
    jung = {"kind": "jung", "split": "inherited", "iterations": 1 if q else args.iterations,
            "labels_per_iteration": 60 if q else 150, "dtype": args.dtype}  # fmt: skip
    hal = {"kind": "hal", "f_tol": 0.2, "n_initial": 40, "max_oracle_calls": 60 if q else args.max_calls,
           "score_every": 10 if q else 25}  # fmt: skip
    strategies = [{"name": "ace-inherited-3", "backend": "ace", "members": 3, **jung},
                  {"name": "ace-hal-smd", **hal}]  # fmt: skip
    refits = args.refit_epochs or [max(n // 10, 2) for n in epochs]
    if len(refits) != len(epochs):
        raise SystemExit(f"--refit-epochs: one count per --epochs entry ({len(epochs)}), got {len(refits)}")
    for n, r in zip(epochs, refits):
        e = f"-e{n}"
        # HAL-SMD fits every epoch: on its few dozen frames the energy-only validation loss plateaus long before
        # the forces converge (40 frames: early stopping after 10 flat epochs left F MAE 0.75 eV/Å; 400 epochs: 0.13)
        nn_hal = {"backend": "torchani", "members": 3, "epochs": n, "refit_epochs": r, "patience": n,
                  "dtype": args.dtype}  # fmt: skip
        nn_jung = {**jung, "members": 3, "epochs": n}
        strategies += [{"name": f"torchani-hal-smd{e}", **nn_hal, **hal},
                       {"name": f"torchani-inherited-3{e}", "backend": "torchani", **nn_jung},
                       {"name": f"schnet-inherited-3{e}", "backend": "schnet", **nn_jung}]  # fmt: skip
        if args.ani7:
            strategies.append({"name": f"torchani-inherited-7{e}", "backend": "torchani", **nn_jung, "members": 7})
    if args.strategies:
        strategies = [s for s in strategies if any(s["name"].startswith(p) for p in args.strategies)]
    raw = {"run_dir": str(run_dir), "seeds": [0, 1] if q else args.seeds,
           "initial": {"n_md": 200 if q else args.n_md}, "strategies": strategies,
           "quasi_static_backends": ["ace"], "quasi_static_final": True}  # fmt: skip
    return validate(raw, hexane_smd.SCHEMA)


def settings_table(cfg: dict, device: str) -> str:
    """One row per strategy: backend, members, epochs (first fit / refits), precision, device."""
    out = ("| strategy | backend | members | epochs (first fit / refits) | precision | device |\n"
           "|---|---|---:|---|---|---|\n")  # fmt: skip
    for s in cfg["strategies"]:
        nn = s["backend"] != "ace"
        epochs = (f"{s['epochs']} / {s['refit_epochs']}" if s["kind"] == "hal" else str(s["epochs"])) if nn else "–"
        members = s["committee_size"] if s["kind"] == "hal" and not nn else s["members"]
        precision, where = (s["dtype"], device) if nn else ("float64", "cpu")
        out += f"| {s['name']} | {s['backend']} | {members} | {epochs} | {precision} | {where} |\n"
    return out


def headline(run_dir: Path, names: list[str]) -> str:
    """The last line: the best final work-curve error of an NN strategy (eV), with the strategy and the bonds its
    pulls broke (a chain that never snaps can follow the curve up to the oracle's snap), beside ACE HAL-SMD's."""
    last = {name: scores[-1] for name, scores in scores_by_strategy(run_dir, names).items()}
    nn = {n: e for n, e in last.items() if not n.startswith("ace") and np.isfinite(e.get("work_error", np.nan))}
    ace = last.get("ace-hal-smd", {}).get("work_error", np.nan)
    if not nn:
        return f"best_nn_work_curve_error_ev: nan (ace-hal-smd: {ace:.3f})"
    name = min(nn, key=lambda n: nn[n]["work_error"])
    return (
        f"best_nn_work_curve_error_ev: {nn[name]['work_error']:.3f} ({name}, bonds broken: "
        f"{count(nn[name].get('bonds', []))}; ace-hal-smd: {ace:.3f})"
    )


def refit_convergence(cfg: dict, run_dir: Path, extra: int) -> str:
    """Whether HAL-SMD's NN refits had converged: each NN HAL-SMD strategy's final ensemble trained ``extra`` more
    epochs on its own data and splits (warm), and the best member's force MAE on the unseen reference frames
    (eV/Å) before and after; a large drop says the refits stopped short."""
    study = hexane_smd.Study(cfg, run_dir, progress=False)
    out = (f"## HAL-SMD NN refits: converged?\n\nEach final ensemble trained {extra} more epochs on its own "
           "frames and splits, from its weights; the best member's F MAE on the unseen reference frames.\n\n"
           f"| strategy | epochs (first fit / refits) | F MAE unseen (eV/Å) | after +{extra} epochs | change |\n"
           "|---|---|---:|---:|---:|\n")  # fmt: skip
    for sel in cfg["strategies"]:
        final = run_dir / "models" / f"{sel['name']}-final.pt"
        if sel["kind"] != "hal" or sel["backend"] == "ace" or not final.exists():
            continue
        backend = hexane_smd.make_backend(study, {**sel, "epochs": extra, "patience": extra})
        ensemble = backend.load(final)
        data = hexane_smd.hal_initial_frames(study, sel) + study.store.labelled(strategy=sel["name"])
        splits = Splits(sel["members"], hexane_smd.HAL_VALIDATION, seed=hexane_smd.strategy_seed(study, sel))
        for n in range(sel["n_initial"], len(data) + 1):  # the splits of the run: one label at a time
            splits.inherit(n, n)
        longer = backend.fit(data, splits.train, seed=len(data), init=ensemble)
        before = member_errors(ensemble, study.test)[1][ensemble.best]
        after = member_errors(longer, study.test)[1][longer.best]
        out += (f"| {sel['name']} | {sel['epochs']} / {sel['refit_epochs']} | {before:.4f} | {after:.4f} | "
                f"{100 * (after / before - 1):+.0f} % |\n")  # fmt: skip
    return out + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 MD frames, 2 seeds, 1 iteration, 10 epochs")
    ap.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=None,
        help="NN epochs per first fit, one set of NN strategies each (CPU: 50, CUDA: 300)",
    )
    ap.add_argument("--refit-epochs", type=int, nargs="+", default=None,
                    help="HAL-SMD NN refit epochs, one per --epochs entry (default epochs/10)")  # fmt: skip
    ap.add_argument("--iterations", type=int, default=2, help="iterations of the inherited loop (0: initial fit only)")
    ap.add_argument("--n-md", type=int, default=2000, help="initial 500 K MD frames (SPEC: 2000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="reference seeds scored")
    ap.add_argument("--max-calls", type=int, default=150, help="HAL-SMD oracle budget")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="NN precision")
    ap.add_argument("--ani7", action="store_true", help="also the 7-member TorchANI ensemble")
    ap.add_argument("--strategies", nargs="+", default=None, help="only strategies whose names start so")
    ap.add_argument("--converge-epochs", type=int, default=100,
                    help="extra epochs of the NN HAL-SMD refit convergence check (0: skip it)")  # fmt: skip
    ap.add_argument("--speed-only", action="store_true", help="skip the hexane study")
    ap.add_argument("--out", default=None, help="run directory (default runs/nn_backends[_quick])")
    ap.add_argument("--results", default=None, help="results file stem (default nn_backends[_quick])")
    args = ap.parse_args()
    torch.set_num_threads(1)  # pulls run on the study's 2 workers; NN training takes both cores (``threads``)
    cuda = torch.cuda.is_available()
    epochs = args.epochs or [10 if args.quick else (300 if cuda else 50)]
    run_dir = Path(args.out or ("runs/nn_backends_quick" if args.quick else "runs/nn_backends"))
    cfg = study_config(args, epochs, run_dir)
    names = [s["name"] for s in cfg["strategies"]]  # this run's rows (a run directory may hold more)
    stem = args.results or ("nn_backends_quick" if args.quick else "nn_backends")
    cmd = "python benchmarks/nn_backends.py " + " ".join(sys.argv[1:])
    device = "CUDA" if cuda else "CPU"
    text = ""
    if not args.speed_only:  # first: its oracle pool must fork before this process runs tblite (OpenMP)
        t0 = time.perf_counter()
        label = f"{' or '.join(map(str, epochs))} epochs per first fit" + (
            "" if min(epochs) >= 300 else " (REDUCED where under 300: SPEC §6 trains 300)"
        )
        for k in range(len(cfg["strategies"])):  # one at a time, the table written after each
            hexane_smd.run({**cfg, "strategies": cfg["strategies"][: k + 1]}, run_dir, progress=True)
            hexane_smd.report(run_dir, cfg)
            text = (f"## Backend × strategy (hexane, GFN2-xTB)\n\nseeds {cfg['seeds']}, {cfg['initial']['n_md']} MD "
                    f"frames; NN: {label}, {args.dtype}, on {device}; wall {time.perf_counter() - t0:.0f} s "
                    f"(this invocation; cached steps excluded)\n\n{settings_table(cfg, device)}\n"
                    f"{table(run_dir, names)}\n"
                    "Quasi-static pull (ΔE_a quasi-static, max |ΔW| before the snap, Δ peak force): every ACE score, "
                    "the final score of every NN strategy.\n\n")  # fmt: skip
            (RESULTS / f"{stem}.md").write_text(f"{cmd}\n\n(running)\n\n{text}")
        for name in ("learning", "work", "snapshots"):
            shutil.copy(run_dir / f"{name}.png", RESULTS / f"{stem}_{name}.png")
            text += f"![{name}]({stem}_{name}.png)\n\n"
        if args.converge_epochs:
            text += refit_convergence(cfg, run_dir, args.converge_epochs)
    data = md_dataset(run_dir, cfg["initial"]["n_md"], 6, every=cfg["initial"]["every"])
    basis = ACEBasis(["C", "H"], order=4, max_degree=[15, 11, 9, 6], r_cut=5.0)
    frames = data[:64] if args.quick else data[:256]
    rows = speed(frames, basis, ["cpu", "cuda"] if cuda else ["cpu"], 3, 20 if args.quick else 100,
                 getattr(torch, args.dtype))  # fmt: skip
    text = f"{cmd}\n\n## Speed\n\n{speed_table(rows, len(frames), 3, args.dtype)}\n" + text
    ani = next(r for r in rows if r["backend"] == "torchani" and r["device"] == "cpu")
    text += f"hal_step_ratio_torchani_over_ace: {ani['hal_ms'] / rows[0]['hal_ms']:.1f}\n"
    if not args.speed_only:
        text += headline(run_dir, names) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
