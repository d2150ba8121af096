"""Reference pulls of the hexane study with the oracle (tblite GFN2-xTB), cached in the run directory.

Per (chain length n, pulling velocity, seed): the paper's preparation (relax, then 2000 steps of
Berendsen NVT at 10 K with seed-drawn velocities) → ``reference/C{n}-s{seed}-start.xyz`` (positions
and momenta: model pulls start from the very same state, so model and reference are paired);
the pull → ``reference/C{n}-v{v}-s{seed}.npz`` (work curve, energies, σ, break) and ``….xyz``
(every ``frame_every``-th step labelled with the oracle's energy and forces: the "full reference
trajectory" baseline's data and the unseen test set). A quasi-static pull (minimised at each d0)
gives the noise-free work curve. Units: eV, Å, Å/ps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from threadpoolctl import threadpool_limits

from hal.dynamics import smd
from hal.structures import linear_alkane


def oracle_calculator():
    """GFN2-xTB through tblite's ASE calculator (spin-restricted, quiet)."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


@dataclasses.dataclass
class Pull:
    """What the study keeps of one pull: per-step d0, d, work, model energy and σ (eV, Å)."""

    d0: np.ndarray
    distance: np.ndarray
    work: np.ndarray
    energy: np.ndarray
    sigma: np.ndarray | None
    break_d0: float
    broken_bond: tuple[int, int] | None
    wall_s: float = 0.0
    snap_step: int = -1  # quasi-static: the last minimum before the snap (-1: none, or a dynamic pull)

    @property
    def activation_energy(self) -> float:
        """E_a = max W (eV), up to the snap for a quasi-static pull (``smd.SMDResult.activation_energy``)."""
        return float(np.max(self.work[: None if self.snap_step < 0 else self.snap_step + 1]))

    @classmethod
    def from_result(cls, res: smd.SMDResult, wall_s: float = 0.0) -> Pull:
        return cls(res.d0, res.distance, res.work, res.energy, res.sigma,
                   np.nan if res.break_d0 is None else res.break_d0, res.broken_bond, wall_s,
                   -1 if res.snap_step is None else res.snap_step)  # fmt: skip

    def save(self, path: Path) -> None:
        arrays = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        arrays["broken_bond"] = np.array(self.broken_bond if self.broken_bond else (-1, -1))
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Pull:
        z = np.load(path)
        bond = tuple(int(i) for i in z["broken_bond"])
        return cls(z["d0"], z["distance"], z["work"], z["energy"], z["sigma"] if "sigma" in z else None,
                   float(z["break_d0"]), None if bond[0] < 0 else bond, float(z["wall_s"]),
                   int(z["snap_step"]) if "snap_step" in z else -1)  # fmt: skip


@dataclasses.dataclass
class PullSettings:
    """The pull of Jung et al.: k (eV/Å²), velocity (Å/ps), 3.5 Å of stretch, 0.5 fs, Berendsen 10 K."""

    k: float = 10.0
    velocity: float = 1.0
    stretch: float = 3.5
    timestep_fs: float = 0.5
    temperature_K: float = 10.0
    prepare_steps: int = 2000
    frame_every: int = 10

    def kwargs(self, start: Atoms) -> dict:
        """Keyword arguments of ``smd.run`` for a pull from ``start`` (terminal carbons)."""
        i, j = smd.terminal_carbons(start)
        d = start.get_distance(i, j)
        return {"pull": (i, j), "k": self.k, "velocity": self.velocity, "d0_start": d, "d0_end": d + self.stretch,
                "timestep_fs": self.timestep_fs, "temperature_K": self.temperature_K}  # fmt: skip


def _name(n_carbon: int, seed: int, velocity: float | None = None) -> str:
    return f"C{n_carbon}-s{seed}" if velocity is None else f"C{n_carbon}-v{velocity:g}-s{seed}"


def reference_path(run_dir: Path, n_carbon: int, seed: int, velocity: float, ext: str) -> Path:
    """Where the oracle's pull of this seed at ``velocity`` (Å/ps) is cached: its ``npz`` record or ``xyz`` frames
    (the name is built whole, as ``with_suffix`` would cut ``C6-v0.25-s1`` at its first dot)."""
    return Path(run_dir) / "reference" / f"{_name(n_carbon, seed, velocity)}.{ext}"


def start_state(run_dir: Path, n_carbon: int, seed: int, settings: PullSettings) -> Atoms:
    """The relaxed, 10 K-equilibrated chain of this seed (oracle), with momenta; cached."""
    path = Path(run_dir) / "reference" / f"{_name(n_carbon, seed)}-start.xyz"
    if path.exists():
        return read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(1):
        atoms = smd.prepare(linear_alkane(n_carbon), oracle_calculator(), settings.temperature_K,
                            settings.prepare_steps, settings.timestep_fs, seed=seed)  # fmt: skip
    tmp = path.with_name(path.stem + ".tmp.xyz")
    write(tmp, atoms, format="extxyz")
    tmp.replace(path)
    return atoms


