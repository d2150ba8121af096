"""HAL dynamics: Langevin MD on E_HAL = E − τσ with an adaptive τ, stopped by the uncertainty criterion.

The integrator is ASE's ``LangevinBAOAB`` (friction 1/T_tau) on a ``HALCalculator``, so any
committee works (linear ACE or an NN ensemble). After each step the driver reads σ, the mean and
bias forces and (every ``check_every`` steps) the relative force uncertainty f_i, updates τ and
tests the stopping criteria:

* adaptive τ: τ = 0 for the first ``n_hist`` steps (burn-in), then
  τ = τ_r · Σ_m ‖F̄(t−m)‖ / Σ_m ‖∇σ(t−m)‖ over the last ``n_hist`` steps (HAL paper, Eq. 12, in the
  form of the SPEC: the bias force is τ_r times the typical physical force); or a fixed τ;
* stop when max_i softmax(f)_i > s_tol (default 0.5), or max_i f_i > f_tol when f_tol is given,
  or when two atoms come closer than ``min_distance`` (Å), or after ``steps`` steps.
f_i needs every member's forces (the expensive part of a HAL step); ``check_every`` > 1 evaluates
it on every n-th step only, while σ and ∇σ act on every step. Units: fs, K, eV, Å.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io import write
from ase.md.langevinbaoab import LangevinBAOAB

try:  # ASE ≥ 3.29
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # pragma: no cover
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _thermalize
from numba import njit
from tqdm import tqdm

from hal.ace.neighbours import NeighbourList
from hal.calculators import HALCalculator
from hal.dynamics.montecarlo import GPA, shape_move, swap_move, volume_move
from hal.uncertainty import max_criterion, softmax_criterion

Schedule = float | Callable[[int], float]


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann momenta at temperature_K (K)."""
    _thermalize(atoms, temperature_K=temperature_K, rng=rng)


def _value(x: Schedule, step: int) -> float:
    return float(x(step)) if callable(x) else float(x)


class AdaptiveTau:
    """τ from the last ``n_hist`` norms of the mean force and of ∇σ (burn-in: τ = 0)."""

    def __init__(self, tau_rel: Schedule = 0.1, n_hist: int = 100) -> None:
        if n_hist < 1:
            raise ValueError("n_hist must be >= 1")
        self.tau_rel = tau_rel
        self.n_hist = n_hist
        self.f_mean: deque[float] = deque(maxlen=n_hist)
        self.f_sigma: deque[float] = deque(maxlen=n_hist)
        self._sums = [0.0, 0.0]  # running Σ of both windows, refreshed exactly every n_hist pushes
        self._pushes = 0

    def update(self, step: int, mean_forces: np.ndarray, bias_forces: np.ndarray) -> float:
        """Record this step's force norms and return τ for the next step."""
        return self.push(step, float(np.linalg.norm(mean_forces)), float(np.linalg.norm(bias_forces)))

    def push(self, step: int, mean_force_norm: float, bias_force_norm: float) -> float:
        """``update`` from the norms ‖F̄‖ and ‖∇σ‖ (eV/Å) when they are already known."""
        full = len(self.f_mean) == self.n_hist
        sums = self._sums
        if full:
            sums[0] -= self.f_mean[0]
            sums[1] -= self.f_sigma[0]
        self.f_mean.append(mean_force_norm)
        self.f_sigma.append(bias_force_norm)
        sums[0] += mean_force_norm
        sums[1] += bias_force_norm
        self._pushes += 1
        if self._pushes % self.n_hist == 0:  # no drift of the running sums over long runs
            sums[:] = [math.fsum(self.f_mean), math.fsum(self.f_sigma)]
        if len(self.f_mean) < self.n_hist or sums[1] <= 0:
            return 0.0
        return _value(self.tau_rel, step) * sums[0] / sums[1]


@njit(cache=True)
def _step_norms(p: np.ndarray, inv_m: np.ndarray, F: np.ndarray, G: np.ndarray) -> tuple[float, float, float]:
    """Per-step numbers in one call: Σ p²/m (2 E_kin, eV), ‖F̄‖ and ‖∇σ‖ (eV/Å)."""
    ek = 0.0
    for i in range(p.shape[0]):
        ek += (p[i, 0] * p[i, 0] + p[i, 1] * p[i, 1] + p[i, 2] * p[i, 2]) * inv_m[i]
    f = 0.0
    g = 0.0
    for i in range(F.shape[0]):
        for x in range(3):
            f += F[i, x] * F[i, x]
            g += G[i, x] * G[i, x]
    return ek, math.sqrt(f), math.sqrt(g)


def _pressure(atoms: Atoms, calc: HALCalculator) -> float:
    """Instantaneous pressure (eV/Å³) of the biased energy: virial part + N k_B T / V."""
    return -float(np.mean(calc.results["stress"][:3])) + 2.0 * atoms.get_kinetic_energy() / (3.0 * atoms.get_volume())


