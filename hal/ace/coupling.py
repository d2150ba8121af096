"""Rotation-invariant coupling of products of real spherical harmonics.

For one-particle labels ``(z, n, l)`` of correlation order ν, the invariant functions are
``Σ_μ C_μ Π_t A_{z_t n_t l_t μ_t}``. C comes from generalised Clebsch–Gordan coefficients (coupling
l_1 ⊗ l_2 → L_2, L_2 ⊗ l_3 → L_3, …, L_ν = 0; one function per intermediate path), transformed from
the complex to our real harmonics. Each function is then written on *monomials* (sorted tuples of
A indices), which sums over the permutations of equal labels; the rank of the path vectors in that
space removes the linearly dependent couplings (an SVD, rank tolerance 1e-10).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from hal.ace.ylm import real_ylm, ylm_norms, ylm_work

RANK_TOL = 1e-10


@functools.cache
def clebsch_gordan(j1: int, m1: int, j2: int, m2: int, J: int, M: int) -> float:
    """⟨j1 m1; j2 m2 | J M⟩ by Racah's formula (Condon–Shortley phase), integer momenta."""
    if m1 + m2 != M or not (abs(j1 - j2) <= J <= j1 + j2):
        return 0.0
    if abs(m1) > j1 or abs(m2) > j2 or abs(M) > J:
        return 0.0
    f = math.factorial
    pre = (2 * J + 1) * f(J + j1 - j2) * f(J - j1 + j2) * f(j1 + j2 - J) / f(j1 + j2 + J + 1)
    pre *= f(J + M) * f(J - M) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    kmin = max(0, j2 - J - m1, j1 - J + m2)
    kmax = min(j1 + j2 - J, j1 - m1, j2 + m2)
    s = 0.0
    for k in range(kmin, kmax + 1):
        s += (-1) ** k / (
            f(k) * f(j1 + j2 - J - k) * f(j1 - m1 - k) * f(j2 + m2 - k) * f(J - j2 + m1 + k) * f(J - j1 - m2 + k)
        )
    return math.sqrt(pre) * s


@functools.cache
def cg_table(j1: int, j2: int, J: int) -> np.ndarray:
    """Array T[m1+j1, m2+j2, M+J] of Clebsch–Gordan coefficients."""
    T = np.zeros((2 * j1 + 1, 2 * j2 + 1, 2 * J + 1))
    for m1 in range(-j1, j1 + 1):
        for m2 in range(-j2, j2 + 1):
            M = m1 + m2
            if abs(M) <= J:
                T[m1 + j1, m2 + j2, M + J] = clebsch_gordan(j1, m1, j2, m2, J, M)
    return T


@functools.cache
def complex_to_real(l: int) -> np.ndarray:
    """Matrix U with Y^complex_{l m} = Σ_μ U[m+l, μ+l] Y^real_{l μ}, fitted on random directions.

    Deriving U numerically against scipy's complex harmonics ties the coupling to the exact phase
    convention of ``real_ylm``; the fit residual is checked.
    """
    from scipy.special import sph_harm_y

    rng = np.random.default_rng(1234 + l)
    pts = rng.normal(size=(8 * (2 * l + 1), 3))
    nlm = (l + 1) ** 2
    Yr = np.empty((len(pts), 2 * l + 1))
    Y = np.empty(nlm)
    dY = np.empty((nlm, 3))
    norms, work = ylm_norms(l), ylm_work(l)
    for k, p in enumerate(pts):
        real_ylm(p, l, norms, work, Y, dY)
        Yr[k] = Y[l * l : nlm]
    r = np.linalg.norm(pts, axis=1)
    theta = np.arccos(pts[:, 2] / r)
    phi = np.arctan2(pts[:, 1], pts[:, 0])
    Yc = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], axis=1)
    U, res, *_ = np.linalg.lstsq(Yr.astype(complex), Yc, rcond=None)
    if np.abs(Yr @ U - Yc).max() > 1e-10:
        raise RuntimeError(f"real/complex harmonics disagree at l={l}")
    return U.T


