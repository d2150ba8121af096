"""Real spherical harmonics Y_lm(r̂) and their gradients with respect to r (numba).

Layout: index ``l*l + l + m`` for -l ≤ m ≤ l. Orthonormal on the sphere. The phase convention
is whatever this recursion gives; the coupling coefficients are derived against it numerically
(``coupling.complex_to_real``), so no convention has to be kept in step by hand.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def ylm_norms(lmax: int) -> np.ndarray:
    """Normalisation sqrt((2l+1)/4π (l-m)!/(l+m)!) (× √2 for m > 0), indexed [l, m ≥ 0]."""
    out = np.zeros((lmax + 1, lmax + 1))
    for l in range(lmax + 1):
        for m in range(l + 1):
            v = (2 * l + 1) / (4.0 * math.pi) * math.factorial(l - m) / math.factorial(l + m)
            out[l, m] = math.sqrt(v) * (math.sqrt(2.0) if m > 0 else 1.0)
    return out


def ylm_work(lmax: int) -> np.ndarray:
    """Scratch buffer for ``real_ylm`` (allocate once, reuse for every call)."""
    return np.zeros((5, lmax + 1, lmax + 1))


@njit(cache=True, fastmath=True)
def real_ylm(
    rvec: np.ndarray, lmax: int, norms: np.ndarray, work: np.ndarray, Y: np.ndarray, dY: np.ndarray
) -> None:
    """Fill Y[(lmax+1)²] with Y_lm(r/|r|) and dY[(lmax+1)², 3] with ∇_r Y_lm (1/Å).

    ``norms`` from ``ylm_norms(lmax)``, ``work`` from ``ylm_work(lmax)``.
    """
    r = math.sqrt(rvec[0] ** 2 + rvec[1] ** 2 + rvec[2] ** 2)
    x = rvec[0] / r
    y = rvec[1] / r
    z = rvec[2] / r
    L1 = lmax + 1
    # C_m + i S_m = (x + i y)^m and their x/y derivatives
    C = work[0, 0]
    S = work[0, 1]
    C[0] = 1.0
    S[0] = 0.0
    for m in range(1, L1):
        C[m] = x * C[m - 1] - y * S[m - 1]
        S[m] = x * S[m - 1] + y * C[m - 1]
    # Q_l^m(z, r²) modified associated Legendre, derivatives w.r.t. z and r² (r² = 1 on the sphere)
    Q = work[1]
    Qz = work[2]
    Qr = work[3]
    dfac = 1.0
    for m in range(L1):
        if m > 0:
            dfac *= -(2 * m - 1)
        Q[m, m] = dfac
        Qz[m, m] = 0.0
        Qr[m, m] = 0.0
        if m + 1 < L1:
            Q[m + 1, m] = (2 * m + 1) * z * Q[m, m]
            Qz[m + 1, m] = (2 * m + 1) * Q[m, m]
            Qr[m + 1, m] = 0.0
        for l in range(m + 2, L1):
            a = 2 * l - 1
            b = l + m - 1
            inv = 1.0 / (l - m)
            Q[l, m] = (a * z * Q[l - 1, m] - b * Q[l - 2, m]) * inv
            Qz[l, m] = (a * (Q[l - 1, m] + z * Qz[l - 1, m]) - b * Qz[l - 2, m]) * inv
            Qr[l, m] = (a * z * Qr[l - 1, m] - b * (Q[l - 2, m] + Qr[l - 2, m])) * inv
    for l in range(L1):
        base = l * l + l
        for m in range(l + 1):
            nrm = norms[l, m]
            q = Q[l, m]
            qz = Qz[l, m]
            qr = Qr[l, m]
            for sgn in range(2):
                if sgn == 1 and m == 0:
                    break
                if sgn == 0:
                    f = C[m]
                    fx = m * C[m - 1] if m > 0 else 0.0
                    fy = -m * S[m - 1] if m > 0 else 0.0
                    idx = base + m
                else:
                    f = S[m]
                    fx = m * S[m - 1]
                    fy = m * C[m - 1]
                    idx = base - m
                val = nrm * q * f
                gx = nrm * (2.0 * x * qr * f + q * fx)
                gy = nrm * (2.0 * y * qr * f + q * fy)
                gz = nrm * (qz + 2.0 * z * qr) * f
                # S is homogeneous of degree l: ∇_r Y(r̂) = (∇S(r̂) - l S(r̂) r̂) / r
                Y[idx] = val
                dY[idx, 0] = (gx - l * val * x) / r
                dY[idx, 1] = (gy - l * val * y) / r
                dY[idx, 2] = (gz - l * val * z) / r
