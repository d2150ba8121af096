"""Cost per atom and memory per atom of energy+forces from 108 to 10⁴ atoms, on 1 and more threads.

Systems: periodic fcc Al (rattled, a = 4.05 Å) with the 1177-function Al basis of
``ace_speed.py``, and periodic boxes of hexane molecules (liquid density, 20 atoms each) with its
1005-function C/H basis; random coefficients (the cost does not depend on them). Each call is a new
configuration (an atom moved by 1e-7 Å: the MD case, the Verlet list reused); the list's build is
timed on its own. The thread counts are timed in alternation, ``repeats`` rounds (7; 3 with
``--quick``): a speed-up is the median over rounds of the ratio within a round (its range is
printed), so a burst of load from another process on this shared 2-core VM moves one round, not
the figure. Peak memory: the high-water mark of the resident size above the model's, in a
fresh process per system (building the evaluator, the list and three calls). Thread counts: 1, 2,
4 … up to numba's pool (NUMBA_NUM_THREADS, default every core).

    python benchmarks/scaling.py [--quick]

Last line: ``thread_speedup_2_from_500: <lowest median 1-thread/2-thread time ratio for N ≥ 500>``
(goal ≥ 1.8); before it ``per_atom_cost_spread: <largest/smallest 1-thread µs/atom over all sizes
of a system>`` (goal ≤ 1.2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numba
import numpy as np
from ace_speed import hal_model
from ase import Atoms
from ase.build import bulk

from hal.structures import linear_alkane

AL_SIZES = {108: 3, 500: 5, 2048: 8, 6912: 12, 10976: 14}  # atoms: fcc cubic repeats
HEXANE_SIZES = {640: 2, 2160: 3, 10000: 5}  # atoms: 4 n³ molecules of 20


def aluminium(n_atoms: int) -> Atoms:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * ((AL_SIZES[n_atoms],) * 3)
    atoms.rattle(0.05, seed=0)
    return atoms


def hexane_box(n_atoms: int) -> Atoms:
    """4 n³ hexane molecules on a grid (n × 2n × 2n, ≥ 2 Å between molecules), ≈ 0.69 g/cm³."""
    n = HEXANE_SIZES[n_atoms]
    mol = linear_alkane(6)
    mol.positions -= mol.positions.mean(axis=0)
    site = np.array([10.2, 4.6, 4.4])  # Å per molecule
    counts = np.array([n, 2 * n, 2 * n])
    box = Atoms(cell=np.diag(site * counts), pbc=True)
    for idx in np.ndindex(*counts):
        m = mol.copy()
        m.positions += site * (np.array(idx) + 0.5)
        box += m
    return box


SYSTEMS = {"al": (aluminium, "al108", AL_SIZES), "hexane_box": (hexane_box, "hexane", HEXANE_SIZES)}


def per_atom_us(calc, atoms: Atoms, seconds: float) -> float:
    """µs/atom of an energy+forces call (a block of at least `seconds` and two calls, after one)."""
    calc.get_forces(atoms)
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        atoms.positions[0, 0] += 1e-7
        calc.get_forces(atoms)
        n += 1
    return (time.perf_counter() - t0) / n / len(atoms) * 1e6


def build_us(model, atoms: Atoms) -> float:
    """µs/atom of one neighbour-list build (radius cutoff + skin)."""
    nl = model.basis._nlist
    species = model.basis._species_of[atoms.numbers]
    t0 = time.perf_counter()
    nl._build(atoms, species)
    return (time.perf_counter() - t0) / len(atoms) * 1e6


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))


def memory_probe(system: str, n_atoms: int) -> None:
    """Print the peak resident size (MB) above the built model's, for the list and three calls."""
    import vesin  # noqa: F401  (its import, and torch's when installed, is not the evaluator's memory)

    make, case, _ = SYSTEMS[system]
    atoms = make(n_atoms)
    calc = hal_model(case).calculator()
    calc.get_forces(bulk("Al", cubic=True) if case == "al108" else linear_alkane(6))  # load the kernels
    before = _status_kb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark to the current size
        fh.write("5")
    for _ in range(3):
        atoms.positions[0, 0] += 1e-7
        calc.get_forces(atoms)
    print((_status_kb("VmHWM:") - before) / 1024)


def peak_mb(system: str, n_atoms: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--memory-probe", system, str(n_atoms)],
                         capture_output=True, text=True, check=True, env={**os.environ})  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sizes up to ≈ 2000 atoms, short blocks")
    ap.add_argument("--memory-probe", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe[0], int(args.memory_probe[1]))
        return
    seconds = 0.3 if args.quick else 1.0
    repeats = 3 if args.quick else 7
    limit = 2100 if args.quick else 10**6
    threads = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= numba.config.NUMBA_NUM_THREADS]
    print(f"threads: {threads} (numba pool {numba.config.NUMBA_NUM_THREADS}, {os.cpu_count()} cpus)")
    spreads, speedups = {}, []
    for system, (make, case, sizes) in SYSTEMS.items():
        model = hal_model(case)
        per_atom: dict[int, dict[int, float]] = {}
        for n_atoms in [n for n in sizes if n <= limit]:
            atoms = make(n_atoms)
            calcs = {t: model.calculator(threads=t) for t in threads}
            rounds = [{t: per_atom_us(calcs[t], atoms, seconds) for t in threads} for _ in range(repeats)]
            per_atom[n_atoms] = {t: float(np.median([r[t] for r in rounds])) for t in threads}
            row = ", ".join(f"{t} thr {v:6.1f}" for t, v in per_atom[n_atoms].items())
            ratios = {t: [r[1] / r[t] for r in rounds] for t in threads if t > 1}
            sp = {t: float(np.median(v)) for t, v in ratios.items()}
            if 2 in sp and n_atoms >= 500:
                speedups.append(sp[2])
            mem = peak_mb(system, n_atoms)
            print(f"{system:10s} {n_atoms:6d} atoms | µs/atom {row} | speed-up "
                  + ", ".join(f"{t}: {v:.2f} ({min(ratios[t]):.2f}–{max(ratios[t]):.2f})" for t, v in sp.items())
                  + f" | list build {build_us(model, atoms):5.2f} µs/atom | peak {mem:7.1f} MB"
                  f" = {mem / n_atoms * 1e3:6.1f} kB/atom", flush=True)  # fmt: skip
        ones = [v[1] for v in per_atom.values()]
        spreads[system] = max(ones) / min(ones)
        print(f"{system}: 1-thread µs/atom spread over sizes {spreads[system]:.2f}")
    print(f"per_atom_cost_spread: {max(spreads.values()):.2f}")
    print(f"thread_speedup_2_from_500: {min(speedups) if speedups else float('nan'):.2f}")


if __name__ == "__main__":
    main()
