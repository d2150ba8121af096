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


@njit(cache=True)
def sorted_neighbours(N, i, j, D):
    """Neighbour list sorted by centre: (first offsets, j, D copies, index of a zero-length pair or -1)."""
    npairs = i.shape[0]
    order = np.arange(npairs)
    for p in range(1, npairs):
        if i[p] < i[p - 1]:
            order = np.argsort(i, kind="mergesort")
            break
    first = np.zeros(N + 1, dtype=np.int64)
    jnb = np.empty(npairs, dtype=np.int64)
    Dout = np.empty((npairs, 3))
    bad = -1
    for p in range(npairs):
        o = order[p]
        first[i[o] + 1] += 1
        jnb[p] = j[o]
        d0, d1, d2 = D[o, 0], D[o, 1], D[o, 2]
        Dout[p, 0] = d0
        Dout[p, 1] = d1
        Dout[p, 2] = d2
        if d0 * d0 + d1 * d1 + d2 * d2 < 1e-16 and bad < 0:
            bad = o
    for a in range(N):
        first[a + 1] += first[a]
    return first, jnb, Dout, bad


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
    i, species, first, jnb, D, nmax, lmax, p, r0, rin, rcut, xin, xcut, anorms,
    nl, aoff, astride, ynorm, ywork, A, Rb, dRb, Yb, dYb, flag,
):
    """A for centre atom i; caches per-neighbour radials and harmonics in Rb, dRb, Yb, dYb.

    A layout: species block z * astride, then per l the (2l+1) × (n < nl[l]) entries from aoff[l].
    """
    s = species[i]
    A[:] = 0.0
    for q in range(first[i + 1] - first[i]):
        pp = first[i] + q
        z = species[jnb[pp]]
        d = D[pp]
        r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        ok = ace_radial(
            r, r0[s, z], p, rin[s, z], rcut[s, z], xin[s, z], xcut[s, z], nmax, anorms,
            Rb[q], dRb[q],
        )
        flag[q] = ok
        if not ok:
            continue
        real_ylm(d, lmax, ynorm, ywork, Yb[q], dYb[q])
        for l in range(lmax + 1):
            nn = nl[l]
            y0 = l * l
            for m in range(2 * l + 1):
                base = z * astride + aoff[l] + m * nn
                y = Yb[q, y0 + m]
                for n in range(nn):
                    A[base + n] += Rb[q, n] * y


@njit(cache=True, fastmath=True)
def _monomials(n0, nb, parent, aidx, A, AA):
    """Forward pass: AA[kk] = AA[parent] * A[aidx] over the nodes n0 … n0+nb of one species."""
    for kk in range(nb):
        k = n0 + kk
        pa = parent[k]
        v = A[aidx[k]]
        if pa >= 0:
            v *= AA[pa - n0]
        AA[kk] = v


@njit(cache=True, fastmath=True)
def _energy_and_adjoint(i, n0, nb, parent, aidx, A, AA, ctil, Eat, adj, adjA):
    """Site energies Σ_k c̃_k AA_k of atom i and the adjoint ∂E/∂A (K columns; K = 1 is scalar)."""
    K = ctil.shape[1]
    adjA[:, :] = 0.0
    if K == 1:
        e = 0.0
        for kk in range(nb):
            c = ctil[n0 + kk, 0]
            e += c * AA[kk]
            adj[kk, 0] = c
        Eat[i, 0] += e
        for kk in range(nb - 1, -1, -1):
            k = n0 + kk
            pa = parent[k]
            a = aidx[k]
            w = adj[kk, 0]
            if pa >= 0:
                adjA[a, 0] += w * AA[pa - n0]
                adj[pa - n0, 0] += w * A[a]
            else:
                adjA[a, 0] += w
        return
    for kk in range(nb):
        v = AA[kk]
        for c in range(K):
            cc = ctil[n0 + kk, c]
            Eat[i, c] += cc * v
            adj[kk, c] = cc
    for kk in range(nb - 1, -1, -1):
        k = n0 + kk
        pa = parent[k]
        a = aidx[k]
        if pa >= 0:
            w = AA[pa - n0]
            av = A[a]
            for c in range(K):
                adjA[a, c] += adj[kk, c] * w
                adj[pa - n0, c] += adj[kk, c] * av
        else:
            for c in range(K):
                adjA[a, c] += adj[kk, c]


