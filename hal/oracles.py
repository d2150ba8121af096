"""ASE calculators for reference codes that ASE has none for (the optional ``dft`` extra).

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


__all__ = ["PySCF"]
