"""Labelled datasets for the benchmarks, generated here and cached in benchmarks/data/ (no downloads).

* ``hexane_md(n)``: C6H14 sampled from GFN2-xTB (tblite) Langevin MD at 300, 500 and 800 K
  (0.5 fs steps, one sample every 20 steps after 200 steps of equilibration), labelled with
  GFN2-xTB energy and forces; config_type = "md_<T>K".
* ``cual_emt(n)``: random fcc Cu–Al 32-atom cells labelled with ASE's EMT (``hal.demo.alloy_cells``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import units
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from tqdm import tqdm

DATA = Path(__file__).parent / "data"


def _cached(name: str, make) -> list:
    path = DATA / name
    if path.exists():
        return list(read(path, index=":"))
    DATA.mkdir(exist_ok=True)
    configs = make()
    tmp = path.with_suffix(".tmp.xyz")
    write(tmp, configs)
    tmp.replace(path)
    return configs


def hexane_md(n: int = 1800, seed: int = 0) -> list:
    """n GFN2-xTB-labelled hexane configurations, a third each from 300, 500 and 800 K MD."""

    def make():
        from tblite.ase import TBLite

        from hal.structures import linear_alkane

        out = []
        per_t = -(-n // 3)
        for k, T in enumerate((300, 500, 800)):
            atoms = linear_alkane(6)
            atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
            MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=np.random.default_rng(seed + k))
            dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=T, friction=0.02, rng=np.random.default_rng(seed + k))
            dyn.run(200)
            for _ in tqdm(range(per_t), desc=f"hexane MD {T} K", leave=False):
                dyn.run(20)
                snap = atoms.copy()
                snap.info.update(energy=atoms.get_potential_energy(), config_type=f"md_{T}K")
                snap.arrays["forces"] = atoms.get_forces()
                out.append(snap)
        return out[:n]

    return _cached(f"hexane_md_{n}_{seed}.xyz", make)[:n]


def cual_emt(n: int = 200, seed: int = 0) -> list:
    """n EMT-labelled random fcc Cu–Al cells (32 atoms)."""
    from hal.demo import alloy_cells

    return _cached(f"cual_emt_{n}_{seed}.xyz", lambda: alloy_cells(n, seed=seed))


def labels_to_info(configs: list) -> list:
    """Move labels that extxyz reading put on a SinglePointCalculator into info/arrays."""
    for a in configs:
        if a.calc is not None:
            r = a.calc.results
            a.info.setdefault("energy", r.get("energy"))
            if "forces" in r:
                a.arrays.setdefault("forces", r["forces"])
            if "stress" in r:
                a.info.setdefault("stress", r["stress"])
            a.calc = None
    return configs