@njit(cache=True, fastmath=True)
def _pullback(q, z, d, r, lmax, nl, aoff, astride, Rb, dRb, Yb, dYb, adjA, g1, g2, grad):
    """grad[:, c] = dE_c/dr_q for neighbour q from the adjoint of A."""
    K = adjA.shape[1]
    g1[:, :] = 0.0
    g2[:, :] = 0.0
    for l in range(lmax + 1):
        nn = nl[l]
        y0 = l * l
        for m in range(2 * l + 1):
            base = z * astride + aoff[l] + m * nn
            if K == 1:
                s1 = 0.0
                s2 = 0.0
                for n in range(nn):
                    w = adjA[base + n, 0]
                    s1 += w * dRb[q, n]
                    s2 += w * Rb[q, n]
                g1[y0 + m, 0] = s1
                g2[y0 + m, 0] = s2
            else:
                for n in range(nn):
                    dRn = dRb[q, n]
                    Rn = Rb[q, n]
                    for c in range(K):
                        w = adjA[base + n, c]
                        g1[y0 + m, c] += w * dRn
                        g2[y0 + m, c] += w * Rn
    grad[:, :] = 0.0
    nlm = (lmax + 1) * (lmax + 1)
    for lm in range(nlm):
        y = Yb[q, lm] / r
        dy0 = dYb[q, lm, 0]
        dy1 = dYb[q, lm, 1]
        dy2 = dYb[q, lm, 2]
        for c in range(K):
            t = g1[lm, c] * y
            g = g2[lm, c]
            grad[0, c] += t * d[0] + g * dy0
            grad[1, c] += t * d[1] + g * dy1
            grad[2, c] += t * d[2] + g * dy2


@njit(cache=True, fastmath=True)
def eval_folded(  # fmt: skip
    species, first, jnb, D, nmax, lmax, p, r0,
    rin, rcut, xin, xcut, anorms, nl, aoff, astride,
    ynorm, node_start, parent, aidx, ctil, npair, pp_, prcut,
    pxin, pxcut, core, pnorms, pcoef, pcol, Eat, F, V, AAsum, Ep,
):
    """Fast path for K gradient vectors at once (K may be 0: energies only).

    ctil: (n_nodes, K) folded coefficients; pcoef: (ns, ns, npair, K) pair coefficients (already
    halved for the double-counted full list). Outputs (accumulated): Eat (N, K) site energies,
    F (N, 3, K) forces, V (6, K) virials; AAsum (n_nodes) Σ_i AA_i and Ep (n_pair columns) the
    pair basis energies, from which any coefficient vector's energy is one dot product.
    """
    N = species.shape[0]
    K = ctil.shape[1]
    ns = r0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    maxnb = 0
    for i in range(N):
        maxnb = max(maxnb, first[i + 1] - first[i])
    A = np.zeros(ns * astride)
    adjA = np.zeros((ns * astride, K))
    ywork = np.zeros((5, lmax + 1, lmax + 1))
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
        _atomic_basis(  # fmt: skip
            i, species, first, jnb, D, nmax, lmax, p, r0, rin, rcut, xin, xcut, anorms,
            nl, aoff, astride, ynorm, ywork, A, Rb, dRb, Yb, dYb, flag,
        )
        # pair potential (half per ordered pair)
        if npair > 0:
            for q in range(first[i + 1] - first[i]):
                pp = first[i] + q
                j = jnb[pp]
                z = species[j]
                d = D[pp]
                r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
                if not pair_radial(  # fmt: skip
                    r, r0[s, z], pp_, rin[s, z], prcut[s, z], pxin[s, z], pxcut[s, z], core,
                    npair, pnorms, P, dP,
                ):
                    continue
                c0 = pcol[s, z]
                for n in range(npair):
                    Ep[c0 + n] += 0.5 * P[n]
                for c in range(K):
                    e = 0.0
                    g = 0.0
                    for n in range(npair):
                        e += pcoef[s, z, n, c] * P[n]
                        g += pcoef[s, z, n, c] * dP[n]
                    Eat[i, c] += e
                    g /= r
                    for x in range(3):
                        F[i, x, c] += g * d[x]
                        F[j, x, c] -= g * d[x]
                    _add_virial(V[:, c], g * d[0], g * d[1], g * d[2], d, -1.0)
        n0 = node_start[s]
        nb = node_start[s + 1] - n0
        if nb == 0:
            continue
        _monomials(n0, nb, parent, aidx, A, AA)
        for kk in range(nb):
            AAsum[n0 + kk] += AA[kk]
        if K == 0:
            continue
        _energy_and_adjoint(i, n0, nb, parent, aidx, A, AA, ctil, Eat, adj, adjA)
        for q in range(first[i + 1] - first[i]):
            if not flag[q]:
                continue
            pp = first[i] + q
            j = jnb[pp]
            d = D[pp]
            r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            _pullback(q, species[j], d, r, lmax, nl, aoff, astride, Rb, dRb, Yb, dYb, adjA, g1, g2, grad)
            for c in range(K):
                for x in range(3):
                    F[i, x, c] += grad[x, c]
                    F[j, x, c] -= grad[x, c]
                _add_virial(V[:, c], grad[0, c], grad[1, c], grad[2, c], d, -1.0)


@njit(cache=True, fastmath=True)
def eval_full(  # fmt: skip
    species, first, jnb, D, nmax, lmax, p, r0,
    rin, rcut, xin, xcut, anorms, nl, aoff, astride,
    ynorm, a_z, a_n, a_lm, node_start, parent, aidx, npair,
    pp_, prcut, pxin, pxcut, core, pnorms, pcol, AAsum,
    dAA, vAA, Ep, dEp, Vp,
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
    nA = ns * astride
    A = np.zeros(nA)
    ywork = np.zeros((5, lmax + 1, lmax + 1))
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
            nl,
            aoff,
            astride,
            ynorm,
            ywork,
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
                if a_z[a] == z:
                    n = a_n[a]
                    lm = a_lm[a]
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
