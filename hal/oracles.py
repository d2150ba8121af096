"""ASE calculators for reference codes that ASE has none for, and a sturdier tblite.

``TBLiteRetry``: tblite's GFN2-xTB (the embedded molecular oracle) that retries a failed SCF once at a
higher electronic temperature: stretched frames whose restricted SCF does not converge at 300 K
(a bond pulled apart, as HAL and bond-breaking runs produce) mostly do at 3000 K.

``PySCF``: molecular DFT or Hartree–Fock energies and analytic forces from PySCF, e.g. the paper's PEG
level of theory ``PySCF(method="wb97x", basis="6-31g*")`` (ωB97X/6-31G(d)). Units in and out as ASE's:
eV and eV/Å (PySCF works in Hartree and Bohr). An SCF that does not converge raises, which
``hal.loop.Oracle`` records as a failed label.
"""

from __future__ import annotations

from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes


class PySCF(Calculator):
    """PySCF as an ASE calculator: ``method`` "hf" or any PySCF/libxc functional name (e.g. "wb97x",
    "b3lyp", "pbe"), ``basis`` any PySCF basis name, ``charge``, ``spin`` (2S; > 0: unrestricted),
    ``conv_tol`` (Hartree), ``max_cycle``, ``max_memory`` (MB). Molecules only (no periodic cells)."""

    implemented_properties = ["energy", "free_energy", "forces"]
    default_parameters = dict(method="wb97x", basis="6-31g*", charge=0, spin=0, conv_tol=1e-9, max_cycle=100,
                              max_memory=2000)  # fmt: skip

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        from pyscf import dft, gto, scf

        if self.atoms.pbc.any():
            raise ValueError("hal.oracles.PySCF computes molecules only; this structure is periodic")
        p = self.parameters
        mol = gto.M(atom=[(s, tuple(r)) for s, r in zip(self.atoms.get_chemical_symbols(), self.atoms.positions)],
                    unit="Angstrom", basis=p.basis, charge=p.charge, spin=p.spin, verbose=0,
                    max_memory=p.max_memory)  # fmt: skip
        method = str(p.method).lower()
        if method in ("hf", "rhf", "uhf"):
            mf = scf.RHF(mol) if p.spin == 0 else scf.UHF(mol)
        else:
            mf = dft.RKS(mol) if p.spin == 0 else dft.UKS(mol)
            mf.xc = method
        mf.conv_tol, mf.max_cycle = p.conv_tol, p.max_cycle
        energy = mf.kernel()
        if not mf.converged:
            raise RuntimeError(f"PySCF {method}/{p.basis}: the SCF did not converge in {p.max_cycle} cycles")
        gradient = mf.nuc_grad_method().kernel()  # Hartree/Bohr
        self.results["energy"] = self.results["free_energy"] = float(energy) * units.Hartree
        self.results["forces"] = -gradient * (units.Hartree / units.Bohr)


class TBLiteRetry(Calculator):
    """tblite (``tblite.ase.TBLite``, keyword arguments passed on; GFN2-xTB, quiet by default) that, when an
    SCF fails, computes the structure again at ``retry_temperature_K`` (the Fermi smearing, K) before giving
    up. ``results["electronic_temperature"]`` says which temperature the labels are at; a retried label is
    a slightly different level of theory, which is why it is recorded."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "dipole", "charges"]

    def __init__(self, retry_temperature_K: float = 3000.0, **kwargs) -> None:
        super().__init__()
        from tblite.ase import TBLite

        self._kwargs = {"method": "GFN2-xTB", "verbosity": 0, **kwargs}
        self.retry_temperature_K = float(retry_temperature_K)
        self._main = TBLite(**self._kwargs)
        self.retries = 0

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        from ase.calculators.calculator import CalculationFailed
        from tblite.ase import TBLite

        super().calculate(atoms, properties, system_changes)
        try:
            self._main.calculate(self.atoms, properties, system_changes)  # its SCF guess carries over in MD
            calc, temperature = self._main, self._main.parameters.electronic_temperature
        except CalculationFailed:
            self._main.reset()  # the failed SCF must not seed the next structure
            calc = TBLite(**{**self._kwargs, "electronic_temperature": self.retry_temperature_K})
            calc.calculate(self.atoms, properties, all_changes)  # a second failure propagates
            temperature = self.retry_temperature_K
            self.retries += 1
        self.results = {**calc.results, "electronic_temperature": float(temperature)}


__all__ = ["PySCF", "TBLiteRetry"]