def _berendsen(atoms: Atoms, calc: HALCalculator, target_GPa: float, dt_over_tau: float, kappa: float) -> None:
    """Scale the cell toward the target pressure (proportional control, clipped to ±1 % per step)."""
    mu3 = 1.0 - kappa * dt_over_tau * (target_GPa - _pressure(atoms, calc) / GPA)
    atoms.set_cell(atoms.cell * float(np.clip(mu3, 0.97, 1.03)) ** (1.0 / 3.0), scale_atoms=True)


MC_MOVES = {
    "swap": lambda atoms, T, rng, P: swap_move(atoms, T, rng),
    "volume": lambda atoms, T, rng, P: volume_move(atoms, T, P, rng),
    "shape": lambda atoms, T, rng, P: shape_move(atoms, T, rng),
}


@dataclasses.dataclass
class HALRun:
    """Outcome of one HAL trajectory: why and when it stopped, the stopping configuration, traces."""

    stopped: bool
    reason: str  # "criterion", "min_distance" or "max_steps"
    steps: int
    atoms: Atoms  # the configuration at the stop (to be labelled by the oracle)
    trace: dict[str, np.ndarray]  # per step: sigma, tau, temperature, criterion (NaN if not checked),
    #                               f_norm ‖F̄‖, f_sigma_norm ‖∇σ‖ (eV/Å), pressure_GPa (NaN: no cell)


