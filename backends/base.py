"""The Backend protocol: labelled structures + one train mask per member → an ensemble committee.

An ensemble is a committee (``evaluate_committee``, see ``hal.uncertainty.CommitteeResult``) of
separately trained members, with the "best" member of Jung et al. (lowest force MAE over all the
data) and an ASE calculator per member. ``hal.CommitteeCalculator`` and ``hal.HALCalculator`` take
it as it is, so σ, HAL dynamics, SMD sampling and the learning loop never see which backend it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from hal.fit.design import read_labels
from hal.uncertainty import CommitteeResult


@runtime_checkable
class Ensemble(Protocol):
    """A trained ensemble (members of one backend)."""

    best: int  # index of the best member

    @property
    def n_members(self) -> int: ...

    def evaluate_committee(self, atoms: Atoms, member_forces: bool = True) -> CommitteeResult: ...

    def member_calculator(self, member: int) -> Calculator: ...

    def save(self, path: str | Path) -> Path: ...


@runtime_checkable
class Backend(Protocol):
    """Turns data and per-member train masks into an ``Ensemble``; loads saved ones."""

    name: str

    def fit(self, data: Sequence[Atoms], train_masks: Sequence[np.ndarray], seed: int = 0) -> Ensemble: ...

    def load(self, path: str | Path) -> Ensemble: ...


class MemberCalculator(Calculator):
    """One member's energy and forces (the paper's SMD runs on the best member) with the ensemble's
    ``sigma`` = standard deviation of the member energies (eV) and ``committee_energies``."""

    implemented_properties = ["energy", "free_energy", "forces", "sigma", "committee_energies"]

    def __init__(self, ensemble: Ensemble, member: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ensemble = ensemble
        self.member = ensemble.best if member is None else int(member)

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if hasattr(self.ensemble, "evaluate_member"):  # one member's forces only
            energies, forces = self.ensemble.evaluate_member(self.atoms, self.member)
        else:
            res = self.ensemble.evaluate_committee(self.atoms, member_forces=True)
            energies, forces = res.member_energies, res.member_forces[self.member]
        e = float(energies[self.member])
        self.results = {"energy": e, "free_energy": e, "forces": forces, "sigma": float(np.std(energies)),
                        "committee_energies": energies}  # fmt: skip


def member_errors(ensemble: Ensemble, data: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    """Per-member energy MAE (eV/atom) and force MAE (eV/Å, per component) over ``data``
    (labels as ``hal.fit.design.read_labels`` finds them)."""
    e_err, f_err, n_f = 0.0, 0.0, 0
    for atoms in data:
        res = ensemble.evaluate_committee(atoms, member_forces=True)
        labels = read_labels(atoms)
        e_err = e_err + np.abs(res.member_energies - labels.energy) / len(atoms)
        f_err = f_err + np.abs(res.member_forces - labels.forces[None]).sum(axis=(1, 2))
        n_f += 3 * len(atoms)
    return np.asarray(e_err) / max(len(data), 1), np.asarray(f_err) / max(n_f, 1)


def check_masks(data: Sequence[Atoms], train_masks: Sequence[np.ndarray]) -> np.ndarray:
    """The masks as a (members, configs) boolean array; each member must train on something."""
    masks = np.asarray(train_masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != len(data):
        raise ValueError(f"train_masks must be (members, {len(data)}) booleans, got shape {masks.shape}")
    if not masks.any(axis=1).all():
        raise ValueError("every member needs at least one training configuration")
    return masks