def reference_pull(run_dir: Path, n_carbon: int, seed: int, settings: PullSettings) -> Pull:
    """The oracle's pull of this seed (cached): ``Pull`` + labelled frames in ``….xyz``."""
    npz, xyz = (reference_path(run_dir, n_carbon, seed, settings.velocity, ext) for ext in ("npz", "xyz"))
    if npz.exists():
        return Pull.load(npz)
    start = start_state(run_dir, n_carbon, seed, settings)
    t0 = time.perf_counter()
    tmp = reference_path(run_dir, n_carbon, seed, settings.velocity, "tmp.xyz")
    with threadpool_limits(1):
        res = smd.run(start, oracle_calculator(), seed=seed, trajectory=tmp, trajectory_every=settings.frame_every,
                      **settings.kwargs(start))  # fmt: skip
    tmp.replace(xyz)
    pull = Pull.from_result(res, time.perf_counter() - t0)
    pull.save(npz)
    return pull


def reference_frames(run_dir: Path, n_carbon: int, seed: int, settings: PullSettings) -> list[Atoms]:
    """The oracle-labelled frames of a reference pull (energy and forces in info/arrays)."""
    reference_pull(run_dir, n_carbon, seed, settings)
    frames = _labelled(read(reference_path(run_dir, n_carbon, seed, settings.velocity, "xyz"), index=":"))
    for a in frames:
        a.info["config_type"] = "smd_reference"
    return frames


QUASI_STATIC = {"d0_step": 0.02, "fmax": 1e-3}  # Å, eV/Å: every quasi-static pull of the study (model or oracle)


def quasi_static_run(start: Atoms, calculator, settings: PullSettings) -> smd.SMDResult:
    """The quasi-static pull of the study from ``start`` (FIRE to 1e-3 eV/Å every 0.02 Å, the snap
    refined tenfold); a calculator that fails ends it (``on_error="stop"``)."""
    with threadpool_limits(1):
        return smd.run(start, calculator, quasi_static=True, on_error="stop", **QUASI_STATIC, **settings.kwargs(start))


def quasi_static_pull(run_dir: Path, n_carbon: int, settings: PullSettings) -> Pull:
    """The oracle's quasi-static work curve from the relaxed chain of seed 0 (cached)."""
    path = Path(run_dir) / "reference" / f"C{n_carbon}-quasistatic-fmax{QUASI_STATIC['fmax']:g}-reference.npz"
    if path.exists():
        return Pull.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = start_state(run_dir, n_carbon, 0, settings)
    pull = Pull.from_result(quasi_static_run(start, oracle_calculator(), settings))
    pull.save(path)
    return pull


def reference_pulls(run_dir: Path, n_carbon: int, seeds: Sequence[int], settings: PullSettings,
                    executor=None) -> list[Pull]:  # fmt: skip
    """Reference pulls for several seeds, in parallel on ``executor`` when given."""
    if executor is None:
        return [reference_pull(run_dir, n_carbon, s, settings) for s in seeds]
    futures = [executor.submit(reference_pull, run_dir, n_carbon, s, settings) for s in seeds]
    return [f.result() for f in futures]


def md_dataset(run_dir: Path, n: int, n_carbon: int = 6, temperature_K: float = 500.0, every: int = 10,
               timestep_fs: float = 0.5, seed: int = 0) -> list[Atoms]:  # fmt: skip
    """``n`` oracle-labelled frames of NVT (Langevin) MD, one every ``every`` steps after 1000 steps of
    equilibration, from the relaxed chain (the paper's 500 K initial data); cached."""
    path = Path(run_dir) / "reference" / f"C{n_carbon}-md{temperature_K:g}K-n{n}-e{every}-s{seed}.xyz"
    if not path.exists():
        from ase import units
        from ase.md.langevin import Langevin
        from tqdm import tqdm

        from hal.dynamics.hal import thermalize

        atoms = start_state(run_dir, n_carbon, 0, PullSettings())
        atoms.calc = oracle_calculator()
        rng = np.random.default_rng(seed)
        thermalize(atoms, temperature_K, rng)
        dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.01, fixcm=False, rng=rng)
        frames = []
        with threadpool_limits(1):
            dyn.run(1000)
            for _ in tqdm(range(n), desc=f"oracle MD {temperature_K:g} K", unit="frame", leave=False):
                dyn.run(every)
                frame = atoms.copy()
                frame.calc = None
                frame.info.update(energy=atoms.get_potential_energy(), config_type=f"md_{temperature_K:g}K")
                frame.arrays["forces"] = atoms.get_forces()
                frame.set_momenta(None)
                frames.append(frame)
        tmp = path.with_name(path.stem + ".tmp.xyz")
        write(tmp, frames, format="extxyz")
        tmp.replace(path)
    return _labelled(read(path, index=":"))


def _labelled(frames: list[Atoms]) -> list[Atoms]:
    """extxyz puts labels on a SinglePointCalculator; keep them as plain labels in info/arrays."""
    for a in frames:
        if a.calc is not None:
            a.info["energy"] = a.calc.results["energy"]
            a.arrays["forces"] = a.calc.results["forces"]
            a.calc = None
    return frames
