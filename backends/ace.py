"""Linear ACE as a backend: each member a Bayesian (BRR) fit on its own training split.

All members share one basis, so the ensemble is a ``LinearACE`` whose coefficients are the members'
mean and whose committee rows are the members: one basis evaluation gives every member's energy and
forces, and HAL's bias comes from the same fast path as a posterior committee's. Every
configuration's design rows are computed once per fit: a member's normal equations are those of
all data minus those of its validation configurations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from hal.ace.basis import ACEBasis
from hal.backends.base import check_masks, member_errors
from hal.fit import assemble_groups, solve
from hal.fit.design import Weights, reference_energies
from hal.model import LinearACE
from hal.uncertainty import CommitteeResult


class ACEEnsemble:
    """Members of one basis as a committee (see the module docstring); ``best`` by force MAE."""

    def __init__(self, model: LinearACE, best: int = 0) -> None:
        if model.committee is None:
            raise ValueError("an ACE ensemble needs the members as the model's committee")
        self.model, self.best = model, int(best)

    @property
    def n_members(self) -> int:
        return self.model.committee_size

    def member(self, member: int) -> LinearACE:
        """One member as a plain model."""
        return LinearACE(self.model.basis, self.model.committee[member], self.model.e0)

    def member_calculator(self, member: int) -> Calculator:
        return self.member(member).calculator()

    def evaluate_committee(self, atoms: Atoms, member_forces: bool = True) -> CommitteeResult:
        return self.model.evaluate_committee(atoms, member_forces)

    def evaluate_bias(self, atoms: Atoms, offsets: np.ndarray | None = None):
        return self.model.evaluate_bias(atoms, offsets)

    def save(self, path: str | Path) -> Path:
        self.model.fit_info["best_member"] = self.best
        return self.model.save(path)


class ACEBackend:
    """Fits ``ACEEnsemble``s on ``basis``; ``e0`` per species (default: least squares on the data)."""

    name = "ace"

    def __init__(self, basis: ACEBasis, e0: Mapping[str, float] | None = None, smoothness: float | None = 2.0,
                 n_workers: int | None = None, weights: Weights | None = None) -> None:  # fmt: skip
        self.basis, self.e0, self.smoothness, self.n_workers = basis, e0, smoothness, n_workers
        self.weights = weights or Weights()

    def fit(self, data: Sequence[Atoms], train_masks: Sequence[np.ndarray], seed: int = 0) -> ACEEnsemble:
        masks = check_masks(data, train_masks)
        e0 = dict(self.e0) if self.e0 is not None else reference_energies(data, self.basis.elements)
        groups = np.vstack([np.ones(len(data), bool), ~masks])
        total, *held_out = assemble_groups(self.basis, data, groups, e0, self.weights, n_workers=self.n_workers,
                                           progress=False)  # fmt: skip
        members = []
        for val in held_out:
            est, scale = solve(total - val, self.basis, "brr", self.smoothness)
            members.append(est.coef_ / scale)
        members = np.array(members)
        info = {"backend": self.name, "n_configs": len(data), "train_sizes": masks.sum(axis=1).tolist()}
        ensemble = ACEEnsemble(LinearACE(self.basis, members.mean(axis=0), e0, committee=members, fit_info=info))
        e_mae, f_mae = member_errors(ensemble, data)
        ensemble.best = int(np.argmin(f_mae))
        ensemble.model.fit_info.update(energy_mae=e_mae.tolist(), force_mae=f_mae.tolist(), best_member=ensemble.best)
        return ensemble

    def load(self, path: str | Path) -> ACEEnsemble:
        model = LinearACE.load(path)
        return ACEEnsemble(model, model.fit_info.get("best_member", 0))
