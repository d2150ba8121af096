"""ASE calculators: plain (``ACECalculator``), committee and HAL-biased (E − τσ).

The committee and HAL calculators accept any *committee*: an object with
``evaluate_committee(atoms, member_forces) -> CommitteeResult`` (``LinearACE`` or an NN ensemble).
An ``evaluate_bias(atoms, offsets) -> (CommitteeResult, ∇σ, dσ/dstrain)`` method, when present,
gives σ and its gradient without member forces (a linear model: one forward pass and a two-column
backward pass); when it takes ``member_forces=True`` as well, it gives them with the member forces
(a linear model: K more columns in that pass), else f_i steps use ``evaluate_committee``.
Stress is −virial/volume (eV/Å³, Voigt xx yy zz yz xz xy), periodic structures only.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from hal.uncertainty import (
    DEFAULT_EPS,
    committee_sigma,
    relative_force_uncertainty,
    sigma_gradient_from_members,
    sigma_weights,
)


class FastStateCalculator(Calculator):
    """ASE ``Calculator`` whose per-call bookkeeping costs microseconds instead of ASE's ≈ 0.2 ms
    (``allclose`` over every array and two ``Atoms`` copies per call: a third of a hexane MD step).

    The state is positions, numbers, cell and pbc, compared exactly (what the energy depends on);
    ``self.atoms`` is a private snapshot, updated in place while the size and species stay.
    """

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        pairs = (("positions", old.arrays["positions"], atoms.arrays["positions"]),
                 ("numbers", old.arrays["numbers"], atoms.arrays["numbers"]),
                 ("cell", old.cell.array, atoms.cell.array), ("pbc", old.pbc, atoms.pbc))  # fmt: skip
        return [name for name, a, b in pairs if not np.array_equal(a, b)]

    def get_property(self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True):
        if atoms is None or name not in self.implemented_properties:
            return super().get_property(name, atoms, allow_calculation)
        changes = self.check_state(atoms)
        if changes:
            self.results = {}
        if name not in self.results:
            if not allow_calculation:
                return None
            self.calculate(atoms, [name], changes)
        if name not in self.results:
            raise PropertyNotImplementedError(f"{name} not present in this calculation")
        result = self.results[name]
        return result.copy() if isinstance(result, np.ndarray) else result

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        old = self.atoms
        if atoms is None or atoms is old:
            return
        if old is None or len(old) != len(atoms) or not np.array_equal(old.arrays["numbers"], atoms.arrays["numbers"]):
            self.atoms = atoms.copy()
            return
        old.arrays["positions"][:] = atoms.arrays["positions"]
        old.cell.array[:] = atoms.cell.array
        old.pbc[:] = atoms.pbc


def _stress(atoms: Atoms, virial: np.ndarray | None, properties) -> dict:
    if virial is not None:
        return {"stress": -virial / atoms.get_volume()}
    if "stress" in properties:
        raise PropertyNotImplementedError("stress needs a periodic cell")
    return {}


class ACECalculator(FastStateCalculator):
    """Plain ASE calculator of a ``LinearACE`` model: energy, free_energy, forces, stress, energies.
    ``threads``: evaluation threads (default: ``hal.ace.kernels.set_threads`` or NUMBA_NUM_THREADS)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model, threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.threads = threads

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        res = self.model.evaluate(self.atoms, self.threads)
        e = float(res.energies[0])
        self.results = {"energy": e, "free_energy": e, "forces": res.forces[0], "energies": res.atom_energies[0]}
        self.results.update(_stress(self.atoms, None if res.virial is None else res.virial[0], properties))


