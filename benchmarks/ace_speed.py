"""Speed of the ACE evaluator against PACE (python-ace, recursive C-tilde) in the same run.

Cases: (a) hexane C6H14 with a C,H basis of ≈1000 functions, (b) a 108-atom periodic fcc Al cell
with an Al basis of ≈1100 functions. Two comparisons: PACE's own (PACE-native) linear-embedding
basis of about the same size, and the fairest one there is: the *same* hal model exported with
``LinearACE.to_yace`` and evaluated by PACE. All are timed as energy+forces calls through their ASE
calculators, in interleaved blocks, on one core (median µs/atom). Also: the fast path with K = 32
coefficient vectors vs K = 1, and peak memory of each evaluator (a fresh subprocess per case).

    python benchmarks/ace_speed.py [--quick]

Last line: ``ratio_vs_pace: <worst hal/PACE time ratio of both comparisons>`` (≤ 1: hal is at least
as fast).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.calculator import all_changes  # noqa: E402

from hal import ACEBasis, LinearACE  # noqa: E402
from hal.ace import kernels  # noqa: E402
from hal.structures import linear_alkane  # noqa: E402

CASES = {
    "hexane": dict(
        elements=["C", "H"],
        hal=dict(order=4, max_degree=[15, 11, 9, 6], r_cut=5.0),
        pace=([15, 4, 3, 2], [0, 2, 1, 1]),
    ),
    "al108": dict(
        elements=["Al"],
        hal=dict(order=4, max_degree=[24, 20, 17, 13], r_cut=5.0),
        pace=([12, 8, 6], [0, 4, 3]),
    ),
}


def structure(case: str):
    if case == "hexane":
        return linear_alkane(6)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (3, 3, 3)
    atoms.rattle(0.05, seed=0)
    return atoms


def hal_model(case: str) -> LinearACE:
    spec = CASES[case]
    basis = ACEBasis(spec["elements"], **spec["hal"])
    coef = np.random.default_rng(0).normal(size=basis.size) * 1e-3
    return LinearACE(basis, coef)


def exported_calculator(model: LinearACE, directory: str):
    """PACE (recursive evaluator, as LAMMPS runs it) on the hal model's own .yace file."""
    from pyace import PyACECalculator

    path = model.to_yace(Path(directory) / "model.yace")
    return PyACECalculator(str(path), recursive_evaluator=True, recursive=True), path.stat().st_size


def pace_calculator(case: str):
    from pace import pace_config, pace_size
    from pyace import ACEBBasisSet, PyACECalculator

    spec = CASES[case]
    bconf = pace_config(spec["elements"], *spec["pace"])
    ctilde = ACEBBasisSet(bconf).to_ACECTildeBasisSet()
    return pace_size(bconf), PyACECalculator(ctilde, recursive_evaluator=True, recursive=True)


def call(calc, atoms) -> None:
    atoms.positions[0, 0] += 1e-7  # a new configuration every call: nothing cached
    calc.calculate(atoms, ["energy", "forces"], all_changes)


def block_time(calc, atoms, seconds: float) -> float:
    """µs per atom of one energy+forces call, averaged over a block of `seconds`."""
    call(calc, atoms)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call(calc, atoms)
        n += 1
    return (time.perf_counter() - t0) / n / len(atoms) * 1e6


def fast_path_ratios(basis: ACEBasis, atoms, seconds: float) -> dict[str, float]:
    """Fast path with K = 32 vectors vs K = 1: (a) 32 energies + the forces of one vector (the
    committee mean: what MD with σ needs), (b) energies, forces and virials of all 32."""
    rng = np.random.default_rng(1)
    C = rng.normal(size=(32, basis.size))
    folds = {
        "k1": basis.fold(C[0]),
        "k32_one_gradient": basis.fold(C, gradient_rows=[0]),
        "k32_all_gradients": basis.fold(C),
    }
    times: dict[str, list[float]] = {k: [] for k in folds}
    for _ in range(3):
        for name, f in folds.items():
            basis.evaluate_folded(atoms, f)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                basis.evaluate_folded(atoms, f)
                n += 1
            times[name].append((time.perf_counter() - t0) / n)
    t1 = np.median(times["k1"])
    return {k: float(np.median(v) / t1) for k, v in times.items() if k != "k1"}


