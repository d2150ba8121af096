"""LinearACE: an ACE basis, its coefficients and per-species reference energies, in one file.

``E = Σ_i E0[z_i] + c · B(R)``. Save/load writes a single ``.npz`` holding the basis specification
and its coupling arrays, so the file alone rebuilds the calculator (no recomputation, no drift
between library versions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from hal.ace import kernels
from hal.ace.basis import ACEBasis, FastResult
from hal.uncertainty import CommitteeResult

FORMAT_VERSION = 2  # 2: one shared pair basis with a PACE reppot core, no order-1 functions beside it


class LinearACE:
    """Linear ACE model: ``basis``, ``coefficients`` c̄ (size,), ``e0`` {symbol: eV} per species,
    and optionally a ``committee`` (K × size) of posterior samples with the ``fit_info`` of the fit."""

    def __init__(
        self,
        basis: ACEBasis,
        coefficients: np.ndarray,
        e0: Mapping[str, float] | None = None,
        committee: np.ndarray | None = None,
        fit_info: Mapping | None = None,
    ) -> None:
        c = np.asarray(coefficients, dtype=float)
        if c.shape != (basis.size,):
            raise ValueError(f"coefficients must have shape ({basis.size},), got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("coefficients contain NaN or inf")
        self.basis = basis
        self.coefficients = c
        e0 = dict(e0 or {})
        unknown = set(e0) - set(basis.elements)
        if unknown:
            raise ValueError(f"e0 has element(s) {sorted(unknown)} not in the basis {basis.elements}")
        self.e0 = {el: float(e0.get(el, 0.0)) for el in basis.elements}
        self._e0_by_z = np.zeros(119)
        for el, v in self.e0.items():
            self._e0_by_z[atomic_numbers[el]] = v
        self._folded = basis.fold(c)
        self.committee = None
        if committee is not None:
            committee = np.atleast_2d(np.asarray(committee, dtype=float))
            if committee.shape[1] != basis.size or not np.all(np.isfinite(committee)):
                raise ValueError(f"committee must be finite with {basis.size} columns, got {committee.shape}")
            self.committee = committee
        self.fit_info = dict(fit_info or {})
        self._cfolds = None

    def reference_energies(self, atoms: Atoms) -> np.ndarray:
        """E0[z_i] per atom (eV)."""
        return self._e0_by_z[atoms.numbers]

    def evaluate(self, atoms: Atoms, threads: int | None = None) -> FastResult:
        """Energy, forces, virial and site energies (E0 included) of one structure (K = 1);
        ``threads``: evaluation threads (see ``ACEBasis.evaluate_folded``)."""
        res = self.basis.evaluate_folded(atoms, self._folded, threads)
        ref = self.reference_energies(atoms)
        res.atom_energies = res.atom_energies + ref
        res.energies = res.energies + ref.sum()
        return res

    def calculator(self, **kwargs):
        """ASE calculator (energy, free_energy, forces, stress, energies)."""
        from hal.calculators import ACECalculator

        return ACECalculator(self, **kwargs)

    def committee_calculator(self, **kwargs):
        """ASE calculator with committee energies and forces, σ and f_i (needs a committee)."""
        from hal.calculators import CommitteeCalculator

        return CommitteeCalculator(self, **kwargs)

    @property
    def cutoff(self) -> float:
        """Largest cutoff of the basis (Å): results report ``min_distance`` below it."""
        return self.basis.cutoff

    # ------------------------------------------------------------------ committee interface
    @property
    def committee_size(self) -> int:
        return 0 if self.committee is None else len(self.committee)

    def _committee_folds(self):
        if self.committee is None:
            raise ValueError("this model has no committee (fit it with committee_size > 0)")
        if self._cfolds is None:
            rows = np.vstack([self.coefficients[None, :], self.committee])
            self._cfolds = {k: self.basis.fold(rows, gradient_rows=g) for k, g in (("all", None), ("mean", [0]))}
            dev = self.basis.fold(self.committee - self.coefficients[None, :])  # c^k − c̄: σ's direction per call
            mean = self._cfolds["mean"]  # HAL's two gradient columns: c̄, and the σ direction per call
            self._cfolds["bias"] = (np.hstack([mean.ctil, mean.ctil]), np.concatenate([mean.pcoef, mean.pcoef], axis=3))
            # and with the members' deviations as further columns (f_i's member forces in the same pass), zero
            # columns up to the kernels' padded width: every row of the backward walk then runs as whole vectors
            pad = kernels.wide(len(self.committee) + 2) - (len(self.committee) + 2)
            zc, zp = np.zeros((len(dev.ctil), pad)), np.zeros(mean.pcoef.shape[:3] + (pad,))
            ctil = np.hstack([mean.ctil, mean.ctil, dev.ctil, zc])
            self._cfolds["bias_members"] = (ctil, np.concatenate([mean.pcoef, mean.pcoef, dev.pcoef, zp], axis=3))
            self._cfolds["deviations"] = dev
            self._cfolds["no_shift"] = np.zeros(len(self.committee))
        return self._cfolds

    def evaluate_committee(
        self, atoms: Atoms, member_forces: bool = True, threads: int | None = None
    ) -> CommitteeResult:
        """Mean model and committee members (energies always; member forces/virials on request)."""
        folds = self._committee_folds()
        res = self.basis.evaluate_folded(atoms, folds["all" if member_forces else "mean"], threads, site_energies=1)
        ref = self.reference_energies(atoms)
        E = res.energies + ref.sum()
        vir = res.virial
        return CommitteeResult(
            energy=float(E[0]),
            forces=res.forces[0],
            virial=None if vir is None else vir[0],
            member_energies=E[1:],
            member_forces=res.forces[1:] if member_forces else None,
            member_virials=None if (vir is None or not member_forces) else vir[1:],
            atom_energies=res.atom_energies[0] + ref,
            min_distance=res.min_distance,
        )

    def evaluate_bias(
        self,
        atoms: Atoms,
        offsets: np.ndarray | None = None,
        threads: int | None = None,
        member_forces: bool = False,
    ) -> tuple[CommitteeResult, np.ndarray, np.ndarray | None]:
        """Mean model + member energies, and (∇_r σ, dσ/dstrain), from one forward pass and one
        backward pass with the two columns c̄ and Σ_k w_k (c^k − c̄). ``member_forces``: the members'
        forces and virials too, from K more columns c^k − c̄ in the same backward pass (for f_i; the
        mean and ∇σ are then those of the two-column pass to round-off).
        ``offsets`` (K,): member deviations E^k − Ē subtracted before σ (see ``HALCalculator``)."""
        folds = self._committee_folds()
        shift = folds["no_shift"] if offsets is None else np.asarray(offsets, dtype=float)
        columns = folds["bias_members" if member_forces else "bias"]
        K = len(self.committee)
        E, res = self.basis.evaluate_spread(atoms, self._folded, folds["deviations"], columns, shift, threads)
        ref = self.reference_energies(atoms)
        e0 = float(ref.sum())
        vir = res.virial
        mean = CommitteeResult(
            energy=float(E[0]) + e0,
            forces=res.forces[0],
            virial=None if vir is None else vir[0],
            member_energies=E[1:] + e0,
            member_forces=res.forces[2 : 2 + K] + res.forces[0] if member_forces else None,
            member_virials=vir[2 : 2 + K] + vir[0] if member_forces and vir is not None else None,
            atom_energies=res.atom_energies[0] + ref,
            min_distance=res.min_distance,
        )
        return mean, -res.forces[1], None if vir is None else -vir[1]

    # ------------------------------------------------------------------ persistence
    def pruned(self, tol: float = 0.0) -> LinearACE:
        """The same model on the sub-basis of ACE functions whose coefficients (c̄ and every
        committee member) exceed ``tol`` in magnitude: identical predictions (for ``tol`` = 0),
        faster evaluation of sparse (ARD) fits."""
        n = self.basis.n_ace
        rows = self.coefficients[None] if self.committee is None else np.vstack([self.coefficients, self.committee])
        keep = np.flatnonzero(np.abs(rows[:, :n]).max(axis=0) > tol)
        cols = np.concatenate([keep, np.arange(n, self.basis.size)])
        committee = None if self.committee is None else self.committee[:, cols]
        info = {**self.fit_info, "pruned_from": self.basis.size}
        return LinearACE(self.basis.subset(keep), self.coefficients[cols], self.e0, committee, info)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one ``.npz`` file atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        meta = {"format": "hal.LinearACE", "version": FORMAT_VERSION, "e0": self.e0, "fit_info": self.fit_info}
        extra = {} if self.committee is None else {"committee": self.committee}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp, meta_json=np.array(json.dumps(meta)), coefficients=self.coefficients, **extra, **self.basis.to_dict()
        )
        os.replace(tmp, path)
        return path

    def to_yace(self, path: str | os.PathLike, member: int | None = None) -> Path:
        """Write the model (or committee ``member``) as a PACE .yace file for python-ace and LAMMPS
        ``pair_style pace``: the same energies, forces and stress to round-off (see ``hal.export``)."""
        from hal.export import write_yace

        return write_yace(self, path, member)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearACE:
        """Read a model written by ``save``."""
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
        meta = json.loads(str(d.pop("meta_json")))
        if meta.get("format") != "hal.LinearACE" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is not a hal LinearACE model file (version {FORMAT_VERSION})")
        coefficients = d.pop("coefficients")
        committee = d.pop("committee", None)
        return cls(ACEBasis.from_dict(d), coefficients, meta["e0"], committee, meta.get("fit_info"))

    def __repr__(self) -> str:
        e0 = ", ".join(f"{k}: {v:.4f}" for k, v in self.e0.items())
        return f"LinearACE({self.basis!r}, e0={{{e0}}})"


__all__ = ["LinearACE"]
