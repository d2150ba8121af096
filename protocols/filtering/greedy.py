"""Greedy max-f_i selection from a labelled pool, and random selection from the same start.

One ``Selection`` holds the picked configurations as normal equations (a pick adds its rows: refits
are a Bayesian solve, never a reassembly) and refits a K-member BRR committee after every pick.
The greedy rule evaluates every remaining configuration's committee forces, batched over an
executor, and picks the largest max_i f_i, with ε the mean ‖F̄_i‖ over the remaining pool unless
given (paper II.A: "the mean force magnitude predicted by the mean model").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor

import numpy as np
from ase import Atoms

from hal.ace.basis import ACEBasis
from hal.fit import fit_normal_equations
from hal.fit.design import NormalEquations, Weights, config_rows
from hal.model import LinearACE

BATCH_ATOMS = 2000  # atoms per executor task of the f_i pass


def force_spread(model: LinearACE, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Per atom: the mean member deviation (1/K) Σ_k ‖F_i^k − F̄_i‖ and ‖F̄_i‖ (eV/Å)."""
    res = model.evaluate_committee(atoms, member_forces=True, threads=1)
    dev = np.linalg.norm(res.member_forces - res.forces[None], axis=2).mean(axis=0)
    return dev, np.linalg.norm(res.forces, axis=1)


def _spreads(args: tuple[LinearACE, list[Atoms]]) -> list[tuple[np.ndarray, np.ndarray]]:
    model, configs = args
    return [force_spread(model, a) for a in configs]


def batches(configs: Sequence[Atoms], atoms_per_batch: int = BATCH_ATOMS) -> list[list[int]]:
    """Consecutive index batches of about ``atoms_per_batch`` atoms each."""
    out, cur, n = [], [], 0
    for i, a in enumerate(configs):
        cur.append(i)
        n += len(a)
        if n >= atoms_per_batch:
            out.append(cur)
            cur, n = [], 0
    return out + ([cur] if cur else [])


def max_force_uncertainty(model: LinearACE, configs: Sequence[Atoms], eps: float | None = None,
                          executor: Executor | None = None, eps_per_config: bool = False
                          ) -> tuple[np.ndarray, float]:  # fmt: skip
    """max_i f_i of every configuration, and the ε used: ``eps``, or the mean ‖F̄_i‖ over all of them,
    or (``eps_per_config``) each configuration's own mean ‖F̄_i‖ (then the mean of those is returned)."""
    idx = batches(configs)
    jobs = [(model, [configs[i] for i in b]) for b in idx]
    parts = list(executor.map(_spreads, jobs)) if executor is not None else [_spreads(j) for j in jobs]
    spreads = [s for part in parts for s in part]
    if eps is not None:
        eps_c = [eps] * len(spreads)
    elif eps_per_config:
        eps_c = [float(np.mean(f)) for _, f in spreads]
    else:
        eps_c = [float(np.mean(np.concatenate([f for _, f in spreads])))] * len(spreads)
    fmax = np.array([float(np.max(d / (f + e))) for (d, f), e in zip(spreads, eps_c)])
    return fmax, float(eps) if eps is not None else float(np.mean(eps_c))


class Selection:
    """Configurations picked from ``pool`` so far, their normal equations and the refitted committee."""

    def __init__(self, pool: Sequence[Atoms], basis: ACEBasis, e0: Mapping[str, float], weights: Weights,
                 committee_size: int = 32, seed: int = 0) -> None:  # fmt: skip
        self.pool, self.basis, self.e0, self.weights = pool, basis, dict(e0), weights
        self.committee_size, self.seed = committee_size, seed
        self.picked: list[int] = []
        self.ne = NormalEquations.zeros(basis.size)
        self.n_env = 0

    def add(self, index: int) -> None:
        """Add pool configuration ``index`` (its weighted rows) to the training set."""
        if index in self.picked:
            raise ValueError(f"configuration {index} is already in the training set")
        Psi, y = config_rows(self.basis, self.pool[index], self.e0, self.weights)
        self.ne.add_rows(Psi, y)
        self.picked.append(int(index))
        self.n_env += len(self.pool[index])

    def remaining(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.pool)), self.picked)

    def fit(self) -> LinearACE:
        """BRR committee on the picked configurations."""
        return fit_normal_equations(self.ne, self.basis, self.e0, "brr", self.committee_size, self.seed,
                                    info={"n_configs": len(self.picked)})  # fmt: skip

    def greedy_pick(self, model: LinearACE, eps: float | None = None, executor: Executor | None = None,
                    eps_per_config: bool = False) -> tuple[int, float, float]:  # fmt: skip
        """(pool index of the remaining configuration with the largest max_i f_i, that max f_i, ε)."""
        rest = self.remaining()
        fmax, eps = max_force_uncertainty(model, [self.pool[i] for i in rest], eps, executor, eps_per_config)
        k = int(np.argmax(fmax))
        return int(rest[k]), float(fmax[k]), eps


def random_order(n_pool: int, start: int, seed: int) -> np.ndarray:
    """Pool indices after ``start`` in a random order (seeded): random selection's picks."""
    rest = np.setdiff1d(np.arange(n_pool), [start])
    return np.random.default_rng(seed).permutation(rest)
