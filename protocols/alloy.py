"""Alloy protocol: HAL on a random fcc binary alloy with ASE's EMT as the embedded oracle.

The general protocol (``hal.protocols.hal``) with generated structures and EMT: its stages, basis and
fit tables. Initial data: ``n_initial`` fcc cells (``supercell``³ cubic cells, 32 atoms by default) with random
composition, a lattice constant drawn from ``lattice_constant`` (Å) and a rattle, labelled by EMT.
Then the ``[[stages]]`` run in order on one learner (default: a solid at 800 K with swap and cell
Monte Carlo, then a liquid at 3000 K under the barostat at 0.1 GPa), each until a HAL trajectory runs
``n_stable`` steps without triggering or ``max_oracle_calls`` labels are made. Last, an ARD refit
on all labels for each α' in ``final.ard_thresholds`` (HAL paper, Table II): basis size, µs/atom,
fit time and errors on held-out solid and liquid EMT MD samples → ``ard_sweep.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.data import atomic_numbers
from ase.io import read, write
from ase.md.langevin import Langevin
from tqdm import tqdm

from hal.ace.basis import ACEBasis
from hal.config import ConfigError, Field, at_least, between, element, non_negative, positive
from hal.dynamics.hal import thermalize
from hal.fit import fit
from hal.fit.metrics import errors
from hal.fit_config import BASIS, check_basis
from hal.loop import Oracle
from hal.protocols import hal as general

ORACLES = {"emt": EMT}

STAGE = {**general.STAGE, "min_distance": Field(float, 1.6, check=non_negative)}

SCHEMA = {
    "protocol": Field(str, "alloy", choices=("alloy",)),
    "run_dir": Field(str, "runs/alloy"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "system": {
        "elements": Field(list, ["Cu", "Al"], item=str, check=element),
        "n_initial": Field(int, 10, check=at_least(1)),
        "supercell": Field(int, 2, check=at_least(1)),
        "lattice_constant": Field(list, [3.7, 4.1], item=float, check=positive),
        "rattle": Field(float, 0.1, check=non_negative),
        "n_walkers": Field(int, 4, check=at_least(1)),
    },
    "basis": {**BASIS, "pair_degree": Field(int, 8, check=between(0, 20))},
    "fit": general.FIT,
    "oracle": {
        "calculator": Field(str, "emt", choices=tuple(ORACLES)),
        "timeout_s": Field(float, 120.0, check=positive),
    },
    "stages": [STAGE],
    "final": {
        "ard_thresholds": Field(list, [1e2, 1e3, 1e4, 1e5], item=float, check=positive),
        "n_test": Field(int, 20, check=at_least(1)),
        "solid_K": Field(float, 800.0, check=positive),
        "liquid_K": Field(float, 3000.0, check=positive),
    },
}


def random_cells(n: int, elements: list[str], supercell: int, a_range: list[float], rattle: float,
                 rng: np.random.Generator) -> list[Atoms]:  # fmt: skip
    """n fcc cells (supercell³ cubic cells) of random composition and lattice constant (Å), rattled."""
    out = []
    for _ in range(n):
        atoms = bulk(elements[0], "fcc", a=rng.uniform(*a_range), cubic=True).repeat(supercell)
        atoms.numbers = rng.choice([atomic_numbers[e] for e in elements], size=len(atoms))
        atoms.rattle(rattle, rng=rng)
        out.append(atoms)
    return out


def md_samples(start: Atoms, n: int, temperature_K: float, seed: int, every: int = 100, burn_in: int = 1000,
               config_type: str = "md") -> list[Atoms]:  # fmt: skip
    """n EMT-labelled frames, ``every`` steps apart, of Langevin MD (2 fs; 1 fs above 1500 K) at
    fixed cell after ``burn_in`` steps: held-out test data and the plain-MD baseline."""
    atoms = start.copy()
    atoms.calc = EMT()
    rng = np.random.default_rng(seed)
    thermalize(atoms, temperature_K, rng)
    dt = 1.0 if temperature_K > 1500 else 2.0
    dyn = Langevin(atoms, dt * units.fs, temperature_K=temperature_K, friction=0.01, fixcm=False, rng=rng)
    dyn.run(burn_in)
    out = []
    for _ in range(n):
        dyn.run(every)
        frame = atoms.copy()
        frame.info.update(energy=atoms.get_potential_energy(), stress=atoms.get_stress(), config_type=config_type)
        frame.arrays["forces"] = atoms.get_forces()
        out.append(frame)
    return out


def held_out_set(config: dict, seed: int) -> list[Atoms]:
    """Held-out solid and liquid EMT MD samples (config_type "solid" / "liquid")."""
    s, f = config["system"], config["final"]
    rng = np.random.default_rng(seed)
    solid, liquid = random_cells(2, s["elements"], s["supercell"], s["lattice_constant"], 0.0, rng)
    n = f["n_test"]
    return (md_samples(solid, n, f["solid_K"], seed, config_type="solid")
            + md_samples(liquid, n, f["liquid_K"], seed + 1, config_type="liquid"))  # fmt: skip


def basis_of(config: dict) -> ACEBasis:
    return general.basis_of(config["basis"], config["system"]["elements"])


fit_options = general.fit_options


def microseconds_per_atom(model, atoms: Atoms, repeats: int = 20) -> float:
    """Best-of-repeats time of energy + forces (µs per atom)."""
    model.evaluate(atoms)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.evaluate(atoms)
        best = min(best, time.perf_counter() - t0)
    return best / len(atoms) * 1e6


def ard_sweep(data: list[Atoms], test: list[Atoms], basis: ACEBasis, thresholds: list[float],
              options: dict, progress: bool = False) -> list[dict]:  # fmt: skip
    """BRR and one ARD fit per α' on ``data``: size, speed, fit time, train and test errors."""
    rows = []
    fits = [("brr", None)] + [("ard", t) for t in thresholds]
    for solver, threshold in tqdm(fits, desc="final refits", disable=not progress):
        opts = {**options, "solver": solver, "committee_size": 0}
        if threshold is not None:
            opts["ard_threshold"] = threshold
        t0 = time.perf_counter()
        model = fit(data, basis, progress=False, **opts).pruned()
        row = {"solver": solver, "alpha_prime": threshold, "size": model.basis.size,
               "fit_s": time.perf_counter() - t0, "us_per_atom": microseconds_per_atom(model, test[0])}  # fmt: skip
        row["train"] = errors(model, data)["all"]
        row["test"] = errors(model, test)
        rows.append(row)
    return rows


