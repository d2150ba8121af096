"""Numba kernels of the ACE basis: the full basis (for fitting) and the folded fast path (for MD).

Both walk a half-open neighbour list sorted by centre atom (``first[i]:first[i+1]``, neighbour
``jnb``, vector ``D = r_j - r_i + shift`` in Å). Per centre atom they build the atomic basis
``A[z, n, lm] = Σ_j R_n(r_ij) Y_lm(r̂_ij)`` and walk the monomial DAG (each node = its parent node ×
one A entry, nodes sorted by order) of the centre's species. Gradients are dE/dr_p for the pair
vector r_p; virial = -Σ_p sym(dE/dr_p ⊗ r_p), Voigt (xx, yy, zz, yz, xz, xy).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hal.ace.radial import ace_radial, pair_radial
from hal.ace.ylm import real_ylm


@njit(cache=True, fastmath=True, inline="always")
def _add_virial(V, g0, g1, g2, d, scale):
    V[0] += scale * g0 * d[0]
    V[1] += scale * g1 * d[1]
    V[2] += scale * g2 * d[2]
    V[3] += scale * 0.5 * (g1 * d[2] + g2 * d[1])
    V[4] += scale * 0.5 * (g0 * d[2] + g2 * d[0])
    V[5] += scale * 0.5 * (g0 * d[1] + g1 * d[0])


@njit(cache=True, fastmath=True)
def _atomic_basis(
    i,
    species,
    first,
    jnb,
    D,
    nmax,
    lmax,
    p,
    r0,
    rin,
    rcut,
    xin,
    xcut,
    anorms,
    A,
    Rb,
    dRb,
    Yb,
    dYb,
    flag,
):
    """A for centre atom i; caches per-neighbour radials and harmonics in Rb, dRb, Yb, dYb."""
    s = species[i]
    nlm = (lmax + 1) * (lmax + 1)
    A[:] = 0.0
    for q in range(first[i + 1] - first[i]):
        pp = first[i] + q
        z = species[jnb[pp]]
        d = D[pp]
        r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        ok = ace_radial(
            r,
            r0[s, z],
            p,
            rin[s, z],
            rcut[s, z],
            xin[s, z],
            xcut[s, z],
            nmax,
            anorms,
            Rb[q],
            dRb[q],
        )
        flag[q] = ok
        if not ok:
            continue
        real_ylm(d, lmax, Yb[q], dYb[q])
        for n in range(nmax):
            base = (z * nmax + n) * nlm
            Rn = Rb[q, n]
            for lm in range(nlm):
                A[base + lm] += Rn * Yb[q, lm]


@njit(cache=True, fastmath=True)
def eval_folded(
    species,
    first,
    jnb,
    D,
    nmax,
    lmax,
    p,
    r0,
    rin,
    rcut,
    xin,
    xcut,
    anorms,
    node_start,
    parent,
    aidx,
    ctil,
    npair,
    pp_,
    prcut,
    pxin,
    pxcut,
    core,
    pnorms,
    pcoef,
    Eat,
    F,
    V,
):
    """Fast path for K coefficient vectors at once.

    ctil: (n_nodes, K) folded coefficients; pcoef: (ns, ns, npair, K) pair coefficients (already
    halved for the double-counted full list). Outputs (accumulated): Eat (N, K) site energies,
    F (N, 3, K) forces, V (6, K) virials.
    """
    N = species.shape[0]
    K = ctil.shape[1]
    ns = r0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    maxnb = 0
    for i in range(N):
        maxnb = max(maxnb, first[i + 1] - first[i])
    nA = ns * nmax * nlm
    A = np.zeros(nA)
    adjA = np.zeros((nA, K))
    Rb = np.zeros((maxnb, nmax))
    dRb = np.zeros((maxnb, nmax))
    Yb = np.zeros((maxnb, nlm))
    dYb = np.zeros((maxnb, nlm, 3))
    flag = np.zeros(maxnb, dtype=np.bool_)
    maxblock = 0
    for s in range(ns):
        maxblock = max(maxblock, node_start[s + 1] - node_start[s])
    AA = np.zeros(maxblock)
    adj = np.zeros((maxblock, K))
    P = np.zeros(max(npair, 1))
    dP = np.zeros(max(npair, 1))
    g1 = np.zeros((nlm, K))
    g2 = np.zeros((nlm, K))
    grad = np.zeros((3, K))
    for i in range(N):
        s = species[i]
        _atomic_basis(
            i,
            species,
            first,
            jnb,
            D,
            nmax,
            lmax,
            p,
            r0,
            rin,
            rcut,
            xin,
            xcut,
            anorms,
            A,
            Rb,
            dRb,
            Yb,
            dYb,
            flag,
        )
        # pair potential (half per ordered pair)
        if npair > 0:
            for q in range(first[i + 1] - first[i]):
                pp = first[i] + q
                j = jnb[pp]
                z = species[j]
                d = D[pp]
                r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
                if not pair_radial(
                    r,
                    r0[s, z],
                    pp_,
                    rin[s, z],
                    prcut[s, z],
                    pxin[s, z],
                    pxcut[s, z],
                    core,
                    npair,
                    pnorms,
                    P,
                    dP,
                ):
                    continue
                for k in range(K):
                    e = 0.0
                    g = 0.0
                    for n in range(npair):
                        e += pcoef[s, z, n, k] * P[n]
                        g += pcoef[s, z, n, k] * dP[n]
                    Eat[i, k] += e
                    g /= r
                    for c in range(3):
                        F[i, c, k] += g * d[c]
                        F[j, c, k] -= g * d[c]
                    _add_virial(V[:, k], g * d[0], g * d[1], g * d[2], d, -1.0)
        # forward: monomials and site energies
        n0 = node_start[s]
        nb = node_start[s + 1] - n0
        if nb == 0:
            continue
        for kk in range(nb):
            k = n0 + kk
            pa = parent[k]
            v = A[aidx[k]]
            if pa >= 0:
                v *= AA[pa - n0]
            AA[kk] = v
            for c in range(K):
                Eat[i, c] += ctil[k, c] * v
        # backward: adjoints of the monomials and of A
        for kk in range(nb):
            for c in range(K):
                adj[kk, c] = ctil[n0 + kk, c]
        adjA[:, :] = 0.0
        for kk in range(nb - 1, -1, -1):
            k = n0 + kk
            pa = parent[k]
            a = aidx[k]
            if pa >= 0:
                ppa = pa - n0
                w = AA[ppa]
                av = A[a]
                for c in range(K):
                    adjA[a, c] += adj[kk, c] * w
                    adj[ppa, c] += adj[kk, c] * av
            else:
                for c in range(K):
                    adjA[a, c] += adj[kk, c]
        # pull the A adjoint back onto each neighbour
        for q in range(first[i + 1] - first[i]):
            if not flag[q]:
                continue
            pp = first[i] + q
            j = jnb[pp]
            z = species[j]
            d = D[pp]
            r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            g1[:, :] = 0.0
            g2[:, :] = 0.0
            for n in range(nmax):
                base = (z * nmax + n) * nlm
                Rn = Rb[q, n]
                dRn = dRb[q, n]
                for lm in range(nlm):
                    for c in range(K):
                        w = adjA[base + lm, c]
                        g1[lm, c] += w * dRn
                        g2[lm, c] += w * Rn
            grad[:, :] = 0.0
            for lm in range(nlm):
                y = Yb[q, lm] / r
                for c in range(K):
                    t = g1[lm, c] * y
                    grad[0, c] += t * d[0] + g2[lm, c] * dYb[q, lm, 0]
                    grad[1, c] += t * d[1] + g2[lm, c] * dYb[q, lm, 1]
                    grad[2, c] += t * d[2] + g2[lm, c] * dYb[q, lm, 2]
            for c in range(K):
                for x in range(3):
                    F[i, x, c] += grad[x, c]
                    F[j, x, c] -= grad[x, c]
                _add_virial(V[:, c], grad[0, c], grad[1, c], grad[2, c], d, -1.0)


@njit(cache=True, fastmath=True)
def eval_full(
    species,
    first,
    jnb,
    D,
    nmax,
    lmax,
    p,
    r0,
    rin,
    rcut,
    xin,
    xcut,
    anorms,
    node_start,
    parent,
    aidx,
    npair,
    pp_,
    prcut,
    pxin,
    pxcut,
    core,
    pnorms,
    pcol,
    AAsum,
    dAA,
    vAA,
    Ep,
    dEp,
    Vp,
):
    """All monomials and pair functions with their gradients (for the design matrix).

    Outputs (accumulated): AAsum (n_nodes) Σ_i AA_ik; dAA (n_nodes, N, 3) gradients dΣAA/dr_j;
    vAA (n_nodes, 6) virials; Ep, dEp (n_pcols, N, 3), Vp the same for the pair functions, whose
    columns start at pcol[s, z] (symmetric in s, z).
    """
    N = species.shape[0]
    ns = r0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    maxnb = 0
    for i in range(N):
        maxnb = max(maxnb, first[i + 1] - first[i])
    nA = ns * nmax * nlm
    A = np.zeros(nA)
    Rb = np.zeros((maxnb, nmax))
    dRb = np.zeros((maxnb, nmax))
    Yb = np.zeros((maxnb, nlm))
    dYb = np.zeros((maxnb, nlm, 3))
    flag = np.zeros(maxnb, dtype=np.bool_)
    maxblock = 0
    for s in range(ns):
        maxblock = max(maxblock, node_start[s + 1] - node_start[s])
    AA = np.zeros(maxblock)
    dAp = np.zeros((maxblock, 3))
    P = np.zeros(max(npair, 1))
    dP = np.zeros(max(npair, 1))
    stride = nmax * nlm
    for i in range(N):
        s = species[i]
        _atomic_basis(
            i,
            species,
            first,
            jnb,
            D,
            nmax,
            lmax,
            p,
            r0,
            rin,
            rcut,
            xin,
            xcut,
            anorms,
            A,
            Rb,
            dRb,
            Yb,
            dYb,
            flag,
        )
        for q in range(first[i + 1] - first[i]):
            pp = first[i] + q
            j = jnb[pp]
            z = species[j]
            d = D[pp]
            r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            if npair > 0 and pair_radial(
                r,
                r0[s, z],
                pp_,
                rin[s, z],
                prcut[s, z],
                pxin[s, z],
                pxcut[s, z],
                core,
                npair,
                pnorms,
                P,
                dP,
            ):
                c0 = pcol[s, z]
                for n in range(npair):
                    Ep[c0 + n] += 0.5 * P[n]
                    g = 0.5 * dP[n] / r
                    for x in range(3):
                        dEp[c0 + n, j, x] += g * d[x]
                        dEp[c0 + n, i, x] -= g * d[x]
                    _add_virial(Vp[c0 + n], g * d[0], g * d[1], g * d[2], d, -1.0)
        n0 = node_start[s]
        nb = node_start[s + 1] - n0
        if nb == 0:
            continue
        for kk in range(nb):
            k = n0 + kk
            pa = parent[k]
            v = A[aidx[k]]
            if pa >= 0:
                v *= AA[pa - n0]
            AA[kk] = v
            AAsum[k] += v
        # forward-mode derivative of every monomial along each neighbour vector
        for q in range(first[i + 1] - first[i]):
            if not flag[q]:
                continue
            pp = first[i] + q
            j = jnb[pp]
            z = species[j]
            d = D[pp]
            r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            for kk in range(nb):
                k = n0 + kk
                pa = parent[k]
                a = aidx[k]
                g0 = 0.0
                g1 = 0.0
                g2 = 0.0
                if pa >= 0:
                    av = A[a]
                    g0 = dAp[pa - n0, 0] * av
                    g1 = dAp[pa - n0, 1] * av
                    g2 = dAp[pa - n0, 2] * av
                if a // stride == z:
                    rem = a - z * stride
                    n = rem // nlm
                    lm = rem - n * nlm
                    w = 1.0 if pa < 0 else AA[pa - n0]
                    t = dRb[q, n] * Yb[q, lm] / r
                    Rn = Rb[q, n]
                    g0 += w * (t * d[0] + Rn * dYb[q, lm, 0])
                    g1 += w * (t * d[1] + Rn * dYb[q, lm, 1])
                    g2 += w * (t * d[2] + Rn * dYb[q, lm, 2])
                dAp[kk, 0] = g0
                dAp[kk, 1] = g1
                dAp[kk, 2] = g2
                dAA[k, j, 0] += g0
                dAA[k, j, 1] += g1
                dAA[k, j, 2] += g2
                dAA[k, i, 0] -= g0
                dAA[k, i, 1] -= g1
                dAA[k, i, 2] -= g2
                _add_virial(vAA[k], g0, g1, g2, d, -1.0)