def coupling_paths(ls: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Intermediate momenta (L_2, …, L_{ν-1}) of the left-to-right coupling to total L = 0."""
    nu = len(ls)
    if nu == 1:
        return [()] if ls[0] == 0 else []
    paths: list[tuple[int, ...]] = []

    def rec(L: int, t: int, acc: tuple[int, ...]) -> None:
        if t == nu - 1:
            if L == ls[-1]:
                paths.append(acc)
            return
        for Ln in range(abs(L - ls[t]), L + ls[t] + 1):
            rec(Ln, t + 1, acc + (Ln,))

    rec(ls[0], 1, ())
    return paths


def invariant_tensors(ls: tuple[int, ...]) -> np.ndarray:
    """Real coupling tensors, shape (n_paths, 2l_1+1, …, 2l_ν+1), for our real harmonics."""
    out = []
    for path in coupling_paths(ls):
        # T[m_1..m_t, M_t] for the complex basis
        T = np.eye(2 * ls[0] + 1)
        L = ls[0]
        Ls = list(path) + [0]
        for t in range(1, len(ls)):
            Ln = Ls[t - 1]
            cg = cg_table(L, ls[t], Ln)  # [M, m_t, M_new]
            T = np.tensordot(T, cg, axes=([T.ndim - 1], [0]))  # [..., m_t, M_new]
            L = Ln
        T = T[..., 0] if len(ls) > 1 else T[:, ls[0]]
        # complex → real: contract each axis with U_l (Y^c = U Y^r)
        for ax, l in enumerate(ls):
            T = np.moveaxis(np.tensordot(T, complex_to_real(l), axes=([ax], [0])), -1, ax)
        re, im = np.abs(T.real).max(), np.abs(T.imag).max()
        T = T.real if re >= im else T.imag
        if min(re, im) > 1e-10 * max(re, im):
            raise RuntimeError(f"coupling for l={ls} is not real")
        out.append(T)
    if not out:
        return np.zeros((0,) + tuple(2 * l + 1 for l in ls))
    return np.stack(out)


def coupled_monomials(
    labels: tuple[tuple[int, int, int], ...], a_index: Callable[[int, int, int, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Independent invariants for sorted one-particle labels ((z, n, l), …).

    ``a_index(z, n, l, mu)`` maps (vectorised over mu) to flat A indices. Returns the monomials
    (n_monomials × ν array of sorted A indices) and a coefficient matrix (n_functions ×
    n_monomials) whose rows are orthonormal.
    """
    ls = tuple(lab[2] for lab in labels)
    nu = len(ls)
    tens = invariant_tensors(ls)
    if len(tens) == 0:
        return np.zeros((0, nu), dtype=np.int64), np.zeros((0, 0))
    flat = tens.reshape(len(tens), -1)
    nz = np.flatnonzero(np.abs(flat).max(axis=0) > 1e-14)
    mus = np.unravel_index(nz, tens.shape[1:])
    cols = np.stack([a_index(z, n, l, mu - l) for (z, n, l), mu in zip(labels, mus)], axis=1)
    cols.sort(axis=1)
    monos, inverse = np.unique(cols, axis=0, return_inverse=True)
    M = np.zeros((len(tens), len(monos)))
    np.add.at(M.T, inverse.ravel(), flat[:, nz].T)
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    rank = int((s > RANK_TOL * max(s[0], 1e-300)).sum())
    coef = vt[:rank]
    # deterministic sign: the largest entry of each row is positive
    signs = np.sign(coef[np.arange(rank), np.argmax(np.abs(coef), axis=1)])
    coef *= signs[:, None]
    coef[np.abs(coef) < 1e-14] = 0.0
    keep = np.abs(coef).max(axis=0) > 0
    return monos[keep].astype(np.int64), coef[:, keep]
