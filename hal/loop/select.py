"""Selection rules of the active-learning loop of Jung et al. (Digital Discovery 2024), backend-agnostic.

* ``uq_threshold``: μ + n·s of σ over the first ``n_first`` steps of a trajectory.
* ``screen``: walk the trajectory in order; a candidate (σ above the threshold) is accepted only if it
  differs from every accepted one by ≥ ``min_distance_change`` (Å, spring distance) AND by
  ≥ ``min_energy_change`` (eV; 1 kcal/mol by default); at most ``max_after_break`` after the break.
* ``augment``: copies with uniform noise of ±``amplitude`` Å on every coordinate.
* ``Splits``: per-member train/validation assignments; ``inherit`` carries the best member's earlier
  assignment to every member and splits only the new data at random per member (the paper's
  "inherited" selection), ``random`` re-splits everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from ase import Atoms, units

KCAL_PER_MOL = units.kcal / units.mol  # eV


def uq_threshold(sigma: np.ndarray, n_first: int = 1000, n_std: float = 3.0) -> float:
    """μ + n_std · std of σ over the first ``n_first`` entries (eV)."""
    head = np.asarray(sigma, dtype=float)[:n_first]
    if head.size == 0:
        raise ValueError("no σ values to set a threshold from")
    return float(head.mean() + n_std * head.std())


def screen(
    sigma: np.ndarray,
    distance: np.ndarray,
    energy: np.ndarray,
    threshold: float,
    break_step: int | None = None,
    min_distance_change: float = 0.01,
    min_energy_change: float = KCAL_PER_MOL,
    max_after_break: int = 50,
) -> np.ndarray:
    """Indices of the accepted candidates, in trajectory order (see the module docstring)."""
    sigma, distance, energy = (np.asarray(x, dtype=float) for x in (sigma, distance, energy))
    accepted: list[int] = []
    after = 0
    for i in np.flatnonzero(sigma > threshold):
        if accepted:
            dd = np.abs(distance[accepted] - distance[i])
            de = np.abs(energy[accepted] - energy[i])
            if np.any((dd < min_distance_change) | (de < min_energy_change)):
                continue
        if break_step is not None and i >= break_step:
            if after >= max_after_break:
                continue
            after += 1
        accepted.append(int(i))
    return np.array(accepted, dtype=int)


def augment(
    atoms: Atoms, copies: int = 2, amplitude: float = 0.05, rng: np.random.Generator | None = None
) -> list[Atoms]:
    """``copies`` of ``atoms`` with independent uniform displacements in [−amplitude, amplitude] Å."""
    rng = rng or np.random.default_rng()
    out = []
    for _ in range(copies):
        new = atoms.copy()
        new.calc = None
        new.positions = atoms.positions + rng.uniform(-amplitude, amplitude, size=atoms.positions.shape)
        out.append(new)
    return out


@dataclasses.dataclass
class Splits:
    """Train/validation assignment of every dataset entry for each of ``n_members`` members:
    ``train[m]`` is a boolean mask over the data so far."""

    n_members: int
    validation_fraction: float = 0.2
    seed: int = 0
    train: list[np.ndarray] = dataclasses.field(default_factory=list)

    def _new(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mask = np.ones(n, dtype=bool)
        mask[rng.permutation(n)[: int(round(self.validation_fraction * n))]] = False
        return mask

    def inherit(self, n_total: int, iteration: int, best: int | None = None) -> Splits:
        """Extend the splits to ``n_total`` entries: the old entries keep the assignment of the
        ``best`` member for every member (the paper; ``None``: each member keeps its own); the new
        entries are split at random per member."""
        n_old = len(self.train[0]) if self.train else 0
        if n_total < n_old:
            raise ValueError(f"the dataset shrank from {n_old} to {n_total}")
        rng = np.random.default_rng([self.seed, iteration])
        if not self.train:
            self.train = [np.zeros(0, dtype=bool) for _ in range(self.n_members)]
        old = self.train if best is None else [self.train[best]] * self.n_members
        self.train = [np.concatenate([t, self._new(n_total - n_old, rng)]) for t in old]
        return self

    def random(self, n_total: int, iteration: int) -> Splits:
        """A fresh random split of all ``n_total`` entries for every member."""
        rng = np.random.default_rng([self.seed, iteration])
        self.train = [self._new(n_total, rng) for _ in range(self.n_members)]
        return self

    def indices(self, member: int) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, validation indices) of one member."""
        t = self.train[member]
        return np.flatnonzero(t), np.flatnonzero(~t)


def best_member(force_mae: Sequence[float]) -> int:
    """The member with the lowest validation force MAE (the paper's "best" model)."""
    return int(np.argmin(force_mae))
