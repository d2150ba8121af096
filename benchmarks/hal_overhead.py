"""Cost of a HAL MD step (K = 32: σ, bias force, adaptive τ, f_i at a cadence) over a plain Langevin step.

Same model (hexane, 1029 functions, fitted to GFN2-xTB MD data), same starts, same integrator
(ASE LangevinBAOAB, 0.5 fs, 500 K, with run_hal's scalar friction), one evaluation thread. HAL
variants (min_distance 0.6 Å as in the protocols): f_i on every step, on every 10th step, never
(σ and ∇σ act on every step). The adaptive τ runs with τ_r = ``--tau-rel`` (default 0.02), weak
enough for the biased trajectories to stay physical over ``steps`` from each of three starts (the
highest temperature reached is printed): a step's cost does not depend on τ's value, but a
trajectory that blows apart has fewer neighbours per atom and cheaper steps. Times are per step
actually run; the variants run one trajectory each in turn (start by start), and each ratio is the
median over the repeats of (the variant's time per step / the plain one's, over the same starts),
with its quartiles printed. The plain step is also timed on the landed code (``--against``, a git revision, run from
``git archive`` in a subprocess, in alternation with this one). The evaluations alone (plain, σ
and ∇σ, all 32 members' forces for f_i) are timed on one structure: the f_i step's extra cost,
spread over ``check_every`` steps, bounds what a cadence can reach. Results must not change with the
speed work: a 200-step HAL run (f_i every 10th) of this tree and of ``--trace-against`` (a revision
before the last changes) must agree to round-off (σ trace and final positions, printed).

    python benchmarks/hal_overhead.py [--quick] [--against REV]

Last line: ``hal_step_overhead_fi_every_10: <HAL step with f_i every 10th step / plain step>``
(goal ≤ 1.4; without f_i ≤ 1.25).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.io import write
from ase.md.langevinbaoab import LangevinBAOAB
from datasets import hexane_md, labels_to_info

import hal
from hal.ace import kernels
from hal.dynamics import run_hal

ROOT = Path(__file__).resolve().parents[1]
LANDED = "2f0cf59"  # main before the speed work (issue 16)
TRACE_REV = "c9b5829"  # main before the last round of step trimming: its HAL trajectory must be ours to round-off

PLAIN = """
import sys, time, numpy as np
from ase import units
from ase.io import write
from ase.io import read
from ase.md.langevinbaoab import LangevinBAOAB
import hal
model, starts = hal.LinearACE.load(sys.argv[1]), read(sys.argv[2], ":")
steps, blocks = int(sys.argv[3]), int(sys.argv[4])
def plain():
    t = 0.0
    for start in starts:
        atoms = start.copy()
        atoms.calc = model.calculator()
        dyn = LangevinBAOAB(atoms, 0.5 * units.fs, temperature_K=500, T_tau=100 * units.fs,
                            rng=np.random.default_rng(0), hydrostatic=True)
        t0 = time.perf_counter()
        for _ in range(steps):
            dyn.step()
        t += time.perf_counter() - t0
    return t / (steps * len(starts))
plain()
print(*[plain() for _ in range(blocks)])
"""

HAL_TRACE = """
import sys, json
from ase.io import read
import hal
from hal.dynamics import run_hal
model, start = hal.LinearACE.load(sys.argv[1]), read(sys.argv[2], "0")
r = run_hal(start, model, steps=200, temperature_K=500, timestep_fs=0.5, n_hist=50, tau_rel=0.02, check_every=10,
            s_tol=2.0, min_distance=0.6, seed=0, threads=1)
