"""Steered MD on a Morse chain: the work bookkeeping closes; E_a and the broken bond agree with the
analytic answer of a chain of Morse bonds in series with the spring."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from scipy.optimize import brentq, minimize_scalar

import hal

A, R0, K = 4.0, 1.5, 10.0  # Morse range (1/Å), bond length (Å), spring (eV/Å²)
DE = np.array([3.3, 3.3, 3.0, 3.3, 3.3, 3.3])  # bond 2 (atoms 2–3) is the weak one


class MorseChain(Calculator):
    """Nearest-neighbour Morse bonds V_b = De_b (1 − e^{−a(r − r0)})² along atoms 0, 1, …, n."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        v = np.diff(self.atoms.positions, axis=0)
        r = np.linalg.norm(v, axis=1)
        y = np.exp(-A * (r - R0))
        e = float(np.sum(DE * (1 - y) ** 2))
        dv = (2 * A * DE * (y - y**2))[:, None] * v / r[:, None]  # dV/dr along each bond
        f = np.zeros_like(self.atoms.positions)
        f[:-1] += dv
        f[1:] -= dv
        self.results = {"energy": e, "free_energy": e, "forces": f}


def chain() -> Atoms:
    atoms = Atoms("C7", positions=[[R0 * i, 0, 0] for i in range(7)])
    atoms.center(vacuum=5.0)
    return atoms


def analytic_instability() -> tuple[float, float]:
    """(W*, d0*): stored energy and rest length where the equilibrium branch ends (the fold of d0 as
    the weak bond stretches past its maximum force a·De/2: the spring in series keeps it stable a
    little beyond)."""
    weak = int(np.argmin(DE))
    morse_force = lambda x, de: 2 * A * de * (np.exp(-A * x) - np.exp(-2 * A * x))  # noqa: E731

    def state(xw: float) -> tuple[float, float]:  # (d0, stored energy) with the weak bond stretched by xw
        F = morse_force(xw, DE[weak])
        x = np.array([xw if b == weak else brentq(lambda x, de=de: morse_force(x, de) - F, 0, np.log(2) / A)
                      for b, de in enumerate(DE)])  # fmt: skip
        return float(np.sum(R0 + x) + F / K), float(np.sum(DE * (1 - np.exp(-A * x)) ** 2) + F**2 / (2 * K))

    fold = minimize_scalar(lambda xw: -state(xw)[0], bounds=(np.log(2) / A, 2 * np.log(2) / A), method="bounded",
                           options={"xatol": 1e-10})  # fmt: skip
    d0, energy = state(fold.x)
    return energy, d0


def test_quasi_static_pull_matches_the_analytic_chain():
    w_star, d0_star = analytic_instability()
    res = hal.smd.run(chain(), MorseChain(), pull=(0, 6), k=K, d0_end=6 * R0 + 2.5, quasi_static=True,
                      d0_step=0.01, fmax=1e-4)  # fmt: skip
    assert res.broken_bond == (2, 3)
    assert abs(res.break_d0 - d0_star) < 0.03  # bond length beyond 1.5 × covalent radii: just after the snap
    assert abs(res.d0[res.snap_step] - d0_star) < 0.002  # the snap itself, to the refined step (0.001 Å)
    assert res.activation_energy == pytest.approx(res.work[: res.snap_step + 1].max())  # up to the snap
    assert res.activation_energy == pytest.approx(w_star, rel=0.003)  # W = the stored energy there


def test_quasi_static_refinement_resolves_the_snap():
    """Coarse 0.05 Å steps (an error of up to F·0.05 ≈ 0.3 eV here) refined tenfold around the snap:
    the last minimum before it lies within one fine step of the analytic instability, with its W."""
    w_star, d0_star = analytic_instability()
    res = hal.smd.run(chain(), MorseChain(), pull=(0, 6), k=K, d0_end=6 * R0 + 2.5, quasi_static=True,
                      d0_step=0.05, fmax=1e-4, refine=10)  # fmt: skip
    snap = res.snap_step  # the last minimum before the spring force drops
    assert snap == int(np.argmin(np.diff(res.spring_force)))
    assert res.spring_force[snap + 1] < 0.1 * res.spring_force[snap]
    assert np.diff(res.d0)[snap] == pytest.approx(0.005)
    assert abs(res.d0[snap] - d0_star) < 0.0075
    assert res.work[snap] == pytest.approx(w_star, rel=0.01)


def _pull(velocity: float):
    atoms = hal.smd.prepare(chain(), MorseChain(), temperature_K=10, steps=200, seed=1)
    return hal.smd.run(atoms, MorseChain(), pull=(0, 6), k=K, velocity=velocity, d0_end=6 * R0 + 2.5,
                       timestep_fs=0.5, temperature_K=10, taut_fs=100.0)  # fmt: skip


def test_dynamic_pull_work_closes_and_approaches_the_barrier_when_slow():
    w_star, d0_star = analytic_instability()
    fast, slow = _pull(5.0), _pull(1.0)
    for res in (fast, slow):
        assert res.broken_bond == (2, 3)
        # first law: W = ΔE_pot + ΔE_kin + ΔU_spring − heat added by the thermostat
        balance = sum(x - x[0] for x in (res.energy, res.kinetic, res.spring_energy))
        assert np.abs(res.work - (balance - res.heat)).max() < 0.01 * res.activation_energy
        assert res.heat[-1] < -0.5  # the thermostat took the energy released at the break
    # dissipation: W ≥ the reversible (quasi-static) barrier, more so the faster the pull
    assert 0.98 * w_star < slow.activation_energy < fast.activation_energy
    assert slow.activation_energy == pytest.approx(w_star, rel=0.12)
    assert d0_star - 0.05 < slow.break_d0 < fast.break_d0


class FailingChain(MorseChain):
    """The Morse chain until its 40th evaluation, then an error (a model whose atoms collapse)."""

    calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        FailingChain.calls += 1
        if FailingChain.calls > 40:
            raise ValueError("atoms 2 and 3 coincide")
        super().calculate(atoms, properties, system_changes)


def test_a_failing_calculator_ends_the_pull_when_asked():
    FailingChain.calls = 0
    with pytest.raises(ValueError, match="coincide"):
        hal.smd.run(chain(), FailingChain(), pull=(0, 6), k=K, d0_end=6 * R0 + 1.0)
    FailingChain.calls = 0
    res = hal.smd.run(chain(), FailingChain(), pull=(0, 6), k=K, d0_end=6 * R0 + 1.0, on_error="stop")
    assert "coincide" in res.error and len(res.work) == len(res.d0) == 40  # the steps before the failure
    assert res.activation_energy == res.work.max() > 0


def test_default_pull_is_the_terminal_carbons_and_bad_input():
    from hal.structures import linear_alkane

    hexane = linear_alkane(6)
    i, j = hal.smd.terminal_carbons(hexane)
    assert hexane.get_distance(i, j) == pytest.approx(
        max(hexane.get_distance(a, b) for a in range(6) for b in range(6))
    )
    with pytest.raises(ValueError, match="disjoint"):
        hal.smd.Spring([0, 1], [1, 2], 1.0)
    with pytest.raises(ValueError, match="thermostat"):
        hal.smd.run(chain(), MorseChain(), pull=(0, 6), thermostat="nose")
