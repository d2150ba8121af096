"""Real spherical harmonics Y_lm(r̂) and their gradients with respect to r (numba).

Layout: index ``l*l + l + m`` for -l ≤ m ≤ l. Orthonormal on the sphere. The phase convention
is whatever this recursion gives; the coupling coefficients are derived against it numerically
(``coupling.complex_to_real``), so no convention has to be kept in step by hand.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hal.ace.jit import FASTMATH

_INV = 1.0 / np.arange(1, 130, dtype=float)
_INV = np.concatenate([[0.0], _INV])  # _INV[k] = 1/k


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


@njit(cache=True, fastmath=FASTMATH)
def real_ylm(rvec: np.ndarray, lmax: int, norms: np.ndarray, work: np.ndarray, Y: np.ndarray, dY: np.ndarray) -> None:
    """Fill Y[(lmax+1)²] with Y_lm(r/|r|) and dY[(lmax+1)², 3] with ∇_r Y_lm (1/Å).

    ``norms`` from ``ylm_norms(lmax)``, ``work`` from ``ylm_work(lmax)``.
    """
    r = math.sqrt(rvec[0] ** 2 + rvec[1] ** 2 + rvec[2] ** 2)
    rinv = 1.0 / r
    x = rvec[0] * rinv
    y = rvec[1] * rinv
    z = rvec[2] * rinv
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
            inv = _INV[l - m]
            Q[l, m] = (a * z * Q[l - 1, m] - b * Q[l - 2, m]) * inv
            Qz[l, m] = (a * (Q[l - 1, m] + z * Qz[l - 1, m]) - b * Qz[l - 2, m]) * inv
            Qr[l, m] = (a * z * Qr[l - 1, m] - b * (Q[l - 2, m] + Qr[l - 2, m])) * inv
    for l in range(L1):
        base = l * l + l
        # m = 0
        nrm = norms[l, 0]
        val = nrm * Q[l, 0]
        b = 2.0 * nrm * Qr[l, 0]
        gx = b * x
        gy = b * y
        gz = nrm * Qz[l, 0] + b * z
        lv = l * val
        Y[base] = val
        dY[base, 0] = (gx - lv * x) * rinv
        dY[base, 1] = (gy - lv * y) * rinv
        dY[base, 2] = (gz - lv * z) * rinv
        for m in range(1, l + 1):
            nrm = norms[l, m]
            a = nrm * Q[l, m]
            b = 2.0 * nrm * Qr[l, m]
            cz = nrm * Qz[l, m] + b * z
            am = a * m
            c, sn, c1, s1 = C[m], S[m], C[m - 1], S[m - 1]
            # +m: a C_m;  -m: a S_m   (∂C_m/∂x = m C_{m-1}, ∂C_m/∂y = -m S_{m-1}, …)
            val = a * c
            lv = l * val
            Y[base + m] = val
            dY[base + m, 0] = (b * x * c + am * c1 - lv * x) * rinv
            dY[base + m, 1] = (b * y * c - am * s1 - lv * y) * rinv
            dY[base + m, 2] = (cz * c - lv * z) * rinv
            val = a * sn
            lv = l * val
            Y[base - m] = val
            dY[base - m, 0] = (b * x * sn + am * s1 - lv * x) * rinv
            dY[base - m, 1] = (b * y * sn + am * c1 - lv * y) * rinv
            dY[base - m, 2] = (cz * sn - lv * z) * rinv