def peak_memory_mb(which: str, case: str) -> float:
    """Peak RSS growth (MB) of building an evaluator and running 5 calls, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-probe", which, case], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))


def memory_probe(which: str, case: str) -> None:
    """Print the peak RSS (MB) above the resident size before the evaluator was built."""
    atoms = structure(case)
    if which == "pace":
        import pyace  # noqa: F401  (import cost is not the evaluator's memory)
    else:
        import vesin  # noqa: F401  (nor is this one's: it imports torch when that is installed)
    before = _status_kb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark to the current RSS
        fh.write("5")
    kernels.set_threads(1)
    calc = hal_model(case).calculator() if which == "hal" else pace_calculator(case)[1]
    for _ in range(5):
        call(calc, atoms)
    print((_status_kb("VmHWM:") - before) / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short timing blocks (CI smoke run)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--memory-probe", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return
    seconds, blocks = (0.3, 3) if args.quick else (1.5, 7)
    kernels.set_threads(1)
    results = {}
    tmp = tempfile.TemporaryDirectory()
    for case in CASES:
        atoms = structure(case)
        model = hal_model(case)
        basis, hal_calc = model.basis, model.calculator()
        pace_size, pace_calc = pace_calculator(case)
        same_calc, yace_bytes = exported_calculator(model, tmp.name)
        check = atoms.copy()
        for calc in (hal_calc, same_calc):
            calc.calculate(check, ["energy", "forces"], all_changes)
        agree = abs(hal_calc.results["energy"] - same_calc.results["energy"]) / abs(hal_calc.results["energy"])
        t_hal, t_pace, t_same = [], [], []
        for _ in range(blocks):  # interleaved so that machine noise hits all alike
            t_hal.append(block_time(hal_calc, atoms, seconds))
            t_pace.append(block_time(pace_calc, atoms, seconds))
            t_same.append(block_time(same_calc, atoms, seconds))
        kr = fast_path_ratios(basis, atoms, seconds)
        res = dict(
            atoms=len(atoms),
            hal_functions=basis.size,
            pace_functions=pace_size,
            hal_us_per_atom=float(np.median(t_hal)),
            pace_us_per_atom=float(np.median(t_pace)),
            exported_us_per_atom=float(np.median(t_same)),
            exported_yace_mb=yace_bytes / 1e6,
            exported_energy_rel_diff=float(agree),
            k32_over_k1=kr["k32_one_gradient"],
            k32_all_forces_over_k1=kr["k32_all_gradients"],
            hal_peak_mb=peak_memory_mb("hal", case),
            pace_peak_mb=peak_memory_mb("pace", case),
        )
        res["ratio"] = res["hal_us_per_atom"] / res["pace_us_per_atom"]
        res["ratio_same_model"] = res["hal_us_per_atom"] / res["exported_us_per_atom"]
        results[case] = res
        print(
            f"{case:7s} {len(atoms):4d} atoms | hal {basis.size:5d} fn {res['hal_us_per_atom']:8.1f} µs/atom"
            f" | PACE-native {pace_size:5d} fn {res['pace_us_per_atom']:8.1f} µs/atom, ratio {res['ratio']:.2f}"
            f" | PACE on hal's model {res['exported_us_per_atom']:8.1f} µs/atom, ratio {res['ratio_same_model']:.2f}"
            f" (|ΔE|/E {agree:.0e})"
            f" | K=32/K=1 {kr['k32_one_gradient']:.2f} (all forces {kr['k32_all_gradients']:.2f})"
            f" | peak MB hal {res['hal_peak_mb']:.0f} PACE {res['pace_peak_mb']:.0f}",
            flush=True,
        )
    tmp.cleanup()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    print(f"k32_over_k1: {max(r['k32_over_k1'] for r in results.values()):.2f}")
    print(f"ratio_same_model: {max(r['ratio_same_model'] for r in results.values()):.2f}")
    print(f"ratio_vs_pace: {max(max(r['ratio'], r['ratio_same_model']) for r in results.values()):.2f}")


if __name__ == "__main__":
    main()
