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

from hal.ace.basis import ACEBasis, FastResult

FORMAT_VERSION = 1


class LinearACE:
    """Linear ACE model: ``basis``, ``coefficients`` (size,), ``e0`` {symbol: eV} per species."""

    def __init__(self, basis: ACEBasis, coefficients: np.ndarray, e0: Mapping[str, float] | None = None) -> None:
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

    def reference_energies(self, atoms: Atoms) -> np.ndarray:
        """E0[z_i] per atom (eV)."""
        return self._e0_by_z[atoms.numbers]

    def evaluate(self, atoms: Atoms) -> FastResult:
        """Energy, forces, virial and site energies (E0 included) of one structure (K = 1)."""
        res = self.basis.evaluate_folded(atoms, self._folded)
        ref = self.reference_energies(atoms)
        res.atom_energies = res.atom_energies + ref
        res.energies = res.energies + ref.sum()
        return res

    def calculator(self, **kwargs):
        """ASE calculator (energy, free_energy, forces, stress, energies)."""
        from hal.calculators import ACECalculator

        return ACECalculator(self, **kwargs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one ``.npz`` file atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        meta = {"format": "hal.LinearACE", "version": FORMAT_VERSION, "e0": self.e0}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, meta_json=np.array(json.dumps(meta)), coefficients=self.coefficients, **self.basis.to_dict())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearACE:
        """Read a model written by ``save``."""
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
        meta = json.loads(str(d.pop("meta_json")))
        if meta.get("format") != "hal.LinearACE" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is not a hal LinearACE model file (version {FORMAT_VERSION})")
        coefficients = d.pop("coefficients")
        return cls(ACEBasis.from_dict(d), coefficients, meta["e0"])

    def __repr__(self) -> str:
        e0 = ", ".join(f"{k}: {v:.4f}" for k, v in self.e0.items())
        return f"LinearACE({self.basis!r}, e0={{{e0}}})"


__all__ = ["LinearACE"]