class CommitteeCalculator(FastStateCalculator):
    """Mean-model calculator that also reports ``committee_energies`` (K,), ``committee_forces``
    (K, N, 3), ``sigma`` (eV) and ``force_uncertainty`` f_i (N,) with regulariser ``eps`` (eV/Å).
    ``threads`` (linear ACE committees): evaluation threads, as for ``ACECalculator``."""

    implemented_properties = [
        "energy", "free_energy", "forces", "stress", "energies",
        "committee_energies", "committee_forces", "sigma", "force_uncertainty",
    ]  # fmt: skip

    def __init__(self, committee, eps: float = DEFAULT_EPS, threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.committee = committee
        self.eps = eps
        self._kw = {} if threads is None else {"threads": threads}

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        res = self.committee.evaluate_committee(self.atoms, member_forces=True, **self._kw)
        self.results = {
            "energy": res.energy,
            "free_energy": res.energy,
            "forces": res.forces,
            "energies": res.atom_energies,
            "committee_energies": res.member_energies,
            "committee_forces": res.member_forces,
            "sigma": committee_sigma(res.member_energies, res.energy),
            "force_uncertainty": relative_force_uncertainty(res.member_forces, res.forces, self.eps),
        }
        self.results.update(_stress(self.atoms, res.virial, properties))


class HALCalculator(FastStateCalculator):
    """Biased calculator: energy E − τσ, forces F̄ + τ∇σ, stress of the biased energy.

    Extra results: ``sigma`` (eV), ``tau``, ``mean_energy``, ``mean_forces``, ``bias_forces``
    (= ∇σ, the force per unit τ, as needed for the adaptive τ), ``min_distance`` when the committee
    reports it (see ``CommitteeResult``) and, when ``force_uncertainty`` is True,
    ``force_uncertainty`` f_i (this needs every member's forces: K more adjoint columns for a linear
    model, whose ∇σ always comes from one extra column). ``tau`` may be changed between calls.
    With a ``reference`` structure R₀, σ is the committee spread of the energy *difference*
    E(R) − E(R₀) (each member's deviation at R₀ subtracted): the uncertainty of a reaction or
    work curve measured from R₀ (e.g. a pull's start), zero at R₀ itself. ``threads``: as for
    ``CommitteeCalculator``.
    """

    implemented_properties = [
        "energy", "free_energy", "forces", "stress", "sigma", "tau",
        "mean_energy", "mean_forces", "bias_forces", "force_uncertainty", "min_distance",
    ]  # fmt: skip

    def __init__(
        self,
        committee,
        tau: float = 0.0,
        eps: float = DEFAULT_EPS,
        force_uncertainty: bool = True,
        reference: Atoms | None = None,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.committee = committee
        self._kw = {} if threads is None else {"threads": threads}
        bias = getattr(committee, "evaluate_bias", None)  # σ and ∇σ without member forces, and with them
        self._bias = bias is not None  #                     when it takes ``member_forces`` (a linear model)
        self._bias_members = self._bias and "member_forces" in inspect.signature(bias).parameters
        self.tau = float(tau)
        self.eps = eps
        self.force_uncertainty = force_uncertainty
        self.offsets = None
        if reference is not None:
            ref = committee.evaluate_committee(reference, member_forces=False, **self._kw)
            self.offsets = ref.member_energies - ref.energy

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        shift = 0.0 if self.offsets is None else self.offsets
        fi = self.force_uncertainty
        fast = self._bias and (self._bias_members or not fi)
        if fast:  # ∇σ from one extra adjoint column; the members' forces (for f_i) from K more
            kw = {"member_forces": True, **self._kw} if fi else self._kw
            res, grad, dvir = self.committee.evaluate_bias(self.atoms, self.offsets, **kw)
        else:
            res = self.committee.evaluate_committee(self.atoms, member_forces=True, **self._kw)
        d = res.member_energies - (shift + res.energy)  # E^k − Ē, less the reference's
        sigma = math.sqrt(float(np.dot(d, d)) / d.size) if d.size else 0.0  # committee_sigma without its checks
        if not fast:
            grad, dvir = sigma_gradient_from_members(res, sigma_weights(d, 0.0, sigma))
        tau = self.tau
        energy = res.energy - tau * sigma
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": res.forces + tau * grad,
            "sigma": sigma,
            "tau": tau,
            "mean_energy": res.energy,
            "mean_forces": res.forces,
            "bias_forces": grad,
        }
        if fi:
            self.results["force_uncertainty"] = relative_force_uncertainty(res.member_forces, res.forces, self.eps)
        if res.min_distance is not None:
            self.results["min_distance"] = res.min_distance
        virial = None if res.virial is None else res.virial + tau * dvir  # −d(E − τσ)/dstrain
        self.results.update(_stress(self.atoms, virial, properties))