print(json.dumps({"sigma": r.trace["sigma"].tolist(), "positions": r.atoms.positions.ravel().tolist()}))
"""


def archived(rev: str, tmp: Path) -> Path:
    """hal of revision ``rev`` unpacked under tmp (once)."""
    src = tmp / f"hal-{rev}"
    if not src.exists():
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "hal"], check=True, capture_output=True)
        (tmp / f"{rev}.tar").write_bytes(archive.stdout)
        with tarfile.open(tmp / f"{rev}.tar") as tar:
            tar.extractall(src, filter="data")
    return src


def run_archived(rev: str, script: str, args: list[str], tmp: Path) -> str:
    """stdout of ``script`` run with revision ``rev``'s hal (its own numba cache: the first call compiles)."""
    src = archived(rev, tmp)
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        check=True, capture_output=True, text=True, cwd=src, env={"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1",
                                                                "NUMBA_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip


def trace_agreement(rev: str, model_path: Path, starts_path: Path, model, start, tmp: Path) -> tuple[float, float]:
    """Largest relative difference of σ over a 200-step HAL run (f_i every 10th), and of the final
    positions, between this tree and revision ``rev`` (same model, start and seed)."""
    theirs = json.loads(run_archived(rev, HAL_TRACE, [str(model_path), str(starts_path)], tmp))
    r = run_hal(start, model, steps=200, temperature_K=500, timestep_fs=0.5, n_hist=50, tau_rel=0.02, check_every=10,
                s_tol=2.0, min_distance=0.6, seed=0, threads=1)  # fmt: skip
    ours = {"sigma": r.trace["sigma"], "positions": r.atoms.positions.ravel()}

    def rel(k: str) -> float:
        a, b = np.asarray(ours[k]), np.asarray(theirs[k])
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))) if a.shape == b.shape else float("inf")

    return rel("sigma"), rel("positions")


def landed_plain(rev: str, model_path: Path, starts_path: Path, steps: int, blocks: int, tmp: Path) -> list[float]:
    """Plain-step seconds of revision ``rev`` of hal."""
    out = run_archived(rev, PLAIN, [str(model_path), str(starts_path), str(steps), str(blocks)], tmp)
    return [float(x) for x in out.split()]


