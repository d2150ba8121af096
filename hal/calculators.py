"""ASE calculators over hal models."""

from __future__ import annotations

from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes


class ACECalculator(Calculator):
    """Plain ASE calculator of a ``LinearACE`` model: energy, free_energy, forces, stress, energies.

    Stress is ``-virial / volume`` (eV/Å³, Voigt xx yy zz yz xz xy) and is only given for periodic
    structures.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        res = self.model.evaluate(self.atoms)
        e = float(res.energies[0])
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": res.forces[0],
            "energies": res.atom_energies[0],
        }
        if res.virial is not None:
            self.results["stress"] = -res.virial[0] / self.atoms.get_volume()
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell")