def format_sweep(rows: list[dict]) -> str:
    """Markdown table of ``ard_sweep`` rows (E in meV/atom, F in eV/Å)."""
    head = "| solver | α' | functions | µs/atom | fit s | train E | train F | solid E | solid F | liquid E | liquid F |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        test = r["test"]
        cells = [f"{test.get(p, {}).get('E_rmse', np.nan):.2f} | {test.get(p, {}).get('F_rmse', np.nan):.3f}"
                 for p in ("solid", "liquid")]  # fmt: skip
        alpha = "–" if r["alpha_prime"] is None else f"{r['alpha_prime']:.0e}"
        train = f"{r['train']['E_rmse']:.2f} | {r['train']['F_rmse']:.3f}"
        lines.append(f"| {r['solver']} | {alpha} | {r['size']} | {r['us_per_atom']:.1f} | {r['fit_s']:.1f} | "
                     f"{train} | {cells[0]} | {cells[1]} |")  # fmt: skip
    return "\n".join(lines) + (
        "\n\nRMSEs: E in meV/atom, F in eV/Å (force components); µs/atom: energy + forces of a 32-atom cell on the "
        "pruned model. Training data include HAL's close-contact configurations (high energies and forces), held-out "
        "data are EMT MD samples.\n"
    )


def check(config: dict) -> None:
    """What the schema cannot say: raises ``ConfigError`` naming the key."""
    general.check_stages(config)
    check_basis(config["basis"])
    s = config["system"]
    if len(s["elements"]) != 2 or len(set(s["elements"])) != 2:
        raise ConfigError(f"system.elements: a binary alloy needs two distinct elements, got {s['elements']}")
    if len(s["lattice_constant"]) != 2 or s["n_walkers"] > s["n_initial"]:
        raise ConfigError("system: lattice_constant needs [min, max] and n_walkers <= n_initial")
    basis_of(config)


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) the protocol in ``run_dir``; returns a summary per stage and the sweep."""
    check(config)
    run_dir = Path(run_dir)
    s = config["system"]
    rng = np.random.default_rng(config["seed"])
    initial = random_cells(s["n_initial"], s["elements"], s["supercell"], s["lattice_constant"], s["rattle"], rng)
    starts = initial[: s["n_walkers"]]
    test_path = run_dir / "test.xyz"
    if not test_path.exists():  # held-out data, written once (atomically) and reused on resume
        tmp = run_dir / "test.tmp.xyz"
        run_dir.mkdir(parents=True, exist_ok=True)
        write(tmp, held_out_set(config, config["seed"] + 1000))
        tmp.replace(test_path)
    oracle = Oracle(ORACLES[config["oracle"]["calculator"]], timeout_s=config["oracle"]["timeout_s"])
    basis = basis_of(config)
    summary, learner = general.run_stages(config, run_dir, basis, oracle, starts, initial, progress)
    sweep_path = run_dir / "ard_sweep.md"
    if not sweep_path.exists():
        data = learner.store.labelled()
        rows = ard_sweep(data, read(test_path, ":"), basis, config["final"]["ard_thresholds"], fit_options(config),
                         progress)  # fmt: skip
        sweep_path.write_text(format_sweep(rows))
        learner.log("sweep", rows=rows)
    summary["ard_sweep"] = sweep_path.read_text()
    return summary