def evaluation_times(model, atoms, seconds: float) -> dict[str, float]:
    """Seconds per call of the plain, the HAL (σ, ∇σ) and the HAL check step's evaluation (σ, ∇σ and
    every member's forces), interleaved; then the check step's and the σ steps' in a cadence of 10."""
    calls = {"plain": lambda: model.evaluate(atoms), "bias": lambda: model.evaluate_bias(atoms),
             "members": lambda: model.evaluate_bias(atoms, member_forces=True)}  # fmt: skip
    out: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(3):
        for k, fn in calls.items():
            fn()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 3:
                fn()
                n += 1
            out[k].append((time.perf_counter() - t0) / n)
    cycle: dict[str, list[float]] = {"members_in_cycle": [], "bias_after_members": []}
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:  # the f_i cadence of 10: one members' pass, then nine σ and ∇σ ones
        t0 = time.perf_counter()
        calls["members"]()
        t1 = time.perf_counter()
        for _ in range(9):
            calls["bias"]()
        cycle["members_in_cycle"].append(t1 - t0)
        cycle["bias_after_members"].append((time.perf_counter() - t1) / 9)
    return {k: float(np.median(v)) for k, v in {**out, **cycle}.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    ap.add_argument("--against", default=LANDED, help="git revision whose plain step is timed too ('' to skip)")
    ap.add_argument("--tau-rel", type=float, default=0.02, help="τ_r of the adaptive bias (default 0.02)")
    ap.add_argument("--trace-against", default=TRACE_REV, help="git revision whose HAL trajectory must agree with "
                    "this tree's to round-off ('' to skip)")  # fmt: skip
    args = ap.parse_args()
    steps, repeats = (300, 3) if args.quick else (1000, 7)  # runs of user length: the per-run set-up (an f_i
    # evaluation at the start, the calculator and integrator) is spread as in practice
    kernels.set_threads(1)
    data = labels_to_info(hexane_md(1800))
    basis = hal.ACEBasis(["C", "H"], order=4, max_degree=[15, 11, 9, 6], r_cut=5.0)
    model = hal.fit(data[:300], basis, committee_size=32, progress=False, n_workers=2)
    starts = [data[0], data[600], data[1200]]
    t_max = [0.0]

    def plain(start) -> int:
        atoms = start.copy()
        atoms.calc = model.calculator()
        dyn = LangevinBAOAB(atoms, 0.5 * units.fs, temperature_K=500, T_tau=100 * units.fs,
                            rng=np.random.default_rng(0), hydrostatic=True)  # fmt: skip
        for _ in range(steps):
            dyn.step()
        return steps

    def hal_run(check_every: int):
        def run(start) -> int:
            r = run_hal(start, model, steps=steps, temperature_K=500, timestep_fs=0.5, n_hist=50,
                        tau_rel=args.tau_rel, check_every=check_every, s_tol=2.0, min_distance=0.6, seed=0)  # fmt: skip
            t_max[0] = max(t_max[0], float(r.trace["temperature"].max()))
            return r.steps

        return run

    variants = {"plain": plain, "hal_fi_every_step": hal_run(1), "hal_fi_every_10": hal_run(10),
                "hal_fi_every_20": hal_run(20), "hal_no_fi": hal_run(10**9)}  # fmt: skip
    # one trajectory of each variant in turn (≈ 0.5 s each), so that every ratio to the plain step compares
    # runs seconds apart: the machine's load drifts on longer scales (whole-run medians moved by ±0.05)
    times: dict[str, list[float]] = {k: [] for k in variants}  # s per step, one entry per repeat (all starts)
    landed: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.against:
            model.save(tmp / "model.npz")
            write(tmp / "starts.xyz", starts)
        for fn in variants.values():
            fn(starts[0])  # compile and warm
        for _ in range(repeats):
            spent, run = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0)
            for start in starts:
                for name, fn in variants.items():
                    t0 = time.perf_counter()
                    run[name] += fn(start)
                    spent[name] += time.perf_counter() - t0
            for name in variants:
                times[name].append(spent[name] / run[name])
            if args.against:
                landed += landed_plain(args.against, tmp / "model.npz", tmp / "starts.xyz", steps, 1, tmp)
        if args.trace_against:
            if not args.against:
                model.save(tmp / "model.npz")
                write(tmp / "starts.xyz", starts)
            agree = trace_agreement(args.trace_against, tmp / "model.npz", tmp / "starts.xyz", model, starts[0], tmp)
    t = {k: float(np.median(v)) for k, v in times.items()}
    ratios = {k: np.array(v) / np.array(times["plain"]) for k, v in times.items()}  # paired, repeat by repeat
    ev = evaluation_times(model, starts[0], 0.5 if args.quick else 2.0)
    print("evaluation alone, µs: " + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in ev.items()))
    print(f"evaluation bias/plain: {ev['bias'] / ev['plain']:.2f} (the floor of hal_no_fi_over_plain with the "
          "same Python around both: the 2-column backward pass and the member energies)")  # fmt: skip
    extra = ev["members"] - ev["bias"]  # what an f_i step adds to a HAL step
    print(
        f"f_i step extra over a HAL step: {extra * 1e6:.0f} µs = {extra / t['plain']:.2f} plain steps; "
        f"f_i every 10th then costs at least hal_no_fi + {extra / t['plain'] / 10:.2f} plain steps"
    )
    # in a cadence the check step (34 coefficient columns, 0.65 MB) evicts the σ pass's data from the core's
    # L2 cache: the members' step and the nine σ steps after it are dearer than either alone
    cycle = ev["members_in_cycle"] + 9 * ev["bias_after_members"] - 10 * ev["bias"]
    print(
        f"in a cadence of 10 (members' pass, then 9 σ passes, interleaved): members {ev['members_in_cycle'] * 1e6:.0f}"
        f" µs, σ passes after it {ev['bias_after_members'] * 1e6:.0f} µs (alone {ev['bias'] * 1e6:.0f}); the cycle's "
        f"extra over 10 σ passes {cycle * 1e6:.0f} µs: f_i every 10th costs at least hal_no_fi + "
        f"{cycle / t['plain'] / 10:.2f} plain steps"
    )
    print(f"hexane, K = 32, {len(starts)} starts × {steps} steps, 1 thread, τ_r {args.tau_rel}, highest HAL T "
          f"{t_max[0]:.0f} K; µs per step: " + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in t.items()))  # fmt: skip
    if landed:
        print(f"plain step of {args.against}: {np.median(landed) * 1e6:.0f} µs; "
              f"plain_over_landed_plain: {t['plain'] / np.median(landed):.2f}")  # fmt: skip
    if args.trace_against:
        print(f"HAL run (200 steps, f_i every 10th) against {args.trace_against}: largest relative difference of σ "
              f"{agree[0]:.1e}, of the final positions {agree[1]:.1e} (round-off grown over 200 steps)")  # fmt: skip
    for k in ("hal_fi_every_step", "hal_fi_every_20", "hal_no_fi", "hal_fi_every_10"):
        q = np.percentile(ratios[k], [25, 75])
        print(f"{k} / plain over {len(ratios[k])} paired repeats: median {np.median(ratios[k]):.3f}, "
              f"quartiles {q[0]:.3f}–{q[1]:.3f}")  # fmt: skip
    for k in ("hal_fi_every_step", "hal_fi_every_20", "hal_no_fi"):
        print(f"{k}_over_plain: {np.median(ratios[k]):.2f}")
    print(f"hal_step_overhead_fi_every_10: {np.median(ratios['hal_fi_every_10']):.2f}")


if __name__ == "__main__":
    main()
