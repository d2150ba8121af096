"""Radial bases of the ACE model (numba kernels + their normalisation).

ACE radials ``R_n(r) = N_n C_n^{(9/2)}(t) (1 - t²)²`` with ``t`` the distance transform
``x(r) = ((1 + r0) / (1 + r))^p`` mapped linearly onto [-1, 1] (t = -1 at r_cut, t = +1 at r_in).
Gegenbauer C^{(9/2)} are orthogonal for the weight (1 - t²)⁴, so the R_n are orthonormal in t on
[x_cut, x_in]; value and slope vanish at both r_cut and r_in, and R_n = 0 outside (r_in, r_cut).

Pair radials ``P_n(r) = N_n Leg_n(t) (1 + t)²``, one family shared by every species pair (its own
r0, transform exponent and cutoff; t = +1 at the smallest r_in of any pair): value and slope vanish
at the pair cutoff. Below each pair's r_in the function continues as PACE's ``reppot`` core,
``P_n(r_in) + P'_n(r_in) h(r)`` with ``h(r) = r_in/(a+1) · (1 − exp(−a (r/r_in − 1)) r_in/r)``:
C¹ at r_in, linear in the coefficients, and for a fitted pair potential V it is
``e0 + B exp(−a (r/r_in − 1)) r_in/r`` with ``B = −V'(r_in) r_in/(a+1)``, ``e0 = V(r_in) − B``.
It rises as 1/r towards r = 0 when V slopes repulsively at r_in (V' < 0); when V' > 0 there it
falls to −∞ instead (an attractive collapse), which no fit to sane data should produce.
Both families are exactly of PACE's ``ACE.jl.base`` form (see ``hal.export``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hal.ace.jit import FASTMATH

ACE_LAMBDA = 4.5
_KMAX = 256
_k = np.arange(_KMAX, dtype=float)
# three-term recurrences without divisions: c_{k+1} = a_k t c_k - b_k c_{k-1}
_GEG_A = 2.0 * (_k + ACE_LAMBDA) / (_k + 1.0)
_GEG_B = (_k + 2.0 * ACE_LAMBDA - 1.0) / (_k + 1.0)
_LEG_A = (2.0 * _k + 1.0) / (_k + 1.0)
_LEG_B = _k / (_k + 1.0)


def transform(r: np.ndarray | float, r0: float, p: float) -> np.ndarray | float:
    """Distance transform x(r) = ((1 + r0)/(1 + r))^p (dimensionless)."""
    return ((1.0 + r0) / (1.0 + np.asarray(r, dtype=float))) ** p


def _unit_norms(poly_t, nmax: int) -> np.ndarray:
    """Constants giving each function poly_t(t)_n unit L² norm in t on [-1, 1] (Gauss–Legendre)."""
    t, w = np.polynomial.legendre.leggauss(200)
    vals = np.empty((nmax, len(t)))
    P, dP = np.empty(nmax), np.empty(nmax)
    for k, tk in enumerate(t):
        poly_t(tk, nmax, np.ones(nmax), P, dP)
        vals[:, k] = P
    return 1.0 / np.sqrt((vals**2) @ w)


def ace_norms(nmax: int) -> np.ndarray:
    """Constants making ∫ R_n R_m dt = δ_nm on [-1, 1] (the R_n are already orthogonal)."""
    return _unit_norms(_ace_t, nmax)


def pair_norms(nmax: int) -> np.ndarray:
    """Constants giving each pair function unit L² norm in t on [-1, 1]."""
    return _unit_norms(_pair_t, nmax)


@njit(cache=True, fastmath=FASTMATH)
def _ace_t(t: float, nmax: int, norms: np.ndarray, R: np.ndarray, dR: np.ndarray) -> None:
    """R_n(t) and dR_n/dt in the t variable."""
    u = 1.0 - t * t
    env = u * u
    denv = -4.0 * t * u
    c_prev = 1.0
    dc_prev = 0.0
    R[0] = norms[0] * env
    dR[0] = norms[0] * denv
    if nmax == 1:
        return
    c = 2.0 * ACE_LAMBDA * t
    dc = 2.0 * ACE_LAMBDA
    R[1] = norms[1] * c * env
    dR[1] = norms[1] * (dc * env + c * denv)
    for k in range(1, nmax - 1):
        a = _GEG_A[k]
        b = _GEG_B[k]
        c_next = a * t * c - b * c_prev
        dc_next = a * (c + t * dc) - b * dc_prev
        c_prev, dc_prev, c, dc = c, dc, c_next, dc_next
        R[k + 1] = norms[k + 1] * c * env
        dR[k + 1] = norms[k + 1] * (dc * env + c * denv)


@njit(cache=True, fastmath=FASTMATH)
def _pair_t(t: float, nmax: int, norms: np.ndarray, P: np.ndarray, dP: np.ndarray) -> None:
    """P_n(t) = N_n Leg_n(t) (1 + t)² and dP_n/dt."""
    env = (1.0 + t) * (1.0 + t)
    denv = 2.0 * (1.0 + t)
    c_prev = 1.0
    dc_prev = 0.0
    P[0] = norms[0] * env
    dP[0] = norms[0] * denv
    if nmax == 1:
        return
    c = t
    dc = 1.0
    P[1] = norms[1] * c * env
    dP[1] = norms[1] * (dc * env + c * denv)
    for k in range(1, nmax - 1):
        a = _LEG_A[k]
        b = _LEG_B[k]
        c_next = a * t * c - b * c_prev
        dc_next = a * (c + t * dc) - b * dc_prev
        c_prev, dc_prev, c, dc = c, dc, c_next, dc_next
        P[k + 1] = norms[k + 1] * c * env
        dP[k + 1] = norms[k + 1] * (dc * env + c * denv)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _xpow(q: float, p: float) -> float:
    if p == 2.0:
        return q * q
    if p == 1.0:
        return q
    return q**p


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _t_of_r(r: float, r0: float, p: float, x_in: float, x_cut: float) -> tuple[float, float]:
    """t ∈ [-1, 1] (t = -1 at x_cut, +1 at x_in) of x(r) = ((1+r0)/(1+r))^p, and dt/dr (1/Å)."""
    x = _xpow((1.0 + r0) / (1.0 + r), p)
    s = 2.0 / (x_in - x_cut)
    return s * (x - x_cut) - 1.0, -s * p * x / (1.0 + r)


@njit(cache=True, fastmath=FASTMATH)
def ace_radial(
    r: float,
    r0: float,
    p: float,
    r_in: float,
    r_cut: float,
    x_in: float,
    x_cut: float,
    nmax: int,
    norms: np.ndarray,
    R: np.ndarray,
    dR: np.ndarray,
) -> bool:
    """Fill R[:nmax], dR[:nmax] (1/Å) at distance r; returns False (and leaves R unset) outside."""
    if r >= r_cut or r <= r_in:
        return False
    t, f = _t_of_r(r, r0, p, x_in, x_cut)
    _ace_t(t, nmax, norms, R, dR)
    for n in range(nmax):
        dR[n] *= f
    return True


@njit(cache=True, fastmath=FASTMATH)
def pair_radial(
    r: float,
    r0: float,
    p: float,
    r_in: float,
    r_cut: float,
    x_in: float,
    x_cut: float,
    core: float,
    nmax: int,
    norms: np.ndarray,
    P: np.ndarray,
    dP: np.ndarray,
) -> bool:
    """Fill P[:nmax], dP[:nmax] at distance r (repulsive core, of exponent ``core``, below r_in)."""
    if r >= r_cut:
        return False
    rr = r if r > r_in else r_in
    t, f = _t_of_r(rr, r0, p, x_in, x_cut)
    _pair_t(t, nmax, norms, P, dP)
    for n in range(nmax):
        dP[n] *= f
    if r < r_in:
        g = math.exp(-core * (r / r_in - 1.0)) * r_in / r
        h = r_in / (core + 1.0) * (1.0 - g)
        dh = g * (core + r_in / r) / (core + 1.0)
        for n in range(nmax):
            P[n] += dP[n] * h
            dP[n] *= dh
    return True
