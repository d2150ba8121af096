"""Shared fixtures: small bases (fast to build) and random structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from hal import ACEBasis


def random_cluster(symbols: str | list[str], rng: np.random.Generator, dmin: float = 1.0, box: float = 4.0) -> Atoms:
    """Random non-periodic cluster with all distances above dmin (Å)."""
    atoms = Atoms(symbols)
    pos: list[np.ndarray] = []
    while len(pos) < len(atoms):
        p = rng.uniform(0, box, size=3)
        if all(np.linalg.norm(p - q) > dmin for q in pos):
            pos.append(p)
    atoms.positions = np.array(pos)
    return atoms


def labelled(configs: list[Atoms], calculator_factory) -> list[Atoms]:
    """The configurations with energy and forces of a calculator in info/arrays (no calculator attached)."""
    for atoms in configs:
        atoms.calc = calculator_factory()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
    return configs


@pytest.fixture(scope="session")
def basis_ch() -> ACEBasis:
    """C/H basis up to order 4 (all coupling paths exercised), a few hundred functions."""
    return ACEBasis(["C", "H"], order=4, max_degree=[8, 7, 6, 5], r_cut=4.0, pair_degree=4, pair_r_cut=4.5)


@pytest.fixture(scope="session")
def basis_al() -> ACEBasis:
    return ACEBasis(["Al"], order=3, max_degree=[8, 8, 7], r_cut=4.5, r0=2.8, r_in=1.6, pair_degree=5, pair_r_cut=5.0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def benchmark_module(name: str):
    """A script of ``benchmarks/`` as a module (``benchmarks/`` is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