def run_hal(
    atoms: Atoms,
    committee,
    steps: int,
    temperature_K: Schedule = 300.0,
    timestep_fs: float = 1.0,
    friction_fs: float = 100.0,
    tau: float | None = None,
    tau_rel: Schedule = 0.1,
    n_hist: int = 100,
    s_tol: float = 0.5,
    f_tol: float | None = None,
    eps: float = 0.2,
    check_every: int = 1,
    min_distance: float | None = None,
    seed: int | None = 0,
    trajectory: str | Path | None = None,
    trajectory_every: int = 10,
    initialize_velocities: bool = True,
    pressure_GPa: Schedule | None = None,
    barostat_fs: float = 1000.0,
    compressibility_per_GPa: float = 0.01,
    mc_every: int = 0,
    mc_moves: tuple[str, ...] = ("swap",),
    progress: bool = False,
    threads: int | None = None,
    guard: Callable[[Atoms], bool] | None = None,
) -> HALRun:
    """Run HAL-biased Langevin dynamics from ``atoms`` (not modified) until a stopping criterion.

    ``tau`` fixes τ; otherwise τ adapts (``tau_rel``, ``n_hist``). ``temperature_K`` and
    ``tau_rel`` may be functions of the step (ramps). ``friction_fs`` is the thermostat time (fs).
    The trajectory (extxyz) gets every ``trajectory_every``-th frame and the final one, with σ, τ,
    criterion and T in ``info`` and f_i in ``arrays`` when computed.

    ``pressure_GPa`` (a number or a function of the step) switches on a proportional (Berendsen)
    barostat: after each step the cell is scaled by μ, μ³ = 1 − κ (dt/τ_P)(P₀ − P), with P the
    instantaneous pressure of the biased energy (virial + kinetic), κ = ``compressibility_per_GPa``,
    τ_P = ``barostat_fs``. ``mc_every`` > 0 attempts the Monte Carlo moves ``mc_moves`` ("swap",
    "volume" at ``pressure_GPa`` (default 0), "shape") every that many steps, Metropolis on E_HAL
    at the current temperature. ``threads``: evaluation threads of a linear ACE committee
    (default: ``hal.ace.kernels.set_threads`` or NUMBA_NUM_THREADS). ``guard``: a function of the
    structure, called every ``check_every`` steps; True stops the run (reason "guard"), e.g.
    ``hal.bonds.BondGuard`` when a molecule's bond leaves its window or it runs too hot.
    """
    if steps < 0 or check_every < 1 or mc_every < 0:
        raise ValueError("steps and mc_every must be >= 0 and check_every >= 1")
    unknown = set(mc_moves) - set(MC_MOVES)
    if unknown:
        raise ValueError(f"unknown Monte Carlo move(s) {sorted(unknown)}; known: {sorted(MC_MOVES)}")
    if (pressure_GPa is not None or {"volume", "shape"} & set(mc_moves) and mc_every) and not atoms.pbc.all():
        raise ValueError("a barostat or cell moves need a fully periodic cell")
    work = atoms.copy()
    rng = np.random.default_rng(seed)
    calc = HALCalculator(committee, tau=0.0 if tau is None else tau, eps=eps, force_uncertainty=True, threads=threads)
    work.calc = calc
    if initialize_velocities:
        thermalize(work, _value(temperature_K, 0), rng)

    def integrator(T: float) -> LangevinBAOAB:  # (re)built after MC moves: it caches the forces
        # hydrostatic: at constant volume it only makes the friction a scalar exp(−γ dt) instead of
        # the expm of γ·I (the same friction to round-off, a third of the integrator's time)
        return LangevinBAOAB(work, timestep_fs * units.fs, temperature_K=T, T_tau=friction_fs * units.fs, rng=rng,
                             hydrostatic=True)  # fmt: skip

    dyn = integrator(_value(temperature_K, 0))
    adapt = None if tau is not None else AdaptiveTau(tau_rel, n_hist)
    traj = Path(trajectory) if trajectory else None
    if traj is not None and traj.exists():
        traj.unlink()
    trace: dict[str, list[float]] = {
        k: [] for k in ("sigma", "tau", "temperature", "criterion", "f_norm", "f_sigma_norm", "pressure_GPa")
    }
    reason, step = "max_steps", 0
    close = None if not min_distance else NeighbourList(min_distance)  # a Verlet list: µs per step
    score_fn = (lambda f: max_criterion(f)) if f_tol is not None else softmax_criterion
    tol = f_tol if f_tol is not None else s_tol

    def frame(score: float, f: np.ndarray | None) -> None:
        snap = work.copy()
        snap.calc = None
        snap.info.update(step=step, sigma=calc.results["sigma"], tau=calc.results["tau"], criterion=score,
                         temperature=work.get_temperature(), pressure_GPa=trace["pressure_GPa"][-1])  # fmt: skip
        if f is not None:
            snap.arrays["f_i"] = f
        write(traj, snap, format="extxyz", append=True)

    # the instantaneous temperature as ASE defines it (constraints remove degrees of freedom), without
    # its per-call overhead: 2 E_kin = Σ p²/m, masses refreshed after Monte Carlo moves (swaps)
    dof = 3 * len(work) - sum(c.get_removed_dof(work) for c in work.constraints)
    kT_dof = max(dof * units.kB, 1e-300)
    inv_m = 1.0 / work.get_masses()
    no_momenta = np.zeros((len(work), 3))

    bar = tqdm(total=steps, desc="HAL MD", unit="step", disable=not progress, leave=False)
    work.get_forces()  # step 0: forces, σ and f_i at the start
    # a linear ACE committee reports the closest pair, found while listing its neighbours: exact for the
    # structure it evaluated (not after a barostat's rescaling or a Monte Carlo move)
    closest_known = ("min_distance" in calc.results and getattr(committee, "cutoff", 0.0) >= (min_distance or 0.0)
                     and pressure_GPa is None and not mc_every)  # fmt: skip
    T_now = _value(temperature_K, 0)
    for step in range(steps + 1):
        if step > 0:
            T = _value(temperature_K, step)
            if T != T_now:
                dyn.set_temperature(T)
                T_now = T
            dyn.step()
            if pressure_GPa is not None:
                _berendsen(work, calc, _value(pressure_GPa, step), timestep_fs / barostat_fs, compressibility_per_GPa)
            if mc_every and step % mc_every == 0:
                moved = [MC_MOVES[m](work, T_now, rng, _value(pressure_GPa or 0.0, step)) for m in mc_moves]
                if any(moved):
                    dyn = integrator(T_now)
                    inv_m = 1.0 / work.get_masses()
            bar.update(1)
        res = calc.results
        f = res.get("force_uncertainty")
        score = score_fn(f) if f is not None else float("nan")
        twice_kinetic, f_norm, s_norm = _step_norms(work.arrays.get("momenta", no_momenta), inv_m,
                                                    res["mean_forces"], res["bias_forces"])  # fmt: skip
        trace["sigma"].append(res["sigma"])
        trace["tau"].append(res["tau"])
        trace["temperature"].append(twice_kinetic / kT_dof)
        trace["criterion"].append(score)
        trace["f_norm"].append(f_norm)
        trace["f_sigma_norm"].append(s_norm)
        trace["pressure_GPa"].append(_pressure(work, calc) / GPA if "stress" in res else float("nan"))
        if adapt is not None:
            calc.tau = adapt.push(step, f_norm, s_norm)
        calc.force_uncertainty = (step + 1) % check_every == 0
        stop = f is not None and score > tol
        if stop:
            reason = "criterion"
        elif close is not None and (res["min_distance"] if closest_known else close.closest(work)) < min_distance:
            stop, reason = True, "min_distance"
        elif guard is not None and step % check_every == 0 and guard(work):
            stop, reason = True, "guard"
        if traj is not None and (stop or step % trajectory_every == 0 or step == steps):
            frame(score, f)
        if stop:
            break
    bar.close()
    final = work.copy()
    final.calc = None
    return HALRun(
        stopped=reason != "max_steps", reason=reason, steps=step, atoms=final,
        trace={k: np.array(v) for k, v in trace.items()},
    )  # fmt: skip
